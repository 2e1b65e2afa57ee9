"""One page per problem the panels exist to show. Each view's docstring says what to look for."""

from __future__ import annotations

import time

from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.views.generic import TemplateView

from .models import Category, Product, Review

PAGES = [
    (
        "cpu",
        "CPU-heavy page",
        "A pure-Python hot function plus a template rendered in a loop. "
        "Sampling profiler: the hot function and its share.",
    ),
    (
        "memory",
        "Memory page",
        "Allocates tens of MB on identifiable lines, frees part. "
        "Line memory panel: the allocating lines.",
    ),
    (
        "n_plus_one",
        "Products with categories (N+1)",
        "One query per product for its category. "
        "Explain and instances panels: the repeated shape and its fix.",
    ),
    (
        "fixed",
        "Products with categories (fixed)",
        "select_related and a correlated count: the twin of the N+1 page.",
    ),
    (
        "truthy",
        "Review of one product (truthy QuerySet)",
        "A class-based view whose helper tests "
        "a QuerySet for truth and builds every review. Instances panel: the count and the line.",
    ),
    ("truthy_fixed", "Review of one product (fixed)", "The same view using .exists()."),
    (
        "unindexed",
        "Published products (unindexed filter)",
        "A filter on an unindexed boolean "
        "column of a 100k-row table. Explain panel: full scan and a partial index.",
    ),
    (
        "sorted",
        "Most popular products (sort)",
        "ORDER BY an unindexed column: a temporary B-tree / filesort.",
    ),
    ("hot_loop", "Hot loop", "A tight loop in the view's own code (cost control of line tracing)."),
    (
        "xss",
        "HTML and JavaScript in code and SQL",
        "A source line, a function name and SQL holding </script><script>: every panel "
        "must show them as text, never run them.",
    ),
]


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "shop/home.html", {"pages": PAGES})


# --- CPU -----------------------------------------------------------------------------


def slow_primes(limit: int) -> list[int]:
    """Deliberately naive: the hot function the sampling profiler should find."""
    primes = []
    for candidate in range(2, limit):
        is_prime = True
        for divisor in range(2, candidate):
            if candidate % divisor == 0:
                is_prime = False
                break
        if is_prime:
            primes.append(candidate)
    return primes


def cpu(request: HttpRequest) -> HttpResponse:
    limit = int(request.GET.get("n", 9000))
    primes = slow_primes(limit)
    rows = [{"n": n, "square": n * n, "label": f"prime #{i}"} for i, n in enumerate(primes)]
    fragments = [
        render_to_string("shop/_rows.html", {"rows": rows[i : i + 50]})
        for i in range(0, len(rows), 50)
    ]
    return render(request, "shop/cpu.html", {"count": len(primes), "fragments": fragments})


# --- memory -----------------------------------------------------------------------------


def memory(request: HttpRequest) -> HttpResponse:
    big_list = [0] * 6_000_000  # ~46 MiB of pointers: the heaviest line
    strings = [f"item {i}" for i in range(200_000)]  # ~15 MiB of small strings
    total = len(big_list) + len(strings)
    del big_list  # frees the ~46 MiB
    kept = strings[:1000]
    return render(request, "shop/memory.html", {"total": total, "kept": len(kept)})


def hot_loop(request: HttpRequest) -> HttpResponse:
    total = 0
    for i in range(300_000):
        total += i % 7
    return render(request, "shop/simple.html", {"title": "Hot loop", "value": total})


# --- N+1 and its fix --------------------------------------------------------------------


def n_plus_one(request: HttpRequest) -> HttpResponse:
    products = Product.objects.order_by("pk")[:50]
    rows = [(p.name, p.category.name, p.reviews.count()) for p in products]
    return render(request, "shop/products.html", {"rows": rows, "title": "Products (N+1)"})


def fixed(request: HttpRequest) -> HttpResponse:
    """The N+1 page fixed: select_related for the category, a correlated count for the reviews.

    (Prefetching every review just to count them would build thousands of Review objects, and a
    JOIN + GROUP BY aggregates the whole review table: the panels flag both.)"""
    reviews = (
        Review.objects.filter(product=OuterRef("pk"))
        .order_by()
        .values("product")
        .annotate(n=Count("pk"))
        .values("n")
    )
    products = (
        Product.objects.order_by("pk")
        .select_related("category")
        .annotate(review_count=Coalesce(Subquery(reviews), 0))[:50]
    )
    rows = [(p.name, p.category.name, p.review_count) for p in products]
    return render(request, "shop/products.html", {"rows": rows, "title": "Products (fixed)"})


# --- the truthy QuerySet (../shared/context/004) ---------------------------------------


class ReviewSummaryView(TemplateView):
    template_name = "shop/review.html"
    queryset = Review.objects.all()

    def get_first_review(self):
        if self.queryset:  # evaluates the whole QuerySet: builds every Review
            return self.queryset.first()
        return None

    def get(self, request, *args, **kwargs):
        review = self.get_first_review()
        return self.render_to_response({"review": review, "title": "Truthy QuerySet"})

    def setup(self, request, *args, **kwargs):
        super().setup(request, *args, **kwargs)
        # A fresh QuerySet per request (as DRF's get_queryset() does): the class attribute
        # would otherwise cache its rows after the first request and hide the bug.
        self.queryset = self.queryset.all()


class ReviewSummaryFixedView(ReviewSummaryView):
    def get_first_review(self):
        if self.queryset.exists():
            return self.queryset.first()
        return None

    def get(self, request, *args, **kwargs):
        review = self.get_first_review()
        return self.render_to_response({"review": review, "title": "Truthy QuerySet (fixed)"})


# --- plans ------------------------------------------------------------------------------


def unindexed(request: HttpRequest) -> HttpResponse:
    products = list(Product.objects.filter(published=True).order_by("pk")[:50])
    return render(
        request,
        "shop/products.html",
        {"rows": [(p.name, p.category_id, p.price) for p in products], "title": "Published"},
    )


def sorted_products(request: HttpRequest) -> HttpResponse:
    products = list(Product.objects.order_by("-popularity").values("name", "popularity")[:20])
    return render(
        request,
        "shop/products.html",
        {"rows": [(p["name"], p["popularity"], "") for p in products], "title": "Most popular"},
    )


def categories(request: HttpRequest) -> HttpResponse:
    """A cheap page (a few ms): the baseline for overhead measurements."""
    start = time.perf_counter()
    names = list(Category.objects.values_list("name", flat=True))
    return render(
        request,
        "shop/simple.html",
        {"title": "Categories", "value": ", ".join(names), "ms": time.perf_counter() - start},
    )


# --- escaping ----------------------------------------------------------------------------

XSS = "</script><script>alert('xss')</script><img src=x onerror=alert('img')>"


def _hostile_name(func):  # type: ignore[no-untyped-def]
    """The same function under a name holding HTML (as exec'd or generated code may have)."""
    name = "</script><script>alert('fn')</script>"
    names = {"co_name": name}
    if hasattr(func.__code__, "co_qualname"):  # Python 3.11+
        names["co_qualname"] = name
    code = func.__code__.replace(**names)
    return type(func)(code, func.__globals__, name)


def _spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i % 7
    return total


spin_hostile = _hostile_name(_spin)


def xss(request: HttpRequest) -> HttpResponse:
    """HTML and JavaScript in a source line, a function name and SQL: shown as text only."""
    note = "</script><script>alert('xss')</script>"
    data = [note] * 200_000  # </script><script>alert('line')</script> allocates ~1.5 MiB
    spun = spin_hostile(300_000)
    rows = list(
        Product.objects.raw(
            "SELECT id, name FROM shop_product /* </script><script>alert('sql')</script> */ "
            "WHERE name <> %s ORDER BY id LIMIT 3",
            [XSS],
        )
    )
    same = Product.objects.extra(where=["'</script><script>' = '</script><script>'"])[:2]
    names = [p.name for p in rows] + [p.name for p in same]
    return render(
        request,
        "shop/simple.html",
        {"title": "Escaping", "value": f"{len(data)} {spun} {XSS} {', '.join(names)}"},
    )
