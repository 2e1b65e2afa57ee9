"""EXPLAIN ANALYZE never changes data (UPDATE/DELETE/INSERT, allowed or not, every engine),
and leaves the user's PostgreSQL transaction as it was. Transactional tests: own small data."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connections, transaction
from django.test import override_settings

from debug_toolbar_perf.explain.analyze import AnalyzeRefused, run_analyze
from debug_toolbar_perf.explain.capture import CaptureSession
from shop.models import Category, Product
from tests.explain.seed import alias_params, seed, stored_shapes, unseed


def seeded_small(alias: str) -> None:
    unseed(alias)
    seed(alias, products=400, reviews=50)


def snapshot(alias: str) -> list[tuple[Any, ...]]:
    cats = list(Category.objects.using(alias).order_by("pk").values_list())
    products = list(
        Product.objects.using(alias)
        .filter(pk__lte=_first(alias) + 300)
        .order_by("pk")
        .values_list()
    )
    return [
        Product.objects.using(alias).count(),
        Category.objects.using(alias).count(),
        tuple(cats),
        tuple(products),
    ]


def _first(alias: str) -> int:
    return Product.objects.using(alias).order_by("pk").values_list("pk", flat=True).first()


def writes(alias: str) -> None:
    """An UPDATE, a DELETE and an INSERT through the ORM: the statements to analyse."""
    first = _first(alias)
    with transaction.atomic(using=alias):
        Product.objects.using(alias).filter(pk__lte=first + 200).update(popularity=-1, name="X")
        Category.objects.using(alias).create(name="inserted")
        Product.objects.using(alias).filter(pk=first + 250).delete()
        transaction.set_rollback(True, using=alias)


@pytest.mark.parametrize("allow", [False, True], ids=["writes-refused", "writes-allowed"])
@pytest.mark.parametrize("alias", alias_params())
@pytest.mark.django_db(databases="__all__", transaction=True)
def test_analyze_of_writes_never_changes_data(alias: str, allow: bool) -> None:
    seeded_small(alias)
    shapes = [s for s in stored_shapes(alias, lambda: writes(alias)) if s["kind"] != "select"]
    assert {s["kind"] for s in shapes} >= {"update", "insert", "delete"}
    before = snapshot(alias)
    outcomes = {}
    for shape in shapes:
        try:
            result = run_analyze(shape, allow_writes=allow, timeout_ms=5000)
            outcomes[shape["kind"]] = result
        except AnalyzeRefused as exc:
            outcomes[shape["kind"]] = exc
        assert snapshot(alias) == before, shape["sql"]
    if allow:
        assert all(isinstance(o, dict) for o in outcomes.values()), outcomes
        assert outcomes["update"]["plan"]
        # The counters no rollback undoes are named (SQLite's sqlite_sequence is rolled back).
        named = {
            "default": [],
            "postgres": ["sequence shop_category_id_seq"],
            "mariadb": ["AUTO_INCREMENT of shop_category.id"],
        }[alias]
        notes = " ".join(outcomes["insert"]["notes"])
        assert all(name in notes for name in named), notes
        assert ("may have advanced" in notes) == bool(named), notes
    else:
        assert all(isinstance(o, AnalyzeRefused) for o in outcomes.values())
    assert not connections[alias].in_atomic_block


@pytest.mark.postgres
@pytest.mark.django_db(databases="__all__", transaction=True)
def test_postgres_error_rolls_back_to_savepoint_inside_users_transaction() -> None:
    seeded_small("postgres")
    (shape,) = stored_shapes(
        "postgres", lambda: list(Product.objects.using("postgres").filter(popularity__gt=-5)[:1])
    )
    conn = connections["postgres"]
    with transaction.atomic(using="postgres"):
        Category.objects.using("postgres").create(name="users-own-row")
        with override_settings(DEBUG_TOOLBAR_PERF={"EXPLAIN": {"STATEMENT_TIMEOUT_MS": 1}}):
            bad = {
                **shape,
                "sql": shape["sql"].replace(
                    '"shop_product"."popularity"', "pg_sleep(0.05) IS NULL AND 1/0 >", 1
                ),
            }
            with pytest.raises(Exception):  # noqa: B017 - the database's own error
                run_analyze(bad, allow_writes=False, timeout_ms=1)
        assert conn.connection.info.transaction_status.name == "INTRANS"
        assert Category.objects.using("postgres").filter(name="users-own-row").exists()
        transaction.set_rollback(True, using="postgres")
    assert not Category.objects.using("postgres").filter(name="users-own-row").exists()


@pytest.mark.postgres
@pytest.mark.django_db(databases="__all__", transaction=True)
def test_postgres_aborted_transaction_is_left_as_it_was() -> None:
    """An earlier error aborted the user's transaction: the panel reports, touches nothing."""
    conn = connections["postgres"]
    with transaction.atomic(using="postgres"):
        session = CaptureSession(["postgres"])
        session.start()
        list(Product.objects.using("postgres").filter(pk=1))
        with pytest.raises(Exception), conn.cursor() as cur:  # noqa: B017
            cur.execute("SELECT 1/0")
        session.stop_capture()
        status = conn.connection.info.transaction_status.name
        assert status == "INERROR"
        session.explain_all(50, 1000)
        assert conn.connection.info.transaction_status.name == status
        assert session.stats.explains == 0
        assert any("aborted" in n or "rollback" in n for n in session.stats.notes)
        transaction.set_rollback(True, using="postgres")


@pytest.mark.postgres
@pytest.mark.django_db(databases="__all__", transaction=True)
def test_postgres_failing_explain_keeps_users_transaction_usable() -> None:
    seeded_small("postgres")
    conn = connections["postgres"]
    with transaction.atomic(using="postgres"):
        with conn.cursor() as cur:
            cur.execute("CREATE TEMP TABLE djdt_gone (id int)")
        session = CaptureSession(["postgres"])
        session.start()
        with conn.cursor() as cur:
            cur.execute("SELECT * FROM djdt_gone WHERE id = %s", [1])
            cur.execute("DROP TABLE djdt_gone")
        session.stop_capture()
        session.explain_all(50, 1000)
        shape = next(s for s in session.shapes.values() if s.kind == "select")
        assert "djdt_gone" in (shape.plan_error or "")
        assert conn.connection.info.transaction_status.name == "INTRANS"
        assert Product.objects.using("postgres").exists()  # still usable
        transaction.set_rollback(True, using="postgres")


@pytest.mark.postgres
@pytest.mark.parametrize("allow", [False, True], ids=["writes-refused", "writes-allowed"])
@pytest.mark.django_db(databases="__all__", transaction=True)
def test_postgres_data_modifying_cte_is_a_write(allow: bool) -> None:
    """``WITH x AS (UPDATE ... RETURNING ...) SELECT``: a write, whatever the main verb."""
    seeded_small("postgres")
    first = _first("postgres")

    def cte() -> None:
        with transaction.atomic(using="postgres"), connections["postgres"].cursor() as cur:
            cur.execute(
                "WITH x AS (UPDATE shop_product SET popularity = -7 WHERE id <= %s "
                "RETURNING id) SELECT count(*) FROM x",
                [first + 100],
            )
            transaction.set_rollback(True, using="postgres")

    (shape,) = stored_shapes("postgres", cte)
    assert shape["kind"] == "update" and shape["plan"] is None
    before = snapshot("postgres")
    if allow:
        result = run_analyze(shape, allow_writes=True, timeout_ms=5000)
        assert "rolled back" in " ".join(result["notes"])
    else:
        with pytest.raises(AnalyzeRefused, match="UPDATE"):
            run_analyze(shape, allow_writes=False, timeout_ms=5000)
    assert snapshot("postgres") == before
