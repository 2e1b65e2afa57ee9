"""``manage.py profile_request URL``: one request (or N) through the whole stack, profiled.

Thin: it parses options, forces the toolbar on (``runner.capture``), sends the request with
Django's test client (every middleware runs, as a chosen user), then prints the terminal
report (``render/terminal.py``), writes the exports (the panels' own ``export()`` and
``render/html_page.py``) and checks the budgets (``budget.py``, as ``perf_budget`` does).

Exit codes: 0 fine; 1 the view raised or a budget was broken; 2 bad usage (a URL that does
not resolve, an unknown user, unreadable data, a bad option).
"""

from __future__ import annotations

import os
import time
import traceback
from typing import Any
from urllib.parse import urlsplit

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.test import Client
from django.urls import Resolver404, resolve

from ...budget import Budget, message
from ...endpoints import safe_filename
from ...render import compare, html_page, terminal
from ...runner import ALL_PANELS, PANELS, Run, capture, parse_panels
from ...store import stored_panel

USAGE = 2
FAILED = 1


def _model_limit(value: str) -> tuple[str, int]:
    label, sep, number = value.partition("=")
    if not sep or label.count(".") != 1 or not number.strip().isdigit():
        raise ValueError(f"--max-instances expects app_label.Model=N, not {value!r}")
    return label.strip(), int(number)


def _header(value: str) -> tuple[str, str]:
    name, sep, val = value.partition(":")
    if not sep or not name.strip():
        raise ValueError(f"--header expects 'Name: value', not {value!r}")
    return name.strip(), val.strip()


class Command(BaseCommand):
    help = (
        "Run one request through the full Django stack with the performance panels on, "
        "print their report, write exports, and fail when a budget is broken."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("url", help="Path (with query string), e.g. /products/?page=2")
        parser.add_argument(
            "--panels",
            default=",".join(ALL_PANELS),
            help=f"Comma-separated perf panels to run (default: {','.join(ALL_PANELS)}).",
        )
        parser.add_argument("--user", help="Log in as this user (by USERNAME_FIELD) first.")
        parser.add_argument("--method", default="GET", help="HTTP method (default GET).")
        parser.add_argument(
            "-H",
            "--header",
            action="append",
            default=[],
            help="Request header 'Name: value' (repeatable).",
        )
        body = parser.add_mutually_exclusive_group()
        body.add_argument("--data", help="Request body.")
        body.add_argument("--data-file", help="Read the request body from this file.")
        parser.add_argument(
            "--content-type",
            default=None,
            help="Content type of the body (default application/x-www-form-urlencoded).",
        )
        parser.add_argument(
            "--repeat", type=int, default=1, help="Send the request N times (default 1)."
        )
        parser.add_argument(
            "--output", help="Write the exports (speedscope, collapsed, vmprof, HTML) here."
        )
        parser.add_argument(
            "--save",
            metavar="FILE",
            help="Write this run's records (with --repeat: the sampling runs merged) to FILE, "
            "for a later --compare FILE or perf_budget(baseline=FILE).",
        )
        parser.add_argument(
            "--compare",
            nargs="?",
            const="",
            metavar="FILE",
            help="Print what changed against a file written by --save; without FILE, the "
            "last run against the first (with --repeat 2 or more).",
        )
        budgets = parser.add_argument_group("budgets (exit code 1 when broken)")
        budgets.add_argument(
            "--max-instances",
            action="append",
            default=[],
            metavar="MODEL=N",
            help="At most N instances of app_label.Model (repeatable).",
        )
        budgets.add_argument("--max-total-instances", type=int, metavar="N")
        budgets.add_argument(
            "--max-repeated-query-shape",
            type=int,
            metavar="N",
            help="No query shape may run more than N times.",
        )
        budgets.add_argument("--max-queries", type=int, metavar="N")
        budgets.add_argument(
            "--no-full-scans", action="store_true", help="Fail on a full scan of a large table."
        )
        budgets.add_argument(
            "--fail-on-findings", action="store_true", help="Fail on any plan finding."
        )
        budgets.add_argument(
            "--max-ms",
            type=float,
            metavar="N",
            help="Median wall time of the profiled view (sampling panel), in ms.",
        )

    # -- orchestration ----------------------------------------------------------------------

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            panels = parse_panels(opts["panels"])
            budget = Budget(
                max_instances=dict(_model_limit(v) for v in opts["max_instances"]),
                max_total_instances=opts["max_total_instances"],
                max_repeated_query_shape=opts["max_repeated_query_shape"],
                max_queries=opts["max_queries"],
                no_full_scans=opts["no_full_scans"],
                no_plan_findings=opts["fail_on_findings"],
                max_ms=opts["max_ms"],
            )
            headers = dict(_header(h) for h in opts["header"])
        except ValueError as exc:
            raise CommandError(str(exc), returncode=USAGE) from exc
        missing = [p for p in budget.panels() if p not in panels]
        if missing:
            raise CommandError(
                f"these budgets need the {', '.join(missing)} panel(s): add them to --panels",
                returncode=USAGE,
            )
        if opts["repeat"] < 1:
            raise CommandError("--repeat must be 1 or more", returncode=USAGE)
        saved = None
        if opts["compare"]:
            try:
                saved = compare.load(opts["compare"])
            except (OSError, ValueError) as exc:
                raise CommandError(f"--compare: {exc}", returncode=USAGE) from exc
        elif opts["compare"] == "" and opts["repeat"] < 2:
            raise CommandError(
                "--compare without a file compares the last run with the first: "
                "add --repeat 2 (or more), or name a file written by --save",
                returncode=USAGE,
            )
        url = self._check_url(opts["url"])
        body = self._body(opts)
        client = Client(raise_request_exception=False)
        if opts["user"]:
            client.force_login(self._user(opts["user"]))
        method = opts["method"].upper()
        content_type = opts["content_type"] or "application/x-www-form-urlencoded"

        runs: list[Run] = []
        failures: list[tuple[Run, Any]] = []
        with capture(panels, debug=True) as cap:
            for i in range(opts["repeat"]):
                started = time.perf_counter()
                response = client.generic(
                    method, url, body, content_type=content_type, headers=headers
                )
                elapsed = (time.perf_counter() - started) * 1000.0
                cap.collect()
                if len(cap.runs) <= len(runs):
                    raise CommandError(
                        "the toolbar did not run for this request (is "
                        "debug_toolbar.middleware.DebugToolbarMiddleware in MIDDLEWARE?)",
                        returncode=FAILED,
                    )
                run = cap.runs[-1]
                run.status, run.elapsed_ms = response.status_code, elapsed
                runs.append(run)
                exc_info = getattr(response, "exc_info", None)  # the test client's
                if exc_info:
                    failures.append((run, exc_info))
                self._progress(i + 1, opts["repeat"], elapsed)
            last = self._merged(runs) if len(runs) > 1 and "sampling" in panels else runs[-1]
            self.stdout.write(self._summary(last, runs, method, url))
            self.stdout.write(terminal.report(last.stats))
            if saved is not None:
                self.stdout.write(compare.text(last.stats, saved[1], saved[0]))
            elif opts["compare"] == "":
                self.stdout.write(compare.text(runs[-1].stats, runs[0].stats, "the first run"))
            if opts["save"]:
                compare.save(opts["save"], f"{method} {url}", last.stats)
                self.stdout.write(f"Records saved to {opts['save']}\n")
            if opts["output"]:
                self._write_exports(opts["output"], last, panels, method, url)
            breaches = budget.check(runs, time_of="median") if not failures else []
        if failures:
            run, exc_info = failures[-1]
            self.stderr.write("".join(traceback.format_exception(*exc_info)))
            raise CommandError(
                f"the view raised {exc_info[0].__name__}: {exc_info[1]} "
                f"({len(failures)} of {len(runs)} runs; report above)",
                returncode=FAILED,
            )
        if breaches:
            raise CommandError(message(breaches), returncode=FAILED)

    # -- steps ------------------------------------------------------------------------------

    def _merged(self, runs: list[Run]) -> Run:
        """The last run with the sampling records of every run merged into one profile."""
        last = runs[-1]
        merged = compare.merge_sampling([r.record("sampling") for r in runs])
        stats = dict(last.stats)
        stats["sampling"] = {**(stats.get("sampling") or {}), "record": merged}
        self.stdout.write(
            f"Sampling: the {len(runs)} runs merged into one profile, "
            f"{float(merged.get('samples') or 0):,.0f} samples\n"
        )
        return Run(last.method, last.path, last.request_id, stats, last.status, last.elapsed_ms)

    def _check_url(self, raw: str) -> str:
        parts = urlsplit(raw)
        path = parts.path or "/"
        if not path.startswith("/"):
            path = "/" + path
        try:
            resolve(path)
        except Resolver404:
            hint = ""
            if not path.endswith("/"):
                try:
                    resolve(path + "/")
                    hint = f" (did you mean {path}/ ?)"
                except Resolver404:
                    pass
            raise CommandError(
                f"{path} does not resolve to a view in ROOT_URLCONF{hint}", returncode=USAGE
            ) from None
        return path + (f"?{parts.query}" if parts.query else "")

    def _body(self, opts: dict[str, Any]) -> bytes:
        if opts["data_file"]:
            try:
                with open(opts["data_file"], "rb") as fh:
                    return fh.read()
            except OSError as exc:
                raise CommandError(f"cannot read --data-file: {exc}", returncode=USAGE) from exc
        return (opts["data"] or "").encode()

    def _user(self, username: str) -> Any:
        from django.contrib.auth import get_user_model

        model = get_user_model()
        try:
            return model._default_manager.get_by_natural_key(username)  # type: ignore[attr-defined]
        except model.DoesNotExist:
            raise CommandError(
                f"no user with {model.USERNAME_FIELD} {username!r}", returncode=USAGE
            ) from None

    def _progress(self, done: int, total: int, elapsed_ms: float) -> None:
        if total == 1:
            return
        width = 30
        filled = round(width * done / total)
        bar = "#" * filled + "." * (width - filled)
        end = "\n" if done == total else ""
        self.stderr.write(f"\r[{bar}] {done}/{total}  last {elapsed_ms:,.1f} ms", ending=end)
        self.stderr.flush()

    def _summary(self, last: Run, runs: list[Run], method: str, url: str) -> str:
        times = [r.elapsed_ms for r in runs if r.elapsed_ms is not None]
        return (
            f"{method} {url} -> {last.status} · {terminal.timings(times)} "
            "(through the whole stack, toolbar included)\n"
        )

    def _write_exports(
        self, directory: str, run: Run, panels: list[str], method: str, url: str
    ) -> None:
        os.makedirs(directory, exist_ok=True)
        written = []
        formats = {"sampling": ("speedscope", "collapsed", "vmprof"), "memory": ("txt",)}
        for name, fmts in formats.items():
            if name not in panels or not run.record(name):
                continue
            panel_id = PANELS[name][0]
            panel = stored_panel(run.request_id, panel_id)
            if panel is None:
                continue
            record = run.record(name) or {}
            for fmt in fmts:
                if fmt == "vmprof" and not record.get("raw_file"):
                    continue  # the thread sampler ran: there is no raw vmprof file
                result = panel.export(fmt, run.stats[name])
                if result is None:
                    continue
                target = os.path.join(directory, safe_filename(result.filename))
                with open(target, "wb") as fh:
                    fh.write(result.content)
                written.append(target)
        page = html_page.page(
            run.request_id,
            panels,
            f"{method} {url}",
            f"Status {run.status} · {run.elapsed_ms or 0:,.1f} ms · django-debug-toolbar-perf",
        )
        target = os.path.join(directory, "report.html")
        with open(target, "w", encoding="utf-8") as fh:
            fh.write(page)
        written.append(target)
        self.stdout.write("Exports written:\n" + "".join(f"  {p}\n" for p in written))
