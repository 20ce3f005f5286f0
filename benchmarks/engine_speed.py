r"""Engine speed: the compiled, full-d, torch and batched-flow targets, each measured as a ratio of
medians over alternating rounds in one process (``compare_peers.py --sections engine`` runs it).

Targets (issue "engine speed"):

1. few paths, reduced coordinates (d = 50, n = 10, gamma = 1 reduced to m = 11; full-batch
   label-noise SGD, eta = 0.02, sigma = 0.3; the default ~200 records): ``simulate`` (auto: the
   compiled per-path kernel) within 2x of a hand-fused single-threaded compiled loop at 1 and 16
   paths, and at least 1.5x faster than the numpy engine at 256 paths. The hand-fused loop does the
   same arithmetic on the same random numbers, drawn the same way (per-path numpy streams, included
   in its time), with no records and no stop tests;
2. full d (d = 1000, n = 50, P = 1000, Euler–Maruyama): ``simulate`` within 1.3x of the matmul
   floor, the two products ``W X^T`` and ``V X`` per step into preallocated outputs;
3. torch at large path counts: 10^5 paths at d = 1000 and 10^6 paths in reduced coordinates
   (m = 11), CPU float64 and float32, against the compiled engine;
4. batched gradient flow (1000 starts, d = 50, n = 10, gamma = 1, eps = 1e-6, DOP853,
   rtol 1e-10, atol 1e-12): ``gradient_flow_batch(vectorized=True)`` at least 10x faster than a loop
   of solve_ivp calls (``gradient_flow`` per start), event times within 1e-8 relative.
"""
from __future__ import annotations

import gc
import math
import statistics
import time

import numpy as np

from lrdecay.theory.models import nonlinear as M
from lrdecay.theory.engine import path_generators, simulate
from lrdecay.theory.problem import Problem
from lrdecay.theory.reduction import Reduction


def interleaved(fns: dict, repeats: int, warmup: int = 1):
    """Run every ``fns[name]()`` once per round, ``warmup + repeats`` rounds; returns the median time per
    name over the timed rounds, all timed rounds, and each function's last return value."""
    times = {k: [] for k in fns}
    outs = {}
    for rnd in range(warmup + repeats):
        for name, fn in fns.items():
            gc.collect()
            t = time.perf_counter()
            outs[name] = fn()
            if rnd >= warmup:
                times[name].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}, times, outs


# ---------------------------------------------------------------------------------------------
# 1. few paths: the compiled kernel against a hand-fused loop and the numpy engine
# ---------------------------------------------------------------------------------------------
def _hand_loop_impl(W, X, y, g, eta, sigma, xi):
    """Full-batch label-noise SGD for every row of ``W``, one path after another, fused by hand:
    ``w <- w + rg u + g r^(g-2) (w . u) w``, ``u = X^T (-(eta/n) res + (eta sigma / n) xi)``."""
    P, m = W.shape
    n = X.shape[0]
    K = xi.shape[1]
    sn = math.sqrt(n)
    res = np.empty(n)
    u = np.empty(m)
    for p in range(P):
        w = W[p]
        for k in range(K):
            sq = 0.0
            for c in range(m):
                sq += w[c] * w[c]
            r = math.sqrt(sq)
            rg = r ** g
            for c in range(m):
                u[c] = 0.0
            for i in range(n):
                acc = 0.0
                for c in range(m):
                    acc += X[i, c] * w[c]
                res[i] = rg * acc - y[i]
                v = res[i] * (-eta / n) + eta * sigma / sn * xi[p, k, i] / sn
                for c in range(m):
                    u[c] += v * X[i, c]
            wu = 0.0
            for c in range(m):
                wu += w[c] * u[c]
            cw = g * r ** (g - 2.0) * wu
            for c in range(m):
                w[c] += rg * u[c] + cw * w[c]
    return W


def section_few_paths(results, rows, quick, log, repeats):
    import numba

    hand_loop = numba.njit(cache=True)(_hand_loop_impl)
    red = Reduction.from_problem(Problem.generate(d=50, n=10, gamma=1.0, sigma=0.3, seed=0)).reduced
    eta, seed = 0.02, 0
    cases = ((1, 20_000), (16, 4_000), (256, 400)) if quick else ((1, 100_000), (16, 25_000), (256, 4_000))
    log(f"\n## E1. Few paths: reduced d=50 n=10 gamma=1 (m = {red.d}), full-batch SGD eta={eta}, "
        f"sigma={red.sigma}; {repeats} alternating rounds")

    def hand(P, S):
        W = np.tile(red.w0, (P, 1))
        xi = np.stack([g.standard_normal((S, red.n)) for g in path_generators(seed, range(P), 0)])
        return hand_loop(W, red.X, red.y, red.gamma, eta, red.sigma, xi)

    def eng(P, S, backend):
        return simulate(red, np.tile(red.w0, (P, 1)), steps=S, lr=eta, seed=seed, backend=backend).W_final

    hand(1, 10)
    eng(1, 10, "numba")
    out = {}
    for P, S in cases:
        fns = {"hand-fused loop": lambda: hand(P, S), "compiled engine": lambda: eng(P, S, "numba"),
               "numpy engine": lambda: eng(P, S, "numpy")}
        meds, times, res = interleaved(fns, repeats)
        agree = float(np.max(np.abs(res["compiled engine"] - res["hand-fused loop"])))
        rate = {k: P * S / v for k, v in meds.items()}
        r_hand = meds["compiled engine"] / meds["hand-fused loop"]
        r_np = meds["numpy engine"] / meds["compiled engine"]
        out[P] = dict(steps=S, medians_s=meds, times_s=times, path_steps_per_s=rate, engine_over_hand=r_hand,
                      numpy_over_engine=r_np, max_abs_diff_vs_hand=agree)
        log(f"  P = {P:4d} x {S} steps: hand {rate['hand-fused loop']:.3g}, compiled {rate['compiled engine']:.3g}, "
            f"numpy {rate['numpy engine']:.3g} path-steps/s; compiled/hand time {r_hand:.2f}, numpy/compiled "
            f"{r_np:.1f}x; max |W_engine - W_hand| = {agree:.1e}")
        rows.append([f"compiled engine, reduced m=11, P={P}, path-steps/s", f"{rate['compiled engine']:.3g}",
                     f"hand-fused loop: {rate['hand-fused loop']:.3g}", f"{r_hand:.2f}x time", "<= 2x",
                     "yes" if r_hand <= 2 else "no"])
        rows.append([f"compiled vs numpy engine, reduced m=11, P={P}", f"{rate['compiled engine']:.3g}",
                     f"numpy engine: {rate['numpy engine']:.3g}", f"{r_np:.1f}x",
                     ">= 1.5x" if P == 256 else "-", ("yes" if r_np >= 1.5 else "no") if P == 256 else "-"])
    results["few_paths"] = {str(k): v for k, v in out.items()}


# ---------------------------------------------------------------------------------------------
# 2. full d against the matmul floor
# ---------------------------------------------------------------------------------------------
def section_full_d(results, rows, quick, log, repeats):
    P, d, n, S = (300, 1000, 50, 20) if quick else (1000, 1000, 50, 100)
    S1 = S // 4
    prob = Problem.generate(d=d, n=n, gamma=1.0, sigma=1.0, seed=0)
    dt = 2.0**-8
    log(f"\n## E2. Full d: P = {P}, d = {d}, n = {n}, {S} Euler–Maruyama steps (records at the start and the end); "
        f"the marginal cost per step is (T({S}) - T({S1})) / {S - S1}")
    rng = np.random.default_rng(1)
    W, V = rng.standard_normal((P, d)), rng.standard_normal((P, n))
    A, U = np.empty((P, n)), np.empty((P, d))
    X = prob.X

    def floor():
        for _ in range(S):
            np.matmul(W, X.T, out=A)
            np.matmul(V, X, out=U)

    def eng(backend, steps=S):
        return simulate(prob, method="em", dt=dt, lr=1.0, steps=steps, n_paths=P, record_every=steps, backend=backend)

    eng("numba", 2)
    meds, times, res = interleaved({"matmul floor": floor, "engine (auto)": lambda: eng("auto"),
                                    f"engine (auto), {S1} steps": lambda: eng("auto", S1),
                                    "numpy engine": lambda: eng("numpy")}, repeats)
    fl = meds["matmul floor"] / S
    per = {"end to end": meds["engine (auto)"] / S,
           "marginal": (meds["engine (auto)"] - meds[f"engine (auto), {S1} steps"]) / (S - S1)}
    ratio = {k: v / fl for k, v in per.items()}
    ratio_np = meds["numpy engine"] / meds["matmul floor"]
    diff = float(np.max(np.abs(res["engine (auto)"].W_final - res["numpy engine"].W_final)))
    log(f"  per step: floor {fl * 1e3:.2f} ms; engine (auto = {res['engine (auto)'].config['backend']}) "
        f"{per['end to end'] * 1e3:.2f} ms end to end ({ratio['end to end']:.2f}x floor), {per['marginal'] * 1e3:.2f} ms "
        f"marginal ({ratio['marginal']:.2f}x); numpy engine {meds['numpy engine'] / S * 1e3:.2f} ms ({ratio_np:.2f}x floor); "
        f"max |W_auto - W_numpy| = {diff:.1e}")
    results["full_d"] = dict(P=P, d=d, n=n, steps=S, steps_short=S1, medians_s=meds, times_s=times,
                             engine_over_floor=ratio, numpy_over_floor=ratio_np, max_abs_diff=diff)
    for k in ("end to end", "marginal"):
        rows.append([f"full d, P={P} d={d} n={n}, {S} steps, ms/step ({k})", f"{per[k] * 1e3:.2f}",
                     f"matmul floor: {fl * 1e3:.2f}", f"{ratio[k]:.2f}x floor", "<= 1.3x", "yes" if ratio[k] <= 1.3 else "no"])
    rows.append([f"full d, P={P} d={d} n={n}, {S} steps, ms/step", f"{per['end to end'] * 1e3:.2f}",
                 f"numpy engine: {meds['numpy engine'] / S * 1e3:.2f}", f"{ratio_np / ratio['end to end']:.1f}x", "-", "-"])


# ---------------------------------------------------------------------------------------------
# 3. torch at many paths
# ---------------------------------------------------------------------------------------------
def section_torch(results, rows, quick, log, repeats, threads=1):
    try:
        import torch
    except ImportError:
        log("\n## E3. torch: not installed, skipped")
        return
    # torch's CPU thread pool waits for all its threads at every operation: on the shared two-core
    # machine two threads made a 1e6-element multiply 40x slower than one (measured), so one thread
    torch.set_num_threads(threads)
    out = {}
    cases = [("d=1000", 1000, 10**4 if quick else 10**5, 3 if quick else 5, False),
             ("reduced m=11", 50, 10**5 if quick else 10**6, 10, True)]
    reps = max(1, min(repeats, 3))
    for label, d, P, S, reduce in cases:
        prob = Problem.generate(d=d, n=10 if reduce else 50, gamma=1.0, sigma=1.0, seed=0)
        model = Reduction.from_problem(prob).reduced if reduce else prob
        dt = 2.0**-8
        log(f"\n## E3. torch ({torch.__version__}, {torch.get_num_threads()} threads), {label}: P = {P:.0e}, "
            f"{S} EM steps, CPU")

        def run(backend, **kw):
            return simulate(model, n_paths=P, method="em", dt=dt, lr=1.0, steps=S, record_every=S, seed=1,
                            backend=backend, **kw)
        fns = {"torch float64": lambda: run("torch", device="cpu"),
               "torch float32": lambda: run("torch", device="cpu", dtype="float32")}
        P_np = P if d == 1000 else P // 10     # the compiled engine's per-path numpy streams cost ~50 us each to set up
        if P_np != P:
            log(f"  compiled engine at P = {P_np:.0e} (creating 10^6 per-path numpy generators alone takes about a minute)")

        def run_np():
            return simulate(model, n_paths=P_np, method="em", dt=dt, lr=1.0, steps=S, record_every=S, seed=1)
        fns["compiled engine"] = run_np
        meds, times, res = interleaved(fns, reps, warmup=0)
        rate = {k: (P_np if k == "compiled engine" else P) * S / v for k, v in meds.items()}
        a, b = res["compiled engine"].final("train_loss"), res["torch float64"].final("train_loss")
        z = abs(a.mean() - b.mean()) / math.hypot(a.std() / math.sqrt(len(a)), b.std() / math.sqrt(len(b)))
        log("  " + ", ".join(f"{k} {v:.3g} path-steps/s" for k, v in rate.items())
            + f"; final train loss z (compiled vs torch64) = {z:.2f}")
        out[label] = dict(P=P, P_compiled=P_np, steps=S, medians_s=meds, times_s=times, path_steps_per_s=rate, z=z)
        for k in ("torch float64", "torch float32"):
            rows.append([f"torch CPU {k[6:]}, {label}, P={P:.0e}, path-steps/s", f"{rate[k]:.3g}",
                         f"compiled engine (P={P_np:.0e}): {rate['compiled engine']:.3g}",
                         f"{rate[k] / rate['compiled engine']:.2f}x", "-", "-"])
    results["torch"] = out


# ---------------------------------------------------------------------------------------------
# 4. batched gradient flow
# ---------------------------------------------------------------------------------------------
def section_batched_flow(results, rows, quick, log, repeats):
    from lrdecay.theory.flow import gradient_flow_batch

    P = 200 if quick else 1000
    p = Problem.generate(d=50, n=10, gamma=1.0, seed=0)
    W0 = p.w0 + 0.3 * np.random.default_rng(1).standard_normal((P, p.d))
    X, y, g = p.X, p.y, p.gamma
    kw = dict(eps=1e-6, t_max=100.0, rtol=1e-10, atol=1e-12)
    log(f"\n## E4. Gradient flow to L_n = 1e-6 from {P} starts (d = 50, n = 10, gamma = 1, DOP853)")

    def loop():
        return gradient_flow_batch(lambda w: M.train_grad(w, X, y, g), W0,
                                   loss=lambda w: float(M.train_loss(w, X, y, g)), **kw)

    def batch():
        return gradient_flow_batch(lambda W: M.train_grad(W, X, y, g), W0, loss=lambda W: M.train_loss(W, X, y, g),
                                   vectorized=True, **kw)
    meds, times, res = interleaved({"solve_ivp loop": loop, "batched": batch}, max(1, min(repeats, 3)), warmup=0)
    t_loop = np.array([r.t_final for r in res["solve_ivp loop"]])
    rel = float(np.max(np.abs(res["batched"].t_final - t_loop) / t_loop))
    ratio = meds["solve_ivp loop"] / meds["batched"]
    log(f"  loop {meds['solve_ivp loop']:.2f} s, batched {meds['batched']:.3f} s: {ratio:.1f}x; max relative "
        f"event-time difference {rel:.1e}")
    results["batched_flow"] = dict(P=P, medians_s=meds, times_s=times, speedup=ratio, max_rel_t_diff=rel)
    rows.append([f"gradient flow to eps, {P} starts, s", f"{meds['batched']:.3f}",
                 f"loop of solve_ivp: {meds['solve_ivp loop']:.2f}", f"{ratio:.1f}x", ">= 10x",
                 "yes" if ratio >= 10 else "no"])
    rows.append([f"gradient flow to eps, {P} starts: max rel. event-time diff", f"{rel:.1e}", "-", "-", "<= 1e-8",
                 "yes" if rel <= 1e-8 else "no"])


def section_engine(results, rows, quick, log, repeats, threads=1):
    section_few_paths(results, rows, quick, log, repeats)
    section_full_d(results, rows, quick, log, repeats)
    section_torch(results, rows, quick, log, repeats, threads)
    section_batched_flow(results, rows, quick, log, repeats)
