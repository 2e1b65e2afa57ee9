"""Under ASGI Django renders a TemplateResponse in asgiref's executor thread, after the view:
the instances and Explain panels still count that work and blame the template line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings

from tests.conftest import arun_with_toolbar
from tests.real_apps.conftest import perf
from tests.real_apps.library.models import seed

pytestmark = pytest.mark.django_db(transaction=True)
PANELS = [
    "debug_toolbar.panels.sql.SQLPanel",
    "debug_toolbar_perf.panels.ModelInstancesPanel",
    "debug_toolbar_perf.panels.ExplainPanel",
]


@pytest.fixture
def asgi_library(transactional_db: Any) -> Any:
    seed()
    with override_settings(
        ROOT_URLCONF="tests.real_apps.urls", DEBUG_TOOLBAR_PANELS=PANELS, DEBUG_TOOLBAR_PERF=perf()
    ):
        yield


async def test_template_n_plus_one_under_asgi(async_client: Any, asgi_library: None) -> None:
    run = await arun_with_toolbar(async_client, "/books/")
    assert run.response.status_code == 200
    record = await sync_to_async(run.record)("ModelInstancesPanel")
    authors = {m["label"]: m for m in record["models"]}["library.Author"]
    assert authors["count"] == 40
    (site,) = authors["sites"]
    assert (Path(site["where"]["file"]).name, site["where"]["line"]) == ("book_list.html", 3)
    explain = await sync_to_async(run.record)("ExplainPanel")
    (shape,) = [s for s in explain["shapes"] if 'FROM "library_author"' in s["sql"]]
    (line,) = shape["lines"]
    assert (Path(line["file"]).name, line["line"], line["count"]) == ("book_list.html", 3, 40)
