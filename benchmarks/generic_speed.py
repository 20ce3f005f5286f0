r"""The generic model (``lrdecay.theory.models.generic``, everything from ``f(theta, X)`` by torch autodiff) against the
hand-written main model, as ratios of medians over alternating rounds in one process, in process CPU time (one torch
thread, one BLAS call at a time at these sizes; on a shared machine the wall time mostly measures the other jobs, so it
is printed beside it).

Target: on the main model (d = 50, n = 10, gamma = 1, full d, no reduction), label-noise SGD through ``simulate`` with the
generic twin within 5x of the hand-written model's numpy engine, at ``P`` paths. Beside it: the drift velocity at ``P``
points, and where the generic step's time goes (numpy -> torch, the vmapped forward pass, the backward pass, the traced
step graph that replaces them after ``GenericModel.TRACE_AFTER`` calls).

    python benchmarks/generic_speed.py [--quick]
"""
from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from lrdecay.theory.models import nonlinear as M  # noqa: E402
from lrdecay.theory import quasistatic as q  # noqa: E402
from lrdecay.theory.engine import simulate  # noqa: E402
from lrdecay.theory.models.generic_examples import from_problem  # noqa: E402
from lrdecay.theory.problem import Problem  # noqa: E402

TARGET = 5.0


def interleaved(fns: dict, repeats: int, warmup: int = 1):
    """Every ``fns[name]()`` once per round, ``warmup + repeats`` rounds; the median CPU and wall time per name over
    the timed rounds, and each function's last return value."""
    cpu, wall, outs = {k: [] for k in fns}, {k: [] for k in fns}, {}
    for rnd in range(warmup + repeats):
        for name, fn in fns.items():
            gc.collect()
            c, w = time.process_time(), time.perf_counter()
            outs[name] = fn()
            if rnd >= warmup:
                cpu[name].append(time.process_time() - c)
                wall[name].append(time.perf_counter() - w)
    med = statistics.median
    return {k: med(v) for k, v in cpu.items()}, {k: med(v) for k, v in wall.items()}, outs


def relu_drift(res: dict, repeats: int) -> list:
    """The ReLU teacher-student network's drift velocity (D = 240, n = 40, one point): the trace gradient one sample
    at a time against the whole-batch ``jacrev`` it replaced, torch's QR against numpy's for the tangent projection,
    the whole velocity, and Heun steps of the drift (``lrdecay.theory.fixed_step``) over a drift time of 40."""
    import torch
    from scipy.integrate import solve_ivp

    from lrdecay.theory.fixed_step import fixed_step_heun
    from lrdecay.theory.models.generic_examples import relu_teacher_student

    m = relu_teacher_student()
    old = relu_teacher_student()
    old._separable = lambda: False                    # the whole-batch Jacobian of before
    old._build()
    th = m.theta0 + 0.01 * np.random.default_rng(0).standard_normal(m.dim)
    T = torch.as_tensor(th[None])
    g, J = m._trace_grad(T)
    Jn, gn = J.numpy(), g.numpy()

    def numpy_tangent():
        q, _ = np.linalg.qr(np.swapaxes(Jn, -1, -2))
        return gn - np.einsum("...dn,...n->...d", q, np.einsum("...dn,...d->...n", q, gn))
    a = m.sigma**2 / m.n
    parts = {"trace gradient, one sample at a time": lambda: m._trace_grad(T),
             "trace gradient, whole batch (before)": lambda: old._trace_grad(T),
             "tangent projection, torch QR": lambda: m._tangent(Jn, gn),
             "tangent projection, numpy QR (before)": numpy_tangent,
             "drift velocity": lambda: m.drift_velocity(th, a)}
    med, _, outs = interleaved(parts, repeats)
    lines = ["ReLU network (D = 240, n = 40), one point (CPU time): " + ", ".join(
        f"{k} {1e3 * v:.2f} ms" for k, v in med.items())]
    res.update({f"relu_{k}": v for k, v in med.items()})
    res["relu_trace_grad_max_diff"] = float(np.max(np.abs(outs["trace gradient, one sample at a time"][0].numpy()
                                                          - outs["trace gradient, whole batch (before)"][0].numpy())))
    c = time.process_time()
    sol = solve_ivp(lambda _t, w: m.drift_velocity(w, a), (0.0, 40.0), th, method=fixed_step_heun(1.0))
    res["relu_heun_tau40_s"], res["relu_heun_tau40_nfev"] = time.process_time() - c, int(sol.nfev)
    lines.append(f"  Heun (step 1) over tau in [0, 40]: {res['relu_heun_tau40_s']:.2f} s, {sol.nfev} evaluations "
                 f"(trace gradients equal to {res['relu_trace_grad_max_diff']:.1e})")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps and rounds")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "generic_speed"))
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    steps, repeats = (100, 3) if a.quick else (500, 5)
    p = Problem.generate(d=50, n=10, gamma=1.0, sigma=0.3, seed=0)
    g = from_problem(p)
    hand = M.NonlinearModel.from_problem(p)
    lines, res = [], {}
    for P in (16, 256):
        W0 = np.tile(p.w0, (P, 1))

        def run(model):
            return simulate(model, W0, steps=steps, lr=0.02, method="sgd", sigma=p.sigma, seed=0, backend="numpy",
                            record_every=steps, observables=["train_loss"], progress=False).W_final
        med, wall, outs = interleaved({"hand": lambda: run(hand), "generic": lambda: run(g)}, repeats)
        diff = float(np.max(np.abs(outs["hand"] - outs["generic"])))
        ratio = med["generic"] / med["hand"]
        res[f"sgd_P{P}"] = dict(hand_s=med["hand"], generic_s=med["generic"], ratio=ratio, max_abs_diff=diff,
                                hand_wall_s=wall["hand"], generic_wall_s=wall["generic"])
        lines.append(f"simulate sgd, P = {P}, {steps} steps (CPU time): hand {1e3 * med['hand']:.1f} ms, generic "
                     f"{1e3 * med['generic']:.1f} ms, ratio {ratio:.2f} (target <= {TARGET:g}); max |dW| {diff:.1e}; "
                     f"wall {1e3 * wall['hand']:.0f} / {1e3 * wall['generic']:.0f} ms")
        Wm = M.retract(W0 * (1 + 0.1 * np.arange(P)[:, None] / P), p.X, p.y, p.gamma)
        med, _, _ = interleaved({"hand": lambda: q.drift_velocity(p, Wm, 0.01),
                                 "generic": lambda: g.drift_velocity(Wm, 0.01)}, repeats)
        res[f"drift_P{P}"] = dict(hand_s=med["hand"], generic_s=med["generic"], ratio=med["generic"] / med["hand"])
        lines.append(f"drift velocity at P = {P} points (CPU time): hand {1e3 * med['hand']:.2f} ms, generic "
                     f"{1e3 * med['generic']:.2f} ms, ratio {med['generic'] / med['hand']:.1f}")
        # where the generic step's time goes
        T = torch.as_tensor(W0)
        xi = np.ones((P, p.n))
        args = (T, torch.full((P, 1), -0.002, dtype=torch.float64), torch.full((P, p.n), 0.002, dtype=torch.float64))
        parts = {"numpy -> torch": lambda: torch.as_tensor(np.asarray(W0, dtype=float)),
                 "vmapped forward": lambda: g._f(T),
                 "eager forward + backward": lambda: g._eager_step(*args),
                 "traced step graph": lambda: g._traced_steps[P](*args),
                 "whole increment": lambda: g.increment(W0, 0.02, 0.006, xi),
                 "hand increment": lambda: hand.increment(W0, 0.02, 0.006, xi)}
        reps = 200
        for name, fn in parts.items():
            fn()
            t = time.process_time()
            for _ in range(reps):
                fn()
            res[f"part_P{P}_{name}"] = (time.process_time() - t) / reps
        lines.append("  per step (CPU time): " + ", ".join(f"{k} {1e6 * res[f'part_P{P}_{k}']:.0f} us" for k in parts))
    lines += relu_drift(res, repeats)
    text = "\n".join(lines)
    print(text)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".txt").write_text(text + "\n")
    out.with_suffix(".json").write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
