"""Other threads' stacks, read safely: ``{ident: [frame, ...innermost first]}``.

On CPython 3.11 reading another thread's frames (``sys._current_frames()``, ``f_back``)
can crash the process: making a frame object may run a garbage collection, whose Python
callbacks can let that thread return from the frame being wrapped (see ``_stacks.c``).
Every cross-thread stack read of the package goes through :func:`thread_stacks`, which
reads with collections off, in one C call where the extension built. Without it, the
same walk runs in Python with collections off, where another thread can run (and see
collections off) for up to one switch interval; only 3.11 needs that fallback.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Set
from types import FrameType

try:
    from ._stacks import stacks as _c_stacks
except ImportError:  # not built (no compiler at install time)
    _c_stacks = None  # type: ignore[assignment]

#: Where a Python walk of another thread's frames is unsafe with collections on.
NEEDS_GC_OFF = sys.version_info[:2] == (3, 11)


def _py_stacks(idents: Set[int] | tuple[int, ...] | None) -> dict[int, list[FrameType]]:
    guard = NEEDS_GC_OFF and gc.isenabled()
    if guard:
        gc.disable()
    try:
        out: dict[int, list[FrameType]] = {}
        for ident, top in sys._current_frames().items():
            if idents is not None and ident not in idents:
                continue
            chain = []
            f: FrameType | None = top
            while f is not None:
                chain.append(f)
                f = f.f_back
            out[ident] = chain
        return out
    finally:
        if guard:
            gc.enable()


def thread_stacks(
    idents: Set[int] | tuple[int, ...] | None = None,
) -> dict[int, list[FrameType]]:
    """Each thread's stack (of ``idents`` only, if given), innermost frame first."""
    if _c_stacks is not None:
        return _c_stacks(idents)
    return _py_stacks(idents)


def engine() -> str:
    """``"c"`` or ``"python"``: which reader :func:`thread_stacks` uses here."""
    return "c" if _c_stacks is not None else "python"
