"""The layering is a contract: import-linter checks who may import whom (pyproject.toml's
[tool.importlinter]), and the package has no import cycle, imports inside functions included."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp
import tomllib

REPO = Path(__file__).resolve().parents[1]


def _contracts() -> list[dict]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def _modules() -> set[str]:
    """Every module of segkit, as `segkit.x` / `segkit.x.y` (a package's __init__ is the package)."""
    out = set()
    for f in (REPO / "segkit").rglob("*.py"):
        parts = list(f.relative_to(REPO).with_suffix("").parts)
        out.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out


def test_import_contracts_are_kept():
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert f"Contracts: {len(_contracts())} kept, 0 broken" in done.stdout, done.stdout[-2000:]


def test_no_import_cycles_counting_imports_inside_functions():
    graph = grimp.build_graph("segkit", cache_dir=None)  # every import statement, wherever it is
    edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            if component:
                cycles.append(sorted([v, *component]))

    sys.setrecursionlimit(10_000)
    for module in sorted(edges):
        if module not in index:
            visit(module)
    assert cycles == [], f"import cycles: {cycles}"
    assert len(graph.modules) == len(_modules())  # the graph saw the whole package


def test_every_module_has_a_place_in_the_layers():
    layers = next(c for c in _contracts() if c["type"] == "layers")["layers"]
    placed = {name.strip() for layer in layers for name in layer.split("|")}
    unplaced = sorted(
        m
        for m in _modules() - {"segkit"}
        if not any(m == p or m.startswith(p + ".") for p in placed) and not any(p.startswith(m + ".") for p in placed)
    )
    assert unplaced == [], f"add these modules to a layer in pyproject.toml and to docs/architecture.md: {unplaced}"


def test_docs_architecture_names_every_top_level_module():
    text = (REPO / "docs" / "architecture.md").read_text()
    top = sorted({m.split(".")[1] for m in _modules() if m.count(".") >= 1} - {"__main__"})
    missing = [name for name in top if f"`{name}" not in text]
    assert missing == [], f"docs/architecture.md does not describe: {missing}"
