"""The import graph of ``lowrankdp`` has no cycle, and no module imports another module's private name.

Rule for cycles: an edge ``a → b`` is any ``import`` of lowrankdp module ``b`` written in module ``a`` — at module
level *or inside a function* (a deferred import that closes a cycle only hides the knot; it still means neither
module can be understood, tested or moved without the other). Imports under ``if TYPE_CHECKING:`` are not edges
(they never run). ``from pkg import name`` is an edge to ``pkg.name`` when that is a module, else to ``pkg``
(its ``__init__``). The graph is built from the source (``ast``), nothing is imported; the test reports every
strongly connected component with the lines that make its edges.

Rule for private names: ``from lowrankdp.x import _name`` (or ``from .x import _name``) and ``x._name`` on an
imported lowrankdp module are offences when ``_name`` is not itself a module; private *modules* such as
``lowrankdp._validate`` are the package's shared internals and may be imported anywhere in it.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "lowrankdp"


def module_files(root: Path = ROOT) -> dict[str, Path]:
    out = {}
    for p in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(p.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _resolve(module: str, node: ast.ImportFrom | ast.Import, mods: dict[str, Path]) -> list[tuple[str, str | None]]:
    """(target module, imported name or None) for each lowrankdp module ``node`` imports."""
    out: list[tuple[str, str | None]] = []
    if isinstance(node, ast.Import):
        return [(a.name, None) for a in node.names if a.name in mods]
    if node.level:
        base = module.split(".") if mods[module].name == "__init__.py" else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        src = ".".join(base + ([node.module] if node.module else []))
    else:
        src = node.module or ""
    if src not in mods:
        return []
    for a in node.names:
        sub = f"{src}.{a.name}"
        out.append((sub, None) if sub in mods else (src, a.name))
    return out


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def import_edges(mods: dict[str, Path]) -> dict[str, dict[str, list[int]]]:
    """``edges[a][b]`` = line numbers in ``a`` that import ``b``."""
    edges: dict[str, dict[str, list[int]]] = {m: defaultdict(list) for m in mods}

    def visit(module: str, node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                for other in child.orelse:
                    visit(module, other)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                for target, _name in _resolve(module, child, mods):
                    if target != module:
                        edges[module][target].append(child.lineno)
            visit(module, child)

    for m, p in mods.items():
        visit(m, ast.parse(p.read_text(encoding="utf-8")))
    return edges


def cycles(edges: dict[str, dict[str, list[int]]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                    advanced = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return sorted(out)


def describe(component: list[str], edges, mods) -> str:
    inside = set(component)
    lines = [f"cycle among {', '.join(component)}:"]
    for a in component:
        for b, linenos in sorted(edges[a].items()):
            if b in inside:
                lines.append(f"    {mods[a].relative_to(ROOT)}:{','.join(map(str, sorted(set(linenos))))} imports {b}")
    return "\n".join(lines)


def private_imports(mods: dict[str, Path], root: Path = ROOT) -> list[str]:
    found = []
    for m, p in mods.items():
        tree = ast.parse(p.read_text(encoding="utf-8"))
        module_aliases: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                for (target, name), alias in zip(_resolve(m, node, mods), node.names):
                    if name is None:
                        module_aliases[alias.asname or alias.name] = target
                    elif name.startswith("_") and not name.startswith("__") and target != m:
                        found.append(f"{p.relative_to(root)}:{node.lineno}: imports {target}.{name}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in mods and alias.asname:
                        module_aliases[alias.asname] = alias.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in module_aliases and node.attr.startswith("_")
                    and not node.attr.startswith("__") and module_aliases[node.value.id] != m
                    and f"{module_aliases[node.value.id]}.{node.attr}" not in mods):
                found.append(f"{p.relative_to(root)}:{node.lineno}: uses {module_aliases[node.value.id]}.{node.attr}")
    return sorted(set(found))


# ----------------------------------------------------------------------------------------------- the checks


def test_checker_finds_a_cycle_through_a_function_level_import(tmp_path):
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "a.py").write_text("from . import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from .a import g\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .sub import a\n")
    (pkg / "d.py").write_text("from .sub.a import _hidden\nfrom .sub import b\nb._x\nfrom . import _e\n")
    (pkg / "_e.py").write_text("")
    mods = module_files(tmp_path)
    edges = import_edges(mods)
    assert cycles(edges) == [[f"{PACKAGE}.sub.a", f"{PACKAGE}.sub.b"]]
    assert f"{PACKAGE}.sub.a" not in edges[f"{PACKAGE}.c"]  # TYPE_CHECKING imports are no edge
    found = private_imports(mods, tmp_path)
    assert len(found) == 2 and "_hidden" in found[0] and "b._x" in found[1]  # the private module _e is fine


def test_no_import_cycles():
    mods = module_files()
    edges = import_edges(mods)
    found = cycles(edges)
    assert not found, f"{len(found)} import cycle(s):\n" + "\n".join(describe(c, edges, mods) for c in found)


def test_no_private_names_imported_across_modules():
    found = private_imports(module_files())
    assert not found, f"{len(found)} private name(s) used across modules:\n" + "\n".join(found)
