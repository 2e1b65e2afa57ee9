"""The sampling engines: the vmprof safety rule, the thread sampler and (where safe) vmprof."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import pytest
from django.template import Context, Engine
from django.template.base import VariableNode

from debug_toolbar_perf.sampling import choice as engine_choice
from debug_toolbar_perf.sampling import follow as following
from debug_toolbar_perf.sampling import raw as raw_profile
from debug_toolbar_perf.sampling import session as sampling_session
from debug_toolbar_perf.sampling import thread as thread_engine
from debug_toolbar_perf.sampling import vmprof_engine


def burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        sum(range(100))


def heavy() -> None:
    burn(0.14)


def light() -> None:
    burn(0.06)


def sleeper() -> None:
    time.sleep(0.1)


def workload() -> None:
    heavy()
    light()


def share(raw: raw_profile.RawProfile, name: str) -> float:
    hit = sum(n for (frames, _), n in raw.stacks.items() if any(f[0] == name for f in frames))
    return hit / raw.samples


# --- which vmprof is safe ----------------------------------------------------------------


def test_verdict_table_rule():
    table = {
        (3, 10): {"0.6.0": True},
        (3, 11): {"0.6.0": False, "0.7.0": True},
        (3, 12): {"0.6.0": False},
    }
    assert engine_choice.vmprof_verdict((3, 10), "0.6.0", table)[0] == "safe"
    assert engine_choice.vmprof_verdict((3, 10), "0.6.2", table)[0] == "safe"  # newer than safe
    assert engine_choice.vmprof_verdict((3, 10), "0.5.0", table)[0] == "unverified"
    assert engine_choice.vmprof_verdict((3, 12), "0.6.0", table)[0] == "crashes"
    assert engine_choice.vmprof_verdict((3, 12), "0.6.1", table)[0] == "unverified"
    assert engine_choice.vmprof_verdict((3, 11), "0.7.0", table)[0] == "safe"  # listed as fixed
    assert engine_choice.vmprof_verdict((3, 11), "0.7.1", table)[0] == "safe"
    assert engine_choice.vmprof_verdict((3, 14), "0.6.0", table)[0] == "unverified"


def test_shipped_table_matches_field_notes():
    assert engine_choice.vmprof_verdict((3, 11), "0.6.0")[0] == "crashes"
    assert engine_choice.vmprof_verdict((3, 12), "0.6.0")[0] == "crashes"
    assert engine_choice.vmprof_verdict((3, 10), "0.6.0")[0] == "safe"
    # 3.13.0: a sample landing while a data-stack chunk is unmapped reads the freed frame
    assert engine_choice.vmprof_verdict((3, 13), "0.6.0")[0] == "crashes"


def test_choose_engine_never_starts_a_crashing_vmprof(monkeypatch):
    monkeypatch.setattr(engine_choice, "VMPROF_SAFETY", {sys.version_info[:2]: {"0.6.0": False}})
    monkeypatch.setattr(engine_choice, "installed_vmprof_version", lambda: "0.6.0")
    for setting in ("auto", "vmprof"):
        choice = engine_choice.choose_engine(setting)
        assert choice.engine == "thread"
        assert "crash" in choice.reason
    monkeypatch.setattr(engine_choice, "installed_vmprof_version", lambda: "9.0.0")
    assert engine_choice.choose_engine("auto").engine == "thread"  # unverified: not by default
    assert engine_choice.choose_engine("vmprof").engine == "vmprof"  # explicit opt-in
    monkeypatch.setattr(engine_choice, "installed_vmprof_version", lambda: None)
    choice = engine_choice.choose_engine("auto")  # it would crash here: installing is no fix
    assert choice.engine == "thread" and not choice.vmprof_missing
    assert engine_choice.VMPROF_EXTRA not in choice.reason
    monkeypatch.setattr(engine_choice, "VMPROF_SAFETY", {sys.version_info[:2]: {"0.6.0": True}})
    choice = engine_choice.choose_engine("auto")
    assert choice.engine == "thread" and choice.vmprof_missing
    assert engine_choice.VMPROF_EXTRA in choice.reason


# --- the thread sampler -------------------------------------------------------------------


def run_sampled(
    func, mode: str = "wall", interval_ms: float = 1.0, switch_ms: float | None = None
) -> raw_profile.RawProfile:
    s = thread_engine.ThreadSampler(threading.get_ident(), interval_ms, mode, switch_ms=switch_ms)
    s.start()
    try:
        func()
    finally:
        s.stop()
    return s.result()


@pytest.mark.parametrize("switch_ms", [None, 0.5])
def test_thread_sampler_known_split(switch_ms):
    raw = run_sampled(workload, switch_ms=switch_ms)
    assert raw.engine == "thread"
    # ~160/s with Python's 5 ms switch interval, ~500/s at 0.5 ms (quiet machine)
    assert raw.samples > (25 if switch_ms is None else 60), raw.samples
    assert abs(share(raw, "heavy") - 0.7) < 0.1
    assert abs(share(raw, "light") - 0.3) < 0.1
    leaf_lines = {line for (frames, line), _ in raw.stacks.items() if frames[-1][0] == "burn"}
    assert leaf_lines  # the executing line is recorded


def mine() -> None:
    burn(0.2)


def theirs() -> None:
    burn(0.3)


def test_thread_sampler_only_sees_its_thread():
    other = threading.Thread(target=theirs)
    other.start()
    raw = run_sampled(mine)
    other.join()
    names = {f[0] for (frames, _), _ in raw.stacks.items() for f in frames}
    assert "mine" in names
    assert "theirs" not in names


def test_wall_mode_sees_sleep_cpu_mode_does_not():
    def mixed():
        sleeper()
        heavy()

    wall = run_sampled(mixed, "wall")
    cpu = run_sampled(mixed, "cpu")
    assert share(wall, "sleeper") > 0.25
    assert share(cpu, "sleeper") < 0.1
    assert any("CPU mode" in note for note in cpu.notes)


def _sampler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == thread_engine.SAMPLER_THREAD_NAME]


def test_switch_interval_left_alone_by_default():
    before = sys.getswitchinterval()
    s = thread_engine.ThreadSampler(threading.get_ident(), 1.0, "wall")
    s.start()
    assert sys.getswitchinterval() == before
    assert len(_sampler_threads()) == 1
    s.stop()
    s.stop()  # idempotent
    assert thread_engine.HUB.sessions == []  # never sampled again (the thread parks)
    assert s.result().switch_ms is None


def test_switch_interval_lowered_on_request_and_restored():
    before = sys.getswitchinterval()
    first = thread_engine.ThreadSampler(threading.get_ident(), 1.0, "wall", switch_ms=0.5)
    second = thread_engine.ThreadSampler(threading.get_ident(), 1.0, "wall", switch_ms=2.0)
    first.start()
    assert sys.getswitchinterval() == pytest.approx(0.0005)
    second.start()
    assert sys.getswitchinterval() == pytest.approx(0.0005)  # the lowest wins
    first.stop()
    assert sys.getswitchinterval() < before  # still one user
    second.stop()
    assert sys.getswitchinterval() == before
    assert first.result().switch_ms == pytest.approx(0.5)


def test_parked_sampler_thread_is_reused_then_exits(monkeypatch):
    """start() does not pay for a thread start while the sampler thread is parked; parked
    for LINGER_S, it exits; the next session starts a new one."""
    thread_engine.HUB.shutdown()
    assert _sampler_threads() == []
    started = thread_engine.HUB.started_threads
    for _ in range(3):
        raw = run_sampled(heavy)
        assert raw.samples > 10
        assert len(_sampler_threads()) == 1
    assert thread_engine.HUB.started_threads == started + 1  # one thread for three sessions
    monkeypatch.setattr(thread_engine._Hub, "LINGER_S", 0.05)
    run_sampled(light)  # the thread now parks with the short linger
    deadline = time.monotonic() + 5
    while _sampler_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _sampler_threads() == []
    assert thread_engine.HUB.thread is None
    raw = run_sampled(light)
    assert raw.samples > 5
    assert thread_engine.HUB.started_threads == started + 2


def test_first_tick_is_one_interval_after_the_start():
    """Woken from parked (or for a shorter interval), the sampler thread does not sample at
    once: a tick stands for the interval before it, so a 200 ms wait at a 60 s interval has
    no sample (it got one, counted as 60 s: a 1 ms page showed 1 sample, not "No samples")."""
    run_sampled(light)  # the sampler thread now exists and parks
    assert len(_sampler_threads()) == 1 and thread_engine.HUB.sessions == []
    assert run_sampled(lambda: time.sleep(0.2), interval_ms=60_000).samples == 0
    # A session at 60 s is running; one at 30 s joins it: neither is sampled at once.
    slow = thread_engine.ThreadSampler(threading.get_ident(), 60_000, "wall")
    slow.start()
    try:
        assert run_sampled(lambda: time.sleep(0.2), interval_ms=30_000).samples == 0
    finally:
        slow.stop()
    assert slow.result().samples == 0
    # And the schedule is not left 30 s ahead: the next session at 1 ms is sampled.
    assert run_sampled(heavy).samples > 10


def test_concurrent_sessions_share_one_sampler_thread():
    """Two requests at once: one sampler thread, each session sees only its own thread."""
    started = thread_engine.HUB.started_threads
    ready = threading.Barrier(2)
    raws: dict[str, raw_profile.RawProfile] = {}

    def request(name: str, func) -> None:
        s = thread_engine.ThreadSampler(threading.get_ident(), 1.0, "wall")
        ready.wait()
        s.start()
        try:
            func()
        finally:
            s.stop()
        raws[name] = s.result()

    other = threading.Thread(target=request, args=("theirs", theirs))
    other.start()
    request("mine", mine)
    other.join()
    assert thread_engine.HUB.started_threads - started <= 1  # both on one thread
    for own, foreign in (("mine", "theirs"), ("theirs", "mine")):
        names = {f[0] for (frames, _), _ in raws[own].stacks.items() for f in frames}
        assert own in names and foreign not in names
        assert raws[own].samples >= 5  # two busy threads and the sampler share the GIL
    assert thread_engine.HUB.sessions == []


def shared_generator():
    while True:
        burn(0.002)
        yield


def caller_a(gen) -> None:
    next(gen)


def caller_b(gen) -> None:
    next(gen)


def test_generator_resumed_by_other_callers_is_not_taken_as_shared():
    """The stack is walked only down to a frame already there at the previous tick; a
    generator's frame is never that frame, since another caller may resume it."""

    def alternate() -> None:
        gen = shared_generator()
        for _ in range(60):
            caller_a(gen)
            caller_b(gen)

    raw = run_sampled(alternate, switch_ms=0.5)
    below = {"caller_a": 0, "caller_b": 0}
    for (frames, _), n in raw.stacks.items():
        names = [f[0] for f in frames]
        if "shared_generator" in names:
            below[names[names.index("shared_generator") - 1]] += n
    total = sum(below.values())
    assert total > 20, below
    # each caller resumes it half the time; a stale shared prefix gives one caller ~all
    assert below["caller_a"] > 0.2 * total and below["caller_b"] > 0.2 * total, below


def test_stacks_are_interned_by_code_identity():
    """Samples of the same stack land on one key; keys name functions root-first."""
    raw = run_sampled(heavy)
    burn_stacks = [frames for (frames, _), _ in raw.stacks.items() if frames[-1][0] == "burn"]
    assert burn_stacks
    assert len({frames for frames in burn_stacks}) == 1  # one call path, one key
    names = [f[0] for f in burn_stacks[0]]
    assert names[-3:] == ["run_sampled", "heavy", "burn"]


class WatchedVariableNode(VariableNode):
    """A real ``{{ }}`` node that notes which thread reads its token (the sampler names
    the frame of the node being rendered from it)."""

    readers: set[str] = set()

    @property  # a data descriptor: wins over the token the parser set on the instance
    def token(self) -> Any:
        type(self).readers.add(threading.current_thread().name)
        return self.__dict__["token"]


def watched_template() -> Any:
    """A template whose ``{{ slow }}`` node is watched, and no reader noted yet."""
    template = Engine(debug=True).from_string("<p>\n{% for i in items %}\n{{ slow }}\n{% endfor %}")
    (node,) = template.nodelist.get_nodes_by_type(VariableNode)
    node.__class__ = WatchedVariableNode
    WatchedVariableNode.readers = set()
    return template


def test_template_nodes_named_without_reading_locals_in_the_sampler_thread():
    """A template node being rendered is named ``<template>:line {{ expr }}``; its frame's
    locals are read after the request, never by the sampler thread while the frame runs
    (reading another thread's running frame's locals: the suspect of a 3.13.0 segfault)."""
    template = watched_template()
    raw = run_sampled(lambda: render_view(None, template), switch_ms=0.5)
    check_template_named(raw)
    assert WatchedVariableNode.readers == {threading.current_thread().name}


def test_text_nodes_fold_into_the_template_node_around_them():
    """Django's ``TextNode`` has its own ``render_annotated`` (it skips the exception
    annotation): a sample there is the enclosing node's, not a "TextNode.render_annotated"
    frame (seen in CI: one in the flame graph of the admin-like book list)."""
    template = Engine(debug=True).from_string("{% for i in items %}a{{ i }}b{% endfor %}")
    raw = run_sampled(lambda: template.render(Context({"items": range(400_000)})), switch_ms=0.2)
    names = {f[0] for (frames, _), _ in raw.stacks.items() for f in frames}
    assert "<unknown source>:1 {% for i in items %}" in names, sorted(names)
    assert not any(name.endswith("render_annotated") for name in names), sorted(names)


def render_view(request: object, template: Any) -> None:
    """A view (followed by its code, as under ASGI) rendering ``template``."""
    template.render(Context({"items": range(3), "slow": lambda: burn(0.06) or ""}))


@pytest.mark.skipif(sys.version_info[:2] == (3, 11), reason="following is refused on 3.11")
def test_template_nodes_of_a_followed_view_are_named_after_the_request():
    """Following a view in another thread (ASGI): the same names, read once it returned."""
    template = watched_template()
    request = object()
    follow = following.ViewInvocation(request, (render_view.__code__,))
    s = thread_engine.ThreadSampler(threading.get_ident(), 1.0, "wall", follow, switch_ms=0.5)
    view = threading.Thread(target=render_view, args=(request, template), name="view-thread")
    s.start()
    try:
        view.start()
        view.join()
    finally:
        s.stop()
    raw = s.result()
    assert raw.threads == 1
    check_template_named(raw)
    assert WatchedVariableNode.readers == {threading.current_thread().name}


def check_template_named(raw: raw_profile.RawProfile) -> None:
    names = {f[0]: f for (frames, _), _ in raw.stacks.items() for f in frames}
    label = "<unknown source>:3 {{ slow }}"
    assert label in names, sorted(names)
    assert names[label][1:] == ("<unknown source>", 3)
    assert "<unknown source>:2 {% for i in items %}" in names
    assert not any(name.endswith("render_annotated") for name in names)
    below = [frames for (frames, _), _ in raw.stacks.items() if frames[-1][0] == "burn"]
    assert below and all(label in [f[0] for f in frames] for frames in below)


# --- vmprof (only where the table says it is safe) -----------------------------------------

vmprof_safe = (
    engine_choice.installed_vmprof_version() is not None
    and engine_choice.vmprof_verdict(
        sys.version_info[:2], engine_choice.installed_vmprof_version() or ""
    )[0]
    == "safe"
)
needs_safe_vmprof = pytest.mark.skipif(
    not vmprof_safe, reason="vmprof is not known to be safe on this interpreter (never started)"
)


@needs_safe_vmprof
@pytest.mark.parametrize("mode", ["wall", "cpu"])
def test_vmprof_known_split_and_thread_filter(mode):
    s = vmprof_engine.VmprofSampler(1.0, mode, f"test-{mode}")
    other = threading.Thread(target=theirs)
    other.start()
    s.start()
    try:
        t0 = time.perf_counter()
        heavy()
        t1 = time.perf_counter()
        light()
        t2 = time.perf_counter()
    finally:
        s.stop()
        other.join()
    raw = s.result()
    assert raw.engine == "vmprof"
    assert raw.samples > (100 if mode == "wall" else 30), raw.samples
    # CPU time splits 0.14 / 0.06; wall time as the GIL was shared with ``theirs`` that run.
    expected = 0.7 if mode == "cpu" else (t1 - t0) / (t2 - t0)
    assert abs(share(raw, "heavy") - expected) < 0.1, (share(raw, "heavy"), expected)
    names = {f[0] for (frames, _), _ in raw.stacks.items() for f in frames}
    assert "theirs" not in names  # the other thread's samples were filtered out
    assert raw.overhead_ms["disable"] > 0
    assert vmprof_engine.raw_path(raw.raw_file or "") is not None


@needs_safe_vmprof
def test_vmprof_busy_falls_back_to_thread_sampler():
    first = sampling_session.start_session("auto", "wall", 1.0, "busy-first")
    assert first.choice.engine == "vmprof"
    try:
        second = sampling_session.start_session("auto", "wall", 1.0, "busy-second")
        try:
            assert second.busy
            assert second.choice.engine == "thread"
            assert isinstance(second.sampler, thread_engine.ThreadSampler)
        finally:
            second.stop()
    finally:
        first.stop()
    third = sampling_session.start_session("auto", "wall", 1.0, "busy-third")
    third.stop()
    assert third.choice.engine == "vmprof" and not third.busy


def test_raw_path_rejects_traversal():
    assert vmprof_engine.raw_path("../etc/passwd") is None
    assert vmprof_engine.raw_path("x/../../y.vmprof") is None
    assert vmprof_engine.raw_path("missing-file.vmprof") is None


# --- naming vmprof's code addresses without vmprof's heap walk ---------------------------


def _vmprof_names_in_file(raw: raw_profile.RawProfile) -> dict[int, str]:
    from vmprof.reader import _read_prof

    with open(vmprof_engine.raw_path(raw.raw_file or "") or "", "rb") as fh:
        return dict(_read_prof(fh).virtual_ips)


@needs_safe_vmprof
@pytest.mark.parametrize("names", ["registry", "heap"])
def test_vmprof_code_names_registry_vs_heap_walk(names):
    """'registry' names every frame although vmprof wrote no names (no heap walk ran);
    'heap' is vmprof's own disable(), which writes a name per sampled code object."""
    s = vmprof_engine.VmprofSampler(1.0, "wall", f"names-{names}", names)
    s.start()
    try:
        workload()
    finally:
        s.stop()
    raw = s.result()
    assert abs(share(raw, "heavy") - 0.7) < 0.1
    frames = {f for (fs, _), _ in raw.stacks.items() for f in fs}
    assert ("<unknown>", "", 0) not in frames
    assert ("heavy", __file__, heavy.__code__.co_firstlineno) in frames
    written = _vmprof_names_in_file(raw)
    if names == "registry":
        assert id(heavy.__code__) not in written  # named by us, not by vmprof's heap walk
    else:
        assert id(heavy.__code__) in written


@needs_safe_vmprof
def test_vmprof_registry_names_code_freed_while_sampling():
    # exec() code reachable from no module: freed before stop(), so vmprof's dealloc hook
    # names it in the file; the registry must not be needed (and must not mis-name it).
    namespace: dict = {}
    exec(
        "def transient(n):\n    t = 0\n    for i in range(n):\n        t += i * i\n    return t\n",
        namespace,
    )
    s = vmprof_engine.VmprofSampler(1.0, "wall", "names-freed", "registry")
    s.start()
    try:
        namespace["transient"](400_000)
        namespace.clear()  # the function and its code die while vmprof runs
    finally:
        s.stop()
    raw = s.result()
    names = {f[0] for (fs, _), _ in raw.stacks.items() for f in fs}
    assert "transient" in names


def test_registry_is_weak_and_walks_modules():
    registry = vmprof_engine.CodeRegistry()
    code = compile("def gone():\n    return 1\n", "<gone>", "exec")
    inner = next(c for c in code.co_consts if isinstance(c, type(code)))
    registry.add(code)
    assert registry._codes.get(id(inner)) is inner  # nested code found through co_consts
    address = id(inner)
    del code, inner
    import gc

    gc.collect()
    assert registry._codes.get(address) is None  # dead code is never named by address

    from django.template.engine import Engine
    from django.utils import translation

    wanted = {
        id(Engine.template_loaders.func.__code__),  # functools.cached_property
        id(type(translation._trans).__getattr__.__code__),  # class reachable via an instance
        id(vmprof_engine.CodeRegistry.resolve.__code__),
    }
    found, walk_ms, left = registry.resolve(set(wanted))
    assert not left and set(found) == wanted
    assert registry.walks == {"modules": 1, "heap": 0}
    assert walk_ms > 0


def test_registry_walk_skips_types_without_a_namespace():
    """C types whose __dict__ mapping is None (seen with _testcapi) must not stop the walk."""
    testcapi = pytest.importorskip("_testcapi")
    registry = vmprof_engine.CodeRegistry()
    registry._visit(list(vars(testcapi).values()), set())  # raised AttributeError before
    registry._visit([vmprof_engine.CodeRegistry], set())
    assert id(vmprof_engine.CodeRegistry.resolve.__code__) in registry._codes


def test_a_followed_view_is_sampled_on_every_interpreter() -> None:
    """3.11 included: other threads' stacks are read with the collector off (stacks.py)."""
    request = object()
    follow = following.ViewInvocation(request, (test_gevent_patched_threads_are_refused.__code__,))
    session = sampling_session.start_session(
        "auto", "wall", 1.0, "follow", follow=follow, follow_why="asgi"
    )
    try:
        assert isinstance(session.sampler, thread_engine.ThreadSampler)
        assert session.followed and session.sampler.follow is follow
    finally:
        session.stop()


@pytest.mark.parametrize("engine", ["auto", "thread", "vmprof"])
def test_gevent_patched_threads_are_refused(monkeypatch: pytest.MonkeyPatch, engine: str) -> None:
    """A gevent-patched worker: no sampler starts and the session says why."""
    import types

    monkey = types.ModuleType("gevent.monkey")
    monkey.is_module_patched = lambda name: name == "threading"
    monkeypatch.setitem(sys.modules, "gevent.monkey", monkey)
    before = _sampler_threads()
    session = sampling_session.start_session(engine, "wall", 1.0, "gevent-refused")
    assert session.sampler is None
    assert session.notes == [engine_choice.GEVENT_REFUSAL]
    assert "gevent" in session.choice.reason and "gthread" in session.choice.reason
    assert _sampler_threads() == before
    session.stop()  # harmless
    assert session.result() is None


def test_gevent_imported_but_not_patched_still_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    monkey = types.ModuleType("gevent.monkey")
    monkey.is_module_patched = lambda name: False
    monkeypatch.setitem(sys.modules, "gevent.monkey", monkey)
    assert engine_choice.gevent_refusal() is None
    session = sampling_session.start_session("thread", "wall", 1.0, "gevent-unpatched")
    try:
        assert isinstance(session.sampler, thread_engine.ThreadSampler)
    finally:
        session.stop()


def test_gevent_detection_with_the_real_gevent() -> None:
    """In a fresh process: only gevent's own patching triggers the refusal."""
    import subprocess

    pytest.importorskip("gevent")
    code = (
        "import sys\n"
        "from debug_toolbar_perf.sampling import choice as engine_choice\n"
        "assert engine_choice.gevent_refusal() is None and 'gevent' not in sys.modules\n"
        "import gevent.monkey\n"
        "assert engine_choice.gevent_refusal() is None\n"
        "gevent.monkey.patch_all()\n"
        "print(engine_choice.gevent_refusal())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == engine_choice.GEVENT_REFUSAL
