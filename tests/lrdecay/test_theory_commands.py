"""The theory subcommands end to end through ``lrdecay.cli.main``: tables printed, result files and
figures written, bad input refused with exit status 2."""
from __future__ import annotations

import numpy as np
import pytest

from lrdecay.cli import main
from lrdecay.theory.studies.convex_mc import ConvexStudy
from lrdecay.theory.studies.decay import DemoResult
from lrdecay.theory.studies.drift import DriftStudy
from lrdecay.theory.studies.gamma import GammaStudyResult


def test_convex_prints_table_and_writes_results_and_figure(tmp_path, capsys):
    assert main(["convex", "--out", str(tmp_path), "--seed", "7", "--trials", "300", "--alphas", "0.1",
                 "--Ks", "0", "1"]) == 0
    out = capsys.readouterr().out
    assert "P(sep)" in out and "95% CI" in out
    st = ConvexStudy.load(tmp_path / "convex.npz")
    assert st.config["seed"] == 7 and st.config["trials"] == 300
    assert st.draws.shape == (300, 3)
    np.testing.assert_array_equal(st.draws, np.random.default_rng(7).integers(0, 2, size=(300, 3)))
    for ext in ("png", "pdf"):
        assert (tmp_path / "figures" / f"nakkiran_fig1.{ext}").stat().st_size > 1000
    # Figure 1: both end points on the same train-loss level set eps (computed here from fig_S)
    f = st.figure
    S, bs, eps = f["fig_S"], f["fig_beta_star"], float(f["fig_eps"])
    for key in ("fig_beta_slow", "fig_beta_fast", "fig_beta_slow_num", "fig_beta_fast_num"):
        r = f[key] - bs
        assert float(r @ S @ r) == pytest.approx(eps, rel=1e-8)
    # and the test losses differ: (b) is the better one
    assert float(f["fig_test_fast"]) == pytest.approx(0.75 * eps, rel=1e-9)
    assert float(f["fig_test_slow"]) > 1.3 * eps


def test_convex_rejects_bad_trials(tmp_path, capsys):
    assert main(["convex", "--out", str(tmp_path), "--trials", "0", "--no-figure"]) == 2
    assert "trials must be an integer >= 1" in capsys.readouterr().err


def test_gamma_study_writes_result_and_figure(tmp_path, capsys):
    assert main(["gamma-study", "--out", str(tmp_path), "--instances", "3", "--gammas", "0", "2",
                 "--d", "20", "--n", "5", "--max-steps", "1500", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "bound" in out and "Wilson" in out
    res = GammaStudyResult.load(tmp_path / "gamma_study.npz")
    assert res.converged.shape == (2, 3)
    for ext in ("png", "pdf"):
        assert (tmp_path / "figures" / f"gamma_convergence.{ext}").stat().st_size > 1000
    assert main(["gamma-study", "--out", str(tmp_path), "--n", "50", "--no-progress"]) == 2   # n >= d


def test_demo_quick_writes_sweeps_schedules_and_figure(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--quick", "--paths", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "min-norm" in out and "equal budget" in out
    res = DemoResult.load(tmp_path)
    assert set(res.sweeps) == {0.0, 1.0} and res.sweeps[1.0].final_test.shape == (4, 2)
    assert res.schedules.final_test.shape == (5, 2)
    assert (tmp_path / "figures" / "demo_decay.png").stat().st_size > 1000


def test_drift_quick_writes_comparisons_and_figure(tmp_path, capsys):
    assert main(["drift", "--out", str(tmp_path), "--quick", "--paths", "4", "--tau-max", "2", "--no-progress"]) == 0
    assert "plateau meas/pred" in capsys.readouterr().out
    st = DriftStudy.load(tmp_path)
    assert len(st.main_rows()) == 3 and len(st.breakdown_rows()) == 3 and len(st.control_rows()) == 1
    assert st.comparisons["g1_eta0.02"].sgd_norm.shape[1] == 4
    assert (tmp_path / "figures" / "drift_vs_sgd.png").stat().st_size > 1000


def test_demo_problem_options_reach_the_problem(tmp_path, capsys, monkeypatch):
    """--d, --n, --gamma, --eta and --sigma set the generated problems and the rate (read back from the files);
    the decay steps are shortened here (monkeypatched --quick) to keep the test fast."""
    from dataclasses import replace

    from lrdecay.theory.studies import decay
    monkeypatch.setattr(decay.DemoConfig, "quick", lambda self: replace(self, decay_steps=(0, 300), phase3_steps=200))
    assert main(["demo", "--out", str(tmp_path), "--quick", "--paths", "1", "--no-progress", "--d", "12", "--n", "4",
                 "--gamma", "2", "--eta", "0.01", "--sigma", "0.5"]) == 0
    res = DemoResult.load(tmp_path)
    assert set(res.sweeps) == {2.0, 0.0}
    p = res.sweeps[2.0].problem
    assert (p.d, p.n, p.gamma, p.sigma) == (12, 4, 2.0, 0.5) and res.sweeps[2.0].config["eta"] == 0.01
    assert res.config.eta == 0.01 and res.schedules.problem.gamma == 2.0


def test_drift_problem_options_choose_the_main_cases(tmp_path, capsys):
    """--gamma and --eta give the main cases (their product); --eta wins over --quick's single rate."""
    assert main(["drift", "--out", str(tmp_path), "--quick", "--paths", "2", "--tau-max", "0.2", "--no-progress",
                 "--d", "12", "--n", "4", "--sigma", "0.4", "--gamma", "1.5", "--eta", "0.03", "0.01"]) == 0
    st = DriftStudy.load(tmp_path)
    assert [(r["gamma"], r["eta"]) for r in st.main_rows()] == [(1.5, 0.03), (1.5, 0.01)]
    c = st.comparisons["g1.5_eta0.03"]
    assert (c.problem.d, c.problem.n, c.problem.sigma) == (12, 4, 0.4)


@pytest.mark.parametrize("budget", ["equal", "fixed-after-decay"])
def test_sweep_budget_and_csv(budget, tmp_path, capsys):
    """Each task's step count follows --budget (equal: max decay + --steps for all; fixed-after-decay: its decay +
    --steps); the CSV holds the npz's rows, number for number."""
    import csv

    from lrdecay.theory.studies.grid import GridResult
    assert main(["sweep", "--out", str(tmp_path), "--gammas", "1", "--decay-steps", "0", "300", "--seeds", "0",
                 "--paths", "1", "--d", "10", "--n", "3", "--sigma", "0.2", "--steps", "100", "--budget", budget,
                 "--executor", "serial", "--no-progress"]) == 0
    rows = GridResult.load(tmp_path / "sweep_results.npz").rows
    with open(tmp_path / "sweep_results.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    expected_steps = [400, 400] if budget == "equal" else [100, 400]
    assert [int(r["total_steps"]) for r in table] == expected_steps
    assert [r["decay_step"] + r["phase3_steps"] for r in rows] == expected_steps
    assert [(r["d"], r["n"], r["sigma"]) for r in rows] == [(10, 3, 0.2)] * 2
    for r, t in zip(rows, table):
        assert float(t["final_test_mean"]) == r["final_test_mean"] and t["status"] == r["status"] == "ok"


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    from lrdecay import __version__
    assert capsys.readouterr().out.strip() == f"lrdecay {__version__}"


@pytest.mark.parametrize("command, file, figure", [
    (["rate-law", "--smoke"], "rate_law.npz", "rate_law.png"),
    (["cyclic", "--smoke"], "cyclic.npz", "cyclic_schedules.png"),
    (["discrete-eta", "--smoke"], "discrete_eta.npz", "discrete_eta.png"),
    (["two-layer", "--smoke"], "two_layer.npz", "two_layer.png"),
    (["diagonal", "--d", "12", "--n", "6", "--sparsity", "1", "--tau-max", "1", "--paths", "2"], "diagonal.npz",
     "diagonal.png"),
])
def test_open_question_commands_write_results_and_figures(command, file, figure, tmp_path, capsys):
    assert main(command + ["--out", str(tmp_path), "--no-progress"]) == 0
    assert capsys.readouterr().out
    assert (tmp_path / file).stat().st_size > 1000
    assert (tmp_path / "figures" / figure).stat().st_size > 1000


def test_open_question_commands_refuse_bad_input(tmp_path, capsys):
    assert main(["rate-law", "--out", str(tmp_path), "--lr-factor", "3", "--no-progress"]) == 2
    assert "--lr-factor must be in (0, 2)" in capsys.readouterr().err
    assert main(["cyclic", "--out", str(tmp_path), "--cycles", "0", "--no-progress"]) == 2
    assert "--cycles must be an integer in" in capsys.readouterr().err
