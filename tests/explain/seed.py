"""Real tables for the ExplainPanel tests: 100k products on any alias, seeded once per module."""

from __future__ import annotations

import random
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.db import connections

from shop.models import Category, Product, Review

PRODUCTS = 100_000
SMALL_CATEGORIES = 20


def seed(alias: str, products: int = PRODUCTS, reviews: int = 2_000) -> None:
    rng = random.Random(7)
    cats = Category.objects.using(alias).bulk_create(
        [Category(name=f"Category {i}") for i in range(SMALL_CATEGORIES)]
    )
    batch = []
    for i in range(1, products + 1):
        batch.append(
            Product(
                name=f"Product {i}",
                category=cats[i % len(cats)],
                price=Decimal(rng.randint(100, 100_000)) / 100,
                published=(i % 50 == 0),
                popularity=rng.randint(0, 1_000_000),
            )
        )
        if len(batch) == 10_000:
            Product.objects.using(alias).bulk_create(batch)
            batch = []
    Product.objects.using(alias).bulk_create(batch)
    first = Product.objects.using(alias).order_by("pk").values_list("pk", flat=True).first()
    Review.objects.using(alias).bulk_create(
        [
            Review(product_id=first + i % 500, rating=1 + i % 5, text=f"r{i}")
            for i in range(reviews)
        ],
        batch_size=5_000,
    )


def unseed(alias: str) -> None:
    for model in (Review, Product, Category):
        model.objects.using(alias).all()._raw_delete(alias)
    conn = connections[alias]
    if conn.vendor == "sqlite" and conn.in_atomic_block is False:
        with conn.cursor() as cur:
            cur.execute("DELETE FROM sqlite_sequence WHERE name LIKE 'shop_%'")


ALIASES = ("default", "postgres", "mariadb")


def available_aliases() -> list[str]:
    return [a for a in ALIASES if a in connections]


def seed_all(django_db_blocker: Any) -> Iterator[list[str]]:
    """Seed every reachable database once (committed), yield the aliases, then clean up."""
    aliases = available_aliases()
    with django_db_blocker.unblock():
        for alias in aliases:
            unseed(alias)
            seed(alias)
            conn = connections[alias]
            with conn.cursor() as cur:
                if conn.vendor == "postgresql":
                    cur.execute("ANALYZE shop_product, shop_category, shop_review")
                elif conn.vendor == "mysql":
                    cur.execute("ANALYZE TABLE shop_product, shop_category, shop_review")
                    cur.fetchall()
    yield aliases
    with django_db_blocker.unblock():
        for alias in aliases:
            unseed(alias)


def alias_params() -> list[Any]:
    """One pytest param per engine, marked so the conftest skips unreachable servers."""
    return [
        pytest.param("default", id="sqlite"),
        pytest.param("postgres", id="postgresql", marks=pytest.mark.postgres),
        pytest.param("mariadb", id="mariadb", marks=pytest.mark.mariadb),
    ]


def stored_shapes(alias: str, run: Any) -> list[dict[str, Any]]:
    """Run ``run`` under a capture session on ``alias`` and return the recorded shapes, as the
    panel stores them (typed params tagged, plans attached)."""
    from debug_toolbar_perf.explain.capture import CaptureSession

    session = CaptureSession([alias])
    session.start()
    try:
        run()
    finally:
        session.stop_capture()
    session.explain_all(50, 1_000_000)
    return session.to_record(50)["shapes"]
