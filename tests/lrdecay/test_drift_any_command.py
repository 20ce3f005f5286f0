"""``lrdecay drift-any``: one-line errors for bad options and entry points (exit 2, before any computation), and a
smoke run of a model given by an entry point, whose saved result loads back."""
from __future__ import annotations

import numpy as np
import pytest

from lrdecay.cli import main

pytest.importorskip("torch")


def tiny(seed: int = 0, sigma: float = 1.0):
    """An entry point: the two-layer linear network (d = 4, n = 2, h = 2) as a generic model."""
    from lrdecay.theory.models.generic_examples import from_linear_readout
    from lrdecay.theory.models.two_layer import TwoLayerLinear

    return from_linear_readout(TwoLayerLinear.generate(d=4, n=2, hidden=2, sigma=sigma, seed=seed))


def not_a_model(seed: int = 0, sigma: float = 1.0):
    return np.zeros(3)


def _run(argv, capsys):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    return code, [ln for ln in err.splitlines() if ln.strip()]


@pytest.mark.parametrize("argv, text", [
    (["drift-any", "--model", "nope"], "--model must be one of ('diagonal3', 'relu') or 'module:function'"),
    (["drift-any", "--model", "no_such_module_xyz:f"], "entry point 'no_such_module_xyz:f' cannot be imported"),
    (["drift-any", "--model", f"{__name__}:not_a_model"], "must return a GenericModel, got ndarray"),
    (["drift-any", "--lr-factor", "3"], "--lr-factor must be in (0, 2)"),
    (["drift-any", "--paths", "0"], "--paths must be an integer >= 1"),
    (["drift-any", "--sigma", "-1"], "--sigma must be a finite number > 0"),
    (["drift-any", "--tau-max", "0"], "--tau-max must be a finite number > 0"),
])
def test_bad_options_fail_in_one_line(argv, text, capsys, tmp_path):
    code, lines = _run(argv + ["--out", tmp_path / "o"], capsys)
    assert code == 2 and len(lines) == 1 and text in lines[0], lines


def test_entry_point_smoke_run_saves_and_loads(tmp_path, capsys):
    from lrdecay.theory.studies.drift_any import DriftAnyResult

    code = main(["drift-any", "--model", f"{__name__}:tiny", "--smoke", "--no-progress", "--out", str(tmp_path)])
    assert code == 0
    res = DriftAnyResult.load(tmp_path / "drift_any.npz")
    assert res.study.model.dim == 10 and res.config["model"] == f"{__name__}:tiny"
    assert (tmp_path / "figures" / "drift_any.png").exists()
    assert np.isfinite(res.study.drift_gap)
