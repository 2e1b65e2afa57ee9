"""The real-app site in the browser: template frames in the flame graph of a generic view,
and the admin changelist's N+1 blamed on its list_display method."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings

from tests.browser.conftest import open_panel, screenshot
from tests.real_apps.conftest import perf

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def library(transactional_db: Any) -> Iterator[None]:
    from tests.real_apps.library.models import seed

    seed()
    config = {**settings.DEBUG_TOOLBAR_CONFIG, "RENDER_PANELS": False}
    with override_settings(
        ROOT_URLCONF="tests.real_apps.urls",
        DEBUG_TOOLBAR_CONFIG=config,
        DEBUG_TOOLBAR_PERF=perf(SAMPLING={"ENGINE": "thread"}),
    ):
        yield


def test_template_frames_in_the_flame_graph(page: Any, live_server: Any, library: None) -> None:
    page.goto(live_server.url + "/books/")
    panel = open_panel(page, "SamplingProfilerPanel")
    flame = panel.locator(".djdt-perf-flame-canvas")
    flame.locator(".djdt-perf-frame").first.wait_for(state="visible")
    frame = "book_list.html:3 {{ book.slow_blurb }}"
    assert panel.locator(".djdt-perf-frame", has_text=frame).count() >= 1
    assert panel.locator(".djdt-perf-frame", has_text="render_annotated").count() == 0
    by_total = panel.locator("table.djdt-perf-table").nth(1).inner_text()
    assert frame in by_total, by_total
    screenshot(page, "sampling-template-frames")


def test_admin_changelist_n_plus_one_names_the_list_display_method(
    page: Any, live_server: Any, library: None, client: Any
) -> None:
    from django.contrib.auth.models import User

    client.force_login(User.objects.create_superuser("admin", "a@example.com", "pw"))
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    page.context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": live_server.url}])
    # The admin links no icon: the browser's own /favicon.ico request is answered here.
    page.route("**/favicon.ico", lambda route: route.fulfill(status=204))
    page.goto(live_server.url + "/admin/library/book/")
    panel = open_panel(page, "ModelInstancesPanel")
    text = panel.inner_text()
    assert "author_name" in text and "admin.py" in text
    assert "middleware.py" not in text
    assert 'list_select_related = ["author"] on BookAdmin' in text
    screenshot(page, "instances-admin-changelist")
    panel = open_panel(page, "ExplainPanel")
    text = panel.inner_text()
    assert "N+1" in text and "author_name" in text
    assert 'list_select_related = ["author"] on BookAdmin' in text
    screenshot(page, "explain-admin-changelist")
