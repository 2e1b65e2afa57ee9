"""What an engine hands back for one request: aggregated stacks, no frame objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import CodeType

FrameKey = tuple[str, str, int]  # (function name, filename, first line)
StackKey = tuple[tuple[FrameKey, ...], int]  # (root-first frames, line in the leaf)


# --- the common result -----------------------------------------------------------------


@dataclass
class RawProfile:
    """What an engine measured for one thread. Aggregated; no frame objects kept."""

    engine: str
    mode: str
    interval_ms: float
    duration_s: float = 0.0
    stacks: dict[StackKey, float] = field(default_factory=dict)
    foreign_samples: float = 0.0  # samples of other threads, dropped
    overhead_ms: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    raw_file: str | None = None
    away_samples: float = 0.0  # ASGI: ticks while this request's view ran nowhere
    threads: int = 0  # ASGI: threads the view was seen running in
    switch_ms: float | None = None  # thread sampler: the GIL switch interval it set, if any
    not_sampled: str | None = None  # why nothing was sampled at all

    @property
    def samples(self) -> float:
        return sum(self.stacks.values())


#: id(code) -> (code, key). By identity: hashing a code object hashes its constants (~1 us);
#: the code is held so the id cannot be reused while the entry exists.
_KEYS: dict[int, tuple[CodeType, FrameKey]] = {}


def code_key(code: CodeType) -> FrameKey:
    entry = _KEYS.get(id(code))
    if entry is not None and entry[0] is code:
        return entry[1]
    name = getattr(code, "co_qualname", code.co_name)
    key = (name, code.co_filename, code.co_firstlineno)
    if len(_KEYS) < 100_000:
        _KEYS[id(code)] = (code, key)
    return key
