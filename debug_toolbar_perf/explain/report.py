"""What the ExplainPanel, the terminal and the budgets show: shapes by impact, with findings.

:func:`report` runs the findings (:mod:`.findings`) once over a stored record; everything
shown about EXPLAIN is read from its result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..text import count
from .findings import analyse


@dataclass(frozen=True)
class ExplainReport:
    """One record's shapes by impact (each with ``findings``) and its headline."""

    shapes: list[dict[str, Any]]
    explained: int
    finding_count: int

    @property
    def subtitle(self) -> str:
        return (
            f"{count(self.explained, 'shape')} explained · {count(self.finding_count, 'finding')}"
        )


def report(record: dict[str, Any], cfg: dict[str, Any]) -> ExplainReport:
    """The findings of a stored EXPLAIN record (``cfg``: the EXPLAIN settings section)."""
    shapes = analyse(record, cfg)
    return ExplainReport(
        shapes=shapes,
        explained=sum(1 for s in record.get("shapes") or [] if s.get("plan")),
        finding_count=sum(len(s["findings"]) for s in shapes),
    )
