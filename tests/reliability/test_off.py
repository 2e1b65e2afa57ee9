"""Off means off: toolbar hidden or a panel switched off, none of our hooks runs.

A probe view (tests/reliability/views.py) reports, from inside the view, every
hook this package can install: the sampler thread and the GIL switch interval,
vmprof, the trace function or sys.monitoring tool ids, the instances collector,
and execute wrappers. At the driver level, SQLite's trace callback lists every
statement the connection really ran, including the panel's raw-cursor EXPLAINs.
Each check first proves the probe sees the hook when the panel is on.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.test import Client, override_settings

from debug_toolbar_perf.instances import collector as instances
from debug_toolbar_perf.instances import hook as instances_hook

PANELS = ("SamplingProfilerPanel", "LineMemoryPanel", "ModelInstancesPanel", "ExplainPanel")


@pytest.fixture(autouse=True)
def _setup(our_urls: None, db: None) -> Iterator[None]:
    from shop.models import Category

    Category.objects.bulk_create(Category(name=f"Cat {i}") for i in range(5))
    yield


@pytest.fixture
def statements() -> Iterator[list[str]]:
    """Every statement SQLite executes on the default connection (driver level)."""
    connection.ensure_connection()
    log: list[str] = []
    connection.connection.set_trace_callback(log.append)
    yield log
    connection.connection.set_trace_callback(None)


def ours(log: list[str]) -> list[str]:
    """The statements the ExplainPanel runs on its raw cursor (SQLite's trace callback does
    not report EXPLAIN QUERY PLAN itself; the table-size lookups that follow it are ours)."""
    return [
        s for s in log if s.upper().startswith("EXPLAIN") or "djdt_perf" in s or "sqlite_stat1" in s
    ]


def probe(client: Client) -> dict[str, Any]:
    response = client.get("/r/probe/?json=1")
    assert response.status_code == 200
    return json.loads(response.content)


def active(found: dict[str, Any], baseline_trace: str | None) -> dict[str, bool]:
    """Which of our hooks the probe saw, per panel."""
    monitoring = bool(found["monitoring"])
    return {
        "SamplingProfilerPanel": bool(found["sampler_threads"])
        or found["vmprof_enabled"]
        or found["switchinterval"] != SWITCH,
        "LineMemoryPanel": found["gettrace"] != baseline_trace or monitoring,
        "ModelInstancesPanel": found["collector_bound"],
        "ExplainPanel": found["queries_wrapped"] > 0,
    }


SWITCH = sys.getswitchinterval()


def _trace_repr() -> str | None:
    trace = sys.gettrace()
    return None if trace is None else repr(trace)


def test_probe_sees_every_hook_when_on(statements: list[str]) -> None:
    found = probe(Client())
    assert active(found, _trace_repr()) == dict.fromkeys(PANELS, True), found
    assert ours(statements), statements


@pytest.mark.parametrize(
    "hidden",
    [{"DEBUG": False}, {"INTERNAL_IPS": []}],
    ids=["DEBUG=False", "client-outside-INTERNAL_IPS"],
)
def test_toolbar_hidden(hidden: dict[str, Any], statements: list[str]) -> None:
    Client().get("/r/probe/?json=1")  # our hooks were used once in this process
    statements.clear()
    with override_settings(**hidden):
        found = probe(Client())
    assert active(found, _trace_repr()) == dict.fromkeys(PANELS, False), found
    assert found["switchinterval"] == SWITCH
    assert not ours(statements), statements
    assert statements, "the probe's own query was not seen"


@pytest.mark.parametrize("panel_id", PANELS)
def test_panel_switched_off_in_the_toolbar(panel_id: str, statements: list[str]) -> None:
    client = Client()
    client.cookies[f"djdt{panel_id}"] = "off"
    found = probe(client)
    expected = {p: p != panel_id for p in PANELS}
    assert active(found, _trace_repr()) == expected, found
    assert bool(ours(statements)) == (panel_id != "ExplainPanel"), statements


def test_instances_hook_returns_at_once_when_unbound(monkeypatch: pytest.MonkeyPatch) -> None:
    """The post_init hook stays installed once used; with no collector it does no work."""
    Client().get("/r/probe/?json=1")
    assert instances_hook.installed()
    calls = []
    monkeypatch.setattr(
        instances.Collector, "on_instance", lambda *a, **k: calls.append(a), raising=True
    )
    with override_settings(INTERNAL_IPS=[]):
        found = probe(Client())
    assert found["categories"] == 5 and not found["collector_bound"]
    assert calls == []


# The cost of a hidden toolbar vs the package absent is measured in the benchmarks
# (benchmarks/suites/off.py), not asserted here: a timed assertion flakes on a shared machine.
