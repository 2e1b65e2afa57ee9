"""The ExplainPanel's engine: capture (every statement, by shape), per-vendor EXPLAIN,
on-demand EXPLAIN ANALYZE that never changes data."""

from .capture import CaptureSession
from .shapes import fingerprint, statement_kind

__all__ = ["CaptureSession", "fingerprint", "statement_kind"]
