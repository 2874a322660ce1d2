"""The intra-package import graph of ``src/pyvene`` has no cycle.

Edges come from the AST: every module-level import of a pyvene module (``TYPE_CHECKING``
blocks excluded: they never run), and every function-level import of a pyvene module.
``if __name__ == "__main__":`` blocks are excluded too: they run only when the file is
executed as a script (``python -m pyvene.zoo``), where the module is ``__main__`` and not the
package module the graph is about, so importing the package module never runs them.
A function-level import must be listed in ``LAZY_IMPORTS`` with the reason it is lazy (start-up
time: the target pulls in matplotlib / transformers model classes, or loads a command's
code only when that command runs); a lazy import is never a way around a cycle, so listed
edges still count in the graph. ``KNOWN_CYCLES`` (empty) would list edges that still close a
cycle, left out of the graph until removed (a listed edge that no longer exists fails the
test, so the list only shrinks).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src" / "pyvene"

_PLOTS = "start-up: the plots module imports matplotlib; loaded when a plot is drawn"
_COMMAND = "start-up: `pyvene --help` must not load torch; a command's code loads when it runs"
_OUTPUTS = "start-up: outputs.py imports transformers (ModelOutput); loaded on first use"
_MOVABLE = "no cycle and no start-up cost: can move to module level (owner's file, issue #14)"


def _lazy(importer: str, targets: str, reason: str) -> dict[tuple[str, str], str]:
    return {(f"pyvene.{importer}", f"pyvene.{t}"): reason for t in targets.split()}


# (importing module, imported module) -> why the import is inside a function. The call
# pipeline (intervenable, calls, generation, pipeline, plan, serialization, trainable_io,
# legacy, config, activation_cache) has none.
LAZY_IMPORTS: dict[tuple[str, str], str] = {
    **_lazy("analysis.attribution", "analysis.attribution_plots", _PLOTS),
    **_lazy(
        "cli",
        "cli_dataset cli_attribute families analysis.plots analysis.patching "
        "analysis.tracing analysis.metrics",
        _COMMAND,
    ),
    **_lazy("cli_common", "zoo analysis.plots analysis.tracing", _COMMAND),
    **_lazy("fetch", "zoo", _COMMAND),
    **_lazy(
        "cli_attribute",
        "families analysis.attribution analysis.attribution_plots analysis.metrics "
        "analysis.patching",
        _COMMAND,
    ),
    **_lazy(
        "cli_dataset",
        "families analysis.distributed analysis.dataset_trace analysis.dataset_patch "
        "analysis.patching analysis.store analysis.tracing analysis.plots",
        _COMMAND,
    ),
    **_lazy("cli_attribute", "cli_common", _MOVABLE),
    **_lazy("interventions", "outputs", _OUTPUTS),
    **_lazy("interventions.base", "outputs", _OUTPUTS),
}

# Edges that close an import cycle, left out of the graph until removed. Empty since issue #14
# (every cycle was removed by restructuring); a new cycle is fixed, not listed here.
KNOWN_CYCLES: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _target(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imported_names(node: ast.AST, module: str, is_package: bool, modules: set[str]) -> list[str]:
    """The pyvene names one import statement brings in (``from . import zoo``: pyvene.zoo)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.startswith("pyvene")]
    target = _target(module, is_package, node)
    if not target.startswith("pyvene"):
        return []
    full = [f"{target}.{alias.name}" for alias in node.names]
    return [name if name in modules else target for name in full]


def is_main_guard(node: ast.AST) -> bool:
    """``if __name__ == "__main__":`` (either operand order)."""
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    test = node.test
    sides = [test.left, *test.comparators]
    names = [s.id for s in sides if isinstance(s, ast.Name)]
    consts = [s.value for s in sides if isinstance(s, ast.Constant)]
    return (
        len(test.ops) == 1
        and isinstance(test.ops[0], ast.Eq)
        and names == ["__name__"]
        and (consts == ["__main__"])
    )


def imports(path: Path, modules: set[str]) -> list[tuple[str, bool, int]]:
    """(imported pyvene module, inside a function?, line) for every import in ``path``."""
    module = module_name(path)
    is_package = path.name == "__init__.py"
    out: list[tuple[str, bool, int]] = []

    def add(name: str, in_function: bool, line: int) -> None:
        while name and name not in modules:  # "pyvene.x.Name" -> "pyvene.x"
            name = name.rpartition(".")[0]
        if name and name != module:
            out.append((name, in_function, line))

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, True)
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for sub in child.orelse:
                    visit(sub, in_function)
            elif is_main_guard(child):  # script-only code (see the module docstring)
                continue
            elif isinstance(child, (ast.Import, ast.ImportFrom)):
                for name in imported_names(child, module, is_package, modules):
                    add(name, in_function, child.lineno)
            else:
                visit(child, in_function)

    visit(ast.parse(path.read_text()), False)
    return out


def build_graph() -> tuple[dict[str, set[str]], list[str]]:
    """module -> imported modules, and the function-level imports not in LAZY_IMPORTS."""
    paths = {module_name(p): p for p in ROOT.rglob("*.py")}
    modules = set(paths)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    unlisted = []
    for module, path in sorted(paths.items()):
        for target, in_function, line in imports(path, modules):
            edge = (module, target)
            if in_function and edge not in LAZY_IMPORTS and edge not in KNOWN_CYCLES:
                unlisted.append(f"{module}:{line} imports {target} inside a function")
            if edge not in KNOWN_CYCLES:
                graph[module].add(target)
    return graph, unlisted


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (iterative DFS, sorted for a stable answer)."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    for start in sorted(graph):
        if state.get(start):
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                state[node] = 2
            elif state.get(child) == 1:
                return path[path.index(child) :] + [child]
            elif not state.get(child):
                state[child] = 1
                path.append(child)
                stack.append((child, iter(sorted(graph.get(child, ())))))
    return None


def test_no_import_cycle():
    graph, _ = build_graph()
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_function_level_imports_are_listed_with_a_reason():
    _, unlisted = build_graph()
    assert not unlisted, "lazy pyvene imports not in LAZY_IMPORTS:\n" + "\n".join(unlisted)
    assert all(reason.strip() for reason in LAZY_IMPORTS.values())


def test_known_cycle_edges_still_exist():
    """An allowlisted edge that was removed must leave the list (the lists only shrink)."""
    paths = {module_name(p): p for p in ROOT.rglob("*.py")}
    edges = {(m, t) for m, p in paths.items() for t, _, _ in imports(p, set(paths))}
    stale = sorted((KNOWN_CYCLES | set(LAZY_IMPORTS)) - edges)
    assert not stale, f"no longer imported, remove from the allowlists: {stale}"


def test_only_main_guards_are_skipped():
    def first(code: str) -> ast.AST:
        return ast.parse(code).body[0]

    assert is_main_guard(first('if __name__ == "__main__":\n    pass'))
    assert is_main_guard(first('if "__main__" == __name__:\n    pass'))
    assert not is_main_guard(first('if __name__ != "__main__":\n    pass'))
    assert not is_main_guard(first('if __name__ == "pyvene.zoo":\n    pass'))
    assert not is_main_guard(first("if DEBUG:\n    pass"))


def test_the_checker_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
