"""Which sampling engine runs: vmprof only where it is known to be safe, else the thread sampler.

vmprof 0.6.0 segfaults on CPython 3.11 and 3.12 (a sample that lands while C code
calls into Python reads an uninitialised frame pointer; see the field notes) and on
3.13 (a sample that lands while a frame's data-stack chunk is being unmapped reads
the freed frame), so it is used only where :data:`VMPROF_SAFETY` says the installed
release is safe on the running interpreter. Under gevent neither engine can tell one
request from another.
"""

from __future__ import annotations

import functools
import re
import sys
from dataclasses import dataclass
from importlib import metadata

from ..availability import VMPROF

VMPROF_EXTRA = VMPROF.fix

# --- which vmprof is safe where --------------------------------------------------------

#: (python major, minor) -> {vmprof version: True if safe, False if it crashes}.
#: Filled from measurements (field notes: 0.6.0 crashed 11/12 and 12/12 runs on
#: 3.11/3.12 and ran clean on 3.10; on 3.13.0 it ran clean there but then crashed the
#: newest nox session: tests/real_apps/test_scope.py died with SIGSEGV in 13 of 15 runs,
#: the core in ``_vmprof_sample_stack`` -> ``unsafe_PyThreadState_GetInterpreterFrame``
#: on a frame whose chunk ``_PyThreadState_PopFrame`` was unmapping; the thread sampler,
#: which reads frames holding the GIL, never sees that window). The rule, in
#: :func:`vmprof_verdict`:
#:
#: * an exact entry decides;
#: * a release newer than every listed one is *presumed safe* if the newest listed
#:   release is safe on that interpreter (no regression expected), and is
#:   *unverified* if the newest listed release crashes there: the crash is not
#:   known to be fixed until a release is measured and added here;
#: * an interpreter not in the table is unverified.
#:
#: ``ENGINE='auto'`` uses vmprof only when the verdict is "safe"; ``ENGINE='vmprof'``
#: also accepts "unverified" (the user opts in) but never "crashes".
VMPROF_SAFETY: dict[tuple[int, int], dict[str, bool]] = {
    (3, 10): {"0.6.0": True},
    (3, 11): {"0.6.0": False},
    (3, 12): {"0.6.0": False},
    (3, 13): {"0.6.0": False},
}


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("."):
        m = re.match(r"\d+", piece)
        if not m:
            break
        parts.append(int(m.group()))
    return tuple(parts)


@functools.cache
def installed_vmprof_version() -> str | None:
    """The installed vmprof release, or None when vmprof is not importable.

    Cached: ``importlib.metadata`` scans every distribution on ``sys.path``
    (0.3-0.4 ms), which was the largest fixed cost of a profiled request.
    """
    try:
        return metadata.version("vmprof")
    except metadata.PackageNotFoundError:
        return None


def vmprof_verdict(
    python: tuple[int, int],
    version: str,
    table: dict[tuple[int, int], dict[str, bool]] | None = None,
) -> tuple[str, str]:
    """("safe" | "crashes" | "unverified", reason) for vmprof ``version`` on ``python``."""
    table = VMPROF_SAFETY if table is None else table
    py = f"{python[0]}.{python[1]}"
    known = table.get(python)
    if not known:
        return "unverified", f"vmprof {version} has not been checked on Python {py}"
    if version in known:
        if known[version]:
            return "safe", f"vmprof {version} is known to run clean on Python {py}"
        return "crashes", (
            f"vmprof {version} is known to crash (SIGSEGV) on Python {py}, so it is never started"
        )
    newest = max(known, key=_version_tuple)
    if _version_tuple(version) > _version_tuple(newest):
        if known[newest]:
            return "safe", (
                f"vmprof {version} is newer than {newest}, which runs clean on Python {py}"
            )
        return "unverified", (
            f"vmprof {newest} crashes on Python {py}; {version} is not yet verified to fix it"
        )
    return "unverified", f"vmprof {version} has not been checked on Python {py}"


def vmprof_would_run(python: tuple[int, int] | None = None) -> bool:
    """Whether ``ENGINE='auto'`` would start vmprof here once it is installed: the newest
    release measured on this interpreter is safe (so a hint to install it is true)."""
    known = VMPROF_SAFETY.get(python or sys.version_info[:2])
    if not known:
        return False
    return known[max(known, key=_version_tuple)]


def vmprof_unsafe_reason(python: tuple[int, int] | None = None) -> str:
    """Why vmprof is not used on this interpreter (for hints and the panel)."""
    python = python or sys.version_info[:2]
    known = VMPROF_SAFETY.get(python)
    if not known:
        return f"no vmprof release has been checked on Python {python[0]}.{python[1]}"
    newest = max(known, key=_version_tuple)
    return f"vmprof {newest} crashes (SIGSEGV) on Python {python[0]}.{python[1]}"


@dataclass(frozen=True)
class EngineChoice:
    engine: str  # "vmprof" | "thread" | "none" (refused)
    reason: str
    vmprof_missing: bool = False


def choose_engine(setting: str) -> EngineChoice:
    """Which engine to run for ``SAMPLING.ENGINE`` = ``setting``, and why."""
    if setting == "thread":
        return EngineChoice("thread", "ENGINE is 'thread' in settings")
    version = installed_vmprof_version()
    if version is None:
        if not vmprof_would_run():
            return EngineChoice(
                "thread",
                f"the thread sampler ran (vmprof is never started on Python "
                f"{sys.version_info[0]}.{sys.version_info[1]}: {vmprof_unsafe_reason()})",
            )
        return EngineChoice(
            "thread",
            f"vmprof is not installed ({VMPROF_EXTRA}); the built-in thread sampler ran",
            vmprof_missing=True,
        )
    verdict, why = vmprof_verdict(sys.version_info[:2], version)
    if verdict == "safe" or (verdict == "unverified" and setting == "vmprof"):
        return EngineChoice("vmprof", why)
    return EngineChoice("thread", f"{why}; the thread sampler ran instead")


GEVENT_REFUSAL = (
    "Not sampled: this worker runs gevent (monkey-patched threads), where a sampler cannot "
    "tell this request's greenlet from others; use a sync or gthread worker to profile."
)
GEVENT_FIX = "gunicorn --worker-class gthread (or sync)"


def gevent_refusal() -> str | None:
    """Why sampling is refused in this process, or None.

    Under gevent's monkey-patching ``threading.get_ident()`` is a greenlet id, absent
    from ``sys._current_frames()``, and every request's greenlet shares one OS thread:
    both samplers would show nothing or other requests' code. gevent is never imported
    here; only an already patched process is detected.
    """
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None:
        return None
    try:
        patched = bool(monkey.is_module_patched("threading"))
    except Exception:  # an unexpected gevent: do not guess, sample as usual
        return None
    return GEVENT_REFUSAL if patched else None
