from collections.abc import Set
from types import FrameType

def stacks(idents: Set[int] | tuple[int, ...] | None = None, /) -> dict[int, list[FrameType]]: ...
