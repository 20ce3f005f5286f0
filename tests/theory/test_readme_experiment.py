"""The README's "Your own experiment" block, run as it stands, and its numbers checked independently.

The block is the one fenced ``python`` block between the markers ``<!-- own-experiment:start -->`` and
``<!-- own-experiment:end -->``; it is written to a file and run with :mod:`runpy` (so that its functions have
a readable source, as they do for a user's script).
"""
import re
import runpy
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
START, END = "<!-- own-experiment:start -->", "<!-- own-experiment:end -->"


def readme_block(text: str) -> str:
    """The code of the one fenced python block between the markers; a clear failure otherwise."""
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise AssertionError(f"README.md must hold the markers {START} and {END} once each, in that order")
    inner = text[text.index(START) + len(START):text.index(END)]
    blocks = re.findall(r"^```python[ \t]*\n(.*?)^```[ \t]*$", inner, flags=re.S | re.M)
    if len(blocks) != 1:
        raise AssertionError(f"expected one ```python block between the markers, found {len(blocks)}")
    return blocks[0]


def test_the_extraction_finds_exactly_the_marked_block():
    text = f"before\n```python\nx = 0\n```\n{START}\nprose\n```python\ny = 1\n```\n{END}\n```python\nz = 2\n```\n"
    assert readme_block(text) == "y = 1\n"
    with pytest.raises(AssertionError, match="one ```python block"):
        readme_block(f"{START}\n```bash\nls\n```\n{END}")
    with pytest.raises(AssertionError, match="markers"):
        readme_block("```python\nx = 0\n```")


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    path = tmp_path_factory.mktemp("readme") / "own_experiment.py"
    path.write_text(readme_block(README.read_text(encoding="utf-8")))
    return runpy.run_path(str(path), run_name="__main__")


def test_the_block_runs_and_records_the_drift_time(experiment):
    """tau at the last record of every path against the direct sum: eta = 0.01 before the decay, 0.001 after."""
    res, decays, per, T = experiment["res"], experiment["decays"], experiment["per"], experiment["T"]
    assert res.message == f"{per * len(decays)} completed of {per * len(decays)} paths"
    direct = np.repeat([at * 0.01**2 + (T - at) * 0.001**2 for at in decays], per)
    np.testing.assert_allclose(res.tau[-1], direct, rtol=1e-12)
    np.testing.assert_allclose(experiment["ode"].budgets, direct[::per], rtol=1e-12)


def test_a_later_decay_ends_lower_and_the_drift_ode_follows(experiment):
    """Mean final test loss falls with the decay step (each step by more than 2 standard errors), and the ODE at
    each budget is within 10 % of SGD (the quasistatic picture errs by O(eta lambda); measured 0.5-5 %)."""
    sgd, ode = experiment["sgd_test"], experiment["ode"].test_loss
    mean, se = sgd.mean(1), sgd.std(1, ddof=1) / np.sqrt(sgd.shape[1])
    assert np.all(np.diff(mean) < -2 * np.hypot(se[1:], se[:-1]))
    np.testing.assert_allclose(ode, mean, rtol=0.10)
    assert mean[-1] > experiment["prob"].min_norm_test_loss       # not yet at w_mn after 1.5 units of drift time


def test_the_schedules_are_saved_by_name_and_source(experiment):
    lr = experiment["res"].config["lr"]
    assert lr[0]["kind"] == "function" and "0.01 if k < at else 0.001" in lr[0]["source"]
