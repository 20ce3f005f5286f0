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
    (["convex", "--eps", "0"], "--eps must be a finite number > 0"),
    (["convex", "--eps", "nan"], "--eps must be a finite number > 0"),
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
    from theory.io import DirectoryLock

    with DirectoryLock(tmp_path / "out"):
        code, lines, err = run(["convex", "--out", tmp_path / "out", "--trials", "10", "--no-figure"], capsys)
    assert code == 2 and len(lines) == 1, err
    assert "is in use by pid" in lines[0]
    assert main(["convex", "--out", str(tmp_path / "out"), "--trials", "10", "--no-figure"]) == 0   # free again


def test_damaged_result_file_is_named(capsys, tmp_path):
    from theory.studies.convex_mc import ConvexStudy

    assert main(["convex", "--out", str(tmp_path), "--trials", "10", "--no-figure"]) == 0
    (tmp_path / "convex.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"convex\.npz: damaged result file"):
        ConvexStudy.load(tmp_path / "convex.npz")
