"""Django app config: registers the system checks that validate ``DEBUG_TOOLBAR_PERF``."""

from django.apps import AppConfig


class DebugToolbarPerfConfig(AppConfig):
    name = "debug_toolbar_perf"
    verbose_name = "Debug Toolbar Perf"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the checks)
