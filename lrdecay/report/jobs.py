"""The report's jobs: what runs, where its result files go, and when a finished job is reused.

Each job runs one study on the report's size, saves its results under ``<out>/<job>/`` and draws its
figures from them. A finished job leaves a stamp ``.job.json`` holding its configuration and the names,
sizes and SHA-256 digests of the files it wrote; a re-run reuses the job only when the stamp's
configuration matches and every listed file is still there, unchanged. Otherwise the job runs again.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

from lrdecay.theory.io import ResultFileError, load_json, save_json

# --------------------------------------------------------------------------------------------------
# Sizes: "default" is the report; "smoke" is a tiny run for tests.
# --------------------------------------------------------------------------------------------------
SIZES = {
    "default": dict(symbolic=dict(points=5), demo=dict(quick=False, paths=4), drift=dict(quick=False, paths=32, tau_max=24.0),
                    convex=dict(trials=10000), core=dict(paths=8), landscape=dict(grid=241, sgd_steps=30000),
                    gamma=dict(n_instances=40), rate_law=dict(smoke=False), cyclic=dict(smoke=False),
                    discrete_eta=dict(smoke=False), diagonal=dict(smoke=False), two_layer=dict(smoke=False),
                    empirics=dict(profile="cpu")),
    "smoke": dict(symbolic=dict(points=2), demo=dict(quick=True, paths=2), drift=dict(quick=True, paths=8, tau_max=4.0),
                  convex=dict(trials=300), core=dict(paths=4), landscape=dict(grid=41, sgd_steps=3000),
                  gamma=dict(n_instances=4, gammas=[0.0, 2.0], max_steps=20000), rate_law=dict(smoke=True),
                  cyclic=dict(smoke=True), discrete_eta=dict(smoke=True), diagonal=dict(smoke=True),
                  two_layer=dict(smoke=True), empirics=dict(
                      profile="quick", threads=1, seeds=[0, 1],
                      train=dict(width=0.125, train_size=100, test_size=100, batch_size=25, epochs=6, ckpt_every=4,
                                 decay_epochs=(2, 3, 4), eval_every=1, eval_batch=100, init="torch", lr=0.02),
                      landscape=dict(grid=5, train_size=50, test_size=50, eval_batch=50, points_per_batch=5),
                      curvature=dict(probes=2, lanczos_steps=3, eval_size=50, eval_batch=50, main_every=2))),
}


# --------------------------------------------------------------------------------------------------
# The jobs: (directory, configuration) -> result files and figures
# --------------------------------------------------------------------------------------------------

def job_core(d: Path, cfg: dict):
    """Direct numerical checks of the model's geometry and the engine."""
    from lrdecay.theory.studies.checks import core_checks
    core_checks(paths=cfg["paths"]).save(d / "core_checks.npz")


def job_symbolic(d: Path, cfg: dict):
    """Exact sympy identities and the numeric code against lambdified sympy expressions."""
    from lrdecay.theory.studies.checks import symbolic_checks
    symbolic_checks(points=cfg["points"]).save(d / "symbolic_checks.npz")


def job_demo(d: Path, cfg: dict):
    from lrdecay.paper_figures import decay_curve, three_phases
    from lrdecay.theory.studies.decay import DemoConfig, run_demo

    dc = replace(DemoConfig(), seed=0, paths=cfg["paths"])
    res = run_demo(dc.quick() if cfg["quick"] else dc, progress=cfg.get("progress", True))
    for gamma, sw in res.sweeps.items():
        print(f"\ngamma = {gamma:g}\n{sw.table()}")
    print(f"\nequal budget:\n{res.schedules.table()}")
    res.save(d)
    decay_curve.make_figure(list(res.sweeps.values()), d / "figures" / "demo_decay")
    three_phases.make_figure(res.sweeps[1.0], d / "figures" / "three_phases")


def job_drift(d: Path, cfg: dict):
    from lrdecay.paper_figures.drift_vs_sgd import make_figure
    from lrdecay.theory.studies.drift import DriftConfig, run_drift_study

    dc = replace(DriftConfig(), paths=cfg["paths"], tau_max=cfg["tau_max"])
    study = run_drift_study(dc.quick() if cfg["quick"] else dc, progress=cfg.get("progress", True))
    print(study.table())
    study.save(d)
    make_figure(study, d / "figures" / "drift_vs_sgd")


def job_convex(d: Path, cfg: dict):
    from lrdecay.paper_figures.nakkiran_fig1 import make_figure
    from lrdecay.theory.studies.convex_mc import run_convex_study

    st = run_convex_study(trials=cfg["trials"], seed=0, eps=0.1)
    print(st.table())
    st.save(d / "convex.npz")
    make_figure(st, d / "figures" / "nakkiran_fig1")


def job_landscape(d: Path, cfg: dict):
    from lrdecay.paper_figures.nonlinear_landscape import make_figure
    from lrdecay.theory.studies.landscape import run_landscape_study

    st = run_landscape_study(grid=cfg["grid"], sgd_steps=cfg["sgd_steps"])
    st.save(d / "landscape.npz")
    make_figure(st, d / "figures" / "nonlinear_landscape")


def job_gamma(d: Path, cfg: dict):
    from lrdecay.paper_figures.gamma_convergence import make_figure
    from lrdecay.theory.studies.gamma import DEFAULT_GAMMAS, run_gamma_study

    kw = {k: cfg[k] for k in ("n_instances", "max_steps") if k in cfg}
    res = run_gamma_study(cfg.get("gammas", DEFAULT_GAMMAS), seed=0, progress=cfg.get("progress", True), **kw)
    print(res.table())
    res.save(d / "gamma_study.npz")
    make_figure(res, d / "figures" / "gamma_convergence")


def job_rate_law(d: Path, cfg: dict):
    """Phase II drift time against gamma, ||w0|| and n/d (the open question on the rate)."""
    from lrdecay.paper_figures.rate_law import make_figure
    from lrdecay.theory.studies.rate_law import RateLawConfig, run_rate_law

    c = RateLawConfig().smoke() if cfg["smoke"] else RateLawConfig()
    res = run_rate_law(c, progress=cfg.get("progress", True))
    print(res.table())
    res.save(d / "rate_law.npz")
    make_figure(res, d / "figures" / "rate_law")


def job_cyclic(d: Path, cfg: dict):
    """Cyclic schedules beside the others at an equal budget (theory only; the VGG comparison is not run)."""
    from lrdecay.paper_figures.cyclic_schedules import make_figure
    from lrdecay.theory.studies.cyclic import CyclicConfig, run_cyclic_study

    c = CyclicConfig().smoke() if cfg["smoke"] else CyclicConfig()
    st = run_cyclic_study(c, progress=cfg.get("progress", True))
    print(st.table())
    st.save(d / "cyclic.npz")
    make_figure(st, d / "figures" / "cyclic_schedules")


def job_discrete_eta(d: Path, cfg: dict):
    from lrdecay.paper_figures.discrete_eta import make_figure
    from lrdecay.theory.studies.discrete_eta import DiscreteEtaConfig, run_discrete_eta

    c = DiscreteEtaConfig().smoke() if cfg["smoke"] else DiscreteEtaConfig()
    st = run_discrete_eta(c, progress=cfg.get("progress", True))
    print(st.table())
    st.save(d / "discrete_eta.npz")
    make_figure(st, d / "figures" / "discrete_eta")


def job_diagonal(d: Path, cfg: dict):
    from lrdecay.paper_figures.model_drift import make_diagonal_figure
    from lrdecay.theory.studies.diagonal import DiagonalConfig, run_diagonal_study

    c = DiagonalConfig().smoke() if cfg["smoke"] else DiagonalConfig()
    st = run_diagonal_study(c, progress=cfg.get("progress", True))
    print(st.table())
    st.save(d / "diagonal.npz")
    make_diagonal_figure(st, d / "figures" / "diagonal")


def job_two_layer(d: Path, cfg: dict):
    from lrdecay.paper_figures.model_drift import make_two_layer_figure
    from lrdecay.theory.studies.two_layer import TwoLayerConfig, run_two_layer_study

    c = TwoLayerConfig().smoke() if cfg["smoke"] else TwoLayerConfig()
    st = run_two_layer_study(c, progress=cfg.get("progress", True))
    print(st.table())
    st.save(d / "two_layer.npz")
    make_two_layer_figure(st, d / "figures" / "two_layer")


def job_empirics(d: Path, cfg: dict):
    """VGG-11 on the CIFAR-10 subset: the cpu profile, in the regime (smoke: a tiny network for seconds)."""
    from lrdecay.empirics.profiles import run_profile
    from lrdecay.paper_figures import vgg_curvature, vgg_decay, vgg_landscape, vgg_late_decay_map, vgg_learning_curves
    try:
        summary = run_profile(cfg["profile"], d, data_dir=cfg.get("data"), progress=cfg.get("progress", True),
                              train_overrides=cfg.get("train"), landscape_overrides=cfg.get("landscape"),
                              curvature_overrides=cfg.get("curvature"), seeds=cfg.get("seeds"),
                              threads=cfg.get("threads"))
    except (FileNotFoundError, ValueError, RuntimeError) as exc:   # e.g. no CIFAR-10 here: report it, go on
        save_json(d / "error.json", {"error": f"{type(exc).__name__}: {exc}"})
        print(f"[empirics] not run: {exc}")
        return
    for fig in (vgg_learning_curves, vgg_decay, vgg_late_decay_map, vgg_curvature):
        fig.make(d)
    if "valley" in summary or "test_minimum" in summary:
        vgg_landscape.make(d)


#: the long CPU run's small result files (no checkpoints), as committed with the repository
LONG_RUN = Path(__file__).resolve().parents[2] / "measurements" / "vgg_cpu_long"


def job_vgg_long(d: Path, cfg: dict):
    """The long CPU run (profile ``cpu_long``): its committed result files, judged and drawn here; rerun it
    from scratch with ``lrdecay empirics profile cpu_long --out DIR`` (about an hour on 2 cores)."""
    import shutil

    from lrdecay.paper_figures import vgg_curvature, vgg_decay, vgg_landscape, vgg_late_decay_map, vgg_learning_curves
    src = Path(cfg.get("source") or LONG_RUN)
    if not (src / "profile.json").exists():
        save_json(d / "error.json", {"error": f"FileNotFoundError: the long run's files are not in {src} (a "
                                              "checkout of the repository has them; or run 'lrdecay empirics "
                                              "profile cpu_long --out DIR')"})
        return
    for f in sorted(src.rglob("*")):
        if f.is_file():
            (d / f.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, d / f.relative_to(src))
    for fig in (vgg_learning_curves, vgg_decay, vgg_late_decay_map, vgg_curvature, vgg_landscape):
        fig.make(d)


JOBS: dict[str, Callable[[Path, dict], None]] = {
    "core": job_core, "symbolic": job_symbolic, "demo": job_demo, "drift": job_drift, "convex": job_convex,
    "landscape": job_landscape, "gamma": job_gamma, "rate_law": job_rate_law, "cyclic": job_cyclic,
    "discrete_eta": job_discrete_eta, "diagonal": job_diagonal, "two_layer": job_two_layer, "empirics": job_empirics,
    "vgg_long": job_vgg_long}


# --------------------------------------------------------------------------------------------------
# The cache
# --------------------------------------------------------------------------------------------------
STAMP = ".job.json"
_SKIP = {STAMP, "error.json"}


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _inventory(d: Path) -> dict:
    """``relative path -> [size, sha256]`` of every file a job left in ``d`` (its stamp excluded)."""
    out = {}
    for p in sorted(d.rglob("*")):
        if p.is_file() and p.name not in _SKIP and not p.name.endswith(".tmp"):
            out[str(p.relative_to(d))] = [p.stat().st_size, _digest(p)]
    return out


def stamp_ok(d: Path, cfg: dict) -> bool:
    """The job in ``d`` finished with configuration ``cfg`` and its files are all there, unchanged."""
    p = d / STAMP
    if not p.exists():
        return False
    try:
        stamp = load_json(p)
    except (ResultFileError, OSError):
        return False
    if stamp.get("config") != json.loads(json.dumps(cfg)) or "files" not in stamp:
        return False
    for rel, (size, digest) in stamp["files"].items():
        f = d / rel
        if not f.is_file() or f.stat().st_size != size or _digest(f) != digest:
            return False
    return True


def run_job(name: str, d: Path, cfg: dict, use_cache: bool, log) -> dict:
    """Run job ``name`` in ``d`` unless its stamp shows it finished with ``cfg``; returns its record."""
    if use_cache and stamp_ok(d, cfg):
        log(f"[{name}] reusing {d} (cached; --no-cache to recompute)")
        return {"name": name, "cached": True, "seconds": load_json(d / STAMP).get("seconds", 0.0)}
    log(f"[{name}] running ...")
    t0 = time.perf_counter()
    d.mkdir(parents=True, exist_ok=True)
    (d / STAMP).unlink(missing_ok=True)
    (d / "error.json").unlink(missing_ok=True)
    JOBS[name](d, cfg)
    sec = time.perf_counter() - t0
    if (d / "error.json").exists():   # not run (e.g. data missing): no stamp, so the next run tries again
        return {"name": name, "cached": False, "seconds": sec, "error": True}
    save_json(d / STAMP, {"config": cfg, "seconds": sec, "files": _inventory(d)})
    log(f"[{name}] done in {sec:.1f} s")
    return {"name": name, "cached": False, "seconds": sec}
