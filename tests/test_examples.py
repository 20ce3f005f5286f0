"""The example notebooks (``examples/*.py``, Jupytext percent format), each run as a script at its tested size.

Each file is a notebook for Jupyter (``jupytext --to ipynb``) and a plain Python script: its cells are comments to
Python. The test runs it in a fresh interpreter from the repository root with ``LRDECAY_EXAMPLE_SIZE=small`` (each
notebook shrinks its run to the size it states) and a non-interactive matplotlib backend; the notebooks assert
their own results (the drift's end point against a linear programme, serial against Dask bit for bit, …), so a
zero exit status means they ran and their checks held. The run time is printed beside the one each notebook
states.
"""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.py") if not p.name.startswith("_"))
#: an example that imports one of these needs that extra, and is skipped (with the reason) without it
NEEDS = {"torch": "empirics", "distributed": "dask"}


def test_there_are_the_six_examples():
    assert len(EXAMPLES) == 6, [p.name for p in EXAMPLES]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_each_example_states_its_run_time_and_reads_as_a_notebook(path):
    """A Jupytext header, a title, and a first Markdown cell that states the run time at both sizes."""
    text = path.read_text(encoding="utf-8")
    assert "format_name: percent" in text, f"{path.name}: not in Jupytext percent format"
    first = text.split("# %%")[1]
    assert first.startswith(" [markdown]") and re.search(r"^# # \S", first, re.M), f"{path.name}: no title cell"
    assert "**Run time**" in first and "tested size" in first, f"{path.name}: the first cell must state its run time"
    jupytext = pytest.importorskip("jupytext", reason="jupytext (the docs extra) reads the notebooks")
    nb = jupytext.read(path, fmt="py:percent")
    kinds = {c.cell_type for c in nb.cells}
    assert kinds == {"markdown", "code"}, f"{path.name}: cells {kinds}"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs_at_its_tested_size(path):
    text = path.read_text(encoding="utf-8")
    for module, extra in NEEDS.items():
        if re.search(rf"^(import|from) {module}\b", text, re.M) and importlib.util.find_spec(module) is None:
            pytest.skip(f"{path.name} needs {module} (pip install -e '.[{extra}]')")
    env = dict(os.environ, LRDECAY_EXAMPLE_SIZE="small", MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(path)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    took = time.perf_counter() - t0
    print(f"{path.name}: {took:.1f} s at the tested size")
    assert proc.returncode == 0, f"{path.name} failed after {took:.1f} s:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


def test_recorded_outputs_name_their_files():
    """``docs/update_examples.py``'s records (shown by the site while they match their notebook's source): each is
    for an existing notebook, its digest is a SHA-256, and every figure it lists exists."""
    import json

    out = ROOT / "docs" / "examples_output"
    for rec in sorted(out.glob("*.json")):
        data = json.loads(rec.read_text(encoding="utf-8"))
        assert (ROOT / "examples" / f"{rec.stem}.py").exists(), f"{rec.name}: no such notebook"
        assert re.fullmatch(r"[0-9a-f]{64}", data["code_sha256"]) and data["seconds"] > 0
        for cell in data["cells"].values():
            for fig in cell["figures"]:
                assert (out / fig).exists(), f"{rec.name}: missing {fig}"
