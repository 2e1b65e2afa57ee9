"""The one settings dict, ``DEBUG_TOOLBAR_PERF``: schema, defaults and access.

Every key is declared here once with its type and default; ``checks.py``
validates the user's dict against this schema, and the rest of the package
reads values only through :func:`get_config`, so a typo can't silently fall
back to a default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

SETTING_NAME = "DEBUG_TOOLBAR_PERF"


@dataclass(frozen=True)
class Option:
    """One setting: accepted types, default and an optional extra check."""

    types: tuple[type, ...]
    default: Any
    help: str
    validate: Callable[[Any], str | None] | None = None
    choices: tuple[Any, ...] = field(default=())


def _positive(value: Any) -> str | None:
    return None if value > 0 else "must be greater than 0"


def _non_negative(value: Any) -> str | None:
    return None if value >= 0 else "must be 0 or greater"


def _positive_or_none(value: Any) -> str | None:
    return None if value is None or value > 0 else "must be greater than 0, or None"


def _str_list(value: Any) -> str | None:
    if all(isinstance(v, str) for v in value):
        return None
    return "must be a list of strings"


NUMBER = (int, float)

# Section -> key -> Option.  "GENERAL" keys sit at the top level of the dict.
SCHEMA: dict[str, dict[str, Option]] = {
    "GENERAL": {
        "SCOPE": Option(
            (str,),
            "view",
            "What a measurement covers: 'view' (the view callable, the class-based view's "
            "handler method or the viewset action) or 'middleware' (the whole chain below "
            "the toolbar).",
            choices=("view", "middleware"),
        ),
        "PROJECT_PATHS": Option(
            (list, tuple),
            [],
            "Directories whose code counts as project code (shown first, highlighted). "
            "Default: settings.BASE_DIR if set, minus virtualenvs and site-packages.",
            validate=_str_list,
        ),
        "EXPORT_DIR": Option(
            (str, type(None)),
            None,
            "If set, each request's profile is also written there, one file per request "
            "named from method, path and time (like Werkzeug's ProfilerMiddleware).",
        ),
    },
    "SAMPLING": {
        "ENGINE": Option(
            (str,),
            "auto",
            "'auto' (vmprof where it is known to be safe on this interpreter, otherwise "
            "the built-in thread sampler), 'vmprof' or 'thread'.",
            choices=("auto", "vmprof", "thread"),
        ),
        "MODE": Option(
            (str,),
            "wall",
            "'wall' (wall-clock: shows time blocked in I/O and the database) or 'cpu' "
            "(CPU time only, capped by the kernel tick).",
            choices=("wall", "cpu"),
        ),
        "INTERVAL_MS": Option(
            NUMBER,
            2.0,
            "Sampling period in milliseconds. Each thread-sampler tick costs the request one "
            "GIL hand-over (two context switches: 50-100 us of its CPU on a busy 2-core VM), "
            "so the overhead grows with the rate: 2 ms gives 150-350 samples/s at about 3% "
            "overhead there; 1 ms about twice the samples and the overhead.",
            _positive,
        ),
        "SWITCH_INTERVAL_MS": Option(
            (int, float, type(None)),
            0.5,
            "Thread sampler: each sample needs the GIL, which running Python code hands over "
            "only at the GIL switch interval (Python's default: 5 ms) or when it blocks (I/O, "
            "database). While a request is sampled the process's switch interval is lowered "
            "to this many ms, so a sample is taken close to its tick: with 5 ms most samples "
            "would wait for the next blocking call and over-count I/O (measured: 98% of the "
            "samples in sleeps that took 44% of the time), and fewer (about 160/s) would be "
            "taken. None leaves the switch interval alone.",
            _positive_or_none,
        ),
        "MIN_SAMPLES": Option(
            (int,),
            50,
            "Below this many samples the panel warns the profile is thin.",
            _non_negative,
        ),
        "MERGE_LAST": Option(
            (int,),
            10,
            "The panel also merges the samples of the last this many stored requests of the "
            "same view (this one included) into one profile, for views too short for one "
            "request's samples. 0 or 1: off.",
            _non_negative,
        ),
        "MAX_NODES": Option(
            (int,),
            5000,
            "Call-tree nodes kept in the stored stats (the rest is pruned and said so).",
            _positive,
        ),
        "VMPROF_NAMES": Option(
            (str,),
            "registry",
            "How vmprof's sampled code addresses get names: 'registry' (a weak id->code "
            "registry filled once, so a request pays no heap walk) or 'heap' (vmprof's own "
            "disable(), which walks every object: 20-130 ms per request).",
            choices=("registry", "heap"),
        ),
    },
    "LINE_MEMORY": {
        "BACKEND": Option(
            (str,),
            "auto",
            "'auto' ('heap' where its C counting allocator was built at install, 'rss' "
            "elsewhere, saying why), 'heap' (bytes each line allocated and kept, the same on "
            "every reload; tracemalloc where it cannot run), 'rss' (resident set size: what "
            "the OS sees; memory reused from earlier frees shows 0.0) or 'tracemalloc' "
            "(exact Python allocations; x3-x8 slower on allocation-heavy code).",
            choices=("auto", "heap", "rss", "tracemalloc"),
        ),
        "FUNCTIONS": Option(
            (list, tuple),
            [],
            "Dotted paths of extra functions to trace (besides the view, functions decorated "
            "with debug_toolbar_perf.profile_memory and project functions decorated with "
            "memory_profiler's @profile).",
            _str_list,
        ),
        "FOLLOW_DEPTH": Option(
            (int,),
            0,
            "Also trace project functions called from traced code, this many levels deep.",
            _non_negative,
        ),
        "ENABLED_BY_DEFAULT": Option(
            (bool, type(None)),
            None,
            "Whether the panel is on before anyone ticks it in the toolbar. None: on where "
            "sys.monitoring exists (Python 3.12+: costs nothing on code the view calls), off "
            "on 3.10/3.11, where its trace hook slows template-heavy pages about x2.",
        ),
        "MAX_LINE_EVENTS": Option(
            (int,),
            10_000,
            "Line events measured one by one per request (about 2 us "
            "each). After that, memory is read only when traced functions start and return, "
            "and the panel says so: a hot loop in the view stays cheap.",
            _positive,
        ),
    },
    "INSTANCES": {
        "THRESHOLD": Option(
            (int,), 1000, "Warn when one model has more instances than this.", _positive
        ),
        "SITES": Option(
            (bool,),
            True,
            "Attribute instances to their creation call site (the first "
            "project frame up the stack; the full stack is kept once per site).",
        ),
        "STACK_SAMPLE_EVERY": Option(
            (int,),
            1,
            "Attribute every Nth instance of a model to its call site (1 = every "
            "instance: exact per-site counts; N > 1: per-site counts are of sampled "
            "instances, and the panel says so).",
            _positive,
        ),
        "SIZE_SAMPLE": Option(
            (int,),
            50,
            "Instances per model (the first built) kept for sizing with Pympler's "
            "asizeof at the end of the request (after 10, sizing stops once the mean "
            "is known to within 2%); total size is estimated as mean x count.",
            _non_negative,
        ),
        "ALIVE_SAMPLE": Option(
            (int,),
            100,
            "Instances per model (the first built) tracked with weak "
            "references to tell which are still alive after the response.",
            _non_negative,
        ),
        "FULL_GC": Option(
            (bool,),
            False,
            "Run a full gc.collect() before counting survivors, so cyclic "
            "garbage (e.g. a class-based view and its cached QuerySet) is not reported as "
            "alive. Costs 0.05-0.2 s per request on a large heap; off: only the young "
            "generations are collected and the panel says so.",
        ),
        "N_PLUS_ONE": Option(
            (int,),
            5,
            "A call site whose instances came from this many separate queries "
            "of one shape (about one instance each) is reported as N+1.",
            _positive,
        ),
    },
    "EXPLAIN": {
        "FULL_SCAN_ROWS": Option(
            (int,),
            10_000,
            "A full scan that reads more rows than this is a finding (the rows read, not the "
            "size of the table: a LIMIT that stops the scan early counts).",
            _non_negative,
        ),
        "REPEATED_QUERY_THRESHOLD": Option(
            (int,), 5, "A shape run this many times or more is reported as N+1.", _positive
        ),
        "ALLOW_ANALYZE_WRITES": Option(
            (bool,),
            False,
            "Allow EXPLAIN ANALYZE of non-SELECT statements (always inside "
            "a transaction that is rolled back).",
        ),
        "STATEMENT_TIMEOUT_MS": Option(
            (int,), 5000, "Timeout of each statement the EXPLAIN panel runs.", _positive
        ),
        "MAX_SHAPES": Option((int,), 50, "Distinct query shapes explained per request.", _positive),
        "NESTED_LOOP_ROWS": Option(
            (int,),
            1000,
            "A nested loop driven by more outer rows than this is a finding.",
            _positive,
        ),
        "SIZE_COUNT_CAP": Option(
            (int,),
            1_000_000,
            "When no planner estimate exists, table sizes are counted up "
            "to this many rows (a capped COUNT stays cheap on huge tables).",
            _positive,
        ),
        "VERIFY_INDEXES": Option(
            (bool,),
            True,
            "Ask the planner whether it would use each suggested index before showing it "
            "(HypoPG or a rolled-back index on PostgreSQL, a rolled-back index on SQLite).",
        ),
    },
}

SECTIONS = tuple(k for k in SCHEMA if k != "GENERAL")


def _defaults() -> dict[str, Any]:
    out: dict[str, Any] = {k: o.default for k, o in SCHEMA["GENERAL"].items()}
    for section in SECTIONS:
        out[section] = {k: o.default for k, o in SCHEMA[section].items()}
    return out


def user_config() -> dict[str, Any]:
    return getattr(settings, SETTING_NAME, None) or {}


@cache
def get_config() -> dict[str, Any]:
    """The merged settings (defaults overlaid with the user's dict)."""
    merged = _defaults()
    user = user_config()
    if not isinstance(user, dict):
        return merged
    for key, value in user.items():
        if key in SECTIONS and isinstance(value, dict):
            merged[key].update(value)
        elif key in SCHEMA["GENERAL"]:
            merged[key] = value
    return merged


@receiver(setting_changed)
def _reset(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTING_NAME:
        get_config.cache_clear()
