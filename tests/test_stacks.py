"""Other threads' stacks (:mod:`debug_toolbar_perf.stacks`): what they hold, and that
reading them under load never crashes the process (CPython 3.11, see ``_stacks.c``)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from debug_toolbar_perf import stacks
from debug_toolbar_perf.stacks import _py_stacks, thread_stacks

ROOT = Path(__file__).resolve().parent.parent

#: A thread recursing up and down (its data stack grows and frees chunks) while the main
#: thread reads its stack, and a gc callback that lets the GIL go mid-collection.
STRESS = textwrap.dedent(
    """
    import gc, sys, threading, time

    how, seconds = sys.argv[1], float(sys.argv[2])
    stop = False
    gc.callbacks.append(lambda phase, info: time.sleep(0))
    gc.set_threshold(50, 5, 5)

    def rec(n):
        if n == 0:
            return len([[] for _ in range(30)])
        return rec(n - 1) + 1

    def worker():
        while not stop:
            for depth in range(1, 400, 7):
                rec(depth)

    t = threading.Thread(target=worker, daemon=True)
    t.start()
    sys.setswitchinterval(0.0001)
    from debug_toolbar_perf.stacks import _py_stacks, thread_stacks
    read = {"c": thread_stacks, "python": _py_stacks}.get(how)
    held = []
    deadline = time.perf_counter() + seconds
    reads = 0
    while time.perf_counter() < deadline:
        if read is None:  # the plain walk
            f = sys._current_frames().get(t.ident)
            chain = []
            while f is not None:
                chain.append(f)
                f = f.f_back
        else:
            chain = read((t.ident,)).get(t.ident, [])
        codes = [f.f_code for f in chain]
        held = chain  # held until the next read, as the sampler holds its previous stack
        reads += 1
    stop = True
    print(reads)
    """
)


def stress(how: str, seconds: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", STRESS, how, str(seconds)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="the crash is CPython 3.11's")
def test_the_plain_walk_crashes_3_11_under_this_load() -> None:
    """The harness reproduces the crash: without it the two tests below prove nothing."""
    crashed = sum(stress("plain", 5).returncode == -11 for _ in range(3))
    assert crashed == 3


@pytest.mark.parametrize("how", ["c", "python"])
def test_reading_stacks_under_the_same_load_never_crashes(how: str) -> None:
    done = stress(how, 4)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout) > 1000  # it did read, many times


def test_the_c_reader_is_built_here() -> None:
    """A failed build would silently fall back to the slower Python walk."""
    assert stacks.engine() == "c"


@pytest.mark.parametrize("read", [thread_stacks, _py_stacks], ids=["c", "python"])
def test_a_stack_is_the_threads_frames_innermost_first(read) -> None:  # type: ignore[no-untyped-def]
    inside = threading.Event()
    leave = threading.Event()

    def innermost() -> None:
        inside.set()
        leave.wait(10)

    def outer() -> None:
        innermost()

    t = threading.Thread(target=outer)
    t.start()
    try:
        assert inside.wait(10)
        got = read((t.ident,))
        assert set(got) == {t.ident}
        names = [f.f_code.co_name for f in got[t.ident]]
        assert names[names.index("innermost") + 1] == "outer"
        walked = []
        f = sys._current_frames()[t.ident]
        while f is not None:
            walked.append(f)
            f = f.f_back
        assert got[t.ident] == walked
        everyone = read(None)
        assert {t.ident, threading.get_ident()} <= set(everyone)
    finally:
        leave.set()
        t.join()


@pytest.mark.parametrize("read", [thread_stacks, _py_stacks], ids=["c", "python"])
def test_the_collector_is_left_as_it_was(read) -> None:  # type: ignore[no-untyped-def]
    import gc

    assert gc.isenabled()
    read(None)
    assert gc.isenabled()
    gc.disable()
    try:
        read(None)
        assert not gc.isenabled()
    finally:
        gc.enable()
