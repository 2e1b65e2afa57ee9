"""Count every Django model instance a request builds, and where it was built.

One hook per process, installed once and never stacked: Django calls
``post_init.send(sender=cls, instance=self)`` at the end of every
``Model.__init__`` (querysets, ``select_related``, ``prefetch_related``,
deferred loading and unsaved instances all go through it). We replace the
``send`` attribute of that one signal object with a function that counts and
then hands over to Django's own ``send``. A ``post_init`` receiver would cost more:
``Signal.send`` then builds receiver lists per call (docs/instances.md).

The hook is gated per request by a :class:`~debug_toolbar_perf.context.RequestLocal`
(a ``ContextVar``): with no collector bound in the current context it returns at
once, so concurrent requests (threads, or ASGI tasks on one event loop) count only
their own instances. Threads the view starts with ``threading.Thread`` do not inherit
the ContextVar: their instances are not counted (documented, tested). Work handed to
``asgiref.sync_to_async``, ``asyncio`` tasks the view creates, and
``contextvars.copy_context().run`` are counted while the request runs.

Per instance, with a collector bound, the hook does one ContextVar lookup and one dict
update; it calls :meth:`Collector.on_instance` only while the model's count is within the
samples (weak references for "alive after the response", strong ones for sizes) or when
call sites are captured. Measured (valgrind, instructions per instance on 20k rows): the
counting adds about 2% to building an instance, where the previous design (every instance
through a method call, a frame lookup and a context manager) added 20%.

Call sites: for each instance we walk up from ``Model.__init__`` to the first
project frame (``scope.is_project_file``). A fast path recognises the call path of the
previous instance (the rows of one queryset iteration) and a memo keyed on live
non-generator frames shortens the walk otherwise; both are checked against a full walk of
every instance in the tests. The full stack is captured once per (model, site).
"""

from __future__ import annotations

import contextvars
import gc
import inspect
import linecache
import math
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import CodeType, FrameType
from typing import Any

from django.db.models import Model
from django.db.models.signals import post_init
from django.dispatch import Signal

from ..context import RequestLocal
from ..scope import is_project_file, on_project_paths_changed

#: Frames kept for one captured stack (innermost first).
MAX_STACK = 60
#: Frame memo entries before the memo is emptied (bounds memory and held frames).
MEMO_LIMIT = 512
#: Distinct query indices remembered per site (the count goes on).
MAX_QUERY_INDICES = 200
#: Frames the call-site fast path compares above the caller of ``Model.__init__``.
MAX_FAST_CHAIN = 6

_NOT_MEMOISED = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR

COLLECTOR: RequestLocal[Collector] = RequestLocal("debug_toolbar_perf.instances")
_current = COLLECTOR._var.get  # the hot path avoids one Python call per instance
_ref = weakref.ref

_project_code: dict[CodeType, bool] = {}
_install_lock = threading.Lock()


def _is_project_code(code: CodeType) -> bool:
    flag = _project_code.get(code)
    if flag is None:
        flag = _project_code[code] = is_project_file(code.co_filename)
    return flag


_init_codes: dict[type, frozenset[CodeType]] = {}
_MODEL_INIT: CodeType = Model.__init__.__code__


def _model_init_codes(model: type) -> frozenset[CodeType]:
    """Code of the ``__init__`` methods a model class defines above ``Model.__init__``."""
    codes = set()
    for klass in model.__mro__:
        init = klass.__dict__.get("__init__")
        code = getattr(init, "__code__", None)
        if isinstance(code, CodeType) and klass.__module__ != "django.db.models.base":
            codes.add(code)
    return frozenset(codes)


@on_project_paths_changed
def clear_code_cache() -> None:
    """Forget which code objects are project code (after PROJECT_PATHS changes)."""
    _project_code.clear()
    _init_codes.clear()


@dataclass
class Site:
    """One creation call site of one model: where, how often, and the stack."""

    model: type
    stack: list[tuple[str, int, str]]  # (filename, lineno, function), innermost first
    project_index: int | None  # index in ``stack`` of the first project frame
    related: dict[str, str] | None  # related-descriptor hint ({"kind", "field"})
    count: int = 0
    last_query: int = -1
    query_count: int = 0  # distinct "latest query" indices seen while building
    queries: list[int] = field(default_factory=list)

    def note_query(self, index: int) -> None:
        if index != self.last_query:
            self.last_query = index
            self.query_count += 1
            if len(self.queries) < MAX_QUERY_INDICES:
                self.queries.append(index)


class Collector:
    """Everything one request gathers. Only the context it is bound in writes it."""

    def __init__(
        self,
        *,
        capture_sites: bool = True,
        site_every: int = 1,
        size_sample: int = 0,
        alive_sample: int = 100,
        queries: list[Any] | None = None,
    ) -> None:
        self.counts: dict[type, int] = {}
        #: Where the hook counts: ``counts`` itself, or a scratch dict once the hook failed.
        self.tally = self.counts
        self.capture_sites = capture_sites
        self.site_every = max(1, site_every)
        self.size_sample = size_sample
        self.alive_sample = alive_sample
        self.sample_cap = max(size_sample, alive_sample)
        #: The hook calls :meth:`on_instance` for the n-th instance of a model while
        #: ``n <= slow_until``: always with call sites on, for the samples only with them off.
        self.slow_until = sys.maxsize if capture_sites else self.sample_cap
        self.queries = queries  # the SQL panel's live list of recorded queries, if any
        self.sites: dict[tuple[type, CodeType, int], Site] = {}
        self.sampled_sites: int = 0  # instances attributed to a site
        self.memo: dict[FrameType, tuple[int, tuple[CodeType, int], Site | None]] = {}
        # Samples in flat lists (one append per instance; grouped by type() at the end:
        # Model.__init__ sends sender=type(self)). The size sample is dropped at the record.
        self.strong: list[Any] = []
        self.weak: list[weakref.ref[Any]] = []
        self.no_weakref: set[type] = set()  # models whose instances take no weak reference
        self.started = time.perf_counter()
        self.stopped: float | None = None
        self.hook_error: str | None = None
        self._forget_last()

    def _forget_last(self) -> None:
        self._last_model: type | None = None
        self._last_code: CodeType | None = None
        self._last_lasti = -1
        self._last_chain: tuple[tuple[FrameType, int], ...] = ()
        self._last_site: Site | None = None

    # -- the slow part of the hot path ----------------------------------------------

    def on_instance(self, sender: type, instance: Any, n: int, depth: int = 3) -> None:
        """The n-th instance of ``sender`` (already counted): samples and call site.

        ``depth`` is how far up ``Model.__init__``'s caller is from here.
        """
        if n <= self.alive_sample:
            try:
                self.weak.append(_ref(instance))
            except TypeError:  # a model with __slots__ and no __weakref__
                self.no_weakref.add(sender)
        if n <= self.size_sample:
            self.strong.append(instance)
        if not self.capture_sites:
            return
        if self.site_every != 1 and n % self.site_every != 1:
            return
        frame = sys._getframe(depth)
        # Fast path: the same call path as the previous instance (the rows of one queryset
        # iteration): the same code at the same instruction in ``frame`` (from_db's frame is
        # new for every row), then the same frame objects at the same instructions up to
        # the first one that is not a generator (nothing above it can have changed) or the
        # project frame that is the site. Generators are resumed from anywhere: an
        # ``.iterator()`` resumed from two lines must make two sites.
        if (
            sender is self._last_model
            and frame.f_code is self._last_code
            and frame.f_lasti == self._last_lasti
        ):
            up = frame.f_back
            for same, lasti in self._last_chain:
                if up is not same or up.f_lasti != lasti:
                    break
                up = up.f_back
            else:
                site = self._last_site
                if site is not None:  # _count_site, written out: this runs per row
                    site.count += 1
                    self.sampled_sites += 1
                    queries = self.queries
                    if queries is not None and len(queries) - 1 != site.last_query:
                        site.note_query(len(queries) - 1)
                    return
        site = self._attribute(sender, frame)
        self._remember_path(sender, frame, site)
        self._count_site(site)

    def _count_site(self, site: Site) -> None:
        site.count += 1
        self.sampled_sites += 1
        queries = self.queries
        if queries is not None:
            n_queries = len(queries) - 1
            if n_queries != site.last_query:
                site.note_query(n_queries)

    def _remember_path(self, sender: type, frame: FrameType, site: Site) -> None:
        """Keep what the fast path compares (see :meth:`on_instance`), or nothing."""
        self._last_model = None  # no fast path unless the walk below finds where to stop
        chain: list[tuple[FrameType, int]] = []
        code = frame.f_code
        inits = _init_codes.get(sender, ())
        # ``frame`` settles the site alone only if it is the project frame the site names:
        # not a custom __init__ in project code (the site is its caller).
        if not _is_project_code(code) or code in inits or code is _MODEL_INIT:
            f = frame.f_back
            while True:
                if f is None or len(chain) >= MAX_FAST_CHAIN:
                    return  # no stop found near: the slow path every time
                chain.append((f, f.f_lasti))
                if _is_project_code(f.f_code) or not f.f_code.co_flags & _NOT_MEMOISED:
                    break
                f = f.f_back
        self._last_model = sender
        self._last_code = frame.f_code
        self._last_lasti = frame.f_lasti
        self._last_chain = tuple(chain)
        self._last_site = site

    def _attribute(self, sender: type, start: FrameType) -> Site:
        """Count the instance on its call site: the first project frame up the stack."""
        own_inits = _init_codes.get(sender)
        if own_inits is None:
            own_inits = _init_codes[sender] = _model_init_codes(sender)
        # A custom __init__ calling super() is not the site; nor is Model.__init__ when
        # another tool's wrapper of post_init.send sits between it and our hook.
        while (start.f_code in own_inits or start.f_code is _MODEL_INIT) and start.f_back:
            start = start.f_back
        memo = self.memo
        f: FrameType | None = start
        walked: list[FrameType] | None = None
        key: tuple[CodeType, int] | None = None
        while f is not None:
            hit = memo.get(f)
            if hit is not None and hit[0] == f.f_lasti:
                key = hit[1]
                break
            code = f.f_code
            if _is_project_code(code):
                key = (code, f.f_lasti)
                break
            if not code.co_flags & _NOT_MEMOISED:
                if walked is None:
                    walked = [f]
                else:
                    walked.append(f)
            f = f.f_back
        if key is None:  # no project frame at all: the immediate caller is the site
            key = (start.f_code, start.f_lasti)
            walked = None  # frames above ``start`` do not determine it: memoise nothing
        if walked:
            if len(memo) > MEMO_LIMIT:
                memo.clear()
            for w in walked:
                memo[w] = (w.f_lasti, key, None)
        site_key = (sender, key[0], key[1])
        site = self.sites.get(site_key)
        if site is None:
            site = self.sites[site_key] = _new_site(sender, start)
        return site

    def fail(self, exc: BaseException) -> None:
        """Our hook raised: stop counting for this request and say so in the record.

        The counts so far stay in ``counts``; the hook goes on incrementing a scratch dict
        (cheaper than one more test per instance) and never calls :meth:`on_instance` again.
        """
        if self.hook_error is None:
            self.hook_error = f"{type(exc).__name__}: {exc}"[:500]
        self.tally = {}
        self.slow_until = -1

    # -- end of request -------------------------------------------------------------

    def finish(self) -> None:
        """Drop everything that holds frames; keep counts, sites and the size sample.

        Contexts copied during the request (a thread started under ``copy_context()``, an
        asyncio task the view created) may outlive it and still see this collector: from
        here on what they build goes to a scratch tally and is neither counted nor sampled.
        """
        self.tally = {}
        self.slow_until = -1
        self.memo.clear()
        self._forget_last()
        if self.stopped is None:
            self.stopped = time.perf_counter()

    def release_sample(self) -> dict[type, list[Any]]:
        """Hand over (and forget) the strong size sample, by model."""
        strong, self.strong = self.strong, []
        by_model: dict[type, list[Any]] = {}
        for obj in strong:
            by_model.setdefault(type(obj), []).append(obj)
        strong.clear()
        return by_model

    def alive(self) -> dict[type, tuple[int, int]]:
        """Per model: (tracked instances still alive, tracked instances).

        The first ``alive_sample`` instances of each model are tracked, so a model's
        tracked count is ``min(count, alive_sample)``; the live ones name their model.
        """
        live: dict[type, int] = {}
        for ref in self.weak:
            obj = ref()
            if obj is not None:
                model = type(obj)
                live[model] = live.get(model, 0) + 1
        return {
            model: (live.get(model, 0), min(count, self.alive_sample))
            for model, count in self.counts.items()
            if model not in self.no_weakref and self.alive_sample > 0
        }


def _related_hint(frame: FrameType) -> dict[str, str] | None:
    """If a related descriptor/manager built this instance, which fix applies."""
    filename = frame.f_code.co_filename.replace("\\", "/")
    if not filename.endswith("django/db/models/fields/related_descriptors.py"):
        return None
    owner = frame.f_locals.get("self")
    name = type(owner).__name__
    fld = getattr(owner, "field", None)
    if name in ("ForwardManyToOneDescriptor", "ForwardOneToOneDescriptor"):
        return {"kind": "select_related", "field": getattr(fld, "name", "") or ""}
    if name == "ReverseOneToOneDescriptor":
        rel = getattr(owner, "related", None)
        return {"kind": "select_related", "field": getattr(rel, "name", "") or ""}
    if "Manager" in name or "Many" in name:
        related_name = ""
        fld = getattr(owner, "field", None)
        if fld is not None:
            related_name = fld.related_query_name()
        prefetch = getattr(owner, "prefetch_cache_name", None) or related_name
        return {"kind": "prefetch_related", "field": str(prefetch or "")}
    return None


def _new_site(sender: type, start: FrameType) -> Site:
    stack: list[tuple[str, int, str]] = []
    project_index = None
    related = None
    f: FrameType | None = start
    while f is not None and len(stack) < MAX_STACK:
        code = f.f_code
        stack.append((code.co_filename, f.f_lineno or 0, code.co_name))
        if project_index is None:
            if related is None:
                try:
                    related = _related_hint(f)
                except Exception:  # a hint is optional; never break the view
                    related = None
            if _is_project_code(code):
                project_index = len(stack) - 1
        f = f.f_back
    return Site(sender, stack, project_index, related)


# -- the one hook -----------------------------------------------------------------

_orig_send: Any = None
_orig_is_django = True
#: The instance our hook is passing to the send it wrapped: another tool's wrapper installed
#: on top of an older copy of our hook calls back into it with the same instance; that call
#: must neither count it again nor loop forever.
_inside = threading.local()


def _send(sender: Any, **named: Any) -> Any:
    """``post_init.send``: count the instance if a collector is bound here, then forward.

    The common case (forwarding to Django's own ``send``) is written out in full: this runs
    for every model instance of every request, so each attribute read and call counts. With
    no receivers connected Django's ``send`` returns ``[]`` at once; so do we, without
    calling it.
    """
    collector = _current()
    if _orig_is_django:
        if collector is not None:
            try:
                tally = collector.tally
                n = tally.get(sender, 0) + 1
                tally[sender] = n
                if n <= collector.slow_until:
                    collector.on_instance(sender, named.get("instance"), n)
            except Exception as exc:  # never break the user's Model.__init__
                collector.fail(exc)
        return _orig_send(sender, **named) if post_init.receivers else []
    return _send_through(collector, sender, named)


def _send_through(collector: Collector | None, sender: Any, named: dict[str, Any]) -> Any:
    """``_send`` when it forwards to another tool's override rather than Django's ``send``."""
    instance = named.get("instance")
    if instance is not None and getattr(_inside, "instance", None) is instance:
        return Signal.send(post_init, sender, **named)  # re-entered: Django's own send
    if collector is not None:
        try:
            tally = collector.tally
            n = tally.get(sender, 0) + 1
            tally[sender] = n
            if n <= collector.slow_until:
                collector.on_instance(sender, instance, n, 4)
        except Exception as exc:
            collector.fail(exc)
    outer = getattr(_inside, "instance", None)
    _inside.instance = instance
    try:
        return _orig_send(sender, **named)
    finally:
        _inside.instance = outer


_send.debug_toolbar_perf_hook = True  # type: ignore[attr-defined]


def install() -> None:
    """Install the hook on ``post_init`` once per process (idempotent, thread-safe)."""
    global _orig_send, _orig_is_django
    with _install_lock:
        current = post_init.__dict__.get("send")
        if getattr(current, "debug_toolbar_perf_hook", False):
            return
        _orig_send = post_init.send  # Django's bound method (or someone else's override)
        _orig_is_django = getattr(_orig_send, "__func__", None) is Signal.send
        post_init.send = _send  # type: ignore[method-assign]


def uninstall() -> None:
    """Remove the hook (tests; the panel never uninstalls, since other requests may count).

    Idempotent. If another tool wrapped ``post_init.send`` after us, our hook is left in
    place with what it forwards to: their wrapper still calls it, and forgetting
    ``_orig_send`` would make every ``Model()`` fail.
    """
    global _orig_send, _orig_is_django
    with _install_lock:
        if not getattr(post_init.__dict__.get("send"), "debug_toolbar_perf_hook", False):
            return  # not installed, or buried under another tool's wrapper
        if getattr(_orig_send, "__self__", None) is post_init:
            del post_init.send
        else:
            post_init.send = _orig_send  # type: ignore[method-assign]
        _orig_send = None
        _orig_is_django = True


def installed() -> bool:
    return bool(getattr(post_init.__dict__.get("send"), "debug_toolbar_perf_hook", False))


@contextmanager
def counting(collector: Collector) -> Iterator[Collector]:
    """Count instances built in the current context while the block runs."""
    install()
    with COLLECTOR.bound(collector):
        try:
            yield collector
        finally:
            collector.finish()


class Session:
    """A started measurement: the bound collector and the token to unbind it."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self._token: contextvars.Token[Any] | None = None

    def start(self) -> Session:
        install()
        self._token = COLLECTOR._var.set(self.collector)
        return self

    def stop(self) -> None:
        token, self._token = self._token, None
        if token is not None:
            try:
                COLLECTOR._var.reset(token)
            except ValueError:  # reset from another context: just unbind here
                COLLECTOR._var.set(None)
        self.collector.finish()


# -- from a finished collector to a JSON-native record --------------------------------

#: Call sites kept per model in the record (the rest are summed).
MAX_SITES = 10


def model_label(model: type) -> str:
    meta = getattr(model, "_meta", None)
    return str(getattr(meta, "label", None) or f"{model.__module__}.{model.__qualname__}")


def _frame_json(filename: str, lineno: int, function: str) -> dict[str, Any]:
    return {
        "file": filename,
        "line": lineno,
        "function": function,
        "code": linecache.getline(filename, lineno).strip()[:300],
        "project": _project_file(filename),
    }


def _project_file(filename: str) -> bool:
    try:
        return is_project_file(filename)
    except Exception:
        return False


def _site_json(site: Site) -> dict[str, Any]:
    stack = [_frame_json(*frame) for frame in site.stack]
    idx = site.project_index
    where = stack[idx] if idx is not None else (stack[0] if stack else None)
    below = None  # the library call the project line made (e.g. QuerySet.__bool__)
    if idx is not None and idx > 0:
        below = stack[idx - 1]["function"]
    return {
        "count": site.count,
        "where": where,
        "project_index": idx,
        "called": below,
        "stack": stack,
        "related": site.related,
        "query_count": site.query_count,
        "queries": list(site.queries),
    }


# Per-instance caches that point at other model instances (counted under their own model).
_RELATION_CACHES = ("_prefetched_objects_cache",)


def own_size(obj: Any, asizeof: Any) -> int:
    """Deep size of one instance and its own field values, with Pympler's asizeof.

    A plain ``asizeof(instance)`` follows the related-object caches: one Review reaches its
    Product, whose prefetched reviews reach every other Review, so 2,000 reviews measured
    ~260 MB. Related instances and prefetch caches are left out here: each is counted
    under its own model. One ``asizeof`` call sizes the field values and the ``_state``
    values together (Pympler's set-up costs about as much as sizing a small instance).
    """
    own = {
        k: v
        for k, v in obj.__dict__.items()
        if k != "_state" and k not in _RELATION_CACHES and not isinstance(v, Model)
    }
    state = obj.__dict__.get("_state")
    if state is None:
        return sys.getsizeof(obj) + asizeof.asizeof(own)
    state_dict = {k: v for k, v in vars(state).items() if k != "fields_cache"}
    return sys.getsizeof(obj) + sys.getsizeof(state) + asizeof.asizeof(own, state_dict)


#: Size samples measured per model before measuring may stop early.
MIN_SIZE_SAMPLES = 10
#: ... once the standard error of the mean size is below this fraction of the mean.
SIZE_PRECISION = 0.02


def measure_sizes(sample: dict[type, list[Any]]) -> dict[type, dict[str, Any]]:
    """Size of the sampled instances of each model (see :func:`own_size`).

    Sizing is the largest fixed cost of the panel per request (about 20 us per instance), and
    instances of one model are mostly alike: after :data:`MIN_SIZE_SAMPLES`, measuring stops
    as soon as the mean is known to within :data:`SIZE_PRECISION` (standard error).
    """
    from pympler import asizeof

    out: dict[type, dict[str, Any]] = {}
    for model, objs in sample.items():
        if not objs:
            continue
        start = time.perf_counter()
        sizes: list[int] = []
        total = 0.0
        squares = 0.0
        for obj in objs:
            size = own_size(obj, asizeof)
            sizes.append(size)
            total += size
            squares += size * size
            k = len(sizes)
            if k >= MIN_SIZE_SAMPLES and k < len(objs):
                mean = total / k
                variance = max(0.0, (squares - k * mean * mean) / (k - 1))
                if math.sqrt(variance / k) <= SIZE_PRECISION * mean:
                    break
        out[model] = {
            "mean": total / len(sizes),
            "min": min(sizes),
            "max": max(sizes),
            "samples": len(sizes),
            "sampled": len(objs),  # instances held for sizing (up to INSTANCES.SIZE_SAMPLE)
            "ms": (time.perf_counter() - start) * 1000,
        }
    return out


def build_record(
    collector: Collector,
    *,
    queries: list[Any] | None,
    threshold: int,
    n_plus_one: int,
    pympler: bool,
    full_gc: bool = False,
) -> dict[str, Any]:
    """The JSON-native record of one request's instances."""
    sample = collector.release_sample()
    sizes: dict[type, dict[str, Any]] = {}
    size_error = None
    if pympler:
        try:
            sizes = measure_sizes(sample)
        except Exception as exc:  # asizeof on an odd object: counts still stand
            size_error = f"{type(exc).__name__}: {exc}"[:500]
    sample.clear()
    del sample
    alive = collector.alive()
    if any(a for a, _ in alive.values()):
        # Cycles built during the request (a class-based view holding its QuerySet through
        # the bound method View.setup() stores as self.head) are garbage, not leaks. By
        # default only the young generations: a full collection costs 0.05-0.2 s on a big
        # heap (measured: it made request 1,000 x2.3 slower than request 1).
        gc.collect(2 if full_gc else 1)
        alive = collector.alive()

    by_model: dict[type, list[Site]] = {}
    for site in collector.sites.values():
        by_model.setdefault(site.model, []).append(site)
    used_queries: set[int] = set()
    models = []
    for model, count in sorted(collector.counts.items(), key=lambda kv: -kv[1]):
        meta = getattr(model, "_meta", None)
        concrete = getattr(meta, "concrete_model", model) or model
        sites = sorted(by_model.get(model, []), key=lambda s: -s.count)
        kept = sites[:MAX_SITES]
        for s in kept:
            used_queries.update(s.queries[:20])
        size = sizes.get(model)
        alive_n, tracked = alive.get(model, (0, 0))
        models.append(
            {
                "label": model_label(model),
                "concrete": model_label(concrete) if concrete is not model else None,
                "proxy": bool(getattr(meta, "proxy", False)),
                "count": count,
                "alive": alive_n,
                "alive_tracked": tracked,
                "size": None if size is None else {**size, "estimated_total": size["mean"] * count},
                "sites": [_site_json(s) for s in kept],
                "sites_more": len(sites) - len(kept),
                "sites_more_count": sum(s.count for s in sites[len(kept) :]),
            }
        )
    sql: dict[str, Any] = {"present": queries is not None, "total": 0, "queries": {}}
    if queries is not None:
        sql["total"] = len(queries)
        for index in sorted(used_queries):
            if 0 <= index < len(queries):
                q = queries[index]
                sql["queries"][str(index)] = {
                    "raw_sql": str(q.get("raw_sql") or q.get("sql") or "")[:1000],
                    "alias": str(q.get("alias") or ""),
                }
    return {
        "total": sum(collector.counts.values()),
        "models": models,
        "threshold": threshold,
        "n_plus_one": n_plus_one,
        "site_capture": collector.capture_sites,
        "site_every": collector.site_every,
        "site_attributed": collector.sampled_sites,
        "size_sample": collector.size_sample,
        "size_min_samples": MIN_SIZE_SAMPLES,
        "size_precision_pct": SIZE_PRECISION * 100,
        "alive_sample": collector.alive_sample,
        "full_gc": full_gc,
        "hook_error": collector.hook_error,
        "pympler": pympler,
        "size_error": size_error,
        "sql": sql,
        "elapsed_ms": ((collector.stopped or time.perf_counter()) - collector.started) * 1000,
        "hook": "django.db.models.signals.post_init.send",
    }
