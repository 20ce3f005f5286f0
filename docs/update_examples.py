"""Run the example notebooks at their default size and keep their outputs for the documentation site.

    python docs/update_examples.py                 # every examples/*.py
    python docs/update_examples.py 03_new_model    # the ones whose name starts so

Each notebook runs in its own interpreter, cell by cell in one namespace (as Jupyter would, without a kernel):
each code cell's printed output and the figures it leaves open are saved to ``docs/examples_output/`` with the
SHA-256 of the notebook's code cells, the size it ran at and its run time. The site (docs/hooks/site.py) shows a
cell's output under it only while that digest matches the code, so an edited notebook is never shown with
the outputs of its previous version (its page then says that the outputs are not shown).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "examples_output"


def code_digest(path: Path) -> str:
    """SHA-256 of the notebook's code cells (the outputs depend on them only; prose may change freely)."""
    import jupytext

    nb = jupytext.read(path, fmt="py:percent")
    code = "\n# %%\n".join(c.source.strip("\n") for c in nb.cells if c.cell_type == "code")
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


def run_one(path: Path) -> dict:
    """Execute ``path``'s cells in order; return the outputs (and write the figures) of each code cell."""
    import jupytext
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nb = jupytext.read(path, fmt="py:percent")
    ns = {"__name__": "__main__", "__file__": str(path)}
    cells, t0 = {}, time.perf_counter()
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            exec(compile(cell.source, f"{path.name}:cell{i}", "exec"), ns)  # noqa: S102 - our own notebook
        figures = []
        for j, num in enumerate(plt.get_fignums()):
            name = f"{path.stem}_cell{i}_{j}.png"
            plt.figure(num).savefig(OUT / name, dpi=72)
            figures.append(name)
        plt.close("all")
        if buf.getvalue() or figures:
            cells[str(i)] = {"stdout": buf.getvalue(), "figures": figures}
    return {"code_sha256": code_digest(path), "size": os.environ.get("LRDECAY_EXAMPLE_SIZE", "default"),
            "seconds": round(time.perf_counter() - t0, 1), "cells": cells}


def main(argv: list[str]) -> int:
    if argv[:1] == ["--one"]:
        path = Path(argv[1])
        OUT.mkdir(parents=True, exist_ok=True)
        for old in OUT.glob(f"{path.stem}_cell*.png"):
            old.unlink()
        result = run_one(path)
        (OUT / f"{path.stem}.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
        print(f"{path.name}: {result['seconds']} s at size {result['size']}")
        return 0
    paths = sorted(p for p in (ROOT / "examples").glob("[!_]*.py") if not argv or any(p.stem.startswith(a) for a in argv))
    failed = [p.name for p in paths
              if subprocess.run([sys.executable, __file__, "--one", str(p)], cwd=ROOT).returncode != 0]
    if failed:
        print("failed:", *failed, file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
