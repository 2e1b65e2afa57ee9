"""Version matrix: Python 3.10-3.13 x Django 5.2/6.x x django-debug-toolbar 6/7/8.

``nox -s oldest newest`` is what CI runs; ``nox -s matrix`` runs every compatible
combination. Interpreters come from PATH (python3.10 ... python3.13; .ci/run puts
pyenv's versions on PATH). The browser tests run once, in the main suite.
"""

from __future__ import annotations

import glob
import os
import shutil

import nox


def _find_installed_pythons() -> None:
    """nox looks for python3.X on PATH: append pyenv's and uv's installs of the versions PATH
    lacks, so a fresh machine with either finds 3.10-3.13 without setup."""
    pyenv = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    uv = os.path.expanduser("~/.local/share/uv/python")
    for version in PYTHONS:
        if shutil.which(f"python{version}"):
            continue
        found = sorted(glob.glob(f"{pyenv}/versions/{version}.*/bin"))
        found += sorted(glob.glob(f"{uv}/cpython-{version}.*/bin"))
        if found:
            os.environ["PATH"] += os.pathsep + found[-1]


nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
DJANGOS = {"5.2": "Django>=5.2,<5.3", "6.0": "Django>=6.0,<6.1", "6.1": "Django>=6.1,<6.2"}
TOOLBARS = {
    "6": "django-debug-toolbar>=6.0,<7",
    "7": "django-debug-toolbar>=7.0,<8",
    "8": "django-debug-toolbar>=8.0,<9",
}
TEST_DEPS = [
    "pytest",
    "pytest-django",
    "html5lib",
    "psycopg[binary]",
    "mysqlclient",
    "hypothesis",
    "jsonschema",
    "djangorestframework",
    "pytest-asyncio",
]


_find_installed_pythons()


def compatible(python: str, django: str) -> bool:
    # Django 6.x needs Python 3.12+.
    return not (django.startswith("6") and python in ("3.10", "3.11"))


def _run(session: nox.Session, django: str, toolbar: str) -> None:
    session.install("-e", ".[all]", DJANGOS[django], TOOLBARS[toolbar], *TEST_DEPS)
    session.run(
        "python",
        "-c",
        "import django, debug_toolbar; "
        "print('Django', django.__version__, 'DDT', debug_toolbar.VERSION)",
    )
    # The browser and slow tests (servers, crash probes) run once, in the main suite.
    session.run("pytest", "-m", "not browser and not slow", *session.posargs)


@nox.session
@nox.parametrize(
    "python,django,toolbar",
    [(p, d, t) for p in PYTHONS for d in DJANGOS for t in TOOLBARS if compatible(p, d)],
)
def matrix(session: nox.Session, django: str, toolbar: str) -> None:
    _run(session, django, toolbar)


@nox.session(python="3.10")
def oldest(session: nox.Session) -> None:
    """The oldest supported combination: Python 3.10, Django 5.2, django-debug-toolbar 6."""
    _run(session, "5.2", "6")


@nox.session(python="3.13")
def newest(session: nox.Session) -> None:
    """The newest supported combination: Python 3.13, Django 6.1, django-debug-toolbar 8."""
    _run(session, "6.1", "8")
