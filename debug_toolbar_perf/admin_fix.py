"""The N+1 fix a ModelAdmin author makes: ``list_select_related``, not ``select_related``.

Blame puts an admin changelist's N+1 on the ``list_display`` method that follows the foreign
key per row (``admin.py:19 in author_name``). The queryset is the admin's own, so "add
``.select_related("author")`` to the Book queryset" names code the user does not write; the
change they make is ``list_select_related = ["author"]`` on that ModelAdmin. Used by the
instances and Explain findings alike, from the stored site (file, line, function), looked up
in the running process's admin sites.
"""

from __future__ import annotations

from types import CodeType
from typing import Any, NamedTuple

from .scope import unwrap_function


class AdminFix(NamedTuple):
    text: str  # the sentence of advice
    code: str  # what to write on the ModelAdmin


def _code_lines(code: CodeType) -> range:
    last = max((line for _, _, line in code.co_lines() if line is not None), default=0)
    return range(code.co_firstlineno, max(last, code.co_firstlineno) + 1)


def _method_covers(admin: Any, name: str, file: str, line: int) -> bool:
    code = getattr(unwrap_function(getattr(type(admin), name, None)), "__code__", None)
    return isinstance(code, CodeType) and code.co_filename == file and line in _code_lines(code)


def list_select_related_fix(where: dict[str, Any] | None, field: str) -> AdminFix | None:
    """The fix when ``where`` is in a ``list_display`` method of a registered ModelAdmin whose
    model has the foreign key ``field``; else None (the generic advice stands)."""
    if not where or not field:
        return None
    name, file, line = where.get("function") or "", where.get("file") or "", where.get("line")
    if not name.isidentifier() or not isinstance(line, int):
        return None
    try:
        from django.contrib.admin.sites import all_sites
    except ImportError:  # the admin is not installed
        return None
    for site in list(all_sites):
        for model, admin in list(getattr(site, "_registry", {}).items()):
            if name not in (getattr(admin, "list_display", None) or ()):
                continue
            if not _method_covers(admin, name, file, line):
                continue
            fk = next((f for f in model._meta.concrete_fields if f.name == field), None)
            if fk is None or not fk.many_to_one:
                return None
            return _advice(type(admin).__name__, admin.list_select_related, field)
    return None


def _advice(admin: str, current: Any, field: str) -> AdminFix:
    if isinstance(current, (list, tuple)) and current:
        names = [*current, field]
        code = f"list_select_related = {names!r}"
        text = f'add "{field}" to {admin}.list_select_related (the changelist\'s query)'
    else:
        code = f'list_select_related = ["{field}"]'
        text = f"set {code} on {admin} (the changelist's query)"
    return AdminFix(text, code)
