"""Index advice the planner confirms: each suggestion shown was verified (HypoPG or a
rolled-back index on PostgreSQL, a rolled-back index on SQLite), and creating it for real in
a rolled-back transaction makes the planner use it. Real 100k-row tables."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connections, transaction

from debug_toolbar_perf.conf import get_config
from debug_toolbar_perf.explain.findings import analyse
from debug_toolbar_perf.explain.vendors.sqlite import EMPTY_COPY
from debug_toolbar_perf.explain.verify import NOT_VERIFIED, duplicate_of
from shop.models import Product
from tests.explain.seed import seed_all, stored_shapes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def seeded(django_db_setup: Any, django_db_blocker: Any) -> Iterator[list[str]]:
    yield from seed_all(django_db_blocker)


def _extension(name: str, present: bool) -> None:
    with connections["postgres"].cursor() as cur:
        cur.execute(
            f"CREATE EXTENSION IF NOT EXISTS {name}"
            if present
            else f"DROP EXTENSION IF EXISTS {name}"
        )


def _findings(alias: str, run: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    (shape,) = analyse({"shapes": stored_shapes(alias, run)}, get_config()["EXPLAIN"])
    return shape, shape["findings"]


def _uses(alias: str, ddl: str, run: Any) -> bool:
    """Create the suggested index for real in a rolled-back transaction: does the plan use it?"""
    with transaction.atomic(using=alias):
        with connections[alias].cursor() as cur:
            cur.execute(ddl)
        (shape,) = stored_shapes(alias, run)
        transaction.set_rollback(True, using=alias)
    name = ddl.split()[2]
    return name in str(shape["plan"])


def published(alias: str) -> Any:
    return lambda: list(Product.objects.using(alias).filter(published=True))


VERIFIED = [
    pytest.param("default", False, EMPTY_COPY, id="sqlite"),
    pytest.param(
        "postgres", True, "HypoPG (hypothetical index)", id="pg-hypopg", marks=pytest.mark.postgres
    ),
    pytest.param(
        "postgres", False, "real index, rolled back", id="pg-no-hypopg", marks=pytest.mark.postgres
    ),
]


@pytest.mark.parametrize(("alias", "hypopg", "method"), VERIFIED)
@pytest.mark.django_db(databases="__all__")
def test_suggestion_is_verified_and_used(
    seeded: list[str], alias: str, hypopg: bool, method: str
) -> None:
    if alias == "postgres":
        _extension("hypopg", hypopg)
    (finding,) = [f for f in _findings(alias, published(alias))[1] if f["code"] == "full_scan"]
    ddl = finding["suggestion"]
    query = Product.objects.using(alias).filter(published=True).query
    sql, _ = query.get_compiler(alias).as_sql()
    # A bare `WHERE "published"` gets a partial index; Django 6.1 writes `"published" = %s`
    # on SQLite, an equality, which leads a full index (SQLite matches partial indexes by form).
    expected = "(published" if '"published" = ' in sql else " WHERE published"
    assert ddl and expected in ddl, finding
    assert f"Verified: the planner uses it ({method};" in finding["detail"], finding["detail"]
    assert _uses(alias, ddl, published(alias))


@pytest.mark.django_db
def test_sqlite_with_statistics_indexes_the_real_table(seeded: list[str]) -> None:
    """With ``sqlite_stat1`` the plan may depend on the rows: the suggestion is built on the
    real table (in a savepoint, rolled back), not on an empty copy. Without, the empty copy
    gives the plan a real index gives."""
    (finding,) = [f for f in _findings("default", published("default"))[1] if f["suggestion"]]
    assert f"({EMPTY_COPY};" in finding["detail"], finding["detail"]
    assert _uses("default", finding["suggestion"], published("default"))
    with connections["default"].cursor() as cur:
        cur.execute("ANALYZE shop_product")
    try:
        (finding,) = [f for f in _findings("default", published("default"))[1] if f["suggestion"]]
        assert "(real index, rolled back;" in finding["detail"], finding["detail"]
    finally:
        with connections["default"].cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS sqlite_stat1")
    with connections["default"].cursor() as cur:
        cur.execute("SELECT name FROM sqlite_temp_master")
        assert cur.fetchall() == []  # the empty copy went with the savepoint


@pytest.mark.mariadb
@pytest.mark.django_db(databases="__all__")
def test_mariadb_suggestion_says_not_verified(seeded: list[str]) -> None:
    (finding,) = [f for f in _findings("mariadb", published("mariadb"))[1] if f["suggestion"]]
    assert NOT_VERIFIED in finding["detail"]


def search(alias: str) -> Any:
    return lambda: list(Product.objects.using(alias).filter(name__icontains="duct 123"))


@pytest.mark.postgres
@pytest.mark.django_db(databases="__all__")
def test_leading_wildcard_gets_a_verified_trigram_index_on_postgres(seeded: list[str]) -> None:
    _extension("pg_trgm", True)
    (finding,) = [f for f in _findings("postgres", search("postgres"))[1] if f["suggestion"]]
    ddl = finding["suggestion"]
    assert "USING gin (UPPER(name::text) gin_trgm_ops)" in ddl, ddl
    assert "Verified: the planner uses it" in finding["detail"], finding["detail"]
    assert _uses("postgres", ddl, search("postgres"))


@pytest.mark.parametrize(
    "alias",
    ["default", pytest.param("mariadb", marks=pytest.mark.mariadb)],
    ids=["sqlite", "mariadb"],
)
@pytest.mark.django_db(databases="__all__")
def test_leading_wildcard_elsewhere_no_index_helps(seeded: list[str], alias: str) -> None:
    _, findings = _findings(alias, search(alias))
    (finding,) = [f for f in findings if f["code"] == "full_scan"]
    assert finding["suggestion"] is None
    assert "no index helps" in finding["detail"]


def test_never_a_duplicate_of_an_existing_index_either_direction() -> None:
    existing = [("shop_product_pkey", ["id"]), ("cat_pop", ["category_id", "popularity DESC"])]
    assert duplicate_of(["id DESC"], None, existing) == "shop_product_pkey"
    assert duplicate_of(["category_id"], None, existing) == "cat_pop"
    assert duplicate_of(["category_id DESC", "popularity"], None, existing) == "cat_pop"
    assert duplicate_of(["category_id", "popularity"], None, existing) is None
    assert duplicate_of(["id"], "published", existing) is None  # a partial index is new
