"""A small library catalogue: the models behind the admin changelist and the generic views
of the real-app tests (a foreign key to follow, a slow method a template calls)."""

from __future__ import annotations

import time

from django.db import models


def burn(seconds: float) -> int:
    """Burn CPU in this frame for ``seconds`` of thread CPU time."""
    end = time.thread_time() + seconds
    n = 0
    while time.thread_time() < end:
        n += sum(range(100))
    return n


class Author(models.Model):
    name = models.CharField(max_length=100)

    def __str__(self) -> str:
        return self.name


class Book(models.Model):
    title = models.CharField(max_length=200)
    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="books")
    pages = models.IntegerField(default=100)
    published = models.BooleanField(default=True)

    def __str__(self) -> str:
        return self.title

    def slow_blurb(self) -> str:
        """What a template calls per row: the hot function of the list page."""
        burn(0.008)
        return f"{self.title}, {self.pages} pages"


def seed(authors: int = 8, books: int = 40) -> None:
    made = Author.objects.bulk_create(Author(name=f"Author {i}") for i in range(authors))
    Book.objects.bulk_create(
        Book(title=f"Book {i}", author=made[i % authors], pages=100 + i, published=i % 3 != 0)
        for i in range(books)
    )
