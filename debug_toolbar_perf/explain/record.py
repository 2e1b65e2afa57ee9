"""The contract of what the ExplainPanel stores per request (built by ``capture.py``)."""

from __future__ import annotations

from typing import Any, TypedDict

from ..records import Frame


class IssuedAt(Frame):
    count: int  # statements of the shape issued from this line


class ShapeRecord(TypedDict):
    """One statement shape of the request: its SQL, where it was issued, its plan."""

    id: str
    alias: str
    vendor: str
    kind: str  # select | insert | update | delete
    many: bool
    fingerprint: str
    sql: str
    params: Any  # encode_params: [tag, value] pairs, rebuilt for EXPLAIN ANALYZE
    params_rebuildable: bool
    count: int
    errors: int
    total_ms: float
    max_ms: float
    lines: list[IssuedAt]
    stack: list[Frame]
    plan: dict[str, Any] | None  # PlanNode.to_json(), nodes numbered
    plan_error: str | None
    skipped: str | None
    explain_ms: float | None
    table_rows: dict[str, list[Any]]  # table -> [rows, is_estimate, source]
    index_checks: dict[str, dict[str, Any]]  # CREATE INDEX -> the planner's verdict (verify)
    limit_matches: list[int] | None  # [rows matching, cap]: a LIMIT-ed filtered scan's reads


class ExplainRecord(TypedDict):
    """What the ExplainPanel stores per request (``Stats["record"]``)."""

    vendors: dict[str, str]
    statements: int
    other_statements: int
    query_ms: float
    shapes: list[ShapeRecord]
    explains: int
    size_lookups: int
    explain_ms: float
    explained_early: int
    max_shapes: int
    notes: list[str]
