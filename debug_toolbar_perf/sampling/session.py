"""One request's sampling session: pick the engine, start it, stop it, hand back the profile.

Both engines sample *one* request and hand back the same :class:`~.raw.RawProfile`:
root-first stacks of ``(name, filename, firstlineno)`` keys with the line being
executed in the innermost frame, and a count. Which engine runs is decided in
:mod:`.choice`; the thread sampler is :mod:`.thread`, vmprof :mod:`.vmprof_engine`;
following a view call that runs outside the request thread is :mod:`.follow`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from types import FrameType

from .choice import EngineChoice, choose_engine, gevent_refusal
from .follow import (
    FOLLOW_NOTE,
    FOLLOW_REASONS,
    FOLLOW_UNRESOLVED,
    ViewInvocation,
)
from .raw import RawProfile
from .thread import ThreadSampler
from .vmprof_engine import ProfilerBusy, VmprofSampler


@dataclass
class SamplingSession:
    """The engine running for one request, why it was chosen, and what went wrong."""

    choice: EngineChoice
    sampler: ThreadSampler | VmprofSampler | None
    notes: list[str] = field(default_factory=list)
    anchor: tuple[str, int] | None = None  # (filename, first line) of process_request
    anchor_depth: int | None = None
    started: float = 0.0
    start_ms: float = 0.0
    stop_ms: float = 0.0
    stopped: bool = False
    busy: bool = False
    mode: str = "wall"
    interval_ms: float = 1.0
    not_sampled: str | None = None
    followed: bool = False  # stacks are cut at this request's view call by the engine

    def stop(self) -> None:
        if self.stopped or self.sampler is None:
            return
        self.stopped = True
        t0 = time.perf_counter()
        try:
            self.sampler.stop()
        finally:
            self.stop_ms = (time.perf_counter() - t0) * 1000.0

    def result(self) -> RawProfile | None:
        if self.sampler is None:
            if self.not_sampled is None:
                return None
            raw = RawProfile("none", self.mode, self.interval_ms, not_sampled=self.not_sampled)
            raw.notes[:0] = [n for n in self.notes if n != self.not_sampled]
            return raw
        self.stop()
        raw = self.sampler.result()
        raw.notes[:0] = self.notes
        raw.overhead_ms["start"] = self.start_ms
        raw.overhead_ms["stop"] = self.stop_ms
        return raw


def start_session(
    engine: str,
    mode: str,
    interval_ms: float,
    name: str,
    anchor_frame: FrameType | None = None,
    vmprof_names: str = "registry",
    follow: ViewInvocation | None = None,
    follow_why: str | None = None,
    switch_ms: float | None = None,
) -> SamplingSession:
    """Start sampling this request with the engine ``engine`` ('auto', 'vmprof', 'thread').

    The view runs in the calling thread (WSGI, sync view): vmprof is process-global;
    if another request holds it, this one falls back to the thread sampler (its
    own thread only), so nothing waits and nothing mixes.

    The view runs elsewhere (``follow_why``, a key of :data:`FOLLOW_REASONS`: ASGI,
    or an async view under WSGI): only the thread sampler with ``follow`` (this
    request's :class:`ViewInvocation`) keeps the request's own stacks; without
    ``follow`` (view not resolved) nothing is sampled, and the session says why.
    """
    t0 = time.perf_counter()
    refusal = gevent_refusal()
    if refusal is not None:  # neither sampler can see this request's greenlet
        return SamplingSession(
            EngineChoice("none", refusal), None, notes=[refusal], mode=mode, interval_ms=interval_ms
        )
    if follow_why is not None:
        if follow is None:  # the view to follow is unknown: never a mixed profile
            return SamplingSession(
                EngineChoice("none", FOLLOW_UNRESOLVED),
                None,
                mode=mode,
                interval_ms=interval_ms,
                not_sampled=FOLLOW_UNRESOLVED,
                followed=True,
            )
        why = FOLLOW_REASONS[follow_why]
        reason = why[0].upper() + why[1:]
        if engine == "thread":
            reason = f"ENGINE is 'thread' in settings; {why}"
        choice = EngineChoice("thread", reason)
    else:
        choice = choose_engine(engine)
        follow = None
    session = SamplingSession(
        choice, None, mode=mode, interval_ms=interval_ms, followed=follow is not None
    )
    if anchor_frame is not None and follow is None:
        code = anchor_frame.f_code
        session.anchor = (code.co_filename, code.co_firstlineno)
        depth = -1
        f: FrameType | None = anchor_frame
        while f is not None:
            depth += 1
            f = f.f_back
        session.anchor_depth = depth
    if choice.engine == "vmprof":
        sampler = VmprofSampler(interval_ms, mode, name, vmprof_names)
        try:
            sampler.start()
            session.sampler = sampler
        except ProfilerBusy as exc:
            session.busy = True
            session.choice = EngineChoice(
                "thread", f"{exc}: this request was sampled by the thread sampler instead"
            )
        except Exception as exc:  # e.g. the platform refuses the timer: fall back, say so
            session.choice = EngineChoice(
                "thread",
                f"vmprof failed to start ({type(exc).__name__}: {exc}); "
                "the thread sampler ran instead",
            )
    if session.sampler is None:
        thread = ThreadSampler(threading.get_ident(), interval_ms, mode, follow, switch_ms)
        thread.start()
        session.sampler = thread
    if follow is not None:
        session.notes.append(FOLLOW_NOTE)
    session.started = time.perf_counter()
    session.start_ms = (session.started - t0) * 1000.0
    return session
