"""The theory subcommands of ``lrdecay``: demo, convex, drift, gamma-study, sweep, and the open questions:
rate-law, cyclic, discrete-eta, diagonal, two-layer, drift-any.

Each handler runs a study of :mod:`lrdecay.theory.studies`, prints its table, saves its result files and draws
its figures (from the saved results) under ``--out``.
"""
from __future__ import annotations

from contextlib import contextmanager

from lrdecay.theory.io import DirectoryLock, prepare_output_dir
from lrdecay.theory.validation import integer, integers, nonneg, numbers, open_unit, positive


def _out(p, default):
    p.add_argument("--out", default=default, help="output directory (default: %(default)s)")


def _no_progress(p):
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _wrote(paths):
    print("wrote " + ", ".join(str(p) for p in paths))


def _problem_options(p, d: int, n: int, sigma: float, n_min: int = 1, d_min: int = 2) -> None:
    """``--d``, ``--n`` and ``--sigma`` of the random problem (:meth:`lrdecay.theory.problem.Problem.generate`)."""
    p.add_argument("--d", type=int, default=d, help=f"dimension, >= {d_min} (default: %(default)s)")
    p.add_argument("--n", type=int, default=n, help=f"training points, {n_min} <= n < d (default: %(default)s)")
    p.add_argument("--sigma", type=float, default=sigma, help="label-noise level > 0 (default: %(default)s)")


def _problem(args, n_min: int = 1, d_min: int = 2) -> tuple[int, int, float]:
    """The validated ``(--d, --n, --sigma)``."""
    d = integer("--d", args.d, d_min)
    return d, integer("--n", args.n, n_min, d - 1), positive("--sigma", args.sigma)


@contextmanager
def output_dir(path):
    """``--out`` checked for writing before any computation, and locked against a second writer."""
    out = prepare_output_dir(path, "--out")
    with DirectoryLock(out, "--out"):
        yield out


# --------------------------------------------------------------------------------------------------
# demo
# --------------------------------------------------------------------------------------------------

def register_demo(sub) -> None:
    from lrdecay.theory.studies.decay import DemoConfig

    c = DemoConfig()
    p = sub.add_parser(
        "demo", help="late-decay sweep on the nonlinear model for gamma = 1 (or --gamma) and gamma = 0",
        description=f"Label-noise SGD on a random problem (by default d = {c.d}, n = {c.n}, sigma = {c.sigma}, "
                    f"eta = {c.eta}) decayed to eta x {c.factor} at several steps, every run with the same step "
                    "budget: the final test loss per decay step beside the min-norm test loss, for gamma (default "
                    f"{c.gammas[0]:g}) and gamma = 0 (where the decay time should not matter), and schedules at an "
                    "equal step budget. Writes decay_sweep_gamma<g>.npz, schedules.npz, demo.json and "
                    "figures/demo_decay.{png,pdf} under --out.")
    _out(p, "results/demo")
    p.add_argument("--seed", type=int, default=0, help="problem and noise seed (default: %(default)s)")
    p.add_argument("--paths", type=int, default=c.paths, help="paths per decay step (default: %(default)s)")
    _problem_options(p, c.d, c.n, c.sigma)
    p.add_argument("--gamma", type=float, default=c.gammas[0],
                   help="gamma >= 0 of the model, run beside gamma = 0 (default: %(default)s)")
    p.add_argument("--eta", type=float, default=c.eta,
                   help=f"the large learning rate > 0, decayed to eta x {c.factor} (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="shorter runs (a few seconds)")
    _no_progress(p)
    p.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    from dataclasses import replace

    from lrdecay.theory.studies.decay import DemoConfig

    d, n, sigma = _problem(args)
    gamma = nonneg("--gamma", args.gamma)
    cfg = replace(DemoConfig(), seed=integer("--seed", args.seed, 0), paths=integer("--paths", args.paths, 1),
                  d=d, n=n, sigma=sigma, eta=positive("--eta", args.eta), gammas=(gamma, 0.0) if gamma else (0.0,))
    cfg = _validated(cfg.quick() if args.quick else cfg, {"gammas": "--gamma"})
    with output_dir(args.out) as out:
        _run_demo(cfg, args, out)
    return 0


def _run_demo(cfg, args, out):
    from lrdecay.paper_figures.decay_curve import make_figure
    from lrdecay.theory.studies.decay import run_demo

    res = run_demo(cfg, progress=not args.no_progress)
    for gamma, sw in res.sweeps.items():
        p = sw.problem
        print(f"\ngamma = {gamma:g}  (d = {p.d}, n = {p.n}, sigma = {p.sigma}, eta = {cfg.eta}, "
              f"decay to eta x {cfg.factor}, {cfg.paths} paths per row)")
        print(sw.table())
    print(f"\nequal budget of {cfg.total_steps} steps, gamma = {res.schedules.problem.gamma:g} "
          f"(eta = {cfg.eta} decayed to x{cfg.factor}):")
    print(res.schedules.table())
    paths = res.save(out)
    paths += make_figure(list(res.sweeps.values()), out / "figures" / "demo_decay")
    _wrote(paths)


# --------------------------------------------------------------------------------------------------
# drift
# --------------------------------------------------------------------------------------------------

def register_drift(sub) -> None:
    from lrdecay.theory.studies.drift import DriftConfig

    c = DriftConfig()
    p = sub.add_parser(
        "drift", help="quasistatic drift ODE against label-noise SGD",
        description="For every gamma (default 0.5 1 2) and eta (default 0.02 0.01), SGD paths and the drift ODE "
                    "dw/dtau = -(a/4) P_T grad tr Hess L_n start at the same point of M; reports the largest gap "
                    "in mean ||w|| (relative to the distance travelled) and the measured/predicted train-loss "
                    "plateau, with breakdown cases (large eta, minibatch b = 2, n = 3, gamma = 0.25). Writes "
                    "drift_<case>.npz, drift_summary.json and figures/drift_vs_sgd.{png,pdf} under --out.")
    _out(p, "results/drift")
    p.add_argument("--seed", type=int, default=c.seed, help="problem and noise seed (default: %(default)s)")
    p.add_argument("--paths", type=int, default=c.paths, help="SGD paths per case (default: %(default)s)")
    p.add_argument("--tau-max", type=float, default=c.tau_max, help="drift time tau = eta^2 k (default: %(default)s)")
    _problem_options(p, c.d, c.n, c.sigma, n_min=2, d_min=4)
    p.add_argument("--gamma", type=float, nargs="+", default=None, metavar="GAMMA",
                   help="gammas > 0 of the main cases (default: " + " ".join(f"{g:g}" for g in c.gammas) + ")")
    p.add_argument("--eta", type=float, nargs="+", default=None, metavar="ETA",
                   help="learning rates > 0 of the main cases (default: " + " ".join(f"{e:g}" for e in c.etas)
                        + "; 0.02 with --quick)")
    p.add_argument("--quick", action="store_true", help="one learning rate (0.02) per gamma (--eta wins over it)")
    _no_progress(p)
    p.set_defaults(func=cmd_drift)


def cmd_drift(args) -> int:
    from dataclasses import replace

    from lrdecay.paper_figures.drift_vs_sgd import make_figure
    from lrdecay.theory.studies.drift import DriftConfig, run_drift_study

    d, n, sigma = _problem(args, n_min=2, d_min=4)
    cfg = replace(DriftConfig(), seed=integer("--seed", args.seed, 0), paths=integer("--paths", args.paths, 1),
                  tau_max=positive("--tau-max", args.tau_max), d=d, n=n, sigma=sigma)
    cfg = cfg.quick() if args.quick else cfg
    if args.gamma is not None:
        cfg = replace(cfg, gammas=tuple(numbers("--gamma", args.gamma, 0.0, strict=True)))
    if args.eta is not None:
        cfg = replace(cfg, etas=tuple(numbers("--eta", args.eta, 0.0, strict=True)))
    cfg = _validated(cfg, {"gammas": "--gamma", "etas": "--eta"})
    with output_dir(args.out) as out:
        study = run_drift_study(cfg, progress=not args.no_progress)
        print(study.table())
        paths = study.save(out)
        _wrote([paths[-1]] + make_figure(study, out / "figures" / "drift_vs_sgd"))
    return 0


# --------------------------------------------------------------------------------------------------
# gamma-study
# --------------------------------------------------------------------------------------------------

def register_gamma(sub) -> None:
    from lrdecay.theory.studies.gamma import DEFAULT_GAMMAS, DEFAULTS, FULL

    p = sub.add_parser(
        "gamma-study", help="convergence of large-LR label-noise SGD to the min-norm solution against gamma",
        description="For gamma on a grid and many random instances: steps and tau = eta^2 k for label-noise SGD "
                    "at a large constant learning rate to reach w_mn (after retraction onto M), the fraction "
                    "that converge against the bound 1 - exp(-0.1 gamma^2), and the flattest-point condition. "
                    "Writes gamma_study.npz and figures/gamma_convergence.{png,pdf} under --out.")
    _out(p, "results/gamma_study")
    p.add_argument("--seed", type=int, default=0, help="instance and noise seed (default: %(default)s)")
    p.add_argument("--instances", type=int, default=None,
                   help=f"random instances per gamma (default: {DEFAULTS['n_instances']}, "
                        f"{FULL['n_instances']} with --full)")
    p.add_argument("--full", action="store_true",
                   help=f"thorough run: {FULL['n_instances']} instances, max_steps {FULL['max_steps']}")
    p.add_argument("--gammas", type=float, nargs="+", default=list(DEFAULT_GAMMAS),
                   help="gamma grid (default: " + " ".join(f"{g:g}" for g in DEFAULT_GAMMAS) + ")")
    p.add_argument("--d", type=int, default=DEFAULTS["d"], help="dimension (default: %(default)s)")
    p.add_argument("--n", type=int, default=DEFAULTS["n"], help="training points, 1 <= n < d (default: %(default)s)")
    p.add_argument("--sigma", type=float, default=DEFAULTS["sigma"], help="label-noise level (default: %(default)s)")
    p.add_argument("--lr-factor", type=float, default=DEFAULTS["lr_factor"],
                   help="eta = lr_factor / lambda_max at the landing estimate (default: %(default)s)")
    p.add_argument("--eta", type=float, default=None, help="force one learning rate for every pair (default: none)")
    p.add_argument("--tol", type=float, default=DEFAULTS["tol"],
                   help="relative distance to w_mn after retraction onto M (default: %(default)s)")
    p.add_argument("--max-steps", type=int, default=None,
                   help=f"step budget (default: {DEFAULTS['max_steps']}, {FULL['max_steps']} with --full)")
    p.add_argument("--no-figure", action="store_true", help="skip the figure")
    _no_progress(p)
    p.set_defaults(func=cmd_gamma)


def cmd_gamma(args) -> int:
    """Run the study, print the table and verdict, save ``<out>/gamma_study.npz`` and the figure."""
    from lrdecay.theory.studies.gamma import DEFAULTS, FULL

    cfg = dict(FULL) if args.full else dict(DEFAULTS)
    n_inst = integer("--instances", args.instances, 1) if args.instances is not None else cfg["n_instances"]
    max_steps = integer("--max-steps", args.max_steps, 1) if args.max_steps is not None else cfg["max_steps"]
    numbers("--gammas", args.gammas, 0.0)
    d = integer("--d", args.d, 2)
    integer("--n", args.n, 1, d - 1)
    positive("--sigma", args.sigma)
    positive("--tol", args.tol)
    integer("--seed", args.seed, 0)
    if not 0 < positive("--lr-factor", args.lr_factor) < 2:
        raise ValueError(f"--lr-factor must be in (0, 2) (GD on the normal directions is unstable beyond 2), "
                         f"got {args.lr_factor!r}")
    if args.eta is not None:
        positive("--eta", args.eta)
    with output_dir(args.out) as out:
        _run_gamma(args, out, n_inst, max_steps, cfg)
    return 0


def _run_gamma(args, out, n_inst, max_steps, cfg):
    from lrdecay.theory.studies.gamma import run_gamma_study

    res = run_gamma_study(args.gammas, n_instances=n_inst, d=args.d, n=args.n, sigma=args.sigma, eta=args.eta,
                          max_steps=max_steps, tol=args.tol, seed=args.seed, progress=not args.no_progress,
                          lr_factor=args.lr_factor, record_every=cfg["record_every"])
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
    path = res.save(out / "gamma_study.npz")
    paths = [path]
    if not args.no_figure:
        from lrdecay.paper_figures.gamma_convergence import make_figure

        paths += make_figure(res, out / "figures" / "gamma_convergence")
    _wrote(paths)


# --------------------------------------------------------------------------------------------------
# convex
# --------------------------------------------------------------------------------------------------

def register_convex(sub) -> None:
    from lrdecay.theory.convex import NORMALIZATION
    from lrdecay.theory.studies.convex_mc import DEFAULT_ALPHAS, DEFAULT_KS

    p = sub.add_parser(
        "convex", help="Nakkiran (2020) convex example: Proposition 1 Monte Carlo, Lemma 2 and Figure 1",
        description="Monte Carlo of Proposition 1 of Nakkiran (2020) over sample draws (probability of the "
                    "factor-2 separation with a Clopper-Pearson interval, test-loss ratio for several alpha and "
                    "K), Lemma 2 on a 3-D instance for several K, and Figure 1. Writes convex.npz and "
                    "figures/nakkiran_fig1.{png,pdf} under --out. Normalization: " + NORMALIZATION)
    _out(p, "results/convex")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample draws (default: %(default)s)")
    p.add_argument("--trials", type=int, default=10000, help="number of sample draws, >= 1 (default: %(default)s)")
    p.add_argument("--eps", type=float, default=0.1,
                   help="early-stopping train loss eps, in the open interval (0, 1) (default: %(default)s)")
    p.add_argument("--alphas", type=float, nargs="+", default=list(DEFAULT_ALPHAS),
                   help="values of alpha in (0, 1) (default: " + " ".join(f"{a:g}" for a in DEFAULT_ALPHAS) + ")")
    p.add_argument("--Ks", type=int, nargs="+", default=list(DEFAULT_KS),
                   help="numbers of large steps K >= 0 (default: " + " ".join(map(str, DEFAULT_KS)) + ")")
    p.add_argument("--no-figure", action="store_true", help="skip Figure 1")
    p.set_defaults(func=cmd_convex)


def cmd_convex(args) -> int:
    from lrdecay.theory.studies.convex_mc import run_convex_study

    integer("--trials", args.trials, 1)
    integer("--seed", args.seed, 0)
    open_unit("--eps", args.eps)
    for a in args.alphas:
        open_unit("--alphas", a)
    integers("--Ks", args.Ks, 0)
    with output_dir(args.out) as out:
        _run_convex(args, out, run_convex_study(trials=args.trials, seed=args.seed, eps=args.eps,
                                                alphas=args.alphas, Ks=args.Ks))
    return 0


def _run_convex(args, out, st):
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
    paths = [st.save(out / "convex.npz")]
    if not args.no_figure:
        from lrdecay.paper_figures.nakkiran_fig1 import make_figure

        paths += make_figure(st, out / "figures" / "nakkiran_fig1")
    _wrote(paths)


# --------------------------------------------------------------------------------------------------
# sweep
# --------------------------------------------------------------------------------------------------

def register_sweep(sub) -> None:
    from lrdecay.theory.studies.grid import BUDGETS, GridConfig

    c = GridConfig()
    p = sub.add_parser(
        "sweep", help="grid over (gamma, eta, decay step, seed), local processes or Dask",
        description="Each grid point generates its problem from its seed, runs label-noise SGD decayed at its "
                    "decay step and records the final test and train loss with the min-norm reference. Finished "
                    "tasks are cached under <out>/cache; a killed sweep resumes where it stopped. Writes "
                    "sweep_results.npz and sweep_results.csv (one row per task) under --out.")
    _out(p, "results/sweep")
    p.add_argument("--gammas", type=float, nargs="+", default=list(c.gammas), help="gamma values (default: 0 1 2)")
    p.add_argument("--etas", type=float, nargs="+", default=list(c.etas), help="learning rates (default: 0.02)")
    p.add_argument("--decay-steps", type=int, nargs="+", default=list(c.decay_steps),
                   help="decay steps (default: 0 2000 10000 40000)")
    p.add_argument("--seeds", type=int, nargs="+", default=list(c.seeds), help="problem seeds (default: 0 1)")
    p.add_argument("--paths", type=int, default=c.paths, help="SGD paths per task (default: %(default)s)")
    _problem_options(p, c.d, c.n, c.sigma)
    p.add_argument("--steps", type=int, default=c.phase3_steps,
                   help="steps after the latest decay step (--budget equal) or after each task's own decay step "
                        "(--budget fixed-after-decay) (default: %(default)s)")
    p.add_argument("--budget", default=c.budget, choices=BUDGETS,
                   help="equal: every task runs max(decay steps) + STEPS steps, so the decay time is the only "
                        "difference between the tasks of one gamma, eta and seed; fixed-after-decay: each task runs "
                        "its decay step + STEPS steps, so a later decay also trains longer (default: %(default)s)")
    p.add_argument("--executor", default="processes",
                   help="processes | threads | serial | a Dask scheduler address tcp://HOST:PORT (default: %(default)s)")
    p.add_argument("--workers", type=int, default=None, help="local workers (default: all cores)")
    p.add_argument("--recompute", action="store_true", help="ignore cached task results")
    _no_progress(p)
    p.set_defaults(func=cmd_sweep)


def cmd_sweep(args) -> int:
    from lrdecay.theory.studies.grid import GridConfig, run_grid

    d, n, sigma = _problem(args)
    cfg = GridConfig(gammas=tuple(args.gammas), etas=tuple(args.etas), decay_steps=tuple(args.decay_steps),
                     seeds=tuple(args.seeds), paths=args.paths, d=d, n=n, sigma=sigma,
                     phase3_steps=integer("--steps", args.steps, 1), budget=args.budget).validate(prefix="--")
    if args.workers is not None:
        integer("--workers", args.workers, 1)
    with output_dir(args.out) as out:
        res = run_grid(cfg, out, executor=args.executor, workers=args.workers, progress=not args.no_progress,
                       recompute=args.recompute)
        print(res.table())
        path = res.save(out / "sweep_results.npz")
        csv_path = res.save_csv(out / "sweep_results.csv")
        print(f"\nwrote {path} and {csv_path.name} ({len(res.rows)} tasks, {res.n_diverged} diverged; "
              f"cache in {out / 'cache'})")
    return 0


# --------------------------------------------------------------------------------------------------
# the open questions: rate-law, cyclic, discrete-eta, diagonal, two-layer
# --------------------------------------------------------------------------------------------------
#
# One rule for --smoke: it replaces the *defaults* by a tiny run's; an option given on the command line
# always wins over it. The options' defaults are therefore None in argparse and come from the configuration.

SMOKE_HELP = ("a tiny run of a few seconds: smaller defaults for every option not given (options given on the "
              "command line win over --smoke)")


def _validated(cfg, rename: dict | None = None):
    """``cfg.validate()``, with the configuration fields a message names replaced by the options that set them
    (:func:`_option_names`)."""
    try:
        return cfg.validate()
    except ValueError as exc:
        raise ValueError(_option_names(str(exc), type(cfg), rename)) from None


def _option_names(msg: str, cfg_cls, rename: dict | None = None) -> str:
    """A study's message with the field it starts with, and the fields its closing clause (after the last
    ``"; "``, e.g. ``lower tau_max or paths``) names, replaced by their options (``n_instances`` ->
    ``--instances``, ``tau_max`` -> ``--tau-max``)."""
    import re
    from dataclasses import fields

    def opt(field):
        return (rename or {}).get(field, "--" + field.removesuffix("[i]").replace("_", "-"))
    field = msg.split(" ", 1)[0].rstrip(":")
    msg = opt(field) + msg[len(field):]
    head, sep, tail = msg.rpartition("; ")
    if sep and re.match(r"(lower|raise) ", tail):
        names = {f.name for f in fields(cfg_cls)}
        tail = re.sub(r"\b[a-z_0-9]+\b", lambda mt: opt(mt.group()) if mt.group() in names else mt.group(), tail)
        msg = head + sep + tail
    return msg


def _default_help(c, s, name: str, fmt=None) -> str:
    """``(default: X)`` or ``(default: X; with --smoke: Y)`` from the configuration ``c`` and its smoke version ``s``."""
    def show(v):
        if isinstance(v, (tuple, list)):
            return " ".join(show(x) for x in v)
        return fmt(v) if fmt else (f"{v:g}" if isinstance(v, float) else str(v))
    a, b = getattr(c, name), getattr(s, name)
    return f"(default: {show(a)})" if a == b else f"(default: {show(a)}; with --smoke: {show(b)})"


def _option(p, c, s, flag: str, field: str, kind, text: str, many: bool = False):
    """An option whose default comes from the configuration (``None`` here: not given on the command line)."""
    p.add_argument(flag, type=kind, nargs="+" if many else None, default=None, dest=field,
                   metavar=flag.lstrip("-").upper().replace("-", "_"),
                   help=f"{text} {_default_help(c, s, field)}")


def _config(args, cfg_cls):
    """The configuration: the defaults (the smoke run's with ``--smoke``) with every option given replaced."""
    from dataclasses import fields, replace

    base = cfg_cls().smoke() if args.smoke else cfg_cls()
    given = {f.name: getattr(args, f.name) for f in fields(cfg_cls) if getattr(args, f.name, None) is not None}
    return replace(base, **{k: tuple(v) if isinstance(v, list) else v for k, v in given.items()})


def _smoke(p):
    p.add_argument("--smoke", action="store_true", help=SMOKE_HELP)


def _diverged(what: str, detail: str, option: str) -> int:
    """A run whose paths diverged is a failed run: one line on stderr, exit status 1 (its files are kept)."""
    import sys

    print(f"lrdecay {what}: error: {detail} diverged (their results are not measurements); lower {option}",
          file=sys.stderr)
    return 1


def register_rate_law(sub) -> None:
    from lrdecay.theory.studies.rate_law import RateLawConfig

    c = RateLawConfig()
    s = c.smoke()
    p = sub.add_parser(
        "rate-law", help="Phase II drift time to w_mn against gamma, ||w0|| and n/d: SGD against the drift ODE, fitted law",
        description="For each cell (gamma, ||w0||, n) and many instances: label-noise SGD from the landing point until "
                    "it reaches w_mn (censored at a cap; Kaplan-Meier medians), the drift ODE's time (eta -> 0 and "
                    "finite eta), and the law tau = C (ln(d0/tol)/kappa)^p fitted with censoring and bootstrap "
                    "intervals. Writes rate_law.npz and figures/rate_law.{png,pdf} under --out.")
    _out(p, "results/rate_law")
    _option(p, c, s, "--gammas", "gammas", float, "gamma grid, each > 0", many=True)
    _option(p, c, s, "--w0-norms", "w0_norms", float, "start norms ||w0||, each in (0, 10]", many=True)
    _option(p, c, s, "--ns", "ns", int, "numbers of samples n, each in [2, d - 1]", many=True)
    _option(p, c, s, "--d", "d", int, "dimension")
    _option(p, c, s, "--instances", "n_instances", int, "instances per cell")
    _option(p, c, s, "--sigma", "sigma", float, "label-noise level")
    _option(p, c, s, "--lr-factor", "lr_factor", float, "eta = lr_factor / lambda_max at retract(w0), in (0, 2)")
    _option(p, c, s, "--tol", "tol", float, "relative distance to w_mn on M, in (0, 1)")
    _option(p, c, s, "--cap-factor", "cap_factor", float, "SGD step cap as a multiple of the predicted steps, in [1, 1000]")
    _option(p, c, s, "--bootstrap", "bootstrap", int, "bootstrap resamples")
    _option(p, c, s, "--seed", "seed", int, "instance and noise seed")
    _smoke(p)
    _no_progress(p)
    p.set_defaults(func=cmd_rate_law)


def cmd_rate_law(args) -> int:
    from lrdecay.paper_figures.rate_law import make_figure
    from lrdecay.theory.studies.rate_law import RateLawConfig, run_rate_law

    rename = {"n_instances": "--instances"}
    cfg = _validated(_config(args, RateLawConfig), rename)
    with output_dir(args.out) as out:
        try:
            res = run_rate_law(cfg, progress=not args.no_progress)
        except ValueError as exc:
            raise ValueError(_option_names(str(exc), RateLawConfig, rename)) from None
        print(res.table())
        _wrote([res.save(out / "rate_law.npz")] + make_figure(res, out / "figures" / "rate_law"))
    n_div = int((res.status == "diverged").sum())
    return _diverged("rate-law", f"{n_div} of {len(res.status)} SGD paths", "--lr-factor") if n_div else 0


def register_cyclic(sub) -> None:
    from lrdecay.theory.studies.cyclic import CyclicConfig

    c = CyclicConfig()
    s = c.smoke()
    p = sub.add_parser(
        "cyclic", help="cyclic schedules beside constant, step, multistep, cosine and WSD at an equal budget",
        description="Label-noise SGD from the landing point under eight schedules with the same step budget; final "
                    "test loss, distance to w_mn on M, and the drift ODE at each schedule's drift budget "
                    "tau_S = sum eta_k^2. The peak rate must keep gradient descent stable at the landing point "
                    "(eta lambda_max < 2); a run in which any path diverges exits with status 1. Writes cyclic.npz "
                    "and figures/cyclic_schedules.{png,pdf} under --out.")
    _out(p, "results/cyclic")
    _option(p, c, s, "--eta", "eta", float, "peak learning rate, eta lambda_max < 2 at the landing point")
    _option(p, c, s, "--steps", "total_steps", int, "step budget")
    _option(p, c, s, "--cycles", "cycles", int, "cycles of the cyclic schedules")
    _option(p, c, s, "--factor", "factor", float, "decay factor / eta_min ratio, in (0, 1]")
    _option(p, c, s, "--gamma", "gamma", float, "gamma")
    _option(p, c, s, "--sigma", "sigma", float, "label-noise level")
    _option(p, c, s, "--paths", "paths", int, "paths per schedule")
    _option(p, c, s, "--seed", "seed", int, "problem and noise seed")
    _smoke(p)
    _no_progress(p)
    p.set_defaults(func=cmd_cyclic)


def cmd_cyclic(args) -> int:
    from lrdecay.paper_figures.cyclic_schedules import make_figure
    from lrdecay.theory.studies.cyclic import CyclicConfig, run_cyclic_study

    rename = {"total_steps": "--steps"}
    cfg = _validated(_config(args, CyclicConfig), rename)
    with output_dir(args.out) as out:
        try:
            st = run_cyclic_study(cfg, progress=not args.no_progress)
        except ValueError as exc:
            raise ValueError(_option_names(str(exc), CyclicConfig, rename)) from None
        print(st.table())
        _wrote([st.save(out / "cyclic.npz")] + make_figure(st, out / "figures" / "cyclic_schedules"))
    n_div = int(st.comparison.sim.diverged.sum())
    return _diverged("cyclic", f"{n_div} of {st.comparison.sim.n_paths} SGD paths", "--eta") if n_div else 0


def register_discrete_eta(sub) -> None:
    from lrdecay.theory.studies.discrete_eta import DiscreteEtaConfig

    c = DiscreteEtaConfig()
    s = c.smoke()
    p = sub.add_parser(
        "discrete-eta", help="drift and plateau errors of the quasistatic picture against eta, with fitted slopes",
        description="For each eta, label-noise SGD paths against the drift ODE (eta -> 0 and finite eta) from the same "
                    "point of M: signed drift error and plateau error, fitted |e| = c eta^p with bootstrap intervals. "
                    "Writes discrete_eta.npz and figures/discrete_eta.{png,pdf} under --out.")
    _out(p, "results/discrete_eta")
    _option(p, c, s, "--etas", "etas", float, "learning rates, at least two, increasing, eta lambda_max < 2", many=True)
    _option(p, c, s, "--tau-max", "tau_max", float, "drift time tau = eta^2 k")
    _option(p, c, s, "--paths", "paths", int, "SGD paths per eta, >= 2")
    _option(p, c, s, "--gamma", "gamma", float, "gamma")
    _option(p, c, s, "--sigma", "sigma", float, "label-noise level")
    _option(p, c, s, "--seed", "seed", int, "problem and noise seed")
    _smoke(p)
    _no_progress(p)
    p.set_defaults(func=cmd_discrete_eta)


def cmd_discrete_eta(args) -> int:
    from lrdecay.paper_figures.discrete_eta import make_figure
    from lrdecay.theory.studies.discrete_eta import DiscreteEtaConfig, run_discrete_eta

    cfg = _validated(_config(args, DiscreteEtaConfig))
    with output_dir(args.out) as out:
        try:
            st = run_discrete_eta(cfg, progress=not args.no_progress)
        except ValueError as exc:
            raise ValueError(_option_names(str(exc), DiscreteEtaConfig)) from None
        print(st.table())
        _wrote([st.save(out / "discrete_eta.npz")] + make_figure(st, out / "figures" / "discrete_eta"))
    n_div = sum(int(v["diverged"]) for v in st.comparisons.values())
    return _diverged("discrete-eta", f"SGD paths at {n_div} of {len(cfg.etas)} learning rates", "--etas") if n_div else 0


def _model_options(p, c, s):
    _option(p, c, s, "--d", "d", int, "dimension")
    _option(p, c, s, "--n", "n", int, "training points, 1 <= n < d")
    _option(p, c, s, "--init-scale", "init_scale", float, "scale of the start, in (0, 10]")
    _option(p, c, s, "--sigma", "sigma", float, "label-noise level")
    _option(p, c, s, "--tau-max", "tau_max", float, "Phase II drift time")
    _option(p, c, s, "--paths", "paths", int, "paths per decay time")
    _option(p, c, s, "--seed", "seed", int, "instance and noise seed")
    _smoke(p)
    _no_progress(p)


def register_diagonal(sub) -> None:
    from lrdecay.theory.studies.diagonal import DiagonalConfig

    c = DiagonalConfig()
    s = c.smoke()
    p = sub.add_parser(
        "diagonal", help="diagonal linear network: label-noise SGD drifts to the min-l1 interpolator; late decay",
        description="beta = u*u - v*v from u0 = v0 = init_scale: label-noise SGD against the drift ODE, the l1 "
                    "interpolator (linprog), and decay sweeps for a sparse target and a row-space target. A run in "
                    "which any path diverges exits with status 1. Writes diagonal.npz and figures/diagonal.{png,pdf} "
                    "under --out.")
    _out(p, "results/diagonal")
    _model_options(p, c, s)
    _option(p, c, s, "--sparsity", "sparsity", int, "non-zeros of the sparse target")
    p.set_defaults(func=cmd_diagonal)


def cmd_diagonal(args) -> int:
    from lrdecay.paper_figures.model_drift import make_diagonal_figure
    from lrdecay.theory.studies.diagonal import DiagonalConfig, run_diagonal_study

    cfg = _validated(_config(args, DiagonalConfig))
    with output_dir(args.out) as out:
        try:
            st = run_diagonal_study(cfg, progress=not args.no_progress)
        except ValueError as exc:
            raise ValueError(_option_names(str(exc), DiagonalConfig)) from None
        print(st.table())
        _wrote([st.save(out / "diagonal.npz")] + make_diagonal_figure(st, out / "figures" / "diagonal"))
    n_div = sum(int(c.sim.diverged.sum()) for c in st.cases.values())
    return _diverged("diagonal", f"{n_div} of {sum(c.sim.n_paths for c in st.cases.values())} SGD paths", "--sigma") if n_div else 0


def register_two_layer(sub) -> None:
    from lrdecay.theory.studies.two_layer import TwoLayerConfig

    c = TwoLayerConfig()
    s = c.smoke()
    p = sub.add_parser(
        "two-layer", help="two-layer linear network: label-noise SGD drifts to X-balance; late decay",
        description="beta = W1^T w2: label-noise SGD against the drift ODE, the trace minimum 2||y|| ||X||_F / n, the "
                    "invariant kernel part of W1 and a decay sweep. A run in which any path diverges exits with "
                    "status 1. Writes two_layer.npz and figures/two_layer.{png,pdf} under --out.")
    _out(p, "results/two_layer")
    _model_options(p, c, s)
    _option(p, c, s, "--hidden", "hidden", int, "hidden width h")
    p.set_defaults(func=cmd_two_layer)


def cmd_two_layer(args) -> int:
    from lrdecay.paper_figures.model_drift import make_two_layer_figure
    from lrdecay.theory.studies.two_layer import TwoLayerConfig, run_two_layer_study

    cfg = _validated(_config(args, TwoLayerConfig))
    with output_dir(args.out) as out:
        try:
            st = run_two_layer_study(cfg, progress=not args.no_progress)
        except ValueError as exc:
            raise ValueError(_option_names(str(exc), TwoLayerConfig)) from None
        print(st.table())
        _wrote([st.save(out / "two_layer.npz")] + make_two_layer_figure(st, out / "figures" / "two_layer"))
    n_div = int(st.study.sim.diverged.sum())
    return _diverged("two-layer", f"{n_div} of {st.study.sim.n_paths} SGD paths", "--sigma") if n_div else 0


def register_drift_any(sub) -> None:
    from lrdecay.theory.studies.drift_any import DriftAnyConfig

    c = DriftAnyConfig()
    p = sub.add_parser(
        "drift-any", help="any model f(theta, X): label-noise SGD against its drift ODE (automatic differentiation)",
        description="A built-in example (relu: two-layer ReLU teacher-student; diagonal3: depth-3 diagonal network) or "
                    "a Python entry point module:function returning a lrdecay.theory.models.generic.GenericModel (called with "
                    "seed= and sigma=): landing by gradient descent, label-noise SGD rows decayed at fractions of the "
                    "budget against the drift ODE, and a long drift run to its end point. Writes drift_any.npz and "
                    "figures/drift_any.{png,pdf} under --out.")
    _out(p, "results/drift_any")
    p.add_argument("--model", default=c.model, help="'relu', 'diagonal3' or module:function (default: %(default)s)")
    p.add_argument("--sigma", type=float, default=c.sigma, help="label-noise level (default: %(default)s)")
    p.add_argument("--lr-factor", type=float, default=c.lr_factor, help="eta lambda_max, in (0, 2) (default: %(default)s)")
    p.add_argument("--tau-max", type=float, default=c.tau_max, help="Phase II drift time (default: %(default)s)")
    p.add_argument("--paths", type=int, default=c.paths, help="paths per decay time (default: %(default)s)")
    p.add_argument("--seed", type=int, default=c.seed, help="instance and noise seed (default: %(default)s)")
    _smoke(p)
    _no_progress(p)
    p.set_defaults(func=cmd_drift_any)


def cmd_drift_any(args) -> int:
    from dataclasses import replace

    from lrdecay.paper_figures.drift_any import make_figure
    from lrdecay.theory.studies.drift_any import DriftAnyConfig, run_drift_any

    cfg = replace(DriftAnyConfig(), model=args.model, sigma=args.sigma, lr_factor=args.lr_factor,
                  tau_max=args.tau_max, paths=args.paths, seed=args.seed)
    cfg = _validated(cfg.smoke() if args.smoke else cfg)
    cfg.build()                                  # an entry point that cannot be imported fails here, in one line
    with output_dir(args.out) as out:
        st = run_drift_any(cfg, progress=not args.no_progress)
        print(st.table())
        _wrote([st.save(out / "drift_any.npz")] + make_figure(st, out / "figures" / "drift_any"))
    return 0


REGISTER = [register_demo, register_convex, register_drift, register_gamma, register_sweep, register_rate_law,
            register_cyclic, register_discrete_eta, register_diagonal, register_two_layer, register_drift_any]
