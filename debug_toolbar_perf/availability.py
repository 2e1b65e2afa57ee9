"""Which engine each panel needs, and how to tell the user to install it.

Kept free of engine imports so it can run in system checks and in panels whose
engine is missing.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

PACKAGE = "django-debug-toolbar-perf"


@dataclass(frozen=True)
class EngineProblem:
    message: str
    fix: str

    def to_json(self) -> dict[str, str]:
        return {"message": self.message, "fix": self.fix}


# panel class name -> (module to import, distribution, extra)
REQUIREMENTS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "SamplingProfilerPanel": (("vmprof", "vmprof", "vmprof"),),
    "LineMemoryPanel": (
        ("memory_profiler", "memory-profiler", "memory"),
        ("psutil", "psutil", "memory"),
    ),
    "ModelInstancesPanel": (("pympler", "Pympler", "pympler"),),
    "ExplainPanel": (),
}


def module_installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def missing_engine(panel: str) -> EngineProblem | None:
    """The problem for a panel (class name or dotted path) whose engine is not importable."""
    name = panel.rsplit(".", 1)[-1]
    for module, dist, extra in REQUIREMENTS.get(name, ()):
        if not module_installed(module):
            return EngineProblem(
                f"{name} needs {dist}, which is not installed.",
                f'pip install "{PACKAGE}[{extra}]"',
            )
    return None
