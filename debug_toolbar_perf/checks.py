"""System checks for ``DEBUG_TOOLBAR_PERF`` and for the engines the configured panels need."""

from __future__ import annotations

from typing import Any

from django.core.checks import Error, Tags, Warning, register

from .conf import SCHEMA, SECTIONS, SETTING_NAME, Option, user_config


def _check_value(path: str, option: Option, value: Any, errors: list[Error]) -> None:
    if not isinstance(value, option.types) or (
        isinstance(value, bool) and bool not in option.types
    ):
        names = " or ".join(t.__name__ for t in option.types)
        errors.append(
            Error(
                f"{path} must be {names}, got {type(value).__name__} ({value!r}).",
                hint=option.help,
                id="debug_toolbar_perf.E002",
            )
        )
        return
    if option.choices and value not in option.choices:
        errors.append(
            Error(
                f"{path} must be one of {', '.join(map(repr, option.choices))}, got {value!r}.",
                hint=option.help,
                id="debug_toolbar_perf.E003",
            )
        )
        return
    if option.validate is not None:
        problem = option.validate(value)
        if problem:
            errors.append(
                Error(
                    f"{path} {problem}, got {value!r}.",
                    hint=option.help,
                    id="debug_toolbar_perf.E003",
                )
            )


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    config = user_config()
    errors: list[Error] = []
    if not isinstance(config, dict):
        return [
            Error(
                f"{SETTING_NAME} must be a dict, got {type(config).__name__}.",
                id="debug_toolbar_perf.E001",
            )
        ]
    for key, value in config.items():
        if key in SECTIONS:
            if not isinstance(value, dict):
                errors.append(
                    Error(f"{SETTING_NAME}[{key!r}] must be a dict.", id="debug_toolbar_perf.E002")
                )
                continue
            for sub, subvalue in value.items():
                option = SCHEMA[key].get(sub)
                if option is None:
                    errors.append(_unknown(f"{SETTING_NAME}[{key!r}][{sub!r}]", SCHEMA[key]))
                else:
                    _check_value(f"{SETTING_NAME}[{key!r}][{sub!r}]", option, subvalue, errors)
        elif key in SCHEMA["GENERAL"]:
            _check_value(f"{SETTING_NAME}[{key!r}]", SCHEMA["GENERAL"][key], value, errors)
        else:
            errors.append(
                _unknown(
                    f"{SETTING_NAME}[{key!r}]", {**SCHEMA["GENERAL"], **dict.fromkeys(SECTIONS)}
                )
            )
    return errors


def _unknown(path: str, known: dict[str, Any]) -> Error:
    return Error(
        f"Unknown setting {path}.",
        hint="Known keys: " + ", ".join(sorted(known)),
        id="debug_toolbar_perf.E001",
    )


@register(Tags.compatibility)
def check_engines(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """Warn when a configured perf panel would use an engine that is not installed here,
    naming the pip extra (each panel says what holds for this interpreter)."""
    from debug_toolbar import settings as dt_settings
    from django.utils.module_loading import import_string

    from .base import PerfPanel

    warnings: list[Warning] = []
    for path in dt_settings.get_panels():
        if not path.startswith("debug_toolbar_perf."):
            continue
        try:
            panel = import_string(path)
        except ImportError:
            continue  # the toolbar's own check reports a panel path that does not import
        if not (isinstance(panel, type) and issubclass(panel, PerfPanel)):
            continue
        for problem in panel.check_warnings():
            warnings.append(
                Warning(problem.message, hint=problem.fix, id="debug_toolbar_perf.W001")
            )
    return warnings
