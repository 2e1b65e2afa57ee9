"""The export endpoint: signed by the toolbar, behind show-toolbar, safe file names."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape

import pytest
from debug_toolbar.forms import SignedDataForm
from django.test import Client, override_settings

from debug_toolbar_perf.endpoints import safe_filename
from tests.conftest import run_with_toolbar
from tests.testapp.panels import ProbePanel


@pytest.fixture(autouse=True)
def probe_panel(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(ProbePanel, "fail_at", None)
    with override_settings(DEBUG_TOOLBAR_PANELS=["tests.testapp.panels.ProbePanel"]):
        yield


def export_url(client: Client) -> str:
    run = run_with_toolbar(client, "/t/plain/")
    match = re.search(r'href="([^"]*perf/export[^"]*)"', run.content("ProbePanel"))
    assert match, "no export link in the panel"
    return unescape(match.group(1))


def test_export_downloads_with_a_safe_name(client: Client) -> None:
    response = client.get(export_url(client))
    assert response.status_code == 200
    assert response.content == b"tests.testapp.views.plain"
    disposition = response["Content-Disposition"]
    assert disposition == 'attachment; filename="etc_passwd_probe.txt"'


def test_export_needs_the_toolbar(client: Client) -> None:
    url = export_url(client)
    with override_settings(INTERNAL_IPS=[]):
        assert client.get(url).status_code == 404


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?signed=",
        "?signed=garbage",
        "?signed=" + "a" * 10_000,
        "?signed=" + SignedDataForm.sign({"request_id": "x", "panel_id": "ProbePanel"}) + "x",
    ],
)
def test_forged_or_malformed_input_is_a_400(client: Client, query: str) -> None:
    assert client.get("/__debug__/perf/export/" + query).status_code == 400


def test_unknown_request_or_format(client: Client) -> None:
    url = "/__debug__/perf/export/?signed="
    signed = SignedDataForm.sign({"request_id": "nope", "panel_id": "ProbePanel", "format": "txt"})
    assert client.get(url, {"signed": signed}).status_code == 404
    run = run_with_toolbar(client, "/t/plain/")
    signed = SignedDataForm.sign(
        {"request_id": run.request_id, "panel_id": "ProbePanel", "format": "exe"}
    )
    assert client.get("/__debug__/perf/export/", {"signed": signed}).status_code == 400


def test_post_is_refused(client: Client) -> None:
    assert client.post(export_url(client)).status_code == 405


@pytest.mark.parametrize(
    ("name", "expected"),
    [("../../x", "x"), ("a/b\\c", "a_b_c"), ("", "export"), ('q"; rm', "q_rm"), ("é.json", "json")],
)
def test_safe_filename(name: str, expected: str) -> None:
    assert safe_filename(name) == expected
