"""Index advice on the Django admin of a 20,000-book library, through real toolbar requests:
every suggestion shown was verified by the planner (cost before -> after), none duplicates an
existing index, and each one, created in a transaction that is rolled back, is used by the
plan of the statement it was suggested for. The leading-wildcard search gets a trigram index
on PostgreSQL and "no index helps" on SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connections
from django.test import override_settings

from tests.explain.advice import RouteApp, check_every_suggestion, page_shapes
from tests.real_apps.conftest import PROJECT_MIDDLEWARE, perf
from tests.real_apps.library.models import Author, Book

pytestmark = pytest.mark.slow

BOOKS = 20_000
ADMIN = "/admin/library/book/"
#: The admin pages a person walks: the changelist, sorted by a column (o=3: pages), the
#: filter, the filter sorted, the search (icontains: a leading wildcard), search + filter.
PAGES = [
    ADMIN,
    ADMIN + "?o=3",
    ADMIN + "?published__exact=0",
    ADMIN + "?o=3&published__exact=0",
    ADMIN + "?q=ook+1234",
    ADMIN + "?q=ook+1234&published__exact=1",
]


ALIASES = ["default", pytest.param("postgres", marks=pytest.mark.postgres)]


def _seed(alias: str) -> None:
    authors = Author.objects.using(alias).bulk_create(
        Author(name=f"Author {i}") for i in range(200)
    )
    Book.objects.using(alias).bulk_create(
        (
            Book(
                title=f"Book {i}",
                author=authors[i % 200],
                pages=100 + i % 900,
                published=i % 10 != 0,
            )
            for i in range(BOOKS)
        ),
        batch_size=2_000,
    )
    if connections[alias].vendor == "postgresql":
        with connections[alias].cursor() as cur:
            cur.execute("ANALYZE library_book, library_author")


@pytest.fixture(scope="module")
def library_books(django_db_setup: Any, django_db_blocker: Any) -> Iterator[dict[str, bool]]:
    """20,000 books, committed (the panel's rolled-back CREATE INDEX is refused in a
    transaction that inserted rows with deferred foreign keys), on each reachable alias."""
    aliases = [a for a in ("default", "postgres") if a in connections]
    with django_db_blocker.unblock():
        for alias in aliases:
            _seed(alias)
    yield {a: True for a in aliases}
    with django_db_blocker.unblock():
        for alias in aliases:
            for model in (Book, Author):
                model.objects.using(alias).all()._raw_delete(alias)


@pytest.fixture
def admin_site(library_books: dict[str, bool], client: Any, alias: str) -> Iterator[Any]:
    """The admin, logged in, with the library's models routed to ``alias``."""
    if connections[alias].vendor == "postgresql":
        with connections[alias].cursor() as cur:
            cur.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")  # rolled back with the test
    user = User.objects.create_superuser("admin", "admin@example.com", "pw")
    client.force_login(user)
    middleware = list(settings.MIDDLEWARE)
    middleware.insert(1, PROJECT_MIDDLEWARE)
    with override_settings(
        ROOT_URLCONF="tests.real_apps.urls",
        MIDDLEWARE=middleware,
        DEBUG_TOOLBAR_PERF=perf(),
        DATABASE_ROUTERS=[RouteApp("library", alias)],
    ):
        yield client


@pytest.mark.parametrize("alias", ALIASES)
@pytest.mark.django_db(databases="__all__")
def test_every_suggestion_on_the_admin_is_verified_new_and_used(
    admin_site: Any, alias: str
) -> None:
    shown = check_every_suggestion(admin_site, PAGES, alias)
    # Suggestions on the sort and filter pages (the test would pass on none otherwise).
    assert {p for p, _ in shown} >= {PAGES[1], PAGES[2], PAGES[3]}, shown


@pytest.mark.parametrize("alias", ALIASES)
@pytest.mark.django_db(databases="__all__")
def test_admin_search_gets_a_trigram_index_on_postgres_and_no_index_elsewhere(
    admin_site: Any, alias: str
) -> None:
    """The admin search is ``icontains`` (LIKE '%...%'): no btree can serve it; the issue saw
    ``(id DESC)``, a duplicate of the primary key, offered for it."""
    for path in (PAGES[4], PAGES[5]):
        scans = [
            f
            for s in page_shapes(admin_site, path)
            if " LIKE " in s["sql"]
            for f in s["findings"]
            if f["code"] == "full_scan"
        ]
        assert scans, path
        for finding in scans:
            if connections[alias].vendor == "postgresql":
                assert "USING gin (UPPER(title::text) gin_trgm_ops)" in finding["suggestion"]
                assert "Verified: the planner uses it (" in finding["detail"]
            else:
                assert finding["suggestion"] is None
                assert "no index helps" in finding["detail"]
