"""The real-app site: the Django admin and the library's generic views behind a project
middleware, with every perf panel on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import override_settings

from tests.real_apps.library.models import seed

HERE = Path(__file__).resolve().parent
PROJECT_MIDDLEWARE = "tests.real_apps.project.middleware.TimingHeaderMiddleware"


def perf(**extra: Any) -> dict[str, Any]:
    """The library, its admin and the project middleware are the project's code."""
    return {"PROJECT_PATHS": [str(HERE)], **extra}


@pytest.fixture
def library_site(db: Any, client: Any) -> Iterator[Any]:
    seed()
    admin = User.objects.create_superuser("admin", "admin@example.com", "pw")
    client.force_login(admin)
    middleware = list(settings.MIDDLEWARE)
    middleware.insert(1, PROJECT_MIDDLEWARE)  # right below the toolbar: wraps everything
    with override_settings(
        ROOT_URLCONF="tests.real_apps.urls", MIDDLEWARE=middleware, DEBUG_TOOLBAR_PERF=perf()
    ):
        yield client
