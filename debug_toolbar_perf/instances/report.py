"""Findings about model instances, computed from the stored record alone (:func:`report`).

* a model with more instances than ``INSTANCES.THRESHOLD``;
* one call site that built more than the threshold through a whole-queryset
  evaluation (truth test, ``len()``, iteration, ``list()``) - far more than a page
  shows; ``if queryset:`` is the classic (use ``.exists()``);
* with the SQL panel: a site whose instances came from many separate queries of
  one shape, about one instance per query - an N+1, with ``select_related`` /
  ``prefetch_related`` as the fix.
"""

from __future__ import annotations

import re
from typing import Any

from ..admin_fix import list_select_related_fix
from ..scope import short_path

#: What the project line did to the queryset, by the QuerySet method it called.
EVALUATIONS = {
    "__bool__": ("a truth test (if queryset:)", "use .exists() (or .first() alone)"),
    "__len__": ("len()", "use .count()"),
    "__iter__": ("iteration over every row", "slice, paginate or filter the queryset"),
    "_fetch_all": ("evaluation of the whole queryset", "slice, paginate or filter it"),
    "__getitem__": ("indexing", "slice before evaluating"),
}

_PARAMS = re.compile(r"'(?:[^']|'')*'|\b\d+(?:\.\d+)?\b")


def shape(sql: str) -> str:
    """SQL with literals replaced, so per-row queries compare equal."""
    return _PARAMS.sub("?", sql).strip()


def _where(site: dict[str, Any]) -> str:
    w = site.get("where") or {}
    return f"{short_path(w.get('file') or '?')}:{w.get('line', '?')} in {w.get('function', '?')}"


def findings(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Ordered list of findings: {level, kind, model, text, fix, site}."""
    out: list[dict[str, Any]] = []
    threshold = int(record.get("threshold") or 0)
    repeat = int(record.get("n_plus_one") or 5)
    queries = (record.get("sql") or {}).get("queries") or {}
    for model in record.get("models") or []:
        label = model["label"]
        if threshold and model["count"] > threshold:
            out.append(
                {
                    "level": "warning",
                    "kind": "count",
                    "model": label,
                    "text": f"{model['count']:,} {label} instances built (threshold "
                    f"{threshold:,}).",
                    "fix": "",
                    "site": None,
                }
            )
        for site in model.get("sites") or []:
            called = site.get("called")
            if threshold and site["count"] > threshold and called in EVALUATIONS:
                what, fix = EVALUATIONS[called]
                where = site.get("where") or {}
                lead = f"{_where(site)} built {site['count']:,} {label} instances by {what}:"
                tail = "A page rarely shows that many."
                code = where.get("code", "")
                out.append(
                    {
                        "level": "warning",
                        "kind": "evaluation",
                        "model": label,
                        "text": f"{lead} `{code}`. {tail}",
                        # the same sentence in parts, so the panel shows the line as <code>
                        "parts": {"lead": lead, "code": code, "tail": tail},
                        "fix": fix,
                        "site": where,
                    }
                )
            n_queries = int(site.get("query_count") or 0)
            if n_queries >= repeat and site["count"] <= 2 * n_queries:
                shapes = {
                    shape(queries[str(i)]["raw_sql"])
                    for i in site.get("queries") or []
                    if str(i) in queries
                }
                if len(shapes) > 1:
                    continue
                related = site.get("related") or {}
                kind = related.get("kind") or "select_related / prefetch_related"
                field = related.get("field") or ""
                fix = f"{kind}({field!r})" if field and "/" not in kind else kind
                admin = (
                    list_select_related_fix(site.get("where"), field)
                    if kind == "select_related"
                    else None
                )
                out.append(
                    {
                        "level": "warning",
                        "kind": "n_plus_one",
                        "model": label,
                        "text": f"N+1: {_where(site)} built {site['count']:,} {label} "
                        f"instances with {n_queries:,} separate queries of one shape "
                        f"(one per parent row).",
                        "fix": admin.text if admin else f"add .{fix} to the parent queryset",
                        "site": site.get("where"),
                    }
                )
    return out


def subtitle(record: dict[str, Any]) -> str:
    """Sidebar headline: "20,001 instances · shop.Review 20,000"."""
    total = int(record.get("total") or 0)
    models = record.get("models") or []
    noun = "instance" if total == 1 else "instances"
    if not models:
        return f"{total:,} {noun}"
    top = models[0]
    return f"{total:,} {noun} · {top['label']} {top['count']:,}"


def report(record: dict[str, Any]) -> dict[str, Any]:
    """Findings, headline and per-model rows with stacks ready to show: what the panel, the
    terminal report and the budgets all read."""
    queries = (record.get("sql") or {}).get("queries") or {}
    models = []
    for i, model in enumerate(record.get("models") or []):
        sites = []
        for j, site in enumerate(model.get("sites") or []):
            stack = list(reversed(site.get("stack") or []))  # outermost first, like tracebacks
            sites.append(
                {
                    **site,
                    "count_text": f"{site['count']:,}",
                    "id": f"djdt-perf-inst-{i}-{j}",
                    "stack_outer": stack,
                    "query_links": [
                        {"index": q, "number": q + 1, **queries[str(q)]}
                        for q in (site.get("queries") or [])[:5]
                        if str(q) in queries
                    ],
                }
            )
        size = model.get("size")
        models.append(
            {
                **model,
                "sites": sites,
                "size": size,
                "count_text": f"{model['count']:,}",
                "alive_text": f"{model['alive']:,} of {model['alive_tracked']:,} tracked",
                "sites_more_text": f"{model.get('sites_more_count', 0):,}",
            }
        )
    return {
        "total_text": f"{int(record.get('total') or 0):,}",
        "findings": findings(record),
        "models": models,
        "record": record,
        "subtitle_text": subtitle(record),
    }
