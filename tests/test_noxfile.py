"""The version matrix finds interpreters where pyenv or uv installed them, not only on PATH."""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
nox_registry = pytest.importorskip(
    "nox.registry", reason="the matrix's own sessions run the suite without nox"
)


@pytest.mark.parametrize("layout", ["pyenv/versions/3.12.9/bin", "uv/cpython-3.12.9-linux/bin"])
def test_pythons_installed_by_pyenv_or_uv_are_found(
    layout: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "home" / layout
    bin_dir.mkdir(parents=True)
    (bin_dir / "python3.12").symlink_to(sys.executable)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no python3.X on PATH
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "home" / "pyenv"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    if layout.startswith("uv"):
        uv = tmp_path / "home" / ".local" / "share" / "uv" / "python"
        uv.parent.mkdir(parents=True)
        (tmp_path / "home" / "uv").rename(uv)
    monkeypatch.syspath_prepend(str(ROOT))
    noxfile = importlib.import_module("noxfile")
    nox_registry.reset()  # the reload registers its sessions again (a FutureWarning in nox)
    importlib.reload(noxfile)
    found = shutil.which("python3.12", path=os.environ["PATH"])
    assert found and Path(found).resolve() == Path(sys.executable).resolve()
    assert shutil.which("python3.11", path=os.environ["PATH"]) is None
