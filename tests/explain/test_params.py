"""Parameters survive the JSON store with their types, or are refused, never guessed."""

from __future__ import annotations

import datetime
import decimal
import json
import uuid

import pytest

from debug_toolbar_perf.explain.params import (
    OpaqueParam,
    decode_params,
    encode_params,
    params_rebuildable,
)

VALUES = [
    None,
    True,
    3,
    2**60,
    1.5,
    "text",
    decimal.Decimal("10.50"),
    datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.timezone.utc),
    datetime.date(2024, 5, 1),
    datetime.time(8, 15),
    datetime.timedelta(days=1, seconds=3),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    b"\x00\xff",
    [1, "a"],
]


def test_round_trip_through_json_keeps_types() -> None:
    stored = json.loads(json.dumps(encode_params(VALUES)))
    rebuilt = decode_params(stored)
    assert list(rebuilt) == VALUES
    assert [type(v) for v in rebuilt] == [type(v) for v in VALUES]


def test_unknown_objects_are_refused() -> None:
    stored = encode_params([object()])
    assert not params_rebuildable(stored)
    with pytest.raises(OpaqueParam):
        decode_params(stored)
