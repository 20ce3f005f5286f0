"""Every ```python block of README.md runs as it stands, so that the README's library examples cannot go stale.

Each block runs in a fresh interpreter, in a scratch directory (a block may write files, e.g. ``run.npz``), with the
repository root as ``LRDECAY_REPO`` for blocks that read committed files. A block is skipped only with a reason:

* the block between ``<!-- own-experiment:start -->`` and ``<!-- own-experiment:end -->`` is run, and its numbers
  checked, by ``tests/theory/test_readme_experiment.py``;
* a block whose first line is a comment ``# not run by the tests: REASON`` (for a long run) is skipped with REASON.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
OWN_START, OWN_END = "<!-- own-experiment:start -->", "<!-- own-experiment:end -->"
SKIP = re.compile(r"\A#\s*not run by the tests:\s*(.+)")


def readme_blocks(text: str) -> list[tuple[int, str, str | None]]:
    """``(line number, code, reason to skip or None)`` for every fenced python block of ``text``."""
    own = (text.find(OWN_START), text.find(OWN_END))
    out = []
    for m in BLOCK.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        code = m.group(1)
        reason = None
        if own[0] != -1 and own[0] < m.start() < own[1]:
            reason = "run and checked by tests/theory/test_readme_experiment.py"
        elif (s := SKIP.match(code)) is not None:
            reason = s.group(1).strip()
        out.append((line, code, reason))
    return out


def test_the_extraction_finds_every_block_and_its_reason():
    text = ("```python\nx = 1\n```\ntext\n```bash\nls\n```\n"
            f"{OWN_START}\n```python\ny = 2\n```\n{OWN_END}\n```python\n# not run by the tests: an hour\nz = 3\n```\n")
    got = readme_blocks(text)
    assert [(c, r) for _, c, r in got] == [("x = 1\n", None),
                                           ("y = 2\n", "run and checked by tests/theory/test_readme_experiment.py"),
                                           ("# not run by the tests: an hour\nz = 3\n", "an hour")]
    assert [ln for ln, _, _ in got] == [1, 9, 13]


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))


def test_the_readme_has_library_examples_that_run():
    assert any(reason is None for _, _, reason in BLOCKS), "no python block of README.md is run by the tests"


@pytest.mark.parametrize("line,code,reason", BLOCKS, ids=[f"line{ln}" for ln, _, _ in BLOCKS])
def test_readme_block_runs(line, code, reason, tmp_path):
    if reason:
        pytest.skip(reason)
    script = tmp_path / f"readme_line{line}.py"
    script.write_text(code, encoding="utf-8")
    env = dict(os.environ, MPLBACKEND="Agg", LRDECAY_REPO=str(ROOT))
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, (f"README.md line {line}: the python block failed\n"
                                  f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
