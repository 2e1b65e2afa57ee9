"""The release artifacts work for a new user: the README's clone install (``python -m build``,
then ``pip install ... --find-links dist``), run verbatim in a copy of the repository, makes a
wheel and an sdist that ``twine check`` accepts and installs into a clean venv (with and
without extras); a fresh ``django-admin startproject`` with only the README's settings (and the
toolbar's own setup) passes ``check`` and shows all four panels on the admin, each rendering its
content for that request. The release command (``pip install "django-debug-toolbar-perf[all]"``)
is that same command without ``--find-links``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
INSTALL = 'pip install "django-debug-toolbar-perf[all]"'
BUILD = "python -m build"
FROM_CLONE = 'pip install "django-debug-toolbar-perf[all]" --find-links dist'
PANELS = ["SamplingProfilerPanel", "LineMemoryPanel", "ModelInstancesPanel", "ExplainPanel"]

pytestmark = pytest.mark.slow


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{args} exited {result.returncode}:\n{output[-4000:]}"
    return output


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository's files with ``dist/`` built by the README's command, verbatim."""
    copy = tmp_path_factory.mktemp("clone") / "django-debug-toolbar-perf"
    shutil.copytree(
        ROOT,
        copy,
        ignore=shutil.ignore_patterns(
            ".venv*",
            ".git",
            ".nox",
            "dist",
            "build",
            "*.sqlite3",
            "__pycache__",
            "prof",
            "profiles",
        ),
    )
    assert BUILD in README and FROM_CLONE in README
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    run(["bash", "-c", BUILD], copy, env)
    return copy


def test_wheel_and_sdist_pass_twine_check(clone: Path) -> None:
    dist = clone / "dist"
    wheels, sdists = list(dist.glob("*.whl")), list(dist.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list(dist.iterdir())
    output = run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, dist.iterdir())], ROOT
    )
    assert output.count("PASSED") == 2, output
    names = subprocess.run(
        [sys.executable, "-m", "zipfile", "-l", str(wheels[0])], capture_output=True, text=True
    ).stdout
    for needed in (
        "licenses/LICENSE",
        "templates/debug_toolbar_perf/",
        "static/debug_toolbar_perf/",
        "debug_toolbar_perf/py.typed",
    ):
        assert needed in names, f"the wheel lacks {needed}"


def readme_settings() -> str:
    """The README's settings block, with its ``...`` as the startproject's own list."""
    block = re.search(r"```python\n(INSTALLED_APPS = \[.*?)```", README, re.S)
    assert block, "the README has no INSTALLED_APPS block"
    code = block.group(1).replace("[..., ", "[*INSTALLED_APPS, ")
    # The README's note: `import debug_toolbar.settings` for PANELS_DEFAULTS, and the toolbar
    # already set up (DebugToolbarMiddleware, debug_toolbar_urls(), INTERNAL_IPS).
    return (
        "\nimport debug_toolbar.settings\n"
        + code
        + 'MIDDLEWARE = ["debug_toolbar.middleware.DebugToolbarMiddleware", *MIDDLEWARE]\n'
        + 'INTERNAL_IPS = ["127.0.0.1"]\n'
    )


SMOKE = """
import re, django
django.setup()
from django.contrib.auth.models import User
from django.test import Client
User.objects.create_superuser("admin", "admin@example.com", "pw")
client = Client(HTTP_HOST="localhost")  # startproject: ALLOWED_HOSTS = [] (DEBUG allows localhost)
client.force_login(User.objects.get(username="admin"))
for panel in {panels!r}:  # ticked in the toolbar (line memory is off by default on 3.10/3.11)
    client.cookies["djdt" + panel] = "on"
page = client.get("/admin/auth/user/")
assert page.status_code == 200, page.status_code
html = page.content.decode()
request_id = re.search(r'data-request-id="([^"]+)"', html).group(1)
for panel in {panels!r}:
    assert f'id="djdt-{{panel}}"' in html, panel + " is not in the toolbar"
    button = re.search(f'<li id="djdt-{{panel}}".*?</li>', html, re.S).group(0)
    assert "not available" not in button, button  # works without any extra, with a note
    query = {{"request_id": request_id, "panel_id": panel}}
    rendered = client.get("/__debug__/render_panel/", query)
    assert rendered.status_code == 200, (panel, rendered.status_code)
    content = rendered.json()["content"]
    assert f'data-perf-panel="{{panel}}"' in content, (panel, content[:500])
    assert "djdt-perf-error" not in content, (panel, content[:2000])
    print(panel, "rendered", len(content), "characters")
"""


@pytest.mark.parametrize("extras", ["[all]", ""])
def test_readme_install_into_a_new_startproject(clone: Path, tmp_path: Path, extras: str) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.pop("PYTHONPATH", None)
    # The README's command from the clone (without extras: the same, as a user wanting no
    # engine would type it). Its --find-links adds to pip's configured ones.
    run(["bash", "-c", FROM_CLONE.replace("[all]", extras)], clone, env)
    installed = run([str(bin_dir / "python"), "-m", "pip", "list"], tmp_path, env)
    assert re.search(r"django-debug-toolbar-perf\s+\S", installed), installed
    assert ("vmprof" in installed) == (extras == "[all]"), installed

    run([str(bin_dir / "django-admin"), "startproject", "mysite"], tmp_path, env)
    project = tmp_path / "mysite"
    with open(project / "mysite" / "settings.py", "a") as fh:
        fh.write(readme_settings())
    urls = project / "mysite" / "urls.py"
    urls.write_text(
        urls.read_text().replace(
            "from django.urls import path",
            "from debug_toolbar.toolbar import debug_toolbar_urls\nfrom django.urls import path",
        )
        + "urlpatterns += debug_toolbar_urls()\n"
    )
    manage = [str(bin_dir / "python"), "manage.py"]
    checked = run([*manage, "check"], project, env)
    if extras:
        assert "System check identified no issues" in checked, checked
    else:  # a missing engine is named with the extra to install (vmprof only where it runs)
        assert "debug_toolbar_perf.W001" in checked and "[pympler]" in checked, checked
        # Every hint true for this interpreter: vmprof is never started on 3.11/3.12, and
        # line memory needs neither memory-profiler nor psutil where /proc/self/statm exists.
        if sys.version_info[:2] in ((3, 11), (3, 12)):
            assert "[vmprof]" not in checked, checked
        if Path("/proc/self/statm").exists():
            assert "[memory]" not in checked, checked
    run([*manage, "migrate", "-v0"], project, env)
    smoke_env = {**env, "DJANGO_SETTINGS_MODULE": "mysite.settings"}
    output = run([str(bin_dir / "python"), "-c", SMOKE.format(panels=PANELS)], project, smoke_env)
    assert output.count(" rendered ") == len(PANELS), output
