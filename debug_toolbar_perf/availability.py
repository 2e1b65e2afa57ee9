"""The optional engines, and how to tell the user to install one.

Kept free of engine imports so it runs in system checks and in panels whose engine is
missing. Which engine a panel *needs* on this interpreter is the panel's own knowledge
(``PerfPanel.engine_problem`` when it cannot measure at all, ``PerfPanel.check_warnings``
for what ``manage.py check`` should say), so every hint is true for the panel and the
Python it runs on.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass

PACKAGE = "django-debug-toolbar-perf"


@dataclass(frozen=True)
class EngineProblem:
    message: str
    fix: str

    def to_json(self) -> dict[str, str]:
        return {"message": self.message, "fix": self.fix}


@dataclass(frozen=True)
class Extra:
    """An optional dependency: the module to import, its distribution and the pip extra."""

    module: str
    dist: str
    extra: str

    @property
    def fix(self) -> str:
        return f'pip install "{PACKAGE}[{self.extra}]"'

    def installed(self) -> bool:
        return module_installed(self.module)


VMPROF = Extra("vmprof", "vmprof", "vmprof")
MEMORY_PROFILER = Extra("memory_profiler", "memory-profiler", "memory")
PSUTIL = Extra("psutil", "psutil", "memory")
PYMPLER = Extra("pympler", "Pympler", "pympler")


#: Modules found once: they stay found (``find_spec`` walks sys.path, ~40 us, and the panels
#: ask on every request). A missing one is looked for again, so installing it needs no restart.
_found: set[str] = set()


def module_installed(name: str) -> bool:
    if name in sys.modules:  # imported already, or blocked (None): what an import would do
        return sys.modules[name] is not None
    if name in _found:
        return True
    try:
        found = importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
    if found:
        _found.add(name)
    return found
