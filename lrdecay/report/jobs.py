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
from pathlib import Path
from typing import Callable

from lrdecay.studies_table import JOB_STUDIES, Study
from lrdecay.theory.io import ResultFileError, load_json, save_json

# --------------------------------------------------------------------------------------------------
# Sizes: "default" is the report; "smoke" is a tiny run for tests. A study job's size holds fields of its
# configuration (lrdecay.studies_table), its seed among them, and "preset": a configuration method applied first.
# --------------------------------------------------------------------------------------------------
SIZES = {
    "default": dict(symbolic=dict(points=5), core=dict(paths=8), demo=dict(seed=0, paths=4),
                    drift=dict(seed=0, paths=32, tau_max=24.0), convex=dict(seed=0, trials=10000, eps=0.1),
                    landscape=dict(seed=0, grid=241, sgd_steps=30000), gamma=dict(seed=0, n_instances=40),
                    rate_law=dict(seed=0), cyclic=dict(seed=0), discrete_eta=dict(seed=0), diagonal=dict(seed=0),
                    two_layer=dict(seed=0),
                    relu_drift=dict(model="relu", seed=0, tau_max=400.0, paths=64, decay_fractions=[0.0, 0.5, 1.0],
                                    long_tau_factor=4.0),
                    diagonal3_drift=dict(model="diagonal3", seed=0, tau_max=6.0, long_tau_factor=50.0, paths=2,
                                         decay_fractions=[0.0, 1.0]),
                    empirics=dict(profile="cpu")),
    "smoke": dict(symbolic=dict(points=2), core=dict(paths=4), demo=dict(preset="quick", seed=0, paths=2),
                  drift=dict(preset="quick", seed=0, paths=8, tau_max=4.0), convex=dict(seed=0, trials=300, eps=0.1),
                  landscape=dict(seed=0, grid=41, sgd_steps=3000),
                  gamma=dict(seed=0, n_instances=4, gammas=[0.0, 2.0], max_steps=20000),
                  rate_law=dict(preset="smoke", seed=0), cyclic=dict(preset="smoke", seed=0),
                  discrete_eta=dict(preset="smoke", seed=0), diagonal=dict(preset="smoke", seed=0),
                  two_layer=dict(preset="smoke", seed=0),
                  relu_drift=dict(preset="smoke", model="relu", seed=0, tau_max=20.0),
                  diagonal3_drift=dict(preset="smoke", model="diagonal3", seed=0, long_tau_factor=300.0),
                  empirics=dict(
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


def study_job(study: Study) -> Callable[[Path, dict], None]:
    """The job of a row of the study table: its configuration from the size (``preset`` first, then the fields
    given), run, table printed, result saved and every figure drawn under the job's directory."""
    def job(d: Path, cfg: dict):
        given = {k: v for k, v in cfg.items() if k not in ("progress", "preset")}
        config = study.configure(cfg.get("preset"), given).validate()
        res = study.execute(config, progress=cfg.get("progress", True))
        study.print_result(res, config)
        study.save(res, d, report=True)
    job.__name__ = f"job_{study.key}"
    job.__doc__ = study.help or f"The {study.key} study."
    return job


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
        fig.make_figure(d)
    if "valley" in summary or "test_minimum" in summary:
        vgg_landscape.make_figure(d)


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
        fig.make_figure(d)


JOBS: dict[str, Callable[[Path, dict], None]] = {
    "core": job_core, "symbolic": job_symbolic, **{s.key: study_job(s) for s in JOB_STUDIES},
    "empirics": job_empirics, "vgg_long": job_vgg_long}


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
