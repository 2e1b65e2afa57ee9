"""Index advice on every demo page that queries, on SQLite and PostgreSQL (the shop's models
routed there), through real toolbar requests over 100k products: each suggestion shown was
verified by the planner, duplicates no existing index, and, created in a transaction that
is rolled back, is used by the plan of its statement (see tests/explain/advice.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connections
from django.test import override_settings

from debug_toolbar_perf.explain.vendors.sqlite import EMPTY_COPY
from tests.explain.advice import RouteApp, check_every_suggestion
from tests.explain.seed import seed, unseed

pytestmark = pytest.mark.slow

#: The demo's synchronous pages that query the shop (async pages run the same capture).
PAGES = [
    "/products/",
    "/products/n-plus-one/",
    "/products/fixed/",
    "/reviews/summary/",
    "/reviews/summary/fixed/",
    "/products/catalogue/",
    "/products/published/",
    "/products/popular/",
    "/categories/",
]
ALIASES = [
    "default",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("postgres+hypopg", marks=pytest.mark.postgres),
]


@pytest.fixture(scope="module")
def shop(django_db_setup: Any, django_db_blocker: Any) -> Iterator[None]:
    """100k products, committed, on each reachable alias."""
    aliases = [a for a in ("default", "postgres") if a in connections]
    with django_db_blocker.unblock():
        for alias in aliases:
            unseed(alias)
            seed(alias)
            if connections[alias].vendor == "postgresql":
                with connections[alias].cursor() as cur:
                    cur.execute("ANALYZE shop_product, shop_category, shop_review")
    yield
    with django_db_blocker.unblock():
        for alias in aliases:
            unseed(alias)


@pytest.mark.parametrize("target", ALIASES)
@pytest.mark.django_db(databases="__all__")
def test_every_suggestion_on_the_demo_is_verified_new_and_used(
    shop: None, client: Any, target: str
) -> None:
    alias, _, hypopg = target.partition("+")
    if alias == "postgres":
        with connections[alias].cursor() as cur:  # undone with the test's transaction
            cur.execute(
                "CREATE EXTENSION IF NOT EXISTS hypopg"
                if hypopg
                else "DROP EXTENSION IF EXISTS hypopg"
            )
    with override_settings(DATABASE_ROUTERS=[RouteApp("shop", alias)]):
        shown = check_every_suggestion(client, PAGES, alias)
    # The published page's count and the popular page's sort have one (else this proves nothing).
    assert {p for p, _ in shown} >= {"/products/published/", "/products/popular/"}, shown
    methods = {method for _ddl, method in shown.values()}
    if hypopg:
        assert "HypoPG (hypothetical index)" in methods, methods
    else:
        assert methods == {"real index, rolled back" if alias == "postgres" else EMPTY_COPY}
