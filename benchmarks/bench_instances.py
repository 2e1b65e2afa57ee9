"""Cost of counting model instances: 200k instances built from one queryset.

Run: ``python benchmarks/bench_instances.py [--rows 200000] [--rounds 7]``.
Modes are interleaved round by round in one process (same data, same warm
caches) and the ratio of medians to the no-hook baseline is printed:

* ``baseline``       - no hook installed;
* ``hook, idle``     - hook installed, no collector bound (other requests' cost);
* ``count``          - counting per model;
* ``count+sites``    - counting plus call-site attribution for every instance;
* ``post_init recv`` - a plain ``post_init`` receiver doing the same counting
  (the design we did not pick);
* ``ClassTracker``   - Pympler's ``ClassTracker.track_class`` on the model.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "demo")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--requests",
        type=int,
        default=0,
        help="instead: time request 1 and request N through the toolbar (truthy page)",
    )
    args = parser.parse_args()
    if args.requests:
        return requests(args.requests)

    import django

    django.setup()
    from django.core.management import call_command
    from django.db.models.signals import post_init
    from shop.models import Category, Product, Review

    from debug_toolbar_perf.engines import instances as eng

    call_command("migrate", run_syncdb=True, verbosity=0)
    category = Category.objects.create(name="c")
    product = Product.objects.create(name="p", category=category, price=1)
    Review.objects.bulk_create(
        (Review(product=product, rating=3, text="x" * 20) for _ in range(args.rows)),
        batch_size=5000,
    )

    def build() -> float:
        gc.collect()
        start = time.perf_counter()
        objs = list(Review.objects.all())
        elapsed = time.perf_counter() - start
        assert len(objs) == args.rows
        del objs
        return elapsed

    def recv(sender, instance, **kwargs):  # the alternative design, for comparison
        c = eng.COLLECTOR.get()
        if c is None:
            return
        c.counts[sender] = c.counts.get(sender, 0) + 1

    def baseline() -> float:
        eng.uninstall()
        return build()

    def idle() -> float:
        eng.install()
        return build()

    def count(sites: bool) -> float:
        eng.install()
        collector = eng.Collector(capture_sites=sites, size_sample=50, alive_sample=1000)
        with eng.counting(collector):
            t = build()
        assert collector.counts[Review] == args.rows, collector.counts
        if sites:
            assert sum(s.count for s in collector.sites.values()) == args.rows
        return t

    def receiver() -> float:
        eng.uninstall()
        post_init.connect(recv, weak=False, dispatch_uid="bench")
        collector = eng.Collector(capture_sites=False)
        try:
            with eng.COLLECTOR.bound(collector):
                return build()
        finally:
            post_init.disconnect(dispatch_uid="bench")

    def tracker() -> float:
        eng.uninstall()
        from pympler.classtracker import ClassTracker

        tr = ClassTracker()
        tr.track_class(Review)
        try:
            return build()
        finally:
            tr.detach_all()
            tr.clear()

    modes = {
        "baseline": baseline,
        "hook, idle": idle,
        "count": lambda: count(False),
        "count+sites": lambda: count(True),
        "post_init recv": receiver,
        "ClassTracker": tracker,
    }
    try:
        import pympler  # noqa: F401
    except ImportError:
        print("Pympler not installed: ClassTracker skipped")
        del modes["ClassTracker"]
    times: dict[str, list[float]] = {m: [] for m in modes}
    build()  # warm up
    for _ in range(args.rounds):
        for name, fn in modes.items():
            times[name].append(fn())
    eng.uninstall()
    base = statistics.median(times["baseline"])
    base_min = min(times["baseline"])
    print(
        f"Python {sys.version.split()[0]}, Django {django.get_version()}, "
        f"{args.rows:,} rows, {args.rounds} rounds (median, ratio to baseline)"
    )
    for name, ts in times.items():
        med = statistics.median(ts)
        print(
            f"  {name:15s} {med * 1000:8.1f} ms  x{med / base:.3f}  (min x{min(ts) / base_min:.3f})"
        )


def requests(n: int, rows: int = 2000) -> None:
    """Request 1 vs request n through the toolbar, with and without this panel."""
    import django

    django.setup()
    from debug_toolbar.toolbar import DebugToolbar
    from django.core.management import call_command
    from django.test import Client, override_settings
    from django.test.utils import setup_test_environment
    from shop.models import Category, Product, Review

    setup_test_environment()
    call_command("migrate", run_syncdb=True, verbosity=0)
    category = Category.objects.create(name="c")
    product = Product.objects.create(name="p", category=category, price=1)
    Review.objects.bulk_create([Review(product=product, rating=3, text="t") for _ in range(rows)])
    sql = "debug_toolbar.panels.sql.SQLPanel"
    ours = "debug_toolbar_perf.panels.ModelInstancesPanel"
    print(f"{rows:,} reviews, /reviews/summary/ (truthy page), Django test Client, in process")
    for panels in ([sql], [sql, ours]):
        with override_settings(DEBUG_TOOLBAR_PANELS=panels):
            DebugToolbar._panel_classes = None
            client = Client()

            def one(client: Client = client) -> float:
                start = time.perf_counter()
                response = client.get("/reviews/summary/")
                assert response.status_code == 200
                return time.perf_counter() - start

            first = [one() for _ in range(5)]
            for _ in range(n - 10):
                client.get("/reviews/summary/")
            last = [one() for _ in range(5)]
            print(
                f"  panels={[p.rsplit('.', 1)[-1] for p in panels]}: requests 1-5 median "
                f"{statistics.median(first) * 1000:.1f} ms, requests {n - 4}-{n} median "
                f"{statistics.median(last) * 1000:.1f} ms "
                f"(x{statistics.median(last) / statistics.median(first):.2f})"
            )
        DebugToolbar._panel_classes = None


if __name__ == "__main__":
    main()
