"""Per-request isolation for engines that install process-wide hooks.

A signal receiver, a ``sys.monitoring`` callback or a sampler sees every thread
of a threaded server. Each engine keeps the state of the request it measures in
a :class:`RequestLocal` (a ``ContextVar``): the hook looks the state up and does
nothing when the current context is not one being measured. Threads the request
starts do not inherit a ``ContextVar`` unless started with ``copy_context()``,
so their work is not mixed in by accident.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")


class RequestLocal(Generic[T]):
    """A named ContextVar with a ``bound(value)`` context manager that always resets."""

    def __init__(self, name: str) -> None:
        self._var: contextvars.ContextVar[T | None] = contextvars.ContextVar(name, default=None)

    def get(self) -> T | None:
        return self._var.get()

    @property
    def var(self) -> contextvars.ContextVar[T | None]:
        """The ContextVar itself: a hook on a hot path binds ``var.get`` (a C call, no frame)."""
        return self._var

    @contextmanager
    def bound(self, value: T) -> Iterator[T]:
        token = self._var.set(value)
        try:
            yield value
        finally:
            self._var.reset(token)
