"""The demo's catalogue page (a ListView): its TemplateResponse is rendered after the view
returns; the panels count that rendering as the view's work and blame the template line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from tests.conftest import qual, run_with_toolbar

LINE = 4  # <tr><td>{{ product.name }}</td><td>{{ product.category.name }}</td>...


@pytest.fixture
def catalogue(db: Any) -> None:
    from shop.seed import seed

    seed(products=200, reviews=10)


def test_catalogue_rendering_is_in_scope_and_blamed_on_the_template(
    client: Any, catalogue: None
) -> None:
    with override_settings(DEBUG_TOOLBAR_PERF={"SAMPLING": {"ENGINE": "thread"}}):
        run = run_with_toolbar(client, "/products/catalogue/")
    assert run.response.status_code == 200
    sampling = run.record("SamplingProfilerPanel")
    functions = sampling["functions"]
    totals = {functions[h[0]][0]: h[2] / sampling["samples"] for h in sampling["hot"]}
    assert totals.get(qual("Product.shelf_label"), 0) > 0.3, totals
    assert any("shop/catalogue.html" in note for note in sampling["notes"])

    models = {m["label"]: m for m in run.record("ModelInstancesPanel")["models"]}
    (site,) = models["shop.Category"]["sites"]
    where = site["where"]
    assert (Path(where["file"]).name, where["line"]) == ("catalogue.html", LINE)
    assert where["function"] == "{{ product.category.name }}"
    shapes = run.record("ExplainPanel")["shapes"]
    (shape,) = [s for s in shapes if 'FROM "shop_category"' in s["sql"]]
    (line,) = shape["lines"]
    assert (Path(line["file"]).name, line["line"], line["count"]) == ("catalogue.html", LINE, 60)
