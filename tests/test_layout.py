"""The layout: layers theory < empirics < paper_figures < lrdecay, every import pointing down or
sideways, no cycles, and the theory library importable without torch.

Imports are read from the source with :mod:`ast` — module-level and function-level ``import`` and
``from ... import`` statements, relative imports, and string literals handed to
``importlib.import_module`` — and resolved to the package files they load.
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["theory", "empirics", "paper_figures", "lrdecay"]
LIBRARY = LAYERS[:3]          # the folders theory/, empirics/, paper_figures/ import as lrdecay.theory, …


def package_modules() -> dict[str, Path]:
    """``dotted name -> file`` for every module of the four packages (``lrdecay.theory.engine``, …)."""
    out = {}
    for top in LAYERS:
        for p in (ROOT / top).rglob("*.py"):
            rel = p.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if top in LIBRARY:
                parts = ["lrdecay"] + parts
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
    parts = mod.split(".")
    return LAYERS.index(parts[1] if len(parts) > 1 and parts[1] in LIBRARY else parts[0])


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
    modules = {"lrdecay.theory": tmp_path, "lrdecay.theory.a": tmp_path / "a.py", "lrdecay.paper_figures": tmp_path,
               "lrdecay.paper_figures.fig": tmp_path, "lrdecay.cli": tmp_path}
    src = tmp_path / "a.py"
    src.write_text("import numpy\n"
                   "def f():\n    from lrdecay.paper_figures.fig import draw\n"
                   "def g():\n    import importlib\n    importlib.import_module('lrdecay.cli')\n")
    assert imports_of("lrdecay.theory.a", src, modules) == {"lrdecay.paper_figures.fig", "lrdecay.cli"}
    assert upward_arrows({"lrdecay.theory.a": {"lrdecay.paper_figures.fig", "lrdecay.cli"}}) == [
        ("lrdecay.theory.a", "lrdecay.cli"), ("lrdecay.theory.a", "lrdecay.paper_figures.fig")]
    via_list = tmp_path / "c.py"
    via_list.write_text("import importlib\nMODS = ['lrdecay.paper_figures.fig']\n"
                        "def h():\n    return [importlib.import_module(m) for m in MODS]\n")
    assert imports_of("lrdecay.theory.c", via_list, modules) == {"lrdecay.paper_figures.fig"}
    rel = tmp_path / "b.py"
    rel.write_text("from . import a\nfrom .a import x\n")
    assert imports_of("lrdecay.theory.b", rel, {**modules, "lrdecay.theory.b": rel}) == {"lrdecay.theory.a"}


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
    mods = sorted(m for m in package_modules() if m.startswith("lrdecay.theory"))
    code = ("import sys; sys.modules['torch'] = None; sys.modules['torchvision'] = None\n"
            "import importlib\n"
            f"for m in {mods!r}:\n    importlib.import_module(m)\n"
            "print('ok', len(" + repr(mods) + "))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("ok")


#: theory/ files outside the engine's backends that may import torch: the generic models' automatic
#: differentiation (a model-building tool, not a simulation backend)
TORCH_OUTSIDE_BACKENDS = {"theory/models/generic.py", "theory/models/generic_examples.py"}


def _heavy_imports(path: Path) -> set[str]:
    """The top-level names among ``numba`` and ``torch`` that ``path`` imports (at any level)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        else:
            continue
        found |= {n.split(".")[0] for n in names} & {"numba", "torch"}
    return found


def test_only_engine_backends_import_numba_or_torch(tmp_path):
    """Under theory/, numba and torch are imported in theory/engine/backends/ only (and torch by the generic
    models' autodiff, listed in TORCH_OUTSIDE_BACKENDS): the engine's other modules stay free of both."""
    backends = ROOT / "theory" / "engine" / "backends"
    seen, bad = set(), []
    for path in sorted((ROOT / "theory").rglob("*.py")):
        heavy = _heavy_imports(path)
        rel = path.relative_to(ROOT).as_posix()
        if path.is_relative_to(backends):
            seen |= heavy
            continue
        if rel in TORCH_OUTSIDE_BACKENDS:
            heavy -= {"torch"}
        bad += [f"{rel} imports {h}" for h in sorted(heavy)]
    assert bad == []
    assert seen == {"numba", "torch"}                 # the rule looks at the files that do import them
    assert _heavy_imports(ROOT / "theory" / "engine" / "backends" / "torch.py") == {"torch"}
    planted = tmp_path / "planted.py"                 # the check itself bites, at function level too
    planted.write_text("import numpy\ndef f():\n    from torch.func import grad\n    import numba.core\n")
    assert _heavy_imports(planted) == {"numba", "torch"}


BARE = re.compile(r"^\s*(from|import)\s+(theory|empirics|paper_figures)\b", re.M)


def test_no_bare_library_imports():
    """Every import names the one namespace (``lrdecay.theory``, …): a bare ``import theory`` would load a
    second copy of the module from a checkout and clash with other packages once installed."""
    tracked = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert len(tracked) > 100
    bad = [f"{f}:{m.group(0).strip()}" for f in tracked if (ROOT / f).exists()
           for m in BARE.finditer((ROOT / f).read_text(encoding="utf-8"))]
    assert bad == []
    assert BARE.search("x = 1\n    from theory.engine import simulate\n")       # the pattern itself bites


def test_plain_checkout_imports_one_namespace(tmp_path):
    """A checkout used as it is (no install: editable finders removed, the root on sys.path) imports
    lrdecay.theory from ./theory, and no top-level ``theory`` module appears."""
    code = ("import sys\n"
            "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in type(f).__module__.lower()\n"
            "                    and 'editable' not in getattr(f, '__module__', '').lower()]\n"
            "sys.path[:] = [p for p in sys.path if '__editable__' not in p]\n"
            f"sys.path.insert(0, {str(ROOT)!r})\n"
            "import lrdecay.theory.flow as E, lrdecay.theory.engine, lrdecay.empirics.analysis, lrdecay.paper_figures\n"
            "assert 'theory' not in sys.modules and 'empirics' not in sys.modules, sorted(sys.modules)\n"
            "print(E.__file__)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert Path(r.stdout.strip()).resolve().parent == ROOT / "theory"


def test_wheel_installs_one_namespace(tmp_path):
    """The built wheel holds lrdecay/theory, lrdecay/empirics and lrdecay/paper_figures and no top-level
    library package; installed into a clean folder it imports as lrdecay.theory, and ``import theory`` fails."""
    import zipfile

    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(tmp_path / "dist"), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("lrdecay-*.whl")
    tops = {n.split("/")[0] for n in zipfile.ZipFile(wheel).namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"lrdecay"}
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"lrdecay/theory/engine/__init__.py", "lrdecay/theory/models/nonlinear.py", "lrdecay/empirics/train.py",
            "lrdecay/paper_figures/__init__.py"} <= names
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                        str(wheel)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    code = ("import sys\nfrom pathlib import Path\n"
            "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in getattr(f, '__module__', '').lower()]\n"
            f"sys.path[:] = [{str(target)!r}] + [p for p in sys.path if p and '__editable__' not in p\n"
            f"               and Path(p).resolve() != Path({str(ROOT)!r})]\n"
            "import lrdecay.theory.flow as E, lrdecay.theory.engine, lrdecay.empirics.analysis, lrdecay.paper_figures\n"
            "print(E.__file__)\n"
            "try:\n    import theory\nexcept ImportError:\n    print('no top-level theory')\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    out = r.stdout.split("\n")
    assert Path(out[0]).is_relative_to(target) and out[1] == "no top-level theory"


def test_benchmark_and_example_imports_resolve():
    """Every ``from lrdecay... import name`` in benchmarks/ and examples/ names a module or attribute that exists
    (scripts the default run does not execute must not go stale when a module moves)."""
    import importlib
    import importlib.util

    bad = []
    for f in sorted([*(ROOT / "benchmarks").glob("*.py"), *(ROOT / "examples").glob("*.py")]):
        for n in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(n, ast.ImportFrom) and n.module and n.module.split(".")[0] == "lrdecay":
                try:
                    mod = importlib.import_module(n.module)
                except ImportError as exc:
                    bad.append(f"{f.name}: {n.module} ({exc})")
                    continue
                for a in n.names:
                    if not hasattr(mod, a.name) and importlib.util.find_spec(f"{n.module}.{a.name}") is None:
                        bad.append(f"{f.name}: {n.module}.{a.name}")
    assert bad == []
