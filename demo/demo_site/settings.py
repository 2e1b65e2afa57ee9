"""Settings of the demo site: every panel of django-debug-toolbar-perf, on SQLite by default.

Switch databases with DEMO_DB=postgres or DEMO_DB=mariadb (servers on 127.0.0.1).
"""

import os
from pathlib import Path

from .databases import from_env

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "demo-only-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"]
INTERNAL_IPS = ["127.0.0.1", "::1"]

INSTALLED_APPS = [
    "shop",  # first: its runserver migrates and seeds before serving
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "debug_toolbar",
    "debug_toolbar_perf",
]

MIDDLEWARE = [
    "debug_toolbar.middleware.DebugToolbarMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "demo_site.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
WSGI_APPLICATION = "demo_site.wsgi.application"
ASGI_APPLICATION = "demo_site.asgi.application"

DATABASES = {"default": from_env(os.environ.get("DEMO_SQLITE_PATH") or BASE_DIR / "demo.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

STATIC_URL = "static/"
USE_TZ = True

DEBUG_TOOLBAR_PANELS = [
    "debug_toolbar.panels.history.HistoryPanel",
    "debug_toolbar.panels.versions.VersionsPanel",
    "debug_toolbar.panels.timer.TimerPanel",
    "debug_toolbar.panels.settings.SettingsPanel",
    "debug_toolbar.panels.headers.HeadersPanel",
    "debug_toolbar.panels.request.RequestPanel",
    "debug_toolbar.panels.sql.SQLPanel",
    "debug_toolbar.panels.templates.TemplatesPanel",
    "debug_toolbar.panels.cache.CachePanel",
    "debug_toolbar.panels.signals.SignalsPanel",
    "debug_toolbar.panels.redirects.RedirectsPanel",
    "debug_toolbar.panels.profiling.ProfilingPanel",
    "debug_toolbar_perf.panels.SamplingProfilerPanel",
    "debug_toolbar_perf.panels.LineMemoryPanel",
    "debug_toolbar_perf.panels.ModelInstancesPanel",
    "debug_toolbar_perf.panels.ExplainPanel",
]
DEBUG_TOOLBAR_CONFIG = {
    # The cProfile panel is off by default, as in the toolbar itself.
    "DISABLE_PANELS": {
        "debug_toolbar.panels.profiling.ProfilingPanel",
        "debug_toolbar.panels.redirects.RedirectsPanel",
    },
}
DEBUG_TOOLBAR_PERF: dict = {
    # The demo shows every panel. In a project the line-memory panel is off by default on
    # Python 3.10/3.11 (its trace hook costs ~x2 on template-heavy pages): tick it in the toolbar.
    "LINE_MEMORY": {"ENABLED_BY_DEFAULT": True},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"debug_toolbar_perf": {"handlers": ["console"], "level": "WARNING"}},
}
