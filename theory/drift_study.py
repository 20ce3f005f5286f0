"""``lrdecay drift``: the quasistatic drift ODE against label-noise SGD over many paths.

For gamma in {0.5, 1, 2} and two learning rates, SGD paths and the drift ODE start at the same point
of M; the study reports the largest gap between the paths' mean ``||w||`` and the ODE's (relative to
the distance the norm travels) and the measured/predicted train-loss plateau ratio. Breakdown cases:
a large learning rate, minibatch noise (b = 2), few samples (n = 3) and a small gamma (0.25).
Writes ``<out>/drift_<case>.npz``, ``<out>/drift_summary.json`` and
``<out>/figures/drift_vs_sgd.{png,pdf}``.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

MAIN_CASES = [dict(gamma=g, eta=e) for g in (0.5, 1.0, 2.0) for e in (0.02, 0.01)]
BREAKDOWN_CASES = [
    dict(label="large eta", gamma=1.0, eta=0.05),
    dict(label="minibatch b=2", gamma=1.0, eta=0.02, batch_size=2),
    dict(label="few samples n=3", gamma=1.0, eta=0.02, n=3),
    dict(label="small gamma 0.25", gamma=0.25, eta=0.02),
]
# accepted agreement for the main cases: the quasistatic picture neglects corrections of relative
# order eta * lambda (about 0.05 here), and 32 paths give a Monte Carlo error below 1 % of the travel.
NORM_TOL = 0.08
PLATEAU_TOL = 0.10


def _case_name(c):
    s = f"g{c['gamma']:g}_eta{c['eta']:g}"
    if c.get("batch_size"):
        s += f"_b{c['batch_size']}"
    if c.get("n"):
        s += f"_n{c['n']}"
    return s


def run_drift_study(out="results/drift", *, seed=0, paths=32, tau_max=24.0, d=50, n=10, sigma=0.3,
                    quick=False, progress=True) -> dict:
    from theory.problem import Problem
    from theory.io import save_json
    from theory.quasistatic import compare_drift_with_sgd

    out = Path(out)
    main = MAIN_CASES if not quick else [c for c in MAIN_CASES if c["eta"] == 0.02]
    cases = [dict(c, kind="main") for c in main] + [dict(c, kind="breakdown") for c in BREAKDOWN_CASES]
    rows = []
    for c in cases:
        prob = Problem.generate(d=d, n=c.get("n", n), gamma=c["gamma"], sigma=sigma, seed=seed)
        t0 = time.perf_counter()
        cmp_ = compare_drift_with_sgd(prob, c["eta"], tau_max=tau_max, paths=paths, batch_size=c.get("batch_size"),
                                      seed=seed, progress=progress)
        name = _case_name(c)
        cmp_.save(out / f"drift_{name}.npz")
        diverged = "diverged" in cmp_.config["sim_message"]
        row = dict(case=name, label=c.get("label", ""), kind=c["kind"], gamma=c["gamma"], eta=c["eta"],
                   batch_size=c.get("batch_size"), n=prob.n, norm_rel_error=cmp_.norm_rel_error,
                   plateau_ratio=cmp_.plateau_ratio, sim_message=cmp_.config["sim_message"], diverged=diverged,
                   start_norm=float(cmp_.ode_norm[0]), final_sgd_norm=float(np.nanmean(cmp_.sgd_norm[-1])),
                   final_ode_norm=float(cmp_.ode_norm[-1]), min_norm_norm=float(np.linalg.norm(prob.w_mn)),
                   seconds=time.perf_counter() - t0)
        row["within_tol"] = bool(row["norm_rel_error"] <= NORM_TOL and abs(row["plateau_ratio"] - 1) <= PLATEAU_TOL)
        rows.append(row)
    summary = dict(config=dict(seed=seed, paths=paths, tau_max=tau_max, d=d, n=n, sigma=sigma,
                               norm_tol=NORM_TOL, plateau_tol=PLATEAU_TOL), rows=rows)
    save_json(out / "drift_summary.json", summary)
    print(format_table(rows))
    from paper_figures.drift_vs_sgd import make_figure
    figs = make_figure(out, out / "figures" / "drift_vs_sgd")
    print(f"\nwrote {out / 'drift_summary.json'} and {figs[0]}")
    return summary


def format_table(rows) -> str:
    lines = [f"{'case':<26} {'gamma':>5} {'eta':>6} {'|ΔN|/travel':>12} {'plateau meas/pred':>18}  within tol",
             "-" * 80]
    for r in rows:
        lab = r["case"] + (f" ({r['label']})" if r["label"] else "")
        lines.append(f"{lab[:26]:<26} {r['gamma']:>5g} {r['eta']:>6g} {r['norm_rel_error']:>12.3f} "
                     f"{r['plateau_ratio']:>18.3f}  {'yes' if r['within_tol'] else 'no'}"
                     + ("  [diverged paths]" if r["diverged"] else ""))
    return "\n".join(lines)


def register(sub):
    p = sub.add_parser("drift", help="quasistatic drift ODE against label-noise SGD", description=__doc__)
    p.add_argument("--out", default="results/drift", help="output directory (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--paths", type=int, default=32, help="SGD paths per case (default: %(default)s)")
    p.add_argument("--tau-max", type=float, default=24.0, help="drift time tau = eta^2 k (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="one learning rate per gamma")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=lambda a: run_drift_study(a.out, seed=a.seed, paths=a.paths, tau_max=a.tau_max,
                                                  quick=a.quick, progress=not a.no_progress) and 0)
