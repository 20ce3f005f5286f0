"""Bad input and faults through the command line: every case exits with status 2 and one line on stderr
naming the option or file, with no traceback, before any long computation."""
from __future__ import annotations

import time

import pytest

from lrdecay.cli import main


@pytest.fixture
def a_file(tmp_path):
    f = tmp_path / "plain_file"
    f.write_text("x")
    return f


def run(argv, capsys):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:          # argparse's usage errors
        code = exc.code
    err = capsys.readouterr().err
    return code, [ln for ln in err.splitlines() if ln.strip()], err


# (argv, text the one line must contain); "{file}" stands for a plain file ("{file}/sub" cannot be created,
# even by root), "{tmp}" for a fresh directory
CASES = [
    # top level
    (["nope"], "invalid choice"),
    ([], "required"),
    # demo
    (["demo", "--paths", "0"], "--paths must be an integer >= 1"),
    (["demo", "--paths", "-3"], "--paths must be an integer >= 1"),
    (["demo", "--paths", "abc"], "invalid int value"),
    (["demo", "--seed", "-1"], "--seed must be an integer >= 0"),
    (["demo", "--out", "{file}"], "--out"),
    (["demo", "--out", "{file}/sub"], "--out: cannot write"),
    # convex
    (["convex", "--trials", "0"], "--trials must be an integer >= 1"),
    (["convex", "--eps", "0"], "--eps must be a number in the open interval (0, 1)"),
    (["convex", "--eps", "nan"], "--eps must be a number in the open interval (0, 1)"),
    (["convex", "--eps", "2"], "--eps must be a number in the open interval (0, 1)"),
    (["convex", "--eps", "1e6"], "--eps must be a number in the open interval (0, 1)"),
    (["convex", "--alphas", "1.5"], "--alphas must be a number in the open interval (0, 1)"),
    (["convex", "--alphas", "0"], "--alphas must be a number in the open interval (0, 1)"),
    (["convex", "--Ks", "-1"], "--Ks must be a non-empty list of integers >= 0"),
    (["convex", "--seed", "-2"], "--seed must be an integer >= 0"),
    (["convex", "--out", "{file}", "--trials", "10"], "--out"),
    # drift
    (["drift", "--paths", "0"], "--paths must be an integer >= 1"),
    (["drift", "--tau-max", "-3"], "--tau-max must be a finite number > 0"),
    (["drift", "--tau-max", "nan"], "--tau-max must be a finite number > 0"),
    (["drift", "--tau-max", "inf"], "--tau-max must be a finite number > 0"),
    (["drift", "--seed", "-1"], "--seed must be an integer >= 0"),
    # gamma-study
    (["gamma-study", "--instances", "0"], "--instances must be an integer >= 1"),
    (["gamma-study", "--gammas", "-1"], "--gammas must be a non-empty list of finite numbers >= 0"),
    (["gamma-study", "--n", "50"], "--n must be an integer in [1, 49]"),
    (["gamma-study", "--d", "1"], "--d must be an integer >= 2"),
    (["gamma-study", "--sigma", "0"], "--sigma must be a finite number > 0"),
    (["gamma-study", "--tol", "0"], "--tol must be a finite number > 0"),
    (["gamma-study", "--lr-factor", "2"], "--lr-factor must be in (0, 2)"),
    (["gamma-study", "--eta", "-1"], "--eta must be a finite number > 0"),
    (["gamma-study", "--max-steps", "0"], "--max-steps must be an integer >= 1"),
    (["gamma-study", "--seed", "-1"], "--seed must be an integer >= 0"),
    # sweep
    (["sweep", "--gammas", "-1"], "--gammas must be a non-empty list of finite numbers >= 0"),
    (["sweep", "--etas", "0"], "--etas must be a non-empty list of finite numbers > 0"),
    (["sweep", "--seeds", "-1"], "--seeds must be a non-empty list of integers >= 0"),
    (["sweep", "--decay-steps", "-5"], "--decay-steps must be a non-empty list of integers >= 0"),
    (["sweep", "--paths", "0"], "--paths must be an integer >= 1"),
    (["sweep", "--workers", "0"], "--workers must be an integer >= 1"),
    (["sweep", "--executor", "bogus"], "executor: expected one of"),
    (["sweep", "--out", "{file}"], "--out"),
    # the problem's options on demo, drift and sweep
    (["demo", "--d", "1"], "--d must be an integer >= 2, got 1"),
    (["demo", "--n", "50"], "--n must be an integer in [1, 49], got 50"),
    (["demo", "--d", "8", "--n", "8"], "--n must be an integer in [1, 7], got 8"),
    (["demo", "--gamma", "-1"], "--gamma must be a finite number >= 0"),
    (["demo", "--gamma", "nan"], "--gamma must be a finite number >= 0"),
    (["demo", "--eta", "0"], "--eta must be a finite number > 0"),
    (["demo", "--eta", "inf"], "--eta must be a finite number > 0"),
    (["demo", "--sigma", "nan"], "--sigma must be a finite number > 0"),
    (["demo", "--sigma", "-0.3"], "--sigma must be a finite number > 0"),
    (["drift", "--d", "3"], "--d must be an integer >= 4"),
    (["drift", "--n", "1"], "--n must be an integer in [2, 49]"),
    (["drift", "--gamma", "0"], "--gamma must be a non-empty list of finite numbers > 0"),
    (["drift", "--gamma", "1", "nan"], "--gamma must be a non-empty list of finite numbers > 0"),
    (["drift", "--eta", "0.02", "-1"], "--eta must be a non-empty list of finite numbers > 0"),
    (["drift", "--quick", "--eta", "0"], "--eta must be a non-empty list of finite numbers > 0"),
    (["drift", "--sigma", "0"], "--sigma must be a finite number > 0"),
    (["sweep", "--d", "0"], "--d must be an integer >= 2"),
    (["sweep", "--n", "50"], "--n must be an integer in [1, 49]"),
    (["sweep", "--sigma", "inf"], "--sigma must be a finite number > 0"),
    (["sweep", "--steps", "0"], "--steps must be an integer >= 1"),
    (["sweep", "--steps", "2.5"], "invalid int value"),
    (["sweep", "--budget", "longest"], "argument --budget: invalid choice: 'longest'"),
    # report
    (["report", "--size", "huge"], "invalid choice"),
    (["report", "--only", "bogus"], "invalid choice"),
    (["report", "--out", "{file}"], "--out"),
    (["report", "--out", "{file}/sub", "--verdicts-only"], "--out: cannot write"),
    (["report", "--data", "{tmp}/nowhere"], "--data"),
    # rate-law, cyclic, discrete-eta, diagonal, two-layer: the configuration's checks name the options
    (["rate-law", "--instances", "0"], "--instances must be an integer in [2, "),
    (["rate-law", "--gammas", "-1"], "--gammas must be a non-empty list of finite numbers > 0"),
    (["rate-law", "--ns", "100"], "--ns must be an integer in [2, 49]"),
    (["rate-law", "--lr-factor", "3"], "--lr-factor must be in (0, 2)"),
    (["rate-law", "--out", "{file}/sub", "--smoke"], "--out: cannot write"),
    # --smoke sets defaults only: options given beside it are validated as given
    (["rate-law", "--smoke", "--gammas", "nan"], "--gammas must be a non-empty list of finite numbers > 0"),
    (["rate-law", "--smoke", "--instances", "1"], "--instances must be an integer in [2, "),
    (["rate-law", "--smoke", "--cap-factor", "1e300"], "--cap-factor must be in [1, 1000]"),
    (["rate-law", "--smoke", "--tol", "1"], "--tol must be in (0, 1)"),
    (["rate-law", "--smoke", "--tol", "nan"], "--tol must be a finite number > 0"),
    (["rate-law", "--w0-norms", "1e6"], "--w0-norms must be in (0, 10]"),
    (["cyclic", "--smoke", "--gamma", "nan"], "--gamma must be a finite number >= 0"),
    (["cyclic", "--smoke", "--sigma", "-1"], "--sigma must be a finite number > 0"),
    (["cyclic", "--steps", "1000000000"], "--steps: 64 SGD paths of 1000000000 steps would take about"),
    (["cyclic", "--eta", "1e6", "--smoke"], "--eta: gradient descent from w0 at eta = 1e+06 diverged"),
    (["discrete-eta", "--smoke", "--etas", "0.02", "nan"], "--etas must be a non-empty list of finite numbers > 0"),
    (["discrete-eta", "--tau-max", "1e12"], "above the cap of 5e+12"),
    (["discrete-eta", "--etas", "0.02", "0.0201"], "--etas must span a factor of at least 1.5"),
    (["discrete-eta", "--etas", "1", "2"], "--tau-max: tau_max / eta^2 = 0.5 steps at eta = 2, fewer than 100; "
                                           "raise --tau-max or lower --etas"),
    (["discrete-eta", "--etas", "1e-9", "2e-9"], "; lower --tau-max or --etas or --paths"),
    (["discrete-eta", "--etas", "0.1", "0.2", "--tau-max", "100"], "--etas: eta lambda_max = "),
    (["diagonal", "--smoke", "--sigma", "1e8"], "; lower --tau-max or --sigma"),
    (["diagonal", "--smoke", "--tau-max", "1e9"], "--tau-max: 9 SGD paths of tau_max / eta^2"),
    (["diagonal", "--smoke", "--init-scale", "1e6"], "--init-scale must be in (0, 10]"),
    # drift-any
    (["drift-any", "--paths", "0"], "--paths must be an integer >= 1, got 0"),
    (["drift-any", "--model", "nosuch"], "--model must be one of ('diagonal3', 'relu') or 'module:function'"),
    (["drift-any", "--lr-factor", "2"], "--lr-factor must be in (0, 2), got 2.0"),
    (["diagonal", "--smoke", "--d", "100000000", "--n", "10"], "--d: a model with D = 200000000 parameters"),
    (["two-layer", "--smoke", "--hidden", "100000000"], "--hidden: a model with D = 3100000000 parameters"),
    (["two-layer", "--smoke", "--d", "100000000"], "--d: a model with D = 500000005 parameters"),
    (["two-layer", "--smoke", "--init-scale", "1e6"], "--init-scale must be in (0, 10]"),
    (["cyclic", "--eta", "0"], "--eta must be a finite number > 0"),
    (["cyclic", "--steps", "0"], "--steps must be an integer >= 20"),
    (["cyclic", "--factor", "2"], "--factor must be a number in (0, 1]"),
    (["cyclic", "--out", "{file}", "--smoke"], "--out"),
    (["discrete-eta", "--etas", "0"], "--etas must be a non-empty list of finite numbers > 0"),
    (["discrete-eta", "--tau-max", "-1"], "--tau-max must be a finite number > 0"),
    (["diagonal", "--n", "100"], "--n must be an integer in [1, 39]"),
    (["diagonal", "--sparsity", "0"], "--sparsity must be an integer in [1, 40]"),
    (["diagonal", "--init-scale", "0"], "--init-scale must be a finite number > 0"),
    (["diagonal", "--out", "{file}/sub", "--smoke"], "--out: cannot write"),
    (["two-layer", "--hidden", "0"], "--hidden must be an integer >= 1"),
    (["two-layer", "--paths", "0"], "--paths must be an integer >= 1"),
    (["two-layer", "--out", "{file}/sub", "--smoke"], "--out: cannot write"),
    # empirics
    (["empirics", "main", "--out", "{tmp}/run", "--set", "widht=2"], "unknown setting 'widht'"),
    (["empirics", "main", "--out", "{tmp}/run", "--set", "epochs=many"], "epochs"),
    (["empirics", "main", "--out", "{tmp}/run", "--set", "width"], "expected KEY=VALUE"),
    (["empirics", "main", "--out", "{tmp}/run", "--threads", "0"], "--threads"),
    (["empirics", "subpaths", "--out", "{tmp}/missing"], "config.json"),
    (["empirics", "figures", "--out", "{tmp}/missing"], "result.json"),
    (["empirics", "profile", "nope", "--out", "{tmp}/run"], "profile: expected one of"),
    (["empirics", "profile", "quick"], "--out"),
    (["empirics", "nope"], "invalid choice"),
]


@pytest.mark.parametrize("argv, text", CASES, ids=[" ".join(c[0]) or "(none)" for c in CASES])
def test_bad_input_exits_2_with_one_line(argv, text, capsys, tmp_path, a_file):
    argv = [a.format(file=a_file, tmp=tmp_path) for a in argv]
    t0 = time.perf_counter()
    code, lines, err = run(argv, capsys)
    assert code == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert text in lines[0], lines[0]
    assert time.perf_counter() - t0 < 30          # refused before any long computation


def test_at_least_forty_cases_over_every_subcommand():
    import argparse

    from lrdecay.cli import build_parser

    assert len(CASES) >= 40
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    commands = {c[0][0] for c in CASES if c[0]}
    assert commands >= set(sub.choices), sorted(set(sub.choices) - commands)


def test_unreachable_dask_scheduler_fails_within_seconds(capsys, tmp_path):
    t0 = time.perf_counter()
    code, lines, err = run(["sweep", "--out", tmp_path, "--executor", "tcp://127.0.0.1:9", "--gammas", "0",
                            "--decay-steps", "0", "--seeds", "0", "--no-progress"], capsys)
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert "tcp://127.0.0.1:9" in lines[0] and "Dask scheduler" in lines[0]
    assert time.perf_counter() - t0 < 20


def test_second_writer_on_one_output_directory_is_refused(capsys, tmp_path):
    from tests.lock_helpers import held_by_another_process

    with held_by_another_process(tmp_path / "out") as pid:
        code, lines, err = run(["convex", "--out", tmp_path / "out", "--trials", "10", "--no-figure"], capsys)
    assert code == 2 and len(lines) == 1, err
    assert f"is in use by pid {pid}" in lines[0]
    assert main(["convex", "--out", str(tmp_path / "out"), "--trials", "10", "--no-figure"]) == 0   # free again


def test_damaged_result_file_is_named(capsys, tmp_path):
    from lrdecay.theory.studies.convex_mc import ConvexStudy

    assert main(["convex", "--out", str(tmp_path), "--trials", "10", "--no-figure"]) == 0
    (tmp_path / "convex.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"convex\.npz: damaged result file"):
        ConvexStudy.load(tmp_path / "convex.npz")


# --smoke and explicit options: --smoke replaces the defaults, an option given on the command line wins
SMOKE_PRECEDENCE = [
    (["rate-law", "--smoke", "--gammas", "3", "4", "--instances", "3"],
     "lrdecay.theory.studies.rate_law", "RateLawConfig", dict(gammas=(3.0, 4.0), n_instances=3)),
    (["cyclic", "--smoke", "--paths", "5", "--steps", "400"],
     "lrdecay.theory.studies.cyclic", "CyclicConfig", dict(paths=5, total_steps=400)),
    (["discrete-eta", "--smoke", "--etas", "0.01", "0.03"],
     "lrdecay.theory.studies.discrete_eta", "DiscreteEtaConfig", dict(etas=(0.01, 0.03))),
    (["diagonal", "--smoke", "--paths", "7"], "lrdecay.theory.studies.diagonal", "DiagonalConfig", dict(paths=7)),
    (["two-layer", "--smoke", "--hidden", "4", "--tau-max", "3"],
     "lrdecay.theory.studies.two_layer", "TwoLayerConfig", dict(hidden=4, tau_max=3.0)),
]


@pytest.mark.parametrize("argv, module, cls, given", SMOKE_PRECEDENCE, ids=[" ".join(c[0]) for c in SMOKE_PRECEDENCE])
def test_options_given_with_smoke_win_over_it(argv, module, cls, given):
    import importlib
    from dataclasses import replace

    from lrdecay.cli import build_parser
    from lrdecay.theory_commands import config_from

    config = getattr(importlib.import_module(module), cls)
    args = build_parser().parse_args(argv)
    assert config_from(args) == replace(config().smoke(), **given)
    # without --smoke the same options apply to the defaults
    args = build_parser().parse_args([a for a in argv if a != "--smoke"])
    assert config_from(args) == replace(config(), **given)


def test_smoke_help_states_the_rule():
    from lrdecay.cli import build_parser

    import argparse
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name in ("rate-law", "cyclic", "discrete-eta", "diagonal", "two-layer"):
        text = " ".join(sub.choices[name].format_help().split())
        assert "options given on the command line win over --smoke" in text, name


@pytest.mark.parametrize("command, resumable", [("rate-law", False), ("cyclic", False), ("discrete-eta", False),
                                                ("diagonal", False), ("two-layer", False), ("demo", False),
                                                ("sweep", True), ("report", True)])
def test_interruption_says_truthfully_whether_work_was_kept(command, resumable, capsys, tmp_path, monkeypatch):
    from lrdecay import cli

    real = cli.build_parser

    def parser():
        p = real()
        sub = next(a for a in p._actions if isinstance(a, __import__("argparse")._SubParsersAction))

        def interrupted(args):
            raise KeyboardInterrupt
        sub.choices[command].set_defaults(func=interrupted)
        return p
    monkeypatch.setattr(cli, "build_parser", parser)
    code, lines, err = run([command, "--out", tmp_path / "o"], capsys)
    assert code == 130 and len(lines) == 1, err
    if resumable:
        assert "finished work is saved; run the same command again to resume" in lines[0]
    else:
        assert "nothing was saved" in lines[0] and "resume" not in lines[0]


def test_a_run_with_diverged_paths_exits_1_naming_the_option(capsys, tmp_path, monkeypatch):
    # cyclic with one path marked diverged (the study itself is the smoke run): the files are kept for
    # inspection, and the run is a failure, not a result
    import lrdecay.theory.studies.cyclic as cy

    st = cy.run_cyclic_study(cy.CyclicConfig().smoke())
    st.comparison.sim.status[1] = "diverged"
    monkeypatch.setattr(cy, "run_cyclic_study", lambda cfg, progress=True: st)
    code, lines, err = run(["cyclic", "--smoke", "--no-progress", "--out", tmp_path / "o"], capsys)
    assert code == 1, err
    assert lines == [f"lrdecay cyclic: error: 1 of {st.comparison.sim.n_paths} SGD paths diverged (their results "
                     "are not measurements); lower --eta"]
    assert (tmp_path / "o" / "cyclic.npz").exists()
