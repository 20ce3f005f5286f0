"""The study table (lrdecay.studies_table): every row's options are fields of its configuration, a command with
no options runs the configuration's defaults, its help shows them, and the report's sizes are configuration fields
that carry each study job's seed."""
from __future__ import annotations

import argparse
from dataclasses import fields

import numpy as np
import pytest

from lrdecay.cli import build_parser
from lrdecay.report.jobs import JOBS, SIZES
from lrdecay.studies_table import JOB_STUDIES, STUDIES
from lrdecay.theory_commands import config_from

COMMANDS = [s for s in STUDIES if s.command]


def _subparser(command):
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


@pytest.mark.parametrize("study", STUDIES, ids=lambda s: s.key)
def test_every_option_sets_a_field_once(study):
    names = {f.name for f in fields(study.config_class())}
    set_by = [o.field for o in study.options]
    assert set(set_by) <= names and len(set_by) == len(set(set_by))
    assert len({o.name for o in study.options}) == len(study.options)


@pytest.mark.parametrize("study", COMMANDS, ids=lambda s: s.command)
def test_a_command_without_options_runs_the_defaults_and_its_help_shows_them(study):
    args = build_parser().parse_args([study.command])
    assert config_from(args) == study.config_class()()
    assert args.out == f"results/{study.key}" or study.out == args.out
    if study.preset:
        preset = build_parser().parse_args([study.command, study.preset.flag])
        assert config_from(preset) == getattr(study.config_class()(), study.preset.method)()
    helps = {a.dest: a.help for a in _subparser(study.command)._actions}
    c = study.config_class()()
    for o in study.options:
        v = o.shown(c) if o.shown else getattr(c, o.field)
        first = v[0] if isinstance(v, tuple) else v
        shown = "none" if first is None else (f"{first:g}" if isinstance(first, float) else str(first))
        assert f"(default: {shown}" in helps[o.field], (o.name, helps[o.field])


def test_options_reach_the_configuration_with_their_types():
    args = build_parser().parse_args(["convex", "--Ks", "0", "3", "--alphas", "0.2", "--eps", "0.05", "--trials", "7"])
    cfg = config_from(args)
    assert (cfg.Ks, cfg.alphas, cfg.eps, cfg.trials) == ((0, 3), (0.2,), 0.05, 7)
    assert all(isinstance(k, int) for k in cfg.Ks)
    args = build_parser().parse_args(["demo", "--gamma", "2", "--quick"])
    assert config_from(args).gammas == (2.0, 0.0)
    assert config_from(build_parser().parse_args(["demo", "--gamma", "0"])).gammas == (0.0,)
    args = build_parser().parse_args(["gamma-study", "--full", "--instances", "3"])
    assert (config_from(args).n_instances, config_from(args).max_steps) == (3, 1_000_000)


def test_the_reports_study_jobs_are_the_tables_rows_in_order():
    assert list(JOBS) == ["core", "symbolic", *[s.key for s in JOB_STUDIES], "empirics", "vgg_long"]
    assert [s.key for s in JOB_STUDIES] == ["demo", "drift", "convex", "landscape", "gamma", "rate_law", "cyclic",
                                           "discrete_eta", "diagonal", "two_layer", "relu_drift", "diagonal3_drift"]


@pytest.mark.parametrize("size", sorted(SIZES))
def test_every_study_jobs_size_holds_its_seed_and_only_fields(size):
    for s in JOB_STUDIES:
        cfg = dict(SIZES[size][s.key])
        assert cfg.get("seed") == 0, s.key
        preset = cfg.pop("preset", None)
        assert set(cfg) <= {f.name for f in fields(s.config_class())}, s.key
        s.configure(preset, cfg).validate()


def test_the_default_sizes_are_the_configurations_the_report_ran_before():
    from dataclasses import replace

    from lrdecay.theory.studies.convex_mc import ConvexConfig
    from lrdecay.theory.studies.decay import DemoConfig
    from lrdecay.theory.studies.gamma import GammaConfig
    from lrdecay.theory.studies.landscape import LandscapeConfig
    from lrdecay.theory.studies.rate_law import RateLawConfig

    def configured(key, size="default"):
        cfg = dict(SIZES[size][key])
        return next(s for s in JOB_STUDIES if s.key == key).configure(cfg.pop("preset", None), cfg)
    assert configured("convex") == ConvexConfig(trials=10000, seed=0, eps=0.1)
    assert configured("landscape") == LandscapeConfig(grid=241, sgd_steps=30000)
    assert configured("gamma") == GammaConfig(n_instances=40, seed=0)
    assert configured("demo") == replace(DemoConfig(), seed=0, paths=4)
    assert configured("demo", "smoke") == replace(DemoConfig(), seed=0, paths=2).quick()
    assert configured("rate_law", "smoke") == RateLawConfig().smoke()


# ----------------------------------------------------------------- the keyword studies' configurations
def test_convex_keywords_and_configuration_give_the_same_study():
    from lrdecay.theory.studies.convex_mc import ConvexConfig, run_convex_study

    a = run_convex_study(trials=40, seed=3, alphas=(0.1,), Ks=(0, 1))
    b = run_convex_study(ConvexConfig(trials=40, seed=3, alphas=(0.1,), Ks=(0, 1)))
    np.testing.assert_array_equal(a.draws, b.draws)
    assert a.cells == b.cells and a.config["seed"] == 3 and a.config["trials"] == 40


@pytest.mark.parametrize("module, cls, kwargs, match", [
    ("convex_mc", "ConvexConfig", dict(trials=0), r"trials must be an integer >= 1"),
    ("convex_mc", "ConvexConfig", dict(alphas=(0.5, 1.0)), r"alphas must be a number in the open interval \(0, 1\)"),
    ("landscape", "LandscapeConfig", dict(grid=2), r"grid must be an integer >= 3"),
    ("landscape", "LandscapeConfig", dict(seed=-1), r"seed must be an integer >= 0"),
    ("gamma", "GammaConfig", dict(lr_factor=2.5), r"lr_factor must be in \(0, 2\)"),
])
def test_the_keyword_studies_configurations_refuse_bad_fields(module, cls, kwargs, match):
    import importlib

    config = getattr(importlib.import_module(f"lrdecay.theory.studies.{module}"), cls)
    with pytest.raises(ValueError, match=match):
        config(**kwargs).validate()


def test_gamma_keywords_and_configuration_give_the_same_study():
    from lrdecay.theory.studies.gamma import GammaConfig, run_gamma_study

    kw = dict(n_instances=2, d=12, n=4, max_steps=300, record_every=50, seed=1)
    a = run_gamma_study([0.0, 1.0], progress=False, **kw)
    b = run_gamma_study(GammaConfig(gammas=(0.0, 1.0), **kw), progress=False)
    np.testing.assert_array_equal(a.steps, b.steps)
    np.testing.assert_array_equal(a.rec_rel_dist_M, b.rec_rel_dist_M)
    assert {k: v for k, v in a.config.items() if k != "engine_message"} == \
        {k: v for k, v in b.config.items() if k != "engine_message"}
