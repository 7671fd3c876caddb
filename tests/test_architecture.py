"""The house rules that code review alone would let slip: layers import only downward, and the
wire types stay importable without the server's dependencies."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "judge"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The package's modules this file imports, at the top or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found |= {name for name in names if name in modules}
    return found


def import_graph() -> dict[str, set[str]]:
    paths = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    modules = set(paths)
    return {name: _imports(path, modules) - {name} for name, path in paths.items()}


def test_no_two_modules_import_each_other() -> None:
    graph = import_graph()
    mutual = sorted(
        (a, b) for a, targets in graph.items() for b in targets if a < b and a in graph.get(b, ())
    )
    assert mutual == []


def test_the_import_graph_has_no_cycles() -> None:
    graph = import_graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_wire_types_import_neither_fastapi_nor_redis() -> None:
    code = (
        "import sys, judge.wire; "
        "print(sorted(m for m in ('fastapi', 'redis', 'saq', 'starlette') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_readme_architecture_table_names_every_module() -> None:
    """Each top-level module has a row (``judge/x.py``), and each module of a subpackage is
    named in its package's row, so the table stays true as rooms are added."""
    readme = (PACKAGE.parent / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| `judge/")]
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent)
        if path.name in ("__init__.py", "__main__.py") or "__pycache__" in relative.parts:
            continue
        if len(relative.parts) == 2:
            if not any(f"`{relative.as_posix()}`" in row for row in rows):
                missing.append(relative.as_posix())
            continue
        package = "/".join(relative.parts[:2]) + "/"
        row = next((row for row in rows if f"`{package}" in row), None)
        if row is None or path.stem not in row:
            missing.append(relative.as_posix())
    assert not missing, f"not in the README's architecture table: {missing}"
