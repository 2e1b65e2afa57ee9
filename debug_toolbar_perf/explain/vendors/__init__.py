"""Per-vendor EXPLAIN: PostgreSQL, MariaDB/MySQL, SQLite, and a fallback for other backends.

``vendor_for(connection)`` picks one; each vendor module builds on :mod:`.base`.
"""

from __future__ import annotations

from typing import Any

from .base import Run, Vendor, capped_count, quote
from .mysql import MySQL
from .postgresql import PostgreSQL
from .sqlite import SQLite

__all__ = ["MySQL", "PostgreSQL", "Run", "SQLite", "Vendor", "capped_count", "quote", "vendor_for"]


def vendor_for(connection: Any) -> Vendor:
    vendor = connection.vendor
    if vendor == "postgresql":
        return PostgreSQL()
    if vendor == "mysql":
        return MySQL(mariadb=bool(getattr(connection, "mysql_is_mariadb", False)))
    if vendor == "sqlite":
        return SQLite()
    return Vendor()
