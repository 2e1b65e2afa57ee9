"""Walking real pages through the toolbar and checking every index suggestion shown: the
planner verified it, it duplicates no existing index, and, created for real in a transaction
that is rolled back, the plan of the same statement on the same page uses it. Shared by the
demo walk (tests/explain) and the admin walk (tests/real_apps)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import connections, transaction

from debug_toolbar_perf.conf import get_config
from debug_toolbar_perf.explain.findings import analyse
from debug_toolbar_perf.explain.vendors import vendor_for
from debug_toolbar_perf.explain.verify import duplicate_of, parse_ddl
from tests.conftest import run_with_toolbar


class RouteApp:
    """Routes one app's models (and only them) to one database alias."""

    def __init__(self, app_label: str, alias: str) -> None:
        self.app_label = app_label
        self.alias = alias

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return self.alias if model._meta.app_label == self.app_label else None

    db_for_write = db_for_read


def page_shapes(client: Any, path: str) -> list[dict[str, Any]]:
    """The page's shapes as the panel shows them, findings included."""
    run = run_with_toolbar(client, path)
    assert run.response.status_code == 200, path
    return analyse(run.record("ExplainPanel"), get_config()["EXPLAIN"])


def indexes_used(plan: dict[str, Any] | None) -> set[str]:
    out: set[str] = set()
    stack = [plan] if plan else []
    while stack:
        node = stack.pop()
        if node.get("index"):
            out.add(node["index"])
        stack.extend(node.get("children") or ())
    return out


def check_every_suggestion(
    client: Any, paths: Iterable[str], alias: str
) -> dict[tuple[str, str], tuple[str, str]]:
    """Walk ``paths``; assert the three properties of every suggestion on ``alias``; return
    them as ``{(path, shape fingerprint): (CREATE INDEX, how the planner was asked)}``."""
    conn = connections[alias]
    vendor = vendor_for(conn)
    shown: dict[tuple[str, str], tuple[str, str]] = {}
    for path in paths:
        for shape in page_shapes(client, path):
            for finding in shape["findings"]:
                ddl = finding["suggestion"]
                if not ddl:
                    continue
                assert shape["alias"] == alias, (path, shape["alias"])
                check = shape["index_checks"][ddl]
                assert check["used"] is True, (path, ddl, check)
                assert "Verified: the planner uses it (" in finding["detail"], finding["detail"]
                assert " → " in finding["detail"]  # cost (or SQLite's plan) before -> after
                if check.get("cost_before") is not None:
                    assert check["cost_after"] < check["cost_before"], check
                _name, table, cols, _using, where = parse_ddl(ddl) or ("", "", [], None, None)
                assert duplicate_of(cols, where, vendor.indexes(conn, table)) is None, ddl
                shown[(path, shape["fingerprint"])] = (ddl, check["method"])
    for (path, fingerprint), (ddl, _method) in shown.items():
        name, table = ddl.split()[2], ddl.split()[4]
        with transaction.atomic(using=alias):  # the index for real, then rolled back
            with conn.cursor() as cur:
                cur.execute(ddl)
            (again,) = [s for s in page_shapes(client, path) if s["fingerprint"] == fingerprint]
            transaction.set_rollback(True, using=alias)
        assert name in indexes_used(again["plan"]), (path, ddl, again["plan"])
        assert name not in {n for n, _ in vendor.indexes(conn, table)}  # rolled back
    return shown
