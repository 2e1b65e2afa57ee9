"""What one request gathers: counts per model, samples, and call sites.

Call sites: for each instance we walk up from ``Model.__init__`` to the first
project frame (``scope.is_project_file``). A fast path recognises the call path of the
previous instance (the rows of one queryset iteration) and a memo keyed on live
non-generator frames shortens the walk otherwise; both are checked against a full walk of
every instance in the tests. The full stack is captured once per (model, site).
"""

from __future__ import annotations

import inspect
import sys
import time
import weakref
from dataclasses import dataclass, field
from types import CodeType, FrameType
from typing import Any

from django.db.models import Model

from ..blame import RENDER_ANNOTATED, TEMPLATE, Blame, blame, is_boundary
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

_ref = weakref.ref

_project_code: dict[CodeType, bool] = {}


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
        key: tuple[Any, int] | None = None
        blamed: Blame | None = None
        while f is not None:
            hit = memo.get(f)
            if hit is not None and hit[0] == f.f_lasti:
                key = hit[1]
                break
            code = f.f_code
            if _is_project_code(code):
                key = (code, f.f_lasti)
                break
            if code is RENDER_ANNOTATED or is_boundary(code):
                # A template node or the view's scope before any project frame: the shared
                # rule (``blame``) decides; memoise only frames below the one it names.
                blamed = blame(start, _is_project_code)
                if blamed is not None:
                    key = _blame_key(blamed)
                    if walked:
                        walked = walked[: _frames_below(walked, blamed.frame)]
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
            if blamed is None and not (isinstance(key[0], CodeType) and _is_project_code(key[0])):
                blamed = blame(start, _is_project_code)  # a memo hit left by another model
            site = self.sites[site_key] = _new_site(sender, start, blamed)
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


def _blame_key(blamed: Blame) -> tuple[Any, int]:
    """A site's key: a code and instruction, or a template path and line."""
    if blamed.kind == TEMPLATE:
        return (blamed.where[0], blamed.where[1])
    return (blamed.frame.f_code, blamed.frame.f_lasti)


def _frames_below(walked: list[FrameType], frame: FrameType) -> int:
    """How many of ``walked`` (innermost first) are below ``frame``."""
    for i, w in enumerate(walked):
        if w is frame:
            return i
    return len(walked)


def _new_site(sender: type, start: FrameType, blamed: Blame | None = None) -> Site:
    stack: list[tuple[str, int, str]] = []
    project_index = None
    related = None
    f: FrameType | None = start
    while f is not None and len(stack) < MAX_STACK:
        code = f.f_code
        if blamed is not None and f is blamed.frame:
            project_index = len(stack)
            stack.append(blamed.where)
            f = f.f_back
            continue
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
