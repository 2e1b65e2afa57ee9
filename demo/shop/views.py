"""One page per problem the panels exist to show. Each view's docstring says what to look for."""

from __future__ import annotations

import asyncio
import json
import sys
import time

from django.db import transaction
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.views.generic import ListView, TemplateView

from .models import Category, Order, OrderLine, Product, Review

PAGES = [
    (
        "products",
        "Product catalogue",
        "The first 50 products with their category (select_related): an ordinary page, "
        "the one the README profiles from the terminal.",
    ),
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
        "catalogue",
        "Catalogue (generic ListView)",
        "A ListView: Django renders its TemplateResponse after the view returns. The template "
        "calls a slow model method and follows each product's category (an N+1 issued from a "
        "template line). Every panel: the rendering is the view's work; Instances and Explain "
        "blame shop/catalogue.html and its line.",
    ),
    (
        "unindexed",
        "Published products (unindexed filter)",
        "A filter on an unindexed boolean column of a 100k-row table: the page's count "
        "reads every row. Explain panel: full scan and a partial index (the first page, "
        "stopped by its LIMIT after ~2,500 rows, is no finding).",
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
    (
        "async_cpu",
        "Async CPU page",
        "An async view with a hot function, yielding to the event loop halfway. Under ASGI "
        "(uvicorn) it runs in the event-loop thread, interleaved with other requests: the "
        "sampling profiler must show only this request's frames.",
    ),
    (
        "async_orm",
        "Async ORM page",
        "An async view using the async ORM: 40 Review instances and two queries on "
        "shop_review, run in asgiref's executor thread. Instances and Explain panels.",
    ),
    (
        "async_alloc",
        "Async allocations across awaits",
        "Allocates on one line five times, awaiting asyncio.sleep in between, so other "
        "requests run meanwhile. Line memory panel: one call, five occurrences.",
    ),
]


#: Pages the sampling profiler samples only on Python 3.12+ (and 3.10): following an async
#: view outside the request thread crashes CPython 3.11 now and then, so there it says
#: "Not sampled" and why (README: known limitations).
SAMPLED_ON_312 = {"async_cpu", "async_orm", "async_alloc"}


def home(request: HttpRequest) -> HttpResponse:
    refused = sys.version_info[:2] == (3, 11)
    pages = [(name, label, help, refused and name in SAMPLED_ON_312) for name, label, help in PAGES]
    python = ".".join(map(str, sys.version_info[:3]))
    return render(request, "shop/home.html", {"pages": pages, "python": python})


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


# --- deferred rendering -----------------------------------------------------------------


class CatalogueView(ListView):
    """Returns a TemplateResponse: the work happens in shop/catalogue.html, rendered later."""

    template_name = "shop/catalogue.html"
    queryset = Product.objects.order_by("pk")[:60]


# --- plans ------------------------------------------------------------------------------


def unindexed(request: HttpRequest) -> HttpResponse:
    """A first page of published products and their total, as a paginated list shows them.
    The count reads every row (a full scan); the page itself stops after ~2,500 rows."""
    published = Product.objects.filter(published=True)
    total = published.count()
    products = list(published.order_by("pk")[:50])
    return render(
        request,
        "shop/products.html",
        {
            "rows": [(p.name, p.category_id, p.price) for p in products],
            "title": f"Published ({len(products)} of {total:,})",
        },
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


# --- async views (ASGI) -------------------------------------------------------------------
# Under an ASGI server these run in the event-loop thread, interleaved at every ``await``
# with other requests' coroutines; the ORM work of ``async_orm`` runs in asgiref's
# executor thread. Each panel must still show only its own request's data.

#: How many Review instances the async ORM page builds (the reliability tests count them).
ASYNC_ORM_REVIEWS = 40
#: How many times the async allocation page allocates (and awaits).
ASYNC_ALLOC_ROUNDS = 5


def slow_collatz(limit: int) -> int:
    """A hot function of the async CPU page (a name no sync page uses)."""
    longest = 0
    for start in range(1, limit):
        n, steps = start, 0
        while n != 1:
            n = n // 2 if n % 2 == 0 else 3 * n + 1
            steps += 1
        longest = max(longest, steps)
    return longest


def slow_digit_sums(limit: int) -> int:
    """The other hot function: two concurrent requests of the same async view, each with its
    own hot function, show whether one request's profile picks up the other's frames."""
    total = 0
    for start in range(limit * 12):
        n = start
        while n:
            total += n % 10
            n //= 10
    return total


HOT_FUNCTIONS = {"collatz": slow_collatz, "digits": slow_digit_sums}


async def async_cpu(request: HttpRequest) -> HttpResponse:
    hot = HOT_FUNCTIONS[request.GET.get("fn", "collatz")]
    limit = int(request.GET.get("n", 20000))
    first = hot(limit // 2)
    await asyncio.sleep(0)  # let other requests' coroutines run in this thread
    second = hot(limit)
    context = {"title": f"Async CPU ({hot.__name__})", "value": f"{first} {second}"}
    return render(request, "shop/simple.html", context)


async def async_orm(request: HttpRequest) -> HttpResponse:
    reviews = [r async for r in Review.objects.order_by("pk")[:ASYNC_ORM_REVIEWS]]
    five_stars = await Review.objects.filter(rating=5).acount()
    title = f"Async ORM ({five_stars} five-star reviews)"
    rows = [(r.text, r.rating, r.product_id) for r in reviews]
    return render(request, "shop/products.html", {"rows": rows, "title": title})


async def async_alloc(request: HttpRequest) -> HttpResponse:
    chunks = []
    for i in range(ASYNC_ALLOC_ROUNDS):
        chunks.append([i] * 250_000)  # ~1.9 MiB each round: the allocating line
        await asyncio.sleep(0.005)  # other requests run (and allocate) meanwhile
    total = 0
    for chunk in chunks:
        total += len(chunk)
    context = {"title": "Async allocations", "value": total}
    return render(request, "shop/simple.html", context)


# --- the catalogue and the orders API (the README's terminal examples) -----------------


def products(request: HttpRequest) -> HttpResponse:
    rows = [
        (p.name, p.category.name, p.price)
        for p in Product.objects.select_related("category").order_by("pk")[:50]
    ]
    return render(request, "shop/products.html", {"rows": rows, "title": "Products"})


ORDER_FORMAT = '{"items": [{"product": <id>, "quantity": <n>}, ...]}'


def api_orders(request: HttpRequest) -> JsonResponse:
    """JSON API for the logged-in user: GET lists their last orders, POST places one.

    ``demo/order.json`` is a body for ``profile_request /api/orders/ --user alice --method POST``.
    """
    if not request.user.is_authenticated:
        return JsonResponse({"error": "log in first"}, status=401)
    if request.method == "GET":
        orders = Order.objects.filter(user=request.user).order_by("-pk")[:20]
        listed = [{"order": o.pk, "lines": o.lines.count()} for o in orders]
        return JsonResponse({"orders": listed})
    if request.method != "POST":
        return JsonResponse({"error": "GET or POST"}, status=405)
    try:
        items = json.loads(request.body)["items"]
        wanted = {int(item["product"]): int(item["quantity"]) for item in items}
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"error": f"expected {ORDER_FORMAT}"}, status=400)
    found = Product.objects.in_bulk(list(wanted))
    missing = sorted(set(wanted) - set(found))
    if missing or not wanted:
        return JsonResponse({"error": f"no such products: {missing}"}, status=400)
    with transaction.atomic():
        order = Order.objects.create(user=request.user)
        OrderLine.objects.bulk_create(
            OrderLine(order=order, product=found[pk], quantity=n, price=found[pk].price)
            for pk, n in wanted.items()
        )
    total = sum(found[pk].price * n for pk, n in wanted.items())
    return JsonResponse({"order": order.pk, "lines": len(wanted), "total": str(total)}, status=201)
