"""The record's source text: read once per code object, and never shared between records."""

from __future__ import annotations

import inspect

from debug_toolbar_perf.line_memory import record
from debug_toolbar_perf.line_memory.record import source_of


def sample_view() -> int:
    total = 0
    for i in range(3):
        total += i
    return total


def test_the_source_is_read_once_per_code_object(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    record._SOURCES.clear()
    reads = []
    real = inspect.getsourcelines

    def counting(obj):  # type: ignore[no-untyped-def]
        reads.append(obj)
        return real(obj)

    monkeypatch.setattr(inspect, "getsourcelines", counting)
    first = source_of(sample_view.__code__)
    again = source_of(sample_view.__code__)
    assert len(reads) == 1
    assert first == again
    lines, start = real(sample_view)
    assert first == (start, [line.rstrip("\n") for line in lines], None)


def test_each_record_gets_its_own_list_of_lines() -> None:
    one = source_of(sample_view.__code__)[1]
    assert one is not None
    one.append("changed by a report")
    assert source_of(sample_view.__code__)[1] == one[:-1]


def test_code_without_a_file_says_why_each_time() -> None:
    namespace: dict[str, object] = {}
    exec("def made():\n    return 1\n", namespace)
    code = namespace["made"].__code__  # type: ignore[attr-defined]
    for _ in range(2):
        first, text, error = source_of(code)
        assert text is None and error and "cannot be read" in error
        assert first == code.co_firstlineno
