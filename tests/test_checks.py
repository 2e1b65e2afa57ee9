"""DEBUG_TOOLBAR_PERF is validated by system checks with clear messages."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from django.test import override_settings

from debug_toolbar_perf import availability
from debug_toolbar_perf.checks import check_engines, check_settings
from debug_toolbar_perf.conf import get_config
from debug_toolbar_perf.sampling import choice as engine_choice


def ids(messages: list[Any]) -> list[str]:
    return [m.id for m in messages]


def test_defaults_are_valid() -> None:
    with override_settings(DEBUG_TOOLBAR_PERF={}):
        assert check_settings() == []
        assert get_config()["SCOPE"] == "view"
        assert get_config()["SAMPLING"]["MODE"] in ("wall", "cpu")


@pytest.mark.parametrize(
    ("config", "expected_id", "fragment"),
    [
        ({"SCOPE": "everything"}, "debug_toolbar_perf.E003", "must be one of"),
        ({"SCOPE": 3}, "debug_toolbar_perf.E002", "must be str"),
        ({"SCOPPE": "view"}, "debug_toolbar_perf.E001", "Unknown setting"),
        ({"SAMPLING": {"INTERVAL_MS": "fast"}}, "debug_toolbar_perf.E002", "INTERVAL_MS"),
        ({"SAMPLING": {"INTERVAL_MS": 0}}, "debug_toolbar_perf.E003", "greater than 0"),
        ({"SAMPLING": {"RATE": 1}}, "debug_toolbar_perf.E001", "Unknown setting"),
        ({"SAMPLING": []}, "debug_toolbar_perf.E002", "must be a dict"),
        ({"EXPLAIN": {"ALLOW_ANALYZE_WRITES": "yes"}}, "debug_toolbar_perf.E002", "bool"),
        ({"INSTANCES": {"THRESHOLD": True}}, "debug_toolbar_perf.E002", "int"),
        ({"PROJECT_PATHS": ["/src", 3]}, "debug_toolbar_perf.E003", "list of strings"),
    ],
)
def test_bad_settings_are_errors(config: dict, expected_id: str, fragment: str) -> None:
    with override_settings(DEBUG_TOOLBAR_PERF=config):
        messages = check_settings()
    assert ids(messages) == [expected_id]
    assert fragment in messages[0].msg


def test_not_a_dict() -> None:
    with override_settings(DEBUG_TOOLBAR_PERF=["SCOPE"]):
        assert ids(check_settings()) == ["debug_toolbar_perf.E001"]


def test_user_values_override_defaults_per_key() -> None:
    with override_settings(DEBUG_TOOLBAR_PERF={"SAMPLING": {"INTERVAL_MS": 2}}):
        config = get_config()
    assert config["SAMPLING"]["INTERVAL_MS"] == 2
    assert config["SAMPLING"]["MIN_SAMPLES"] == 50  # untouched keys keep defaults


def test_missing_engine_is_a_warning_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = availability.module_installed
    monkeypatch.setattr(
        availability, "module_installed", lambda name: name != "pympler" and real(name)
    )
    warnings = check_engines()
    assert ids(warnings) == ["debug_toolbar_perf.W001"]
    assert "ModelInstancesPanel needs Pympler" in warnings[0].msg
    assert warnings[0].hint == 'pip install "django-debug-toolbar-perf[pympler]"'


def test_installed_engines_give_no_warning() -> None:
    assert check_engines() == []


@pytest.mark.parametrize("safe", [True, False])
def test_vmprof_is_advised_only_where_auto_would_start_it(
    monkeypatch: pytest.MonkeyPatch, safe: bool
) -> None:
    """On 3.11-3.13 vmprof is never started (it crashes there): no hint to install it."""
    monkeypatch.setattr(engine_choice, "installed_vmprof_version", lambda: None)
    monkeypatch.setattr(engine_choice, "VMPROF_SAFETY", {sys.version_info[:2]: {"0.6.0": safe}})
    warnings = check_engines()
    if safe:
        assert ids(warnings) == ["debug_toolbar_perf.W001"]
        assert warnings[0].hint == 'pip install "django-debug-toolbar-perf[vmprof]"'
    else:
        assert warnings == []
        reason = engine_choice.choose_engine("auto").reason
        assert "pip install" not in reason and "never started on Python" in reason


def test_memory_profiler_and_psutil_are_not_needed_on_linux(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = availability.module_installed
    monkeypatch.setattr(
        availability,
        "module_installed",
        lambda name: name not in ("memory_profiler", "psutil") and real(name),
    )
    assert check_engines() == []


def test_a_module_found_once_is_not_looked_for_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """The panels ask on every request: a found module is remembered, a missing one is not."""
    import importlib.util

    from debug_toolbar_perf import availability

    assert availability.module_installed("json")
    assert not availability.module_installed("no_such_module_perf")
    looked: list[str] = []
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n: looked.append(n) or real(n))
    assert availability.module_installed("json")
    assert not availability.module_installed("no_such_module_perf")
    assert looked == ["no_such_module_perf"]
