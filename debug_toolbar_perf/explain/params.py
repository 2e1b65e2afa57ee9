"""Query parameters made JSON-safe with a type tag, and rebuilt with their types.

The on-demand EXPLAIN ANALYZE runs in a later request, from the toolbar's JSON
store. Parameters stored as plain strings lose their types (a Decimal becomes a
str and PostgreSQL then rejects the statement), so each one is stored as
``[tag, value]`` and rebuilt exactly. A value we cannot rebuild is tagged
``"opaque"``: the panel then refuses to ANALYZE that shape instead of guessing.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import math
import uuid
from typing import Any


class OpaqueParam(ValueError):
    """A stored parameter that cannot be rebuilt with its original type."""


def encode_param(value: Any) -> list[Any]:
    """``[tag, json_value]`` for one parameter."""
    if value is None:
        return ["none", None]
    if isinstance(value, bool):
        return ["bool", value]
    if isinstance(value, int):
        return ["int", str(value) if abs(value) > 2**53 else value]
    if isinstance(value, float):
        return ["float", value if math.isfinite(value) else repr(value)]
    if isinstance(value, str):
        return ["str", value]
    if isinstance(value, decimal.Decimal):
        return ["decimal", str(value)]
    if isinstance(value, datetime.datetime):
        return ["datetime", value.isoformat()]
    if isinstance(value, datetime.date):
        return ["date", value.isoformat()]
    if isinstance(value, datetime.time):
        return ["time", value.isoformat()]
    if isinstance(value, datetime.timedelta):
        return ["timedelta", [value.days, value.seconds, value.microseconds]]
    if isinstance(value, uuid.UUID):
        return ["uuid", str(value)]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return ["bytes", base64.b64encode(bytes(value)).decode("ascii")]
    if isinstance(value, (list, tuple)):
        return ["list" if isinstance(value, list) else "tuple", [encode_param(v) for v in value]]
    obj = getattr(value, "obj", None)  # psycopg 3 Jsonb/Json wrappers
    if type(value).__name__ in ("Jsonb", "Json") and obj is not None:
        try:
            import json

            json.dumps(obj)
            return ["jsonb" if type(value).__name__ == "Jsonb" else "json", obj]
        except (TypeError, ValueError):
            pass
    return ["opaque", repr(value)[:200]]


def decode_param(item: Any) -> Any:
    """Rebuild one parameter from ``[tag, value]``; :class:`OpaqueParam` if impossible."""
    if not isinstance(item, list) or len(item) != 2:
        raise OpaqueParam(f"malformed parameter {item!r}")
    tag, value = item
    if tag == "none":
        return None
    if tag == "bool":
        return bool(value)
    if tag == "int":
        return int(value)
    if tag == "float":
        return float(value)
    if tag == "str":
        return str(value)
    if tag == "decimal":
        return decimal.Decimal(value)
    if tag == "datetime":
        return datetime.datetime.fromisoformat(value)
    if tag == "date":
        return datetime.date.fromisoformat(value)
    if tag == "time":
        return datetime.time.fromisoformat(value)
    if tag == "timedelta":
        return datetime.timedelta(days=value[0], seconds=value[1], microseconds=value[2])
    if tag == "uuid":
        return uuid.UUID(value)
    if tag == "bytes":
        return base64.b64decode(value)
    if tag in ("list", "tuple"):
        items = [decode_param(v) for v in value]
        return items if tag == "list" else tuple(items)
    if tag in ("jsonb", "json"):
        from psycopg.types.json import Json, Jsonb

        return Jsonb(value) if tag == "jsonb" else Json(value)
    raise OpaqueParam(f"parameter {value!r} cannot be rebuilt with its type")


def encode_params(params: Any) -> list[Any] | dict[str, Any] | None:
    if params is None:
        return None
    if isinstance(params, dict):
        return {str(k): encode_param(v) for k, v in params.items()}
    return [encode_param(p) for p in params]


def decode_params(stored: Any) -> Any:
    if stored is None:
        return None
    if isinstance(stored, dict):
        return {k: decode_param(v) for k, v in stored.items()}
    return tuple(decode_param(p) for p in stored)


def params_rebuildable(stored: Any) -> bool:
    try:
        decode_params(stored)
    except (OpaqueParam, ValueError, TypeError, ImportError):
        return False
    return True
