"""Numbers and nouns as every panel writes them: ``1 shape``, ``2 shapes``, ``20,001 rows``."""

from __future__ import annotations

#: Irregular plurals (the rest take an "s").
_PLURALS = {"index": "indexes", "query": "queries"}


def plural(n: float, noun: str) -> str:
    """``noun`` in the number ``n`` calls for (1 -> singular)."""
    return noun if n == 1 else _PLURALS.get(noun, noun + "s")


def count(n: float, noun: str) -> str:
    """``n`` with thousands separators and ``noun`` agreeing with it: ``1,000 shapes``."""
    number = f"{n:,.0f}" if float(n).is_integer() else f"{n:,.1f}"
    return f"{number} {plural(n, noun)}"
