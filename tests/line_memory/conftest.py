"""The heap reading sends Python's objects to glibc while it runs: afterwards glibc may keep a
big free top chunk, from which a later 48 MB block is carved without touching new pages, so
a later RSS test would see 0.0 (RSS shows reuse; the heap tests made some). Each test ends
by giving glibc's free memory back (``malloc_trim``), as a fresh process would start."""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _give_back_free_memory() -> Iterator[None]:
    yield
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).malloc_trim(0)
