"""One self-contained HTML page of the panels of a stored request, that opens offline.

The panels' own server-rendered content (each rendered from the toolbar's store on a fresh
panel instance, exactly as the browser gets it) with every stylesheet inlined. What is
static: the panels' JavaScript is not included (it runs as ES modules inside the toolbar),
so the flame graph canvas, search, sorting and on-demand actions (EXPLAIN ANALYZE, heap
summary, downloads) are absent; tables, findings, call sites, plans and line tables are all
there.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable

from django.contrib.staticfiles import finders

from ..runner import PANELS
from ..store import stored_panel

_LINK = re.compile(r"<link\b[^>]*rel=[\"']stylesheet[\"'][^>]*>", re.IGNORECASE)
_FONT_FACE = re.compile(r"@font-face\s*{[^}]*}", re.IGNORECASE)
#: The flame graph: its heading, data, search, library filter and zoom need the panel's script.
_FLAME = re.compile(r"<h4>Flame graph\b.*?</noscript>\s*</div>", re.S)
FLAME_NOTE = (
    '<p class="djdt-perf-muted djdt-perf-page-flame">Flame graph: in the speedscope file next '
    "to this page (the interactive one needs the toolbar's script).</p>"
)
STYLESHEETS = (
    "debug_toolbar/css/toolbar.css",
    "debug_toolbar_perf/css/perf.css",
    "debug_toolbar_perf/css/sampling.css",
    "debug_toolbar_perf/css/line_memory.css",
    "debug_toolbar_perf/css/instances.css",
    "debug_toolbar_perf/css/explain.css",
)
PAGE_CSS = """
body { margin: 0; background: #f4f4f4; }
#djDebug { position: static; display: block; padding: 1em 2em; font-size: 14px; }
#djDebug .djdt-perf-page-panel { background: var(--djdt-background-color, white);
  border: 1px solid #ccc; border-radius: 4px; margin: 0 0 2em; padding: 0 1em 1em; }
#djDebug .djdt-perf-page-panel > h2 { font-size: 1.3em; margin: 0.8em 0; }
#djDebug .djdt-perf-page-note { color: #666; }
"""


def _css() -> str:
    parts = []
    for name in STYLESHEETS:
        found = finders.find(name)
        if not found:
            continue
        with open(found, encoding="utf-8") as fh:
            parts.append(f"/* {name} */\n" + _FONT_FACE.sub("", fh.read()))
    parts.append(PAGE_CSS)
    return "\n".join(parts).replace("</", "<\\/")


def _panel_html(request_id: str, panel_id: str) -> tuple[str, str, str]:
    panel = stored_panel(request_id, panel_id)
    if panel is None:
        return panel_id, "", "<p>This request is no longer in the toolbar's store.</p>"
    # Offline there is no server: without a request id the panels leave out the links and
    # buttons that would call back (downloads, EXPLAIN ANALYZE, heap summary).
    panel.toolbar.request_id = None
    content = _FLAME.sub(FLAME_NOTE, _LINK.sub("", panel.content))
    return str(panel.title), str(panel.nav_subtitle), content


def page(request_id: str, panels: Iterable[str], title: str, summary: str = "") -> str:
    """The HTML document (panels in the given order, by short name)."""
    sections = []
    for name in panels:
        panel_title, subtitle, content = _panel_html(request_id, PANELS[name][0])
        head = html.escape(panel_title) + (f" · {html.escape(subtitle)}" if subtitle else "")
        sections.append(
            f'<section class="djdt-perf-page-panel" id="panel-{html.escape(name)}">'
            f"<h2>{head}</h2>\n{content}\n</section>"
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>\n<style>\n{_css()}\n</style></head>\n"
        '<body><div id="djDebug" data-theme="light">\n'
        f"<h1>{html.escape(title)}</h1>\n"
        f'<p class="djdt-perf-page-note">{html.escape(summary)}</p>\n'
        '<p class="djdt-perf-page-note">A static page: the panels as the toolbar rendered '
        "them, without their scripts (no interactive flame graph, sorting or on-demand "
        "EXPLAIN ANALYZE). The flame graph is in the speedscope file next to this page "
        "(open it at speedscope.app or with the speedscope CLI).</p>\n"
        + "\n".join(sections)
        + "\n</div></body></html>\n"
    )
