"""``lrdecay demo``: the late-decay effect in one table and one figure.

On a default problem (d = 50, n = 10, sigma = 0.3, eta = 0.02, decay to eta/10) label-noise SGD is
decayed at several steps of the large-learning-rate phase; the final test loss per decay step is
printed beside the min-norm test loss, for gamma = 1 and for gamma = 0 (the linear model, where the
decay time should not matter). Writes ``<out>/demo.npz`` (configuration, seed, problem instance) and
``<out>/figures/demo_decay.{png,pdf}``.
"""
from __future__ import annotations

import time
from pathlib import Path

DEFAULTS = dict(d=50, n=10, sigma=0.3, eta=0.02, factor=0.1, decay_steps=[0, 2000, 10000, 30000, 100000],
                phase3_steps=20000, paths=4, seed=0, gammas=[1.0, 0.0])


def run_demo(out="results/demo", *, seed=0, paths=4, quick=False, progress=True) -> dict:
    import numpy as np

    from theory.io import save_result
    from theory.phases import decay_sweep
    from theory.problem import Problem

    cfg = dict(DEFAULTS, seed=seed, paths=paths)
    if quick:
        cfg.update(decay_steps=[0, 1000, 5000, 20000], phase3_steps=5000)
    out = Path(out)
    sweeps = {}
    for gamma in cfg["gammas"]:
        prob = Problem.generate(d=cfg["d"], n=cfg["n"], gamma=gamma, sigma=cfg["sigma"], seed=seed)
        t0 = time.perf_counter()
        sw = decay_sweep(prob, eta=cfg["eta"], decay_steps=cfg["decay_steps"], factor=cfg["factor"],
                         phase3_steps=cfg["phase3_steps"], paths_per_decay=paths, seed=seed, progress=progress)
        print(f"\ngamma = {gamma:g}  (d = {prob.d}, n = {prob.n}, sigma = {prob.sigma}, eta = {cfg['eta']}, "
              f"decay to eta x {cfg['factor']}, {paths} paths per row, {time.perf_counter() - t0:.1f} s)")
        print(sw.table())
        sweeps[gamma] = sw
        sw.save(out / f"decay_sweep_gamma{gamma:g}.npz")
    # the same budget spent with other schedules (gamma = 1 problem)
    from theory.io import save_json
    from theory.phases import equal_budget_schedules, schedule_comparison
    total = max(cfg["decay_steps"]) + cfg["phase3_steps"]
    prob1 = sweeps[1.0].problem if 1.0 in sweeps else Problem.generate(d=cfg["d"], n=cfg["n"], gamma=1.0, sigma=cfg["sigma"], seed=seed)
    schedules = equal_budget_schedules(cfg["eta"], total, cfg["factor"], (0.1, 0.5, 0.9))
    comp = schedule_comparison(prob1, schedules, total_steps=total, paths=paths, seed=seed, progress=progress)
    ft = comp["final_test"]
    sem = ft.std(1, ddof=1) / np.sqrt(ft.shape[1]) if ft.shape[1] > 1 else np.zeros(len(ft))
    print(f"\nequal budget of {total} steps, gamma = 1 (eta = {cfg['eta']} decayed to x{cfg['factor']}):")
    for nm, m_, s_ in zip(comp["names"], ft.mean(1), sem):
        print(f"  {nm:>10}: final test loss {m_:.4f} ± {s_:.4f}")
    print(f"  {'min-norm':>10}: {comp['min_norm_test_loss']:.4f}")
    save_json(out / "schedules.json", {"total_steps": total, "names": comp["names"], "final_test_mean": ft.mean(1),
                                       "final_test_sem": sem, "final_train_mean": comp["final_train"].mean(1),
                                       "min_norm_test_loss": comp["min_norm_test_loss"], "seed": seed, "paths": paths,
                                       "schedules": {k: v.describe() for k, v in schedules.items()}})
    arrays = {}
    for g, sw in sweeps.items():
        arrays[f"g{g:g}_decay_steps"] = sw.decay_steps
        arrays[f"g{g:g}_final_test"] = sw.final_test
    save_result(out / "demo.npz", arrays, {"kind": "demo", **cfg,
                                           "min_norm_test_loss": {f"{g:g}": sw.min_norm_test_loss for g, sw in sweeps.items()}})
    from paper_figures.decay_curve import make_figure
    paths_written = make_figure([out / f"decay_sweep_gamma{g:g}.npz" for g in sweeps], out / "figures" / "demo_decay")
    print(f"\nwrote {out / 'demo.npz'} and {paths_written[0]}")
    return sweeps


def register(sub):
    p = sub.add_parser("demo", help="late-decay sweep on the nonlinear model for gamma = 1 and gamma = 0",
                       description=__doc__)
    p.add_argument("--out", default="results/demo", help="output directory (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="problem and noise seed (default: %(default)s)")
    p.add_argument("--paths", type=int, default=4, help="paths per decay step (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="shorter runs (a few seconds)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=lambda a: run_demo(a.out, seed=a.seed, paths=a.paths, quick=a.quick,
                                           progress=not a.no_progress) and 0)
