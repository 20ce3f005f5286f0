"""The mutation check: every planted science bug of benchmarks/mutations.py makes the default suite fail.

The whole check (one default-suite run per mutant) is slow: ``python -m pytest -m slow tests/test_mutations.py``
or ``python benchmarks/mutation_check.py``. The list itself is checked in the default run.
"""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from mutations import MUTATIONS  # noqa: E402


def test_mutation_list_applies_to_this_tree():
    assert len(MUTATIONS) >= 15
    assert len({m[0] for m in MUTATIONS}) == len(MUTATIONS)
    for name, file, old, new in MUTATIONS:
        assert old != new, name
        assert (ROOT / file).read_text(encoding="utf-8").count(old) == 1, (name, file)


@pytest.mark.slow
def test_every_planted_bug_is_caught():
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "mutation_check.py")], cwd=ROOT,
                       capture_output=True, text=True, timeout=5400)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{len(MUTATIONS)} of {len(MUTATIONS)} planted bugs caught" in r.stdout
