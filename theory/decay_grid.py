"""``lrdecay sweep``: a grid over (gamma, eta, decay step, seed) run through :mod:`theory.sweep`.

Each task generates its problem from ``seed`` (so the instance is the same for every gamma, eta and
decay step of that seed), runs label-noise SGD decayed at ``decay_step`` and returns the final test
and train loss with the min-norm reference. The noise stream of a task comes from
:func:`theory.sweep.config_seed`, so results do not depend on the executor or the number of workers.
Finished tasks are cached under ``<out>/cache``; a killed sweep resumes where it stopped.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def decay_task(config: dict) -> dict:
    """One grid point: final losses of ``paths`` SGD paths decayed at ``config['decay_step']``."""
    from theory.phases import decay_sweep
    from theory.problem import Problem
    from theory.sweep import config_seed

    prob = Problem.generate(d=config["d"], n=config["n"], gamma=config["gamma"], sigma=config["sigma"],
                            seed=config["seed"])
    noise_seed = int(config_seed(config).generate_state(1)[0])
    sw = decay_sweep(prob, eta=config["eta"], decay_steps=[config["decay_step"]], factor=config["factor"],
                     phase3_steps=config["phase3_steps"], paths_per_decay=config["paths"], seed=noise_seed,
                     record_every=max(1, (config["decay_step"] + config["phase3_steps"]) // 20))
    return {"final_test": sw.final_test[0], "final_train": sw.final_train[0], "final_norm": sw.final_norm[0],
            "min_norm_test_loss": sw.min_norm_test_loss, "flow_landing_test_loss": sw.flow_landing_test_loss,
            "noise_seed": noise_seed}


def run_grid(out="results/sweep", *, gammas=(0.0, 1.0, 2.0), etas=(0.02,), decay_steps=(0, 2000, 10000, 40000),
             seeds=(0, 1), d=50, n=10, sigma=0.3, factor=0.1, phase3_steps=10000, paths=2,
             executor="processes", workers=None, progress=True, recompute=False) -> list[dict]:
    from theory.io import save_json
    from theory.sweep import grid, run_sweep

    configs = grid(gamma=list(gammas), eta=list(etas), decay_step=list(decay_steps), seed=list(seeds),
                   d=d, n=n, sigma=sigma, factor=factor, phase3_steps=phase3_steps, paths=paths)
    out = Path(out)
    results = run_sweep(decay_task, configs, cache_dir=out / "cache", executor=executor, max_workers=workers,
                        progress=progress, recompute=recompute)
    rows = [dict(cfg, final_test_mean=float(np.mean(r["final_test"])), final_train_mean=float(np.mean(r["final_train"])),
                 min_norm_test_loss=float(r["min_norm_test_loss"]), flow_landing_test_loss=float(r["flow_landing_test_loss"]))
            for cfg, r in zip(configs, results)]
    save_json(out / "sweep_results.json", {"rows": rows})
    print(f"{'gamma':>6} {'eta':>6} {'decay':>7} {'seed':>5} {'final test':>11} {'min-norm':>9}")
    for r in rows:
        print(f"{r['gamma']:>6g} {r['eta']:>6g} {r['decay_step']:>7d} {r['seed']:>5d} {r['final_test_mean']:>11.4f} "
              f"{r['min_norm_test_loss']:>9.4f}")
    print(f"\nwrote {out / 'sweep_results.json'} ({len(rows)} tasks; cache in {out / 'cache'})")
    return rows


def register(sub):
    p = sub.add_parser("sweep", help="grid over (gamma, eta, decay step, seed), local processes or Dask",
                       description=__doc__)
    p.add_argument("--out", default="results/sweep")
    p.add_argument("--gammas", type=float, nargs="+", default=[0.0, 1.0, 2.0])
    p.add_argument("--etas", type=float, nargs="+", default=[0.02])
    p.add_argument("--decay-steps", type=int, nargs="+", default=[0, 2000, 10000, 40000])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--paths", type=int, default=2, help="SGD paths per task")
    p.add_argument("--executor", default="processes",
                   help="processes | threads | serial | a Dask scheduler address tcp://HOST:PORT (default: %(default)s)")
    p.add_argument("--workers", type=int, default=None, help="local workers (default: all cores)")
    p.add_argument("--recompute", action="store_true", help="ignore cached task results")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=lambda a: run_grid(a.out, gammas=a.gammas, etas=a.etas, decay_steps=a.decay_steps, seeds=a.seeds,
                                           paths=a.paths, executor=a.executor, workers=a.workers,
                                           progress=not a.no_progress, recompute=a.recompute) and 0)
