"""The package's layout rules (docs/architecture.md), checked on its import graph.

* a feature folder (sampling/, line_memory/, instances/, explain/) never imports another;
* the shared plumbing at the package root imports no feature;
* no import circle among module-level imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "debug_toolbar_perf"
FEATURES = ("sampling", "line_memory", "instances", "explain")
PLUMBING = (
    "admin_fix",
    "availability",
    "base",
    "baseline",
    "checks",
    "conf",
    "context",
    "endpoints",
    "records",
    "scope",
    "stacks",
    "store",
    "text",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, *, top_level_only: bool) -> set[str]:
    """Modules of this package that ``path`` imports (absolute names)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.If):  # ``if TYPE_CHECKING:`` imports are for the checker
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.startswith("debug_toolbar_perf"):
                found.add(target)
                found.update(f"{target}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("debug_toolbar_perf"))
    return found


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def feature_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in FEATURES else None


def test_features_never_import_each_other() -> None:
    for name, path in modules().items():
        mine = feature_of(name)
        if mine is None:
            continue
        others = {feature_of(t) for t in imports(path, top_level_only=False)} - {None, mine}
        assert not others, f"{name} imports the feature(s) {sorted(others)}"  # type: ignore[type-var]


def test_plumbing_imports_no_feature() -> None:
    for name, path in modules().items():
        if name.split(".")[-1] not in PLUMBING or name.count(".") != 1:
            continue
        features = {feature_of(t) for t in imports(path, top_level_only=False)} - {None}
        assert not features, f"{name} imports the feature(s) {sorted(features)}"  # type: ignore[type-var]


def test_no_import_circle() -> None:
    known = modules()
    graph = {
        name: {t for t in imports(path, top_level_only=True) if t in known and t != name}
        for name, path in known.items()
    }
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycle = [*trail[trail.index(nxt) :], nxt] if nxt in trail else [node, nxt]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [name])


def test_the_store_is_read_in_one_module() -> None:
    """``store.py`` is the only reader of the toolbar's store (issue 15: it was read in five)."""
    readers = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "store.py" or path.parent != PACKAGE
        for text in [path.read_text()]
        if "get_store(" in text or "DebugToolbar.fetch(" in text or ".fetch(request_id" in text
    )
    assert readers == []
