"""What every perf panel shares: view scoping, isolation of faults, JSON stats,
rendering from stored stats, exports and error display.

A subclass implements four small hooks:

* :meth:`PerfPanel.start` - begin measuring (returns an engine session);
* :meth:`PerfPanel.stop` - end measuring (always called, even if the view raised);
* :meth:`PerfPanel.build_record` - turn the session into a JSON-native record;
* :meth:`PerfPanel.get_context` - turn stored stats into template context.

Everything a subclass does runs under :meth:`PerfPanel.guard`: an exception is
recorded as an error shown inside the panel, and never reaches the user's page.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from debug_toolbar.panels import Panel
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.templatetags.static import static

from . import baseline
from .availability import EngineProblem
from .baseline import Comparison
from .blame import note_view
from .endpoints import signed_url, urls
from .records import ErrorRecord, Stats, TargetJSON, check_json, error_record
from .router import RouterFollower, follow
from .scope import UNRESOLVED, ViewTarget, resolve_view_target

logger = logging.getLogger("debug_toolbar_perf")

STATS_VERSION = 1
_TARGET_ATTR = "_debug_toolbar_perf_target"
_FOLLOW_ATTR = "_debug_toolbar_perf_follower"
#: Our templates' prefix, added to the toolbar's SKIP_TEMPLATE_PREFIXES (see PerfPanel).
TEMPLATE_PREFIX = "debug_toolbar_perf/"


@dataclass(frozen=True)
class ExportFile:
    filename: str
    content_type: str
    content: bytes


def view_target_for(toolbar: Any, request: HttpRequest) -> ViewTarget:
    """The request's :class:`ViewTarget`, resolved once and shared by every perf panel."""
    target = getattr(toolbar, _TARGET_ATTR, None)
    if target is None:
        try:
            target = resolve_view_target(request)
        except Exception:  # never let scoping break the page
            logger.exception("debug_toolbar_perf: could not resolve the view")
            target = UNRESOLVED
        note_view(target)  # the scope's edge for blame (see .blame)
        setattr(toolbar, _TARGET_ATTR, target)
    return target


def router_follower(toolbar: Any, request: HttpRequest | None = None) -> RouterFollower | None:
    """The request's :class:`~.router.RouterFollower`, started once (WSGI) by the first perf
    panel when the view may hand the request to another view (see :mod:`.router`)."""
    if _FOLLOW_ATTR in toolbar.__dict__ or request is None:
        return toolbar.__dict__.get(_FOLLOW_ATTR)
    follower = None
    try:
        follower = follow(request, view_target_for(toolbar, request))
    except Exception:  # never let following break the page
        logger.exception("debug_toolbar_perf: could not follow the view")
    toolbar.__dict__[_FOLLOW_ATTR] = follower
    return follower


def target_json(toolbar: Any, target: ViewTarget) -> TargetJSON:
    """What the panels name as the view: the handler a router handed the request to, and
    from where, when it was followed."""
    follower = router_follower(toolbar)
    if follower is None or follower.found is None:
        return target.to_json()
    return {"label": f"{follower.found.label} (via {target.label})", "kind": follower.found.kind}


def skip_our_templates(toolbar: Any) -> None:
    """Keep the toolbar's Templates panel from recording our panels' templates.

    Its ``template_rendered`` receiver is process-wide: a page request's Templates panel
    records every template rendered in any thread while it runs, with its whole context
    pretty-printed. Under a threaded server that took in our panels rendered for other
    requests (their records, plans, merged profiles): up to 8.7 MB of JSON stored for one
    page, 30 MB across the toolbar's 25 requests, and glibc's per-thread arenas kept what
    the pretty-printing freed (the gthread worker's RSS after malloc_trim grew by 40 MB
    over 800 requests). The toolbar's own templates are skipped by their prefix; ours
    join them in this toolbar's copy of the config, not in the user's settings.
    """
    config = getattr(toolbar, "config", None)
    if not isinstance(config, dict):
        return
    skip = tuple(config.get("SKIP_TEMPLATE_PREFIXES") or ())
    if TEMPLATE_PREFIX not in skip:
        config["SKIP_TEMPLATE_PREFIXES"] = (*skip, TEMPLATE_PREFIX)


class PerfPanel(Panel):
    """Base class of the four panels. Thin subclasses wire an engine to a template."""

    #: Template rendering the panel body (extends debug_toolbar_perf/panels/base.html).
    template: ClassVar[str] = ""
    #: Extra ES modules (static paths) the panel needs besides perf.js.
    extra_scripts: ClassVar[tuple[str, ...]] = ()
    #: (format, label) pairs offered as download links.
    export_formats: ClassVar[tuple[tuple[str, str], ...]] = ()
    #: Names of the endpoints (``endpoints.ENDPOINTS``) this panel mounts.
    endpoints: ClassVar[tuple[str, ...]] = ("perf_export",)
    #: Every perf panel runs under ASGI too (the toolbar disables panels that say False).
    #: Engines read :attr:`asgi` to pick how they follow the request across threads.
    is_async = True
    asgi: bool = False

    def __init__(self, toolbar: Any, get_response: Any) -> None:
        super().__init__(toolbar, get_response)
        skip_our_templates(toolbar)

    # -- hooks for subclasses -------------------------------------------------------

    def start(self, request: HttpRequest, target: ViewTarget) -> Any:
        """Begin a measurement; return a session object passed to stop/build_record."""
        return None

    def stop(self, session: Any) -> None:
        """End the measurement. Must be idempotent."""

    async def astart(self, session: Any) -> None:
        """Under ASGI, after :meth:`start` and before the view: e.g. reach the executor
        thread a sync view will run in (``sync_to_async(thread_sensitive=True)``)."""

    async def astop(self, session: Any) -> None:
        """Under ASGI, after the view and before :meth:`stop` (undo :meth:`astart`)."""

    def build_record(
        self, request: HttpRequest, response: HttpResponse, session: Any
    ) -> Mapping[str, Any] | None:
        """The JSON-native record of this request (None: nothing worth showing but errors).

        Each feature types its record (a TypedDict: ``SamplingRecord``...), checked for
        JSON by :func:`~debug_toolbar_perf.records.check_json` before it is stored."""
        return {}

    def get_context(self, stats: dict[str, Any]) -> dict[str, Any]:
        """Template context derived from stored stats (analysis happens here)."""
        return {}

    def subtitle(self, stats: dict[str, Any]) -> str:
        return ""

    def make_report(self, record: Any) -> Any:
        """The feature's findings for a stored record (its ``report()``): computed once per
        record by :meth:`report`, and read by the content and the subtitle alike."""
        return None

    def report(self, stats: dict[str, Any]) -> Any:
        record = stats["record"]
        cached = self.__dict__.get("_perf_report")
        if cached is not None and cached[0] is record:
            return cached[1]
        made = self.make_report(record)
        self.__dict__["_perf_report"] = (record, made)
        return made

    def export(self, fmt: str, stats: dict[str, Any]) -> ExportFile | None:
        return None

    def make_diff(self, record: Any, base: Any) -> Comparison | None:
        """The feature's change from ``base`` (the baseline's record) to ``record``: its
        ``diff.py``. None: this panel does not compare."""
        return None

    def engine_problem(self) -> EngineProblem | None:
        """Why this panel cannot measure here at all, or None."""
        return None

    @classmethod
    def check_warnings(cls) -> list[EngineProblem]:
        """What ``manage.py check`` says about this panel on this interpreter (W001): an
        optional engine that would be used here and is missing."""
        return []

    def enabled_by_default(self) -> bool:
        """Whether the panel is on when the user has neither ticked nor unticked it."""
        return True

    # -- plumbing -------------------------------------------------------------------

    def guard(self, stage: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        """Run ``func``; on any exception record it for the panel and return None."""
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            logger.warning(
                "debug_toolbar_perf: %s failed in %s", type(self).__name__, stage, exc_info=True
            )
            self._errors.append(error_record(stage, exc))
            return None

    @property
    def _errors(self) -> list[ErrorRecord]:
        errors = self.__dict__.get("_perf_errors")
        if errors is None:
            errors = self.__dict__["_perf_errors"] = []
        return errors

    @property
    def enabled(self) -> bool:
        if getattr(self, "from_store", False):
            return bool(super().enabled)
        # The toolbar asks about ten times per request, and a live panel lives one request:
        # its cookies and settings do not change in between (four panels: ~0.1 ms saved).
        cached = self.__dict__.get("_perf_enabled")
        if cached is None:
            cached = self.__dict__["_perf_enabled"] = self._enabled_now()
        return bool(cached)

    def _enabled_now(self) -> bool:
        enabled = super().enabled
        if not enabled:
            return False
        request = getattr(self.toolbar, "request", None)
        if request is not None and f"djdt{self.panel_id}" in request.COOKIES:
            return True  # the user's tick in the toolbar wins
        return self.enabled_by_default()

    def process_request(self, request: HttpRequest) -> Any:
        """Start the engine, run the rest of the chain, stop the engine.

        Under ASGI the rest of the chain returns a coroutine; the engine must stay on
        until it has been awaited, so the stop moves into :meth:`_finish_async`.
        """
        self._session = None
        self.asgi = isinstance(request, ASGIRequest)
        problem = self.engine_problem()
        self._problem = problem
        target = view_target_for(self.toolbar, request)
        self._target = target
        follower = None if self.asgi else router_follower(self.toolbar, request)
        if problem is None:
            self._started = time.perf_counter()
            self._session = self.guard("start", self.start, request, target)
        try:
            response = self.get_response(request)
        except BaseException:
            if follower is not None:
                follower.stop()
            self._stop_session()
            raise
        if follower is not None:
            follower.stop()  # the view has returned: the hook never outlives it
        if inspect.isawaitable(response):
            return self._finish_async(response)
        self._stop_session()
        return response

    async def _finish_async(self, pending: Any) -> HttpResponse:
        try:
            if self._session is not None:
                await self._aguard("start", self.astart, self._session)
            return await pending
        finally:
            if self._session is not None:
                await self._aguard("stop", self.astop, self._session)
            self._stop_session()

    async def _aguard(self, stage: str, func: Any, session: Any) -> None:
        """:meth:`guard` for the async hooks."""
        try:
            await func(session)
        except Exception as exc:
            logger.warning(
                "debug_toolbar_perf: %s failed in %s", type(self).__name__, stage, exc_info=True
            )
            self._errors.append(error_record(stage, exc))

    def _stop_session(self) -> None:
        if self._session is not None:
            self.guard("stop", self.stop, self._session)

    def generate_stats(self, request: HttpRequest, response: HttpResponse) -> None:
        session = getattr(self, "_session", None)
        problem = getattr(self, "_problem", None)
        record = None
        if problem is None and session is not None:
            record = self.guard("record", self.build_record, request, response, session)
        target = getattr(self, "_target", UNRESOLVED)
        ref = self.guard("baseline", self._find_baseline, request, target) if record else None
        errors = list(self._errors)
        stats: Stats = {
            "version": STATS_VERSION,
            "target": target_json(self.toolbar, target),
            "problem": problem.to_json() if problem else None,
            "record": record,
            "errors": errors,
        }
        if record:
            stats["baseline"] = ref
            # what another process needs to find this request again (baseline.prime)
            stats["request"] = dict(baseline.request_ref(request))
        try:
            check_json(stats)
        except TypeError as exc:
            stats["record"] = None
            errors.append(error_record("record", exc))
        self.record_stats(stats)
        request_id = getattr(self.toolbar, "request_id", None)
        if stats["record"] and request_id:
            baseline.keep(self.panel_id, request_id, stats["record"])

    def _find_baseline(self, request: HttpRequest, target: ViewTarget) -> Any:
        """The previous stored request of the same view and method (and remember this one)."""
        request_id = getattr(self.toolbar, "request_id", None)
        if not request_id or target is UNRESOLVED:
            return None
        method = str(request.method or "GET")
        found = baseline.previous(self.panel_id, request_id, target.label, method)
        baseline.remember(self.panel_id, request_id, target.label, method, request.path)
        return found

    # -- across requests ----------------------------------------------------------------

    def comparison(
        self, stats: dict[str, Any], baseline_id: str | None = None
    ) -> tuple[Comparison | None, str | None]:
        """(Δ against the baseline, why there is none). ``baseline_id``: a chosen request
        instead of the stored default. Cached per record, like :meth:`report`."""
        ref = baseline.stats_ref(stats)  # type: ignore[arg-type]
        chosen = baseline_id or (ref["request_id"] if ref else None)
        if not chosen or not stats.get("record"):
            return None, None
        cached = self.__dict__.get("_perf_comparison")
        if cached is not None and cached[0] is stats["record"] and cached[1] == chosen:
            return cached[2], cached[3]
        base, why = baseline.baseline_record(chosen, self.panel_id)
        made = None if base is None else self.make_diff(stats["record"], base)
        if made is not None:
            known = baseline.entry(self.panel_id, chosen)
            stored: dict[str, Any] = dict(ref) if ref and ref["request_id"] == chosen else {}
            made.baseline = {
                "request_id": chosen,
                "method": known.method if known else stored.get("method", ""),
                "path": known.path if known else stored.get("path", ""),
                "at": time.strftime("%H:%M:%S", time.localtime(known.at)) if known else "",
                "default": chosen == (ref["request_id"] if ref else None),
            }
        self.__dict__["_perf_comparison"] = (stats["record"], chosen, made, why)
        return made, why

    def compare_context(self, stats: dict[str, Any], baseline_id: str | None = None) -> dict:
        """What the Δ block shows (``includes/compare.html``); nothing for a panel that
        does not compare."""
        if type(self).make_diff is PerfPanel.make_diff:
            return {}
        made, why = self.comparison(stats, baseline_id)
        request_id = getattr(self.toolbar, "request_id", None)
        choices = baseline.choices(self.panel_id, request_id) if request_id else []
        if made is None and why is None and not choices:
            return {}  # nothing stored to compare with: the panel stays as it was
        return {
            "compare_enabled": True,
            "compare": made,
            "compare_missing": why,
            "compare_choices": [
                {
                    "request_id": e.request_id,
                    "text": f"{time.strftime('%H:%M:%S', time.localtime(e.at))} "
                    f"{e.method} {e.path}",
                    "selected": bool(made and made.baseline.get("request_id") == e.request_id),
                }
                for e in choices
            ],
            "compare_url": signed_url(
                "perf_compare", {"request_id": request_id, "panel_id": self.panel_id}
            )
            if request_id and choices
            else "",
        }

    def compare_html(self, stats: dict[str, Any], baseline_id: str) -> str:
        """The Δ block against ``baseline_id`` (the ``perf_compare`` endpoint)."""
        context = self.compare_context(stats, baseline_id)
        return render_to_string("debug_toolbar_perf/includes/compare_result.html", context)

    # -- rendering ----------------------------------------------------------------------

    @property
    def nav_subtitle(self) -> str:
        stats = self.get_stats()
        if not stats:
            return ""
        if stats.get("problem"):
            return "not available"
        if stats.get("errors") and not stats.get("record"):
            return "error"
        try:
            text = self.subtitle(stats)
        except Exception:
            logger.warning("debug_toolbar_perf: subtitle failed", exc_info=True)
            return "error"
        try:
            made, _ = self.comparison(stats)
        except Exception:
            logger.warning("debug_toolbar_perf: comparison failed", exc_info=True)
            return text
        if made is not None and made.significant:
            return f"{text} · Δ {made.headline}"
        return text

    @property
    def content(self) -> str:
        stats = self.get_stats()
        context: dict[str, Any] = {
            "panel_id": self.panel_id,
            "stats": stats,
            "target": stats.get("target") or {},
            "problem": stats.get("problem"),
            "errors": list(stats.get("errors") or []),
            "has_record": bool(stats.get("record")),
            "exports": [],
        }
        try:
            if stats.get("record"):
                context.update(self.get_context(stats))
                context["exports"] = self.export_links()
                context.update(self.guard("compare", self.compare_context, stats) or {})
            return render_to_string(self.template, context)
        except Exception as exc:
            logger.warning("debug_toolbar_perf: rendering %s failed", self.panel_id, exc_info=True)
            context["errors"].append(error_record("render", exc))
            context["has_record"] = False
            return render_to_string("debug_toolbar_perf/panels/failed.html", context)

    @property
    def scripts(self) -> list[str]:
        scripts = super().scripts
        scripts.append(static("debug_toolbar_perf/js/perf.js"))
        scripts.extend(static(s) for s in self.extra_scripts)
        return scripts

    # -- exports ----------------------------------------------------------------------

    def export_links(self) -> list[dict[str, str]]:
        request_id = getattr(self.toolbar, "request_id", None)
        if not request_id or not self.export_formats:
            return []
        return [
            {
                "format": fmt,
                "label": label,
                "url": signed_url(
                    "perf_export",
                    {"request_id": request_id, "panel_id": self.panel_id, "format": fmt},
                ),
            }
            for fmt, label in self.export_formats
        ]

    @classmethod
    def get_urls(cls) -> list[Any]:
        names = (
            cls.endpoints if "perf_compare" in cls.endpoints else (*cls.endpoints, "perf_compare")
        )
        return urls(cls, names)
