"""The layout: layers theory < empirics < paper_figures < lrdecay, every import pointing down or
sideways, no cycles, and the theory library importable without torch.

Imports are read from the source with :mod:`ast` — module-level and function-level ``import`` and
``from ... import`` statements, relative imports, and string literals handed to
``importlib.import_module`` — and resolved to the package files they load.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["theory", "empirics", "paper_figures", "lrdecay"]


def package_modules() -> dict[str, Path]:
    """``dotted name -> file`` for every module of the four packages."""
    out = {}
    for top in LAYERS:
        for p in (ROOT / top).rglob("*.py"):
            rel = p.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = p
    return out


def _resolve(name: str, modules: dict) -> str | None:
    """The longest prefix of ``name`` that is one of our modules."""
    parts = name.split(".")
    for k in range(len(parts), 0, -1):
        cand = ".".join(parts[:k])
        if cand in modules:
            return cand
    return None


def imports_of(mod: str, path: Path, modules: dict) -> set[str]:
    """Our modules that ``mod`` imports (explicitly; implicit parent-package imports are not arrows)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    package = mod if is_pkg else mod.rpartition(".")[0]
    found = set()
    # a file that calls import_module may hand it any string it holds: every string naming one of our
    # modules counts as an import
    calls_importlib = any(isinstance(n, (ast.Attribute, ast.Name)) and getattr(n, "attr", getattr(n, "id", None))
                          == "import_module" for n in ast.walk(tree))
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            for a in node.names:           # "from A import b": the module A.b if it is one, else A
                full = f"{prefix}.{a.name}"
                names.append(full if full in modules else prefix)
        elif calls_importlib and isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and node.value in modules:
            names = [node.value]
        for n in names:
            r = _resolve(n, modules)
            if r is not None and r != mod:
                found.add(r)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    return {m: imports_of(m, p, modules) for m, p in modules.items()}


def layer(mod: str) -> int:
    return LAYERS.index(mod.split(".")[0])


def upward_arrows(graph) -> list[tuple[str, str]]:
    return sorted((a, b) for a, deps in graph.items() for b in deps if layer(b) > layer(a))


def cycles(graph) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan)."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_parser_sees_function_level_relative_and_importlib_imports(tmp_path):
    """The checker itself: a planted upward arrow of each kind is found."""
    modules = {"theory": tmp_path, "theory.a": tmp_path / "a.py", "paper_figures": tmp_path,
               "paper_figures.fig": tmp_path, "lrdecay.cli": tmp_path}
    src = tmp_path / "a.py"
    src.write_text("import numpy\n"
                   "def f():\n    from paper_figures.fig import draw\n"
                   "def g():\n    import importlib\n    importlib.import_module('lrdecay.cli')\n")
    assert imports_of("theory.a", src, modules) == {"paper_figures.fig", "lrdecay.cli"}
    via_list = tmp_path / "c.py"
    via_list.write_text("import importlib\nMODS = ['paper_figures.fig']\n"
                        "def h():\n    return [importlib.import_module(m) for m in MODS]\n")
    assert imports_of("theory.c", via_list, modules) == {"paper_figures.fig"}
    rel = tmp_path / "b.py"
    rel.write_text("from . import a\nfrom .a import x\n")
    assert imports_of("theory.b", rel, {**modules, "theory.b": rel}) == {"theory.a"}


def test_planted_cycle_is_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_upward_imports():
    graph = import_graph()
    assert sum(len(v) for v in graph.values()) > 50          # the walk found the project's imports
    assert upward_arrows(graph) == []


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_theory_imports_without_torch():
    """Every module under theory/ imports with torch unavailable (torch blocked in sys.modules)."""
    mods = sorted(m for m in package_modules() if m.startswith("theory"))
    code = ("import sys; sys.modules['torch'] = None; sys.modules['torchvision'] = None\n"
            "import importlib\n"
            f"for m in {mods!r}:\n    importlib.import_module(m)\n"
            "print('ok', len(" + repr(mods) + "))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("ok")
