"""The packages' imports are one-way: no cycles between modules, and dyndis_envs never imports dyndis_learn."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1] / "packages"
PACKAGES = {"dyndis_envs": ROOT / "dyndis-envs" / "src", "dyndis_learn": ROOT / "dyndis-learn" / "src"}


def _module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Every module's imports of DynDis modules, at any depth of the module (functions included)."""
    modules = {_module_name(path, src): path for src in PACKAGES.values() for path in src.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            found = []
            if isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            targets |= {f for f in found if f in modules}
        graph[name] = targets - {name}
    return graph


def test__dyndis_envs_never_imports_dyndis_learn():
    graph = _imports()
    offenders = {
        m: sorted(t)
        for m, t in graph.items()
        if m.startswith("dyndis_envs")
        for t in [{x for x in t if x.startswith("dyndis_learn")}]
        if t
    }
    assert offenders == {}


def test__no_import_cycles_between_modules():
    # A package's __init__ re-exports its modules, so edges into a package __init__ are left out.
    graph = {m: {t for t in targets if t not in PACKAGES} for m, targets in _imports().items()}
    graph = {m: t for m, t in graph.items() if m not in PACKAGES}
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                pytest.fail(f"import cycle: {' -> '.join([*path, module, target])}")
            if target not in state:
                visit(target, [*path, module])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
