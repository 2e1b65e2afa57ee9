"""Seed data for the demo: sizes chosen so each problem is visible in the panels."""

from __future__ import annotations

import random
from decimal import Decimal

from django.db import transaction

from .models import Category, Product, Review

CATEGORIES = 20
PRODUCTS = 100_000
REVIEWS = 20_000
BATCH = 5_000


#: The demo's user, for ``profile_request ... --user alice`` (no password: nobody logs in as her).
DEMO_USER = "alice"


def ensure_demo_user() -> None:
    """Create the demo user if missing (also in databases seeded before she existed)."""
    from django.contrib.auth import get_user_model

    user, created = get_user_model().objects.get_or_create(username=DEMO_USER)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])


def is_seeded() -> bool:
    return Product.objects.exists()


@transaction.atomic
def seed(products: int = PRODUCTS, reviews: int = REVIEWS, *, verbose: bool = False) -> None:
    rng = random.Random(42)
    categories = Category.objects.bulk_create(
        Category(name=f"Category {i}") for i in range(1, CATEGORIES + 1)
    )
    batch: list[Product] = []
    for i in range(1, products + 1):
        batch.append(
            Product(
                name=f"Product {i}",
                category=categories[i % len(categories)],
                price=Decimal(rng.randint(100, 100_000)) / 100,
                published=(i % 50 == 0),  # 2% published: a selective filter
                popularity=rng.randint(0, 1_000_000),
                description="A fine product. " * 4,
            )
        )
        if len(batch) == BATCH:
            Product.objects.bulk_create(batch)
            batch = []
            if verbose:
                print(f"  {i:,} products", flush=True)
    Product.objects.bulk_create(batch)
    first = Product.objects.order_by("pk").values_list("pk", flat=True).first() or 1
    Review.objects.bulk_create(
        (
            Review(product_id=first + (i % 500), rating=1 + i % 5, text=f"Review number {i}")
            for i in range(reviews)
        ),
        batch_size=BATCH,
    )
