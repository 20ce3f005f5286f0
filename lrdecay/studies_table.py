"""The theory studies, each declared once: its command, configuration, run function, result file and figures.

A :class:`Study` row names its configuration class and run function in :mod:`lrdecay.theory.studies` and its
figure modules in :mod:`lrdecay.paper_figures` by module and attribute (imported when used, so that
``lrdecay --help`` stays fast). The command line (:mod:`lrdecay.theory_commands`) builds each subcommand's
options from the row's :class:`Option` list: the type, the number of values and the default (with its preset's,
e.g. ``--smoke``) come from the configuration's fields. The report (:mod:`lrdecay.report.jobs`) runs the rows
that name a report job on its sizes, which are configuration fields too.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Callable

from lrdecay.theory.validation import integer, nonneg

STUDIES_PACKAGE = "lrdecay.theory.studies"
FIGURES_PACKAGE = "lrdecay.paper_figures"


def _attribute(package: str, spec: str):
    """``module:name`` of ``package``, imported now."""
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(f"{package}.{module}"), name)


@dataclass(frozen=True)
class Option:
    """A command-line option that sets the configuration field ``field``.

    ``help`` says what it is (formatted with ``c``, the default configuration); the default is added from the
    configuration. ``flag`` defaults to ``--field-name``; ``many`` (one or more values) to whether the field holds
    a tuple. ``check(flag, value)`` runs before the configuration's own checks where the option's message must
    differ from the field's; ``convert`` maps the value given to the field's; ``shown(c)`` is the default as the
    help shows it; ``choices`` names an attribute of the configuration's module listing the accepted values."""

    field: str
    help: str
    flag: str = ""
    many: bool | None = None
    check: Callable | None = None
    convert: Callable | None = None
    shown: Callable | None = None
    choices: str = ""

    @property
    def name(self) -> str:
        return self.flag or "--" + self.field.replace("_", "-")


@dataclass(frozen=True)
class Figure:
    """A figure ``figures/<stem>.{png,pdf}`` drawn by ``make_figure`` of the paper_figures module ``module`` from
    ``data(result)`` (default: the result itself); ``in_cli=False``: drawn by the report only."""

    module: str
    stem: str
    data: Callable = None
    in_cli: bool = True

    def draw(self, result, out: Path) -> list[Path]:
        make_figure = _attribute(FIGURES_PACKAGE, f"{self.module}:make_figure")
        return make_figure(self.data(result) if self.data else result, out / "figures" / self.stem)


@dataclass(frozen=True)
class Preset:
    """A flag (``--smoke``, ``--quick``, ``--full``) that replaces the defaults by the configuration method
    ``method``'s; options given beside it win over it. ``help`` is formatted with ``c`` and ``s`` (the default
    and the preset configuration)."""

    flag: str
    method: str
    help: str


SMOKE = Preset("--smoke", "smoke", "a tiny run of a few seconds: smaller defaults for every option not given "
                                   "(options given on the command line win over --smoke)")


@dataclass(frozen=True)
class Study:
    """One study: ``key`` (its report job and default output folder ``results/<key>``), ``command`` (its
    subcommand; None: report only), ``job`` (whether the report runs it), ``config`` and ``run`` (``module:name``
    in :mod:`lrdecay.theory.studies`; ``run(config, progress=...)`` returns a result), ``result`` (its file
    under the output folder; ``""``: the result saves as a folder) and ``figures``.

    Optional: ``show(result, config)`` prints it (default: its table); ``failed(result, config)`` returns
    ``(what diverged, the option to lower)`` or None; ``prepare(config)`` checks more before the output folder is
    made."""

    key: str
    command: str | None
    config: str
    run: str
    result: str
    figures: tuple = ()
    job: bool = True
    help: str = ""
    description: str | Callable = ""
    options: tuple = ()
    preset: Preset | None = None
    out: str = ""
    progress: bool = True
    no_figure: bool = False
    show: Callable | None = None
    failed: Callable | None = None
    prepare: Callable | None = None

    def config_class(self):
        return _attribute(STUDIES_PACKAGE, self.config)

    def default_out(self) -> str:
        return self.out or f"results/{self.key}"

    def configure(self, preset: bool | str | None = None, given: dict | None = None):
        """The default configuration with the fields ``given`` replaced (lists as tuples); not validated.
        ``preset``: the name of a configuration method applied first, or True for the row's preset."""
        base = self.config_class()()
        if preset:
            base = getattr(base, preset if isinstance(preset, str) else self.preset.method)()
        return replace(base, **{k: tuple(v) if isinstance(v, list) else v for k, v in (given or {}).items()})

    def field_names(self) -> set[str]:
        return {f.name for f in fields(self.config_class())}

    def execute(self, config, progress: bool = True):
        fn = _attribute(STUDIES_PACKAGE, self.run)
        return fn(config, progress=progress) if self.progress else fn(config)

    def print_result(self, result, config) -> None:
        if self.show:
            self.show(result, config)
        else:
            print(result.table())

    def save(self, result, out: Path, *, figures: bool = True, report: bool = False) -> list[Path]:
        """Save the result under ``out`` and draw its figures (the report's too when ``report``) from it; the
        files written."""
        saved = result.save(out / self.result if self.result else out)
        paths = list(saved) if isinstance(saved, (list, tuple)) else [saved]
        for f in self.figures if figures else ():
            if f.in_cli or report:
                paths += f.draw(result, out)
        return paths


# --------------------------------------------------------------------------------------------------
# What the rows print and how they judge a run's paths
# --------------------------------------------------------------------------------------------------

def _show_demo(res, cfg) -> None:
    for gamma, sw in res.sweeps.items():
        p = sw.problem
        print(f"\ngamma = {gamma:g}  (d = {p.d}, n = {p.n}, sigma = {p.sigma}, eta = {cfg.eta}, "
              f"decay to eta x {cfg.factor}, {cfg.paths} paths per row)")
        print(sw.table())
    print(f"\nequal budget of {cfg.total_steps} steps, gamma = {res.schedules.problem.gamma:g} "
          f"(eta = {cfg.eta} decayed to x{cfg.factor}):")
    print(res.schedules.table())


def _show_gamma(res, cfg) -> None:
    c = res.config
    print(f"\nGamma study: d = {c['d']}, n = {c['n']}, ||alpha*|| = {c['alpha_norm']:g}, ||w0|| = {c['w0_norm']:g}, "
          f"sigma = {c['sigma']:g}, {c['n_instances']} instances per gamma, seed {c['seed']}; "
          f"full-batch label-noise SGD at constant eta ({c['lr_rule']}, lr_factor = {c['lr_factor']:g}); "
          f"converged: ||retract(w) - w_mn|| / ||w_mn|| < {c['tol']:g} within {c['max_steps']} steps "
          f"(checked every {c['record_every']}); {res.wall_time:.1f} s")
    print(res.legend())
    print(res.table())
    print(res.verdict())
    print(f"engine: {c['engine_message']}")


def _show_convex(st, cfg) -> None:
    c = st.config
    pct = int(round(100 * c["confidence"]))
    print(f"Proposition 1 (Nakkiran 2020): x uniform on {{e1, e2}}, n = 3, beta* = 100 alpha^(-1/2) (1, 1), "
          f"start 0, eps = {c['eps']:g}, eta = 1/gamma_1; {c['trials']} draws, seed {c['seed']}")
    print(f"P(sep): fraction of draws with L_D(GF) >= 1.5 (1 - alpha) eps and L_D(AGD) <= 0.75 eps (1 + 1e-6), "
          f"exact binomial {pct}% CI (Proposition 1: P = 3/4 for K >= 1). On the 2-1 draws: ratio L_D(GF)/L_D(AGD), "
          "L_D/eps of both, the bounds 1.5 (1 - alpha) and 0.75 + tau_K/eps, fraction where Lemma 2's conditions "
          "and both bounds hold. On the same-x draws: fraction with equal test loss and with equal end point. "
          "|cf-num|: largest closed-form vs numerical end-point gap (relative).")
    print(st.table())
    print()
    print("Lemma 2 on a 3-D instance (gamma = (1, 0.7, 0.25), lambda = (0.4, 1, 0.8), |S| = 1, alpha = 0.1): "
          "annealed-GD test loss -> eps lambda_1/gamma_1 = 0.4 eps as K grows; excess = L_AGD - 0.4 eps <= tau_K "
          "(Lemma 2's tail with its constant); 'paper ok': excess <= the paper's exp(-Omega(K)) taken literally")
    print(st.k_sweep_table())


def _convex_description(c) -> str:
    from lrdecay.theory.convex import NORMALIZATION

    return ("Monte Carlo of Proposition 1 of Nakkiran (2020) over sample draws (probability of the factor-2 "
            "separation with a Clopper-Pearson interval, test-loss ratio for several alpha and K), Lemma 2 on a 3-D "
            "instance for several K, and Figure 1. Writes convex.npz and figures/nakkiran_fig1.{png,pdf} under "
            "--out. Normalization: " + NORMALIZATION)


def _failed(count: Callable, option: str) -> Callable:
    """``failed(result, config)`` from ``count(result, config) -> (diverged, of, unit)``."""
    def failed(res, cfg):
        n_div, total, unit = count(res, cfg)
        return (f"{n_div} of {total} {unit}", option) if n_div else None
    return failed


def _problem(n_min: int = 1, d_min: int = 2) -> tuple[Option, ...]:
    """``--d``, ``--n`` and ``--sigma`` of the random problem (:meth:`lrdecay.theory.problem.Problem.generate`)."""
    return (Option("d", f"dimension, >= {d_min}"), Option("n", f"training points, {n_min} <= n < d"),
            Option("sigma", "label-noise level > 0"))


def _model_options(extra: Option) -> tuple[Option, ...]:
    return (Option("d", "dimension"), Option("n", "training points, 1 <= n < d"),
            Option("init_scale", "scale of the start, in (0, 10]"), Option("sigma", "label-noise level"),
            Option("tau_max", "Phase II drift time"), Option("paths", "paths per decay time"),
            Option("seed", "instance and noise seed"), extra)


def _sweeps(res) -> list:
    return list(res.sweeps.values())


def _main_sweep(res):
    return res.sweeps[1.0]


# --------------------------------------------------------------------------------------------------
# The table: report jobs in the report's order, then the commands without one
# --------------------------------------------------------------------------------------------------

STUDIES = (
    Study("demo", "demo", "decay:DemoConfig", "decay:run_demo", "",
          (Figure("decay_curve", "demo_decay", _sweeps), Figure("three_phases", "three_phases", _main_sweep, False)),
          help="late-decay sweep on the nonlinear model for gamma = 1 (or --gamma) and gamma = 0",
          description="Label-noise SGD on a random problem (by default d = {c.d}, n = {c.n}, sigma = {c.sigma}, "
                      "eta = {c.eta}) decayed to eta x {c.factor} at several steps, every run with the same step "
                      "budget: the final test loss per decay step beside the min-norm test loss, for gamma (default "
                      "{c.gammas[0]:g}) and gamma = 0 (where the decay time should not matter), and schedules at an "
                      "equal step budget. Writes decay_sweep_gamma<g>.npz, schedules.npz, demo.json and "
                      "figures/demo_decay.{{png,pdf}} under --out.",
          options=(Option("seed", "problem and noise seed"), Option("paths", "paths per decay step"), *_problem(),
                   Option("gammas", "gamma >= 0 of the model, run beside gamma = 0", flag="--gamma", many=False,
                          check=nonneg, convert=lambda g: (g, 0.0) if g else (0.0,), shown=lambda c: c.gammas[0]),
                   Option("eta", "the large learning rate > 0, decayed to eta x {c.factor}")),
          preset=Preset("--quick", "quick", "shorter runs (a few seconds)"), show=_show_demo),
    Study("drift", "drift", "drift:DriftConfig", "drift:run_drift_study", "", (Figure("drift_vs_sgd", "drift_vs_sgd"),),
          help="quasistatic drift ODE against label-noise SGD",
          description="For every gamma (default 0.5 1 2) and eta (default 0.02 0.01), SGD paths and the drift ODE "
                      "dw/dtau = -(a/4) P_T grad tr Hess L_n start at the same point of M; reports the largest gap "
                      "in mean ||w|| (relative to the distance travelled) and the measured/predicted train-loss "
                      "plateau, with breakdown cases (large eta, minibatch b = 2, n = 3, gamma = 0.25). Writes "
                      "drift_<case>.npz, drift_summary.json and figures/drift_vs_sgd.{{png,pdf}} under --out.",
          options=(Option("seed", "problem and noise seed"), Option("paths", "SGD paths per case"),
                   Option("tau_max", "drift time tau = eta^2 k"), *_problem(n_min=2, d_min=4),
                   Option("gammas", "gammas > 0 of the main cases", flag="--gamma"),
                   Option("etas", "learning rates > 0 of the main cases", flag="--eta")),
          preset=Preset("--quick", "quick", "one learning rate (0.02) per gamma (--eta wins over it)")),
    Study("convex", "convex", "convex_mc:ConvexConfig", "convex_mc:run_convex_study", "convex.npz",
          (Figure("nakkiran_fig1", "nakkiran_fig1"),),
          help="Nakkiran (2020) convex example: Proposition 1 Monte Carlo, Lemma 2 and Figure 1",
          description=_convex_description,
          options=(Option("seed", "seed of the sample draws"), Option("trials", "number of sample draws, >= 1"),
                   Option("eps", "early-stopping train loss eps, in the open interval (0, 1)"),
                   Option("alphas", "values of alpha in (0, 1)"), Option("Ks", "numbers of large steps K >= 0")),
          progress=False, no_figure=True, show=_show_convex),
    Study("landscape", None, "landscape:LandscapeConfig", "landscape:run_landscape_study", "landscape.npz",
          (Figure("nonlinear_landscape", "nonlinear_landscape"),), progress=False, show=lambda res, cfg: None),
    Study("gamma", "gamma-study", "gamma:GammaConfig", "gamma:run_gamma_study", "gamma_study.npz",
          (Figure("gamma_convergence", "gamma_convergence"),), out="results/gamma_study",
          help="convergence of large-LR label-noise SGD to the min-norm solution against gamma",
          description="For gamma on a grid and many random instances: steps and tau = eta^2 k for label-noise SGD "
                      "at a large constant learning rate to reach w_mn (after retraction onto M), the fraction "
                      "that converge against the bound 1 - exp(-0.1 gamma^2), and the flattest-point condition. "
                      "Writes gamma_study.npz and figures/gamma_convergence.{{png,pdf}} under --out.",
          options=(Option("seed", "instance and noise seed", check=lambda f, v: integer(f, v, 0)),
                   Option("n_instances", "random instances per gamma", flag="--instances",
                          check=lambda f, v: integer(f, v, 1)),
                   Option("gammas", "gamma grid"), Option("d", "dimension"), Option("n", "training points, 1 <= n < d"),
                   Option("sigma", "label-noise level"),
                   Option("lr_factor", "eta = lr_factor / lambda_max at the landing estimate"),
                   Option("eta", "force one learning rate for every pair"),
                   Option("tol", "relative distance to w_mn after retraction onto M"),
                   Option("max_steps", "step budget")),
          preset=Preset("--full", "full", "thorough run: {s.n_instances} instances, max_steps {s.max_steps}"),
          no_figure=True, show=_show_gamma),
    Study("rate_law", "rate-law", "rate_law:RateLawConfig", "rate_law:run_rate_law", "rate_law.npz",
          (Figure("rate_law", "rate_law"),),
          help="Phase II drift time to w_mn against gamma, ||w0|| and n/d: SGD against the drift ODE, fitted law",
          description="For each cell (gamma, ||w0||, n) and many instances: label-noise SGD from the landing point "
                      "until it reaches w_mn (censored at a cap; Kaplan-Meier medians), the drift ODE's time (eta -> 0 "
                      "and finite eta), and the law tau = C (ln(d0/tol)/kappa)^p fitted with censoring and bootstrap "
                      "intervals. Writes rate_law.npz and figures/rate_law.{{png,pdf}} under --out.",
          options=(Option("gammas", "gamma grid, each > 0"), Option("w0_norms", "start norms ||w0||, each in (0, 10]"),
                   Option("ns", "numbers of samples n, each in [2, d - 1]"), Option("d", "dimension"),
                   Option("n_instances", "instances per cell", flag="--instances"),
                   Option("sigma", "label-noise level"),
                   Option("lr_factor", "eta = lr_factor / lambda_max at retract(w0), in (0, 2)"),
                   Option("tol", "relative distance to w_mn on M, in (0, 1)"),
                   Option("cap_factor", "SGD step cap as a multiple of the predicted steps, in [1, 1000]"),
                   Option("bootstrap", "bootstrap resamples"), Option("seed", "instance and noise seed")),
          preset=SMOKE, failed=_failed(lambda r, c: (int((r.status == "diverged").sum()), len(r.status), "SGD paths"),
                                       "--lr-factor")),
    Study("cyclic", "cyclic", "cyclic:CyclicConfig", "cyclic:run_cyclic_study", "cyclic.npz",
          (Figure("cyclic_schedules", "cyclic_schedules"),),
          help="cyclic schedules beside constant, step, multistep, cosine and WSD at an equal budget",
          description="Label-noise SGD from the landing point under eight schedules with the same step budget; final "
                      "test loss, distance to w_mn on M, and the drift ODE at each schedule's drift budget "
                      "tau_S = sum eta_k^2. The peak rate must keep gradient descent stable at the landing point "
                      "(eta lambda_max < 2); a run in which any path diverges exits with status 1. Writes cyclic.npz "
                      "and figures/cyclic_schedules.{{png,pdf}} under --out.",
          options=(Option("eta", "peak learning rate, eta lambda_max < 2 at the landing point"),
                   Option("total_steps", "step budget", flag="--steps"),
                   Option("cycles", "cycles of the cyclic schedules"),
                   Option("factor", "decay factor / eta_min ratio, in (0, 1]"), Option("gamma", "gamma"),
                   Option("sigma", "label-noise level"), Option("paths", "paths per schedule"),
                   Option("seed", "problem and noise seed")),
          preset=SMOKE, failed=_failed(lambda st, c: (int(st.comparison.sim.diverged.sum()),
                                                      st.comparison.sim.n_paths, "SGD paths"), "--eta")),
    Study("discrete_eta", "discrete-eta", "discrete_eta:DiscreteEtaConfig", "discrete_eta:run_discrete_eta",
          "discrete_eta.npz", (Figure("discrete_eta", "discrete_eta"),),
          help="drift and plateau errors of the quasistatic picture against eta, with fitted slopes",
          description="For each eta, label-noise SGD paths against the drift ODE (eta -> 0 and finite eta) from the "
                      "same point of M: signed drift error and plateau error, fitted |e| = c eta^p with bootstrap "
                      "intervals. Writes discrete_eta.npz and figures/discrete_eta.{{png,pdf}} under --out.",
          options=(Option("etas", "learning rates, at least two, increasing, eta lambda_max < 2"),
                   Option("tau_max", "drift time tau = eta^2 k"), Option("paths", "SGD paths per eta, >= 2"),
                   Option("gamma", "gamma"), Option("sigma", "label-noise level"),
                   Option("seed", "problem and noise seed")),
          preset=SMOKE, failed=_failed(lambda st, c: (sum(int(v["diverged"]) for v in st.comparisons.values()),
                                                      len(c.etas), "learning rates"), "--etas")),
    Study("diagonal", "diagonal", "diagonal:DiagonalConfig", "diagonal:run_diagonal_study", "diagonal.npz",
          (Figure("diagonal", "diagonal"),),
          help="diagonal linear network: label-noise SGD drifts to the min-l1 interpolator; late decay",
          description="beta = u*u - v*v from u0 = v0 = init_scale: label-noise SGD against the drift ODE, the l1 "
                      "interpolator (linprog), and decay sweeps for a sparse target and a row-space target. A run "
                      "in which any path diverges exits with status 1. Writes diagonal.npz and "
                      "figures/diagonal.{{png,pdf}} under --out.",
          options=_model_options(Option("sparsity", "non-zeros of the sparse target")), preset=SMOKE,
          failed=_failed(lambda st, c: (sum(int(x.sim.diverged.sum()) for x in st.cases.values()),
                                        sum(x.sim.n_paths for x in st.cases.values()), "SGD paths"), "--sigma")),
    Study("two_layer", "two-layer", "two_layer:TwoLayerConfig", "two_layer:run_two_layer_study", "two_layer.npz",
          (Figure("two_layer", "two_layer"),),
          help="two-layer linear network: label-noise SGD drifts to X-balance; late decay",
          description="beta = W1^T w2: label-noise SGD against the drift ODE, the trace minimum 2||y|| ||X||_F / n, "
                      "the invariant kernel part of W1 and a decay sweep. A run in which any path diverges exits "
                      "with status 1. Writes two_layer.npz and figures/two_layer.{{png,pdf}} under --out.",
          options=_model_options(Option("hidden", "hidden width h")), preset=SMOKE,
          failed=_failed(lambda st, c: (int(st.study.sim.diverged.sum()), st.study.sim.n_paths, "SGD paths"),
                         "--sigma")),
    Study("sweep", "sweep", "grid:GridConfig", "grid:run_grid", "sweep_results.npz", job=False,
          help="grid over (gamma, eta, decay step, seed), local processes or Dask",
          description="Each grid point generates its problem from its seed, runs label-noise SGD decayed at its "
                      "decay step and records the final test and train loss with the min-norm reference. Finished "
                      "tasks are cached under <out>/cache; a killed sweep resumes where it stopped. Writes "
                      "sweep_results.npz and sweep_results.csv (one row per task) under --out.",
          options=(Option("gammas", "gamma values"), Option("etas", "learning rates"),
                   Option("decay_steps", "decay steps"), Option("seeds", "problem seeds"),
                   Option("paths", "SGD paths per task"), *_problem(),
                   Option("phase3_steps", "steps after the latest decay step (--budget equal) or after each task's "
                                          "own decay step (--budget fixed-after-decay)", flag="--steps"),
                   Option("budget", "equal: every task runs max(decay steps) + STEPS steps, so the decay time is the "
                                    "only difference between the tasks of one gamma, eta and seed; fixed-after-decay: "
                                    "each task runs its decay step + STEPS steps, so a later decay also trains longer",
                          choices="BUDGETS"))),
    Study("drift_any", "drift-any", "drift_any:DriftAnyConfig", "drift_any:run_drift_any", "drift_any.npz",
          (Figure("drift_any", "drift_any"),), job=False,
          help="any model f(theta, X): label-noise SGD against its drift ODE (automatic differentiation)",
          description="A built-in example (relu: two-layer ReLU teacher-student; diagonal3: depth-3 diagonal "
                      "network) or a Python entry point module:function returning a "
                      "lrdecay.theory.models.generic.GenericModel (called with seed= and sigma=): landing by gradient "
                      "descent, label-noise SGD rows decayed at fractions of the budget against the drift ODE, and a "
                      "long drift run to its end point. Writes drift_any.npz and figures/drift_any.{{png,pdf}} under "
                      "--out.",
          options=(Option("model", "'relu', 'diagonal3' or module:function"), Option("sigma", "label-noise level"),
                   Option("lr_factor", "eta lambda_max, in (0, 2)"), Option("tau_max", "Phase II drift time"),
                   Option("paths", "paths per decay time"), Option("seed", "instance and noise seed")),
          preset=SMOKE, prepare=lambda cfg: cfg.build()),
    # the report's runs of drift-any on its two built-in examples (their sizes: lrdecay.report.jobs.SIZES)
    Study("relu_drift", None, "drift_any:DriftAnyConfig", "drift_any:run_drift_any", "drift_any.npz",
          (Figure("drift_any", "drift_any"),), preset=SMOKE,
          help="two-layer ReLU teacher-student network given only as f(theta, X): SGD against its drift ODE"),
    Study("diagonal3_drift", None, "drift_any:DriftAnyConfig", "drift_any:run_drift_any", "drift_any.npz",
          (Figure("drift_any", "drift_any"),), preset=SMOKE,
          help="depth-3 diagonal network given only as f(theta, X): the drift's end point"),
)

BY_KEY = {s.key: s for s in STUDIES}
#: the report's study jobs, in the report's order
JOB_STUDIES = tuple(s for s in STUDIES if s.job)
