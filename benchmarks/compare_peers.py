r"""Compare the toolkit's engine with peer libraries, in one process, and print ratios.

Usage::

    python benchmarks/compare_peers.py --out benchmarks/results/compare_peers.json
    python benchmarks/compare_peers.py --quick          # smoke test, smaller sizes, ~1 min

Peers (optional extra ``pip install -e '.[peers]'``): torchsde, sdeint, jax + diffrax. A missing peer is
skipped with a line saying so; numpy and scipy are always there.

Every time is a median over ``--repeats`` timed rounds (default 5, after one warm-up round); the
contenders that are compared with each other run in alternating rounds, so a change in the machine's
load hits them alike. Exceptions: the d = 10^6 projection is timed twice and ``simulate(...,
reduce=True)`` end to end at d = 10^6 once. BLAS, torch and XLA use ``--threads`` threads (default 1,
set before the libraries load: on a shared machine multi-threaded BLAS timings are erratic).

What is measured:

1. The label-noise SDE ``dw = -grad L_n(w) dt + sqrt(eta a) (J(w)^T / sqrt n) dB`` of the
   nonlinear model (gamma = 1, d = 1000, n = 50) from ``w0``, Euler–Maruyama with the same ``dt``
   and number of steps everywhere, float64 everywhere:

   * this toolkit: ``lrdecay.theory.engine.simulate(problem, method="em", dt=dt, ...)``, all paths in one batch;
   * a naive per-path numpy loop (the same update written for one path at a time);
   * torchsde ``sdeint(method="euler")``, ``noise_type="general"``, batched over paths: with the
     diffusion matrix ``g = c J(w)^T / sqrt n`` of shape (P, d, n) (the documented interface), and
     with a user-supplied ``f_and_g_prod`` that never forms the matrix (torchsde's fast path);
   * sdeint ``itoEuler`` (no batching: one path at a time; ``G`` returns the d x n matrix);
   * diffrax ``Euler`` on jax/CPU, ``jit(vmap(...))`` over paths, ``UnsafeBrownianPath``; with a
     ``ControlTerm`` returning the d x n matrix, and returning a lineax ``FunctionLinearOperator``
     (diffrax's matrix-free path). Compile time is excluded and reported separately.

   Slow peers run fewer paths (never fewer steps); every rate is in path-steps per second, so the
   ratios are per path-step. Before timing, the implementations are checked on a small case with
   identical Brownian increments (toolkit vs each peer: the final states must agree to rounding),
   and the timed runs' final train losses are compared in mean (z-score against the Monte Carlo
   standard error).

2. Gradient flow to the event ``L_n = eps`` at d = 10^4: ``lrdecay.theory.flow.problem_gradient_flow``
   (exact reduction to ``span{w0, x_i}``, dimension n + 1) against ``scipy.integrate.solve_ivp`` on
   the full d-dimensional system, same method (DOP853), tolerances and event.

3. The engine's achieved FLOP rate (P = 1000, d = 1000, n = 50) against numpy's matmul rate on the
   same shapes: per step ``4 P n d`` matmul flops (``alpha(W) X^T`` and ``V X``) plus ``9 P d``
   elementwise flops.

4. d = 10^3 against d = 10^6 with the reduction: engine time per path-step after the one-time
   projection (which is timed separately), and end to end with ``simulate(..., reduce=True)``.

5. ``engine``: the engine-speed targets (compiled kernel against a hand-fused loop and the numpy
   engine at 1, 16 and 256 paths; full d against the matmul floor; torch at 10^5 and 10^6 paths;
   batched gradient flow against a loop of solve_ivp calls); see ``benchmarks/engine_speed.py``.

The results table (Markdown) is printed and, with ``--out``, written with all raw numbers to JSON.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _threads_from_argv(argv) -> int:
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return int(argv[i + 1])
        if a.startswith("--threads="):
            return int(a.split("=", 1)[1])
    return 1


# Thread counts must be fixed before numpy, torch or jax start their thread pools.
if __name__ == "__main__":
    THREADS = _threads_from_argv(sys.argv[1:])
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = str(THREADS)
    if THREADS == 1:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lrdecay.theory.models import nonlinear as M  # noqa: E402
from lrdecay.theory.problem import Problem  # noqa: E402
from lrdecay.theory.engine import path_generators, simulate  # noqa: E402
from engine_speed import interleaved  # noqa: E402  (benchmarks/ is the script's directory)

# ----------------------------------------------------------------------------------------------
# configuration
# ----------------------------------------------------------------------------------------------
GAMMA = 1.0
SIGMA = 1.0          # label noise; a = sigma^2 / n
ETA = 1.0            # learning rate in the diffusion coefficient sqrt(eta a)
DT = 2.0**-8         # a power of two, so k*dt is exact and every library takes exactly `steps` steps
SEED = 0


def sde_config(quick: bool) -> dict:
    if quick:
        return dict(d=1000, n=50, steps=10, P=200, P_naive=20, P_sdeint=10, P_torch_matrix=50,
                    P_torch_prod=200, P_diffrax=200, P_diffrax_matrix=200, check_P=4, repeats=3)
    return dict(d=1000, n=50, steps=40, P=1000, P_naive=100, P_sdeint=40, P_torch_matrix=100,
                P_torch_prod=1000, P_diffrax=1000, P_diffrax_matrix=500, check_P=6, repeats=5)


def log(msg: str = "") -> None:
    print(msg, flush=True)


def median_time(fn, repeats: int, warmup: int = 1):
    """Median wall time of ``fn()`` over ``repeats`` calls (after ``warmup`` untimed calls); returns
    (median seconds, all times, last return value)."""
    out = None
    for _ in range(warmup):
        out = fn()
    times = []
    for _ in range(repeats):
        gc.collect()
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times, out




# ----------------------------------------------------------------------------------------------
# the SDE, written out once per library
# ----------------------------------------------------------------------------------------------
def noise_coef(problem) -> float:
    """``c = sqrt(eta a)`` with ``a = sigma^2 / n``: the diffusion is ``c J(w)^T / sqrt n``."""
    return float(np.sqrt(ETA * problem.sigma**2 / problem.n))


def toolkit_run(problem, P, steps, seed=SEED):
    r = simulate(problem, method="em", dt=DT, lr=ETA, steps=steps, n_paths=P, seed=seed,
                 record_every=steps)
    return r.W_final


def path_xi(seed, P, steps, n):
    """The toolkit's standard normals: path p's stream ``SeedSequence(seed, spawn_key=(p, 0))``."""
    return np.stack([g.standard_normal((steps, n)) for g in path_generators(seed, range(P), 0)])


def neg_grad_single(w, X, y, g, n):
    """``-grad L_n(w)`` for one path in plain numpy: the drift every peer integrates."""
    r = np.linalg.norm(w)
    u = (r**g * (X @ w) - y) @ X / n
    return -(r**g * u + g * r ** (g - 2) * (w @ u) * w)


def naive_run(problem, P, steps, seed=SEED, xi=None):
    """One path at a time, one step at a time; the same random streams as the toolkit."""
    X, y, g, n = problem.X, problem.y, problem.gamma, problem.n
    c = noise_coef(problem) * np.sqrt(DT) / np.sqrt(n)
    out = np.empty((P, problem.d))
    gens = path_generators(seed, range(P), 0) if xi is None else None
    for p in range(P):
        xp = gens[p].standard_normal((steps, n)) if xi is None else xi[p]
        w = problem.w0.copy()
        for k in range(steps):
            r = np.linalg.norm(w)
            res = r**g * (X @ w) - y
            u = (-res * (DT / n) + c * xp[k]) @ X          # X^T (-res dt / n + c xi / sqrt n)
            w = w + r**g * u + g * r ** (g - 2) * (w @ u) * w  # + D alpha(w) u
        out[p] = w
    return out


# -- torchsde ------------------------------------------------------------------------------------
def make_torchsde(problem):
    import torch
    import torchsde

    X = torch.as_tensor(problem.X, dtype=torch.float64)
    y = torch.as_tensor(problem.y, dtype=torch.float64)
    g, n = problem.gamma, problem.n
    cn = noise_coef(problem) / np.sqrt(n)

    def dalpha(w, r, u):
        return r**g * u + g * r ** (g - 2) * (w * u).sum(-1, keepdim=True) * w

    class MatrixSDE(torch.nn.Module):
        """The documented interface: drift f and diffusion matrix g of shape (P, d, n)."""
        noise_type, sde_type = "general", "ito"

        def f(self, t, w):
            r = w.norm(dim=-1, keepdim=True)
            res = r**g * (w @ X.T) - y
            return -dalpha(w, r, res @ X / n)

        def g(self, t, w):
            r = w.norm(dim=-1, keepdim=True)                       # (P, 1)
            Xw = w @ X.T                                           # (P, n)
            Jt = r[:, :, None] ** g * X.T[None] + (g * r ** (g - 2))[:, :, None] * w[:, :, None] * Xw[:, None, :]
            return cn * Jt                                         # c J^T / sqrt n, (P, d, n)

    class ProdSDE(torch.nn.Module):
        """torchsde's fast path: f and the diffusion-vector product, never forming the matrix."""
        noise_type, sde_type = "general", "ito"

        def f_and_g_prod(self, t, w, v):
            r = w.norm(dim=-1, keepdim=True)
            res = r**g * (w @ X.T) - y
            return -dalpha(w, r, res @ X / n), dalpha(w, r, cn * v @ X)

    class TableBM(torchsde.BaseBrownian):
        """Prescribed increments ``dW[:, k]`` on the grid ``k dt`` (for the agreement check)."""
        __slots__ = ("dW",)

        def __init__(self, dW):
            self.dW = dW

        def __call__(self, ta, tb=None, return_U=False, return_A=False):
            return self.dW[:, int(round(float(ta) / DT))]

        def __repr__(self):
            return "TableBM"

        dtype = property(lambda self: self.dW.dtype)
        device = property(lambda self: self.dW.device)
        shape = property(lambda self: (self.dW.shape[0], self.dW.shape[2]))
        levy_area_approximation = property(lambda self: "none")

    def run(kind, P, steps, seed=SEED, dW=None):
        torch.manual_seed(seed)
        y0 = torch.as_tensor(np.tile(problem.w0, (P, 1)), dtype=torch.float64)
        T = steps * DT
        ts = torch.tensor([0.0, T], dtype=torch.float64)
        if dW is not None:
            bm = TableBM(torch.as_tensor(dW, dtype=torch.float64))
        else:
            bm = torchsde.BrownianInterval(t0=0.0, t1=T, size=(P, n), dtype=torch.float64)
        sde = MatrixSDE() if kind == "matrix" else ProdSDE()
        with torch.no_grad():
            ys = torchsde.sdeint(sde, y0, ts, method="euler", dt=DT, bm=bm)
        return ys[-1].numpy()

    return run


# -- sdeint --------------------------------------------------------------------------------------
def make_sdeint(problem):
    import sdeint

    X, y, g, n = problem.X, problem.y, problem.gamma, problem.n
    XT = np.ascontiguousarray(X.T)
    cn = noise_coef(problem) / np.sqrt(n)

    def f(w, t):
        return neg_grad_single(w, X, y, g, n)

    def G(w, t):
        r = np.linalg.norm(w)
        return cn * (r**g * XT + g * r ** (g - 2) * np.outer(w, X @ w))   # (d, n)

    def run(P, steps, seed=SEED, dW=None):
        tspan = np.arange(steps + 1) * DT
        out = np.empty((P, problem.d))
        for p in range(P):
            kw = dict(dW=dW[p]) if dW is not None else dict(generator=np.random.default_rng([seed, p]))
            out[p] = sdeint.itoEuler(f, G, problem.w0.copy(), tspan, **kw)[-1]
        return out

    return run


# -- diffrax -------------------------------------------------------------------------------------
def make_diffrax(problem):
    import jax
    jax.config.update("jax_enable_x64", True)
    import diffrax
    import equinox as eqx
    import jax.numpy as jnp
    import lineax

    X = jnp.asarray(problem.X)
    y = jnp.asarray(problem.y)
    g, n = problem.gamma, problem.n
    cn = noise_coef(problem) / np.sqrt(n)

    def dalpha(w, r, u):
        return r**g * u + g * r ** (g - 2) * jnp.dot(w, u) * w

    def drift(t, w, args):
        r = jnp.linalg.norm(w)
        return -dalpha(w, r, (r**g * (X @ w) - y) @ X / n)

    def diff_matrix(t, w, args):
        r = jnp.linalg.norm(w)
        return cn * (r**g * X.T + g * r ** (g - 2) * jnp.outer(w, X @ w))     # (d, n)

    def diff_operator(t, w, args):
        r = jnp.linalg.norm(w)
        return lineax.FunctionLinearOperator(lambda v: dalpha(w, r, cn * (v @ X)),
                                             jax.ShapeDtypeStruct((n,), w.dtype))

    class TablePath(diffrax.AbstractPath):
        """Prescribed increments on the grid ``k dt`` (for the agreement check)."""
        dW: jax.Array
        t0: float = eqx.field(static=True, default=0.0)
        t1: float = eqx.field(static=True, default=1.0)

        def evaluate(self, t0, t1=None, left=True):
            return self.dW[jnp.rint(t0 / DT).astype(jnp.int32)]

    def solver(kind, steps, table):
        diffusion = diff_matrix if kind == "matrix" else diff_operator

        def one(w0, noise):
            path = (TablePath(noise, t1=steps * DT) if table
                    else diffrax.UnsafeBrownianPath(shape=(n,), key=noise))
            terms = diffrax.MultiTerm(diffrax.ODETerm(drift), diffrax.ControlTerm(diffusion, path))
            sol = diffrax.diffeqsolve(terms, diffrax.Euler(), t0=0.0, t1=steps * DT, dt0=DT, y0=w0,
                                      saveat=diffrax.SaveAt(t1=True), max_steps=steps + 2,
                                      adjoint=diffrax.ForwardMode())   # no backprop: the cheapest
            return sol.ys[-1]

        return jax.jit(jax.vmap(one))

    def compile_(kind, P, steps, seed=SEED, dW=None):
        """Compile for (P, steps); returns (run(), compile seconds)."""
        W0 = jnp.asarray(np.tile(problem.w0, (P, 1)))
        noise = jnp.asarray(dW) if dW is not None else jax.random.split(jax.random.PRNGKey(seed), P)
        t = time.perf_counter()
        compiled = solver(kind, steps, dW is not None).lower(W0, noise).compile()
        tc = time.perf_counter() - t

        def run():
            return np.asarray(compiled(W0, noise).block_until_ready())
        return run, tc

    return compile_


# ----------------------------------------------------------------------------------------------
# sections
# ----------------------------------------------------------------------------------------------
def peer_available(name):
    try:
        if name == "torchsde":
            import torch  # noqa: F401
            import torchsde  # noqa: F401
        elif name == "sdeint":
            import sdeint  # noqa: F401
        elif name == "diffrax":
            import diffrax  # noqa: F401
            import jax  # noqa: F401
            import lineax  # noqa: F401
        return True, ""
    except Exception as exc:  # ImportError, or a broken install
        return False, f"{type(exc).__name__}: {exc}"


def final_loss_stats(problem, W):
    L = M.train_loss(W, problem.X, problem.y, problem.gamma)
    return float(np.mean(L)), float(np.std(L, ddof=1) / np.sqrt(len(L))) if len(L) > 1 else 0.0


def section_sde(cfg, peers, results, rows):
    d, n, S = cfg["d"], cfg["n"], cfg["steps"]
    reps = cfg["repeats"]
    problem = Problem.generate(d=d, n=n, gamma=GAMMA, sigma=SIGMA, seed=SEED)
    log(f"\n## 1. Label-noise SDE: d = {d}, n = {n}, gamma = {GAMMA:g}, sigma = {SIGMA:g} (a = sigma^2/n), "
        f"eta = {ETA:g}, dt = {DT:g}, {S} steps, float64")

    # --- agreement on a small case with identical Brownian increments --------------------------
    cP, cS = cfg["check_P"], min(S, 20)
    xi = path_xi(SEED, cP, cS, n)
    dW = np.sqrt(DT) * xi                                           # (P, steps, n)
    ref = toolkit_run(problem, cP, cS)
    scale = np.max(np.abs(ref))
    checks = {"naive loop": naive_run(problem, cP, cS, xi=xi)}

    def check_peer(peer, fill):
        """Run a peer's agreement check; a peer that fails here is skipped from then on."""
        if not peers[peer][0]:
            return
        try:
            fill()
        except Exception as exc:
            peers[peer] = (False, f"failed: {type(exc).__name__}: {exc}")
            log(f"  {peer}: {peers[peer][1]}; skipped")

    def fill_sdeint():
        checks["sdeint itoEuler"] = make_sdeint(problem)(cP, cS, dW=dW)

    def fill_torchsde():
        tr = make_torchsde(problem)
        checks["torchsde (matrix g)"] = tr("matrix", cP, cS, dW=dW)
        checks["torchsde (f_and_g_prod)"] = tr("prod", cP, cS, dW=dW)

    def fill_diffrax():
        dr = make_diffrax(problem)
        checks["diffrax (matrix)"] = dr("matrix", cP, cS, dW=dW)[0]()
        checks["diffrax (operator)"] = dr("operator", cP, cS, dW=dW)[0]()

    check_peer("sdeint", fill_sdeint)
    check_peer("torchsde", fill_torchsde)
    check_peer("diffrax", fill_diffrax)
    agree = {}
    log(f"\nAgreement, {cP} paths x {cS} steps, identical Brownian increments "
        f"(max |W_peer - W_toolkit| / max |W_toolkit|):")
    for name, W in checks.items():
        err = float(np.max(np.abs(W - ref)) / scale)
        agree[name] = err
        log(f"  {name:26s} {err:.2e}  {'ok' if err < 1e-10 else 'MISMATCH'}")
    results["sde_agreement"] = agree

    # --- timings --------------------------------------------------------------------------------
    # Every contender runs once per round, rounds interleaved, so a change in the machine's load
    # hits all of them alike; the median over rounds is reported.
    contenders = {"toolkit": (cfg["P"], lambda P: (lambda: toolkit_run(problem, P, S)), {}),
                  "naive numpy loop": (cfg["P_naive"], lambda P: (lambda: naive_run(problem, P, S)), {})}
    if peers["torchsde"][0]:
        import torch
        tr = make_torchsde(problem)
        extra = dict(torch_threads=torch.get_num_threads())
        contenders["torchsde (matrix g)"] = (cfg["P_torch_matrix"], lambda P: (lambda: tr("matrix", P, S)), extra)
        contenders["torchsde (f_and_g_prod)"] = (cfg["P_torch_prod"], lambda P: (lambda: tr("prod", P, S)), extra)
    else:
        log(f"  torchsde: skipped ({peers['torchsde'][1]})")
    if peers["sdeint"][0]:
        sr = make_sdeint(problem)
        contenders["sdeint itoEuler"] = (cfg["P_sdeint"], lambda P: (lambda: sr(P, S)), {})
    else:
        log(f"  sdeint: skipped ({peers['sdeint'][1]})")
    if peers["diffrax"][0]:
        dr = make_diffrax(problem)
        for kind, label, Pd in (("matrix", "diffrax (matrix)", cfg["P_diffrax_matrix"]),
                                ("operator", "diffrax (operator)", cfg["P_diffrax"])):
            run, tc = dr(kind, Pd, S)
            log(f"  {label}: jit compile {tc:.2f} s for P = {Pd} (excluded from the timings)")
            contenders[label] = (Pd, (lambda r: (lambda P: r))(run), dict(compile_s=tc))
    else:
        log(f"  diffrax: skipped ({peers['diffrax'][1]})")

    fns = {name: make(P) for name, (P, make, _) in contenders.items()}
    log(f"\nTimings ({reps} interleaved rounds after one warm-up round; slow peers run fewer paths, "
        f"the same {S} steps):")
    meds, all_times, outs = interleaved(fns, reps)
    timings = {}
    for name, (P, _, extra) in contenders.items():
        med, W = meds[name], outs[name]
        rate = P * S / med
        m, se = final_loss_stats(problem, W)
        timings[name] = dict(paths=P, steps=S, median_s=med, times_s=all_times[name], path_steps_per_s=rate,
                             final_train_loss_mean=m, final_train_loss_se=se, **extra)
        log(f"  {name:26s} P = {P:5d}: median {med:8.3f} s  ->  {rate:10.4g} path-steps/s   "
            f"(final train loss {m:.4f} +- {se:.4f})")

    # distribution check on the timed runs (independent noise per library)
    base = timings["toolkit"]
    log("\nFinal train loss of the timed runs vs the toolkit's (z = difference / combined standard error):")
    for name, t in timings.items():
        if name == "toolkit":
            continue
        se = np.hypot(base["final_train_loss_se"], t["final_train_loss_se"])
        z = abs(t["final_train_loss_mean"] - base["final_train_loss_mean"]) / se if se > 0 else 0.0
        t["z_vs_toolkit"] = float(z)
        log(f"  {name:26s} z = {z:.2f}  {'ok' if z < 4 else 'CHECK'}")
    results["sde"] = dict(config=dict(d=d, n=n, gamma=GAMMA, sigma=SIGMA, eta=ETA, dt=DT, steps=S),
                          timings=timings)

    targets = {"torchsde (matrix g)": 10, "torchsde (f_and_g_prod)": 10, "sdeint itoEuler": 30,
               "diffrax (matrix)": 3, "diffrax (operator)": 3, "naive numpy loop": None}
    rate0 = base["path_steps_per_s"]
    for name, tgt in targets.items():
        if name not in timings:
            rows.append([f"SDE d={d} n={n}, path-steps/s", f"{rate0:.3g}", f"{name}: skipped", "-",
                         f">= {tgt}x" if tgt else "-", "-"])
            continue
        ratio = rate0 / timings[name]["path_steps_per_s"]
        rows.append([f"SDE d={d} n={n}, path-steps/s", f"{rate0:.3g}",
                     f"{name}: {timings[name]['path_steps_per_s']:.3g}", f"{ratio:.1f}x",
                     f">= {tgt}x" if tgt else "-", ("yes" if ratio >= tgt else "no") if tgt else "-"])
        timings[name]["speedup_of_toolkit"] = ratio
    for name in ("diffrax (matrix)", "diffrax (operator)"):
        if name in timings:
            rows.append([f"{name}: jit compile (excluded above), s", "-", f"{timings[name]['compile_s']:.2f}",
                         "-", "-", "-"])
    return problem


def section_flow(cfg, results, rows, quick):
    from scipy.integrate import solve_ivp

    from lrdecay.theory import flow

    d, n = (2000, 50) if quick else (10_000, 50)
    eps, t_max, rtol, atol, method = 1e-6, 100.0, 1e-10, 1e-12, "DOP853"
    problem = Problem.generate(d=d, n=n, gamma=GAMMA, sigma=SIGMA, seed=SEED)
    X, y, g = problem.X, problem.y, problem.gamma
    log(f"\n## 2. Gradient flow to L_n = {eps:g}: d = {d}, n = {n}, {method}, rtol = {rtol:g}, atol = {atol:g}")

    def toolkit():
        return flow.problem_gradient_flow(problem, eps=eps, t_max=t_max, reduce=True, rtol=rtol, atol=atol,
                                          method=method)

    def full():
        def rhs(t, w):
            return neg_grad_single(w, X, y, g, n)

        def event(t, w):
            r = np.linalg.norm(w)
            return 0.5 * np.mean((r**g * (X @ w) - y) ** 2) - eps
        event.terminal, event.direction = True, -1
        return solve_ivp(rhs, (0.0, t_max), problem.w0, method=method, rtol=rtol, atol=atol, events=[event])

    meds, times, outs = interleaved({"toolkit": toolkit, "full": full}, cfg["repeats"])
    (mt, tt, rt), (mf, tf, rf) = [(meds[k], times[k], outs[k]) for k in ("toolkit", "full")]
    t_full = float(rf.t_events[0][0])
    w_full = rf.y_events[0][0]
    dt_rel = abs(rt.t_final - t_full) / t_full
    dw_rel = float(np.linalg.norm(rt.w_final - w_full) / np.linalg.norm(w_full))
    log(f"  toolkit (reduced, m = {n + 1}): median {mt:.4f} s, t_eps = {rt.t_final:.10g}, nfev = {rt.nfev}, "
        f"status {rt.status}")
    log(f"  solve_ivp (full d = {d}):      median {mf:.4f} s, t_eps = {t_full:.10g}, nfev = {rf.nfev}")
    log(f"  agreement: |dt_eps|/t_eps = {dt_rel:.1e}, ||dw|| / ||w|| = {dw_rel:.1e}")
    ratio = mf / mt
    results["flow"] = dict(d=d, n=n, eps=eps, rtol=rtol, atol=atol, method=method,
                           toolkit=dict(median_s=mt, times_s=tt, t_eps=rt.t_final, nfev=rt.nfev),
                           solve_ivp_full=dict(median_s=mf, times_s=tf, t_eps=t_full, nfev=int(rf.nfev)),
                           t_eps_rel_diff=dt_rel, w_rel_diff=dw_rel, speedup=ratio)
    rows.append([f"gradient flow to eps, d={d}, s", f"{mt:.4f}", f"solve_ivp full d: {mf:.3f}",
                 f"{ratio:.1f}x", "-", "-"])


def section_flops(cfg, results, rows, quick):
    P, d, n = (200, 1000, 50) if quick else (1000, 1000, 50)
    S = 10 if quick else 40
    reps = cfg["repeats"]
    problem = Problem.generate(d=d, n=n, gamma=GAMMA, sigma=SIGMA, seed=SEED)
    log(f"\n## 3. FLOP rate: P = {P}, d = {d}, n = {n}, {S} EM steps")
    flops_mm = 4.0 * P * n * d
    flops_step = flops_mm + 9.0 * P * d
    rng = np.random.default_rng(1)
    W = rng.standard_normal((P, d))
    V = rng.standard_normal((P, n))
    X = problem.X

    def mm():
        A = W @ X.T
        B = V @ X
        return A, B

    inner = 20
    meds, times, _ = interleaved({"engine": lambda: toolkit_run(problem, P, S),
                                  "matmul": lambda: [mm() for _ in range(inner)]}, reps)
    me, te, mm_med, mm_times = meds["engine"], times["engine"], meds["matmul"], times["matmul"]
    mm_rate = inner * flops_mm / mm_med
    eng_rate = S * flops_step / me
    eng_rate_mm = S * flops_mm / me
    frac = eng_rate / mm_rate
    log(f"  engine: median {me:.3f} s for {S} steps = {me / S * 1e3:.2f} ms/step -> {eng_rate / 1e9:.2f} GFLOP/s "
        f"({eng_rate_mm / 1e9:.2f} counting matmul flops only)")
    log(f"  numpy matmul (W @ X.T and V @ X, same shapes): {mm_med / inner * 1e3:.2f} ms per pair "
        f"-> {mm_rate / 1e9:.2f} GFLOP/s")
    log(f"  fraction of the matmul rate: {frac:.0%}")
    results["flops"] = dict(P=P, d=d, n=n, steps=S, flops_per_step=flops_step, matmul_flops_per_step=flops_mm,
                            engine_median_s=me, engine_times_s=te, engine_gflops=eng_rate / 1e9,
                            matmul_median_s_per_pair=mm_med / inner, matmul_gflops=mm_rate / 1e9,
                            fraction=frac)
    rows.append([f"achieved GFLOP/s, P={P} d={d} n={n}", f"{eng_rate / 1e9:.1f}",
                 f"numpy matmul: {mm_rate / 1e9:.1f}", f"{frac:.0%}", ">= 50%", "yes" if frac >= 0.5 else "no"])


def section_reduction(cfg, results, rows, quick):
    from lrdecay.theory.reduction import Reduction

    n = 50
    d_big = 10**5 if quick else 10**6
    P = 200 if quick else 1000
    S = 100 if quick else 400
    P_e2e, S_e2e = (10, 50) if quick else (10, 200)
    reps = cfg["repeats"]
    log(f"\n## 4. Reduction: d = 1e3 vs d = {d_big:.0e}, n = {n}; {P} paths x {S} steps after the projection; "
        f"end to end {P_e2e} paths x {S_e2e} steps (dt scaled by 1000/d: the stiffness grows like d)")
    out, loops, probs = {}, {}, {}
    for d in (1000, d_big):
        dt = DT * 1000 / d          # the largest Hessian eigenvalue is about ||w||^2 d / n
        t = time.perf_counter()
        problem = probs[d] = Problem.generate(d=d, n=n, gamma=GAMMA, sigma=SIGMA, seed=SEED)
        t_gen = time.perf_counter() - t
        mp, tp, red = median_time(lambda: Reduction.from_problem(problem), 3 if d < 10**5 else 2, warmup=0)
        U0 = np.tile(red.project(problem.w0), (P, 1))
        loops[d] = (lambda red, U0, dt: lambda: simulate(red.reduced, U0, method="em", dt=dt, lr=ETA, steps=S,
                                                           record_every=S))(red, U0, dt)
        out[d] = dict(dt=dt, generate_s=t_gen, projection_median_s=mp, projection_times_s=tp, reduced_dim=red.m,
                      paths=P, steps=S)
        log(f"  d = {d:>8d}: projection (Reduction.from_problem: QR of a d x {n + 1} matrix) median {mp:.3f} s")
    meds, times, res = interleaved(loops, 3 * reps)   # the loops (short), interleaved
    for d in (1000, d_big):
        per = meds[d] / (P * S)
        out[d].update(median_s=meds[d], times_s=times[d], s_per_path_step=per, status=res[d].message)
        log(f"  d = {d:>8d}: after the projection, {P} x {S}: median {meds[d]:.3f} s = {per * 1e9:.1f} ns/path-step "
            f"({res[d].message})")
    for d in (1000, d_big):                           # end to end, one run at large d
        me2e, te2e, r = median_time(
            lambda: simulate(probs[d], method="em", dt=out[d]["dt"], lr=ETA, steps=S_e2e, n_paths=P_e2e,
                             record_every=S_e2e, reduce=True), 3 if d < 10**5 else 1, warmup=0)
        out[d]["end_to_end"] = dict(paths=P_e2e, steps=S_e2e, median_s=me2e, times_s=te2e, status=r.message)
        log(f"  d = {d:>8d}: simulate(reduce=True) end to end, {P_e2e} x {S_e2e}: {me2e:.3f} s ({r.message})")
    del probs, loops, res, r
    gc.collect()
    ratio = out[d_big]["s_per_path_step"] / out[1000]["s_per_path_step"]
    results["reduction"] = dict(n=n, by_d={str(k): v for k, v in out.items()}, ratio=ratio)
    rows.append([f"time/path-step after projection, d={d_big:.0e} vs 1e3", f"{out[d_big]['s_per_path_step'] * 1e9:.0f} ns",
                 f"d=1e3: {out[1000]['s_per_path_step'] * 1e9:.0f} ns", f"{ratio:.2f}x", "<= 1.2x",
                 "yes" if ratio <= 1.2 else "no"])
    rows.append([f"one-time projection (QR), d={d_big:.0e}", f"{out[d_big]['projection_median_s']:.2f} s",
                 f"d=1e3: {out[1000]['projection_median_s'] * 1e3:.1f} ms", "-", "-", "-"])
    e_big, e_small = out[d_big]["end_to_end"]["median_s"], out[1000]["end_to_end"]["median_s"]
    rows.append([f"simulate(reduce=True) end to end ({P_e2e}x{S_e2e}), d={d_big:.0e}", f"{e_big:.2f} s",
                 f"d=1e3: {e_small:.3f} s", f"{e_big / e_small:.0f}x", "-", "-"])


def machine_info() -> dict:
    info = dict(python=platform.python_version(), platform=platform.platform(), cpu_count=os.cpu_count())
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in lscpu.splitlines():
            k, _, v = line.partition(":")
            if k.strip() in ("Model name", "CPU(s)", "Thread(s) per core", "L2 cache", "L3 cache"):
                info[k.strip()] = v.strip()
    except Exception:
        pass
    vers = {"numpy": np.__version__}
    for mod in ("scipy", "torch", "torchsde", "sdeint", "jax", "jaxlib", "diffrax", "equinox", "lineax"):
        try:
            from importlib.metadata import version
            vers[mod] = version(mod)
        except Exception:
            vers[mod] = None
    info["versions"] = vers
    try:
        cfg = np.show_config(mode="dicts")
        info["numpy_blas"] = cfg["Build Dependencies"]["blas"].get("name")
    except Exception:
        pass
    return info


def markdown_table(rows) -> str:
    head = ["task", "this toolkit", "peer", "ratio", "target", "met?"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke test, about a minute)")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats per measurement (median)")
    ap.add_argument("--out", type=Path, default=None, help="write the table and raw numbers to this JSON file")
    ap.add_argument("--threads", type=int, default=1,
                    help="threads for BLAS, torch and XLA (default 1: stable on a shared machine; "
                         "set before the libraries load)")
    ap.add_argument("--sections", default="sde,flow,flops,reduction,engine",
                    help="comma-separated subset of: sde, flow, flops, reduction, engine")
    ap.add_argument("--md", type=Path, default=None, help="also write the results table (Markdown) to this file")
    args = ap.parse_args(argv)

    cfg = sde_config(args.quick)
    if args.repeats is not None:
        cfg["repeats"] = max(1, args.repeats)
    sections = set(s.strip() for s in args.sections.split(","))
    t_start = time.perf_counter()
    info = machine_info()
    log("# Benchmarks: this toolkit vs peers (one process)")
    log(f"machine: {info.get('Model name', '?')}, {info.get('CPU(s)', info['cpu_count'])} CPUs; "
        f"python {info['python']}; " + ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v))
    peers = {p: peer_available(p) for p in ("torchsde", "sdeint", "diffrax")}
    if peers["torchsde"][0]:
        import torch
        torch.set_num_threads(args.threads)
    log(f"threads: {args.threads} (BLAS, torch, XLA)")
    info["threads"] = args.threads
    for p, (ok, why) in peers.items():
        if not ok:
            log(f"peer {p}: not installed, skipped ({why}); install with: pip install -e '.[peers]'")

    results = dict(command=" ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
                   machine=info, config=cfg, peers={k: v[0] for k, v in peers.items()})
    rows = []
    if "sde" in sections:
        section_sde(cfg, peers, results, rows)
    if "flow" in sections:
        section_flow(cfg, results, rows, args.quick)
    if "flops" in sections:
        section_flops(cfg, results, rows, args.quick)
    if "reduction" in sections:
        section_reduction(cfg, results, rows, args.quick)
    if "engine" in sections:
        from engine_speed import section_engine
        section_engine(results, rows, args.quick, log, cfg["repeats"], args.threads)

    table = markdown_table(rows)
    total = time.perf_counter() - t_start
    log(f"\n## Summary (medians; ratio = toolkit speed / peer speed)\n\n{table}\n\ntotal wall time {total:.0f} s")
    results.update(table_markdown=table, rows=rows, total_wall_s=total)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2, default=float))
        log(f"wrote {args.out}")
    if args.md is not None:
        args.md.parent.mkdir(parents=True, exist_ok=True)
        args.md.write_text(f"Command: `{results['command']}`; machine: {info.get('Model name', '?')}, "
                           f"{info.get('CPU(s)', info['cpu_count'])} CPUs, {args.threads} BLAS/torch thread(s); "
                           f"medians of alternating rounds.\n\n{table}\n")
        log(f"wrote {args.md}")


if __name__ == "__main__":
    main()
