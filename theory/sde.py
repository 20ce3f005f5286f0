r"""The simulation engine: batched gradient descent, label-noise SGD and Euler–Maruyama.

One loop serves every stochastic experiment. A *model* supplies the increment; the engine owns time,
learning-rate schedules, random streams, recording, per-path stopping and divergence detection.

Methods (``eta_k`` from the schedule, ``res = X alpha(w) - y``, ``J = X D alpha(w)``):

* ``"gd"``   ``w <- w - eta_k grad L_n(w)``;
* ``"sgd"``  full-batch label-noise SGD ``w <- w - (eta_k/n) J^T (res - sigma xi)``, ``xi ~ N(0, I_n)``,
  which is exactly Euler–Maruyama for the label-noise SDE with ``dt = eta_k`` and ``a = sigma^2/n``;
  with ``batch_size = b`` each step uses a batch ``B`` of ``b`` distinct examples drawn uniformly,
  ``w <- w - (eta_k/b) sum_{i in B} grad f_i (f_i - y_i - sigma xi_i)``;
* ``"em"``   Euler–Maruyama for ``dw = -grad L_n dt + sqrt(eta_k a) (J^T / sqrt n) dB`` with a fixed
  ``dt`` (``a`` defaults to ``sigma^2/n``, the full-batch value; ``sigma^2/b`` matches batch size b).

Randomness: path ``p`` draws from its own streams ``SeedSequence(seed, spawn_key=(p, 0))`` (noise) and
``(p, 1)`` (batch sampling), consumed in step order, so a path's numbers do not depend on how many
paths run together or how they are chunked (results agree to floating-point rounding; different
chunk sizes can change the BLAS summation order).

Models implement ``dim``, ``noise_dim``, ``increment(W, dt, noise_coef, xi) -> (dW, res or None)``
and ``observables(W) -> dict``; the nonlinear model also ``minibatch_increment``. ``dt`` and
``noise_coef`` are scalars or per-path columns of shape ``(P, 1)``; ``xi`` is ``(P, noise_dim)``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from theory import io
from theory.problem import Problem
from theory.schedules import as_schedule
from theory.validation import integer

METHODS = ("gd", "sgd", "em")
_BLOCK_BYTES = 16 * 2**20  # noise drawn in blocks of at most this many bytes per chunk
_TIMES_BLOCK = 2**22        # learning-rate values summed per block when computing record times


@dataclass
class SimulationResult:
    """Records on a grid of steps, final states and per-path status.

    ``records[name]`` has shape ``(len(steps), P)``; a stopped or diverged path keeps its last state,
    so its later records repeat. ``status[p]`` is ``"completed"`` (ran all steps), ``"stopped"``
    (its stop condition fired at ``stop_step[p]``) or ``"diverged"`` (non-finite or exploding loss at
    ``stop_step[p]``; ``W_final`` is the last finite state).
    """

    steps: np.ndarray
    times: np.ndarray
    records: dict
    W_final: np.ndarray
    status: np.ndarray
    stop_step: np.ndarray
    message: str
    config: dict = field(default_factory=dict)
    wall_time: float = 0.0

    @property
    def n_paths(self) -> int:
        return self.W_final.shape[0]

    def final(self, name: str) -> np.ndarray:
        return self.records[name][-1]

    def save(self, path, problem: Problem | None = None, extra_config: dict | None = None):
        """Save records, final states and status with the configuration (and problem instance)."""
        arrays = {"steps": self.steps, "times": self.times, "W_final": self.W_final,
                  "status": self.status.astype("U10"), "stop_step": self.stop_step}
        arrays.update({f"rec_{k}": v for k, v in self.records.items()})
        cfg = {"kind": "SimulationResult", "message": self.message, **self.config, **(extra_config or {})}
        if problem is not None:
            arrays.update(problem.arrays(prefix="problem_"))
            cfg["problem"] = problem.config()
        return io.save_result(path, arrays, cfg)

    @classmethod
    def load(cls, path) -> tuple["SimulationResult", Problem | None]:
        arrays, cfg = io.load_result(path)
        records = {k[4:]: v for k, v in arrays.items() if k.startswith("rec_")}
        res = cls(arrays["steps"], arrays["times"], records, arrays["W_final"], arrays["status"],
                  arrays["stop_step"], cfg.get("message", ""), cfg)
        prob = Problem.from_arrays(arrays, cfg["problem"], prefix="problem_") if "problem" in cfg else None
        return res, prob


def path_generators(seed: int, paths: Sequence[int], stream: int):
    """One ``numpy.random.Generator`` per path index: ``SeedSequence(seed, spawn_key=(p, stream))``."""
    return [np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(int(p), stream))) for p in paths]


def _unique_rows(W: np.ndarray) -> np.ndarray:
    """Distinct rows of ``W`` (exact, by their bytes; first occurrence order). Unlike
    ``np.unique(axis=0)`` it does not sort d-long rows, which matters at d = 10^6."""
    first: dict = {}
    for i, row in enumerate(np.ascontiguousarray(W)):
        first.setdefault(row.tobytes(), i)
    return W[sorted(first.values())]


def _record_grid(steps: int, record_every, record_steps) -> np.ndarray:
    if record_steps is not None:
        rs = np.unique(np.asarray(record_steps, dtype=np.int64))
        if rs.size == 0 or rs[0] < 0 or rs[-1] > steps:
            raise ValueError(f"record_steps must lie in [0, steps] = [0, {steps}]")
        return rs
    if record_every is None:
        record_every = max(1, steps // 200)
    integer("record_every", record_every, 1)
    return np.unique(np.append(np.arange(0, steps + 1, record_every), steps))


def simulate(
    model,
    W0=None,
    *,
    steps: int,
    lr=None,
    method: str = "sgd",
    n_paths: int | None = None,
    batch_size: int | None = None,
    sigma: float | None = None,
    a: float | None = None,
    dt: float | None = None,
    seed: int = 0,
    record_every: int | None = None,
    record_steps=None,
    stop_loss: float | None = None,
    stop_fn: Callable | None = None,
    divergence_loss: float = 1e8,
    chunk_size: int | None = None,
    reduce: bool = False,
    progress: bool = False,
    path_offset: int = 0,
    observables=None,
) -> SimulationResult:
    """Simulate ``P`` paths for ``steps`` steps.

    Parameters
    ----------
    model : a :class:`~theory.problem.Problem` (wrapped in :class:`~theory.model.NonlinearModel`) or
        any object with the engine interface (see module docstring).
    W0 : initial points ``(P, d)`` or ``(d,)``; defaults to ``problem.w0`` repeated ``n_paths`` times.
    lr : a schedule ``step -> eta`` or a number, or a sequence of ``P`` schedules (one per path, e.g.
        a decay-time sweep in one batch).
    method : ``"gd"``, ``"sgd"`` or ``"em"`` (see module docstring).
    batch_size : minibatch size ``b`` for ``"sgd"`` (``None`` = full batch).
    sigma : label-noise level (default: the problem's). ``a`` : SDE noise scale for ``"em"``.
    dt : Euler–Maruyama time step (``"em"`` only).
    record_every / record_steps : where to record observables (default: about 200 points).
    stop_loss : stop a path once its train loss is ``<= stop_loss`` (checked every step).
    stop_fn : ``stop_fn(obs: dict, step) -> bool array (P,)``, checked at record steps.
    divergence_loss : a path whose train loss exceeds this (or is not finite) is marked diverged.
    chunk_size : paths simulated together (memory bound); results do not depend on it.
    reduce : simulate in the invariant subspace ``span{W0, x_i}`` and lift back (exact; see
        :mod:`theory.reduction`).
    progress : show a tqdm progress bar.
    path_offset : global index of the first path (for splitting a batch across processes).
    observables : what to record: ``None`` for all of the model's (``train_loss``, ``test_loss``,
        ``norm``, ``dist_mn``), or a list whose items are those names or ``(name, fn)`` pairs, where
        ``fn(W) -> (P,)`` receives the states in the simulation's coordinates (reduced when
        ``reduce=True``; norms, inner products with ``w_mn`` and losses are unchanged by the reduction).
    """
    from theory.model import NonlinearModel

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    steps = integer("steps", steps, 0)
    integer("seed", seed, 0)

    problem = model if isinstance(model, Problem) else getattr(model, "problem", None)
    reduction = None
    if isinstance(model, Problem):
        if W0 is None:
            W0 = np.tile(model.w0, (1 if n_paths is None else n_paths, 1))
        W0 = np.atleast_2d(np.asarray(W0, dtype=float))
        if reduce:
            from theory.reduction import Reduction
            reduction = Reduction.from_problem(model, _unique_rows(W0))
            model_obj = NonlinearModel(reduction.reduced)
            W0 = reduction.project(W0)
        else:
            model_obj = NonlinearModel(model)
    else:
        if reduce:
            raise ValueError("reduce=True needs a Problem as model")
        model_obj = model
        if W0 is None:
            raise ValueError("W0 is required when model is not a Problem")
        W0 = np.atleast_2d(np.asarray(W0, dtype=float))
    P, dim = W0.shape
    if dim != model_obj.dim:
        raise ValueError(f"W0 must have {model_obj.dim} columns, got shape {W0.shape}")
    if not np.all(np.isfinite(W0)):
        raise ValueError("W0 must contain finite values only")
    if n_paths is not None and n_paths != P:
        raise ValueError(f"n_paths = {n_paths} does not match W0 with {P} rows")

    # schedules
    if lr is None:
        if method == "em":
            lr = 1.0
        else:
            raise ValueError("lr is required for methods 'gd' and 'sgd'")
    per_path = isinstance(lr, (list, tuple))
    if per_path:
        if len(lr) != P:
            raise ValueError(f"lr: a list of schedules must have one per path ({P}), got {len(lr)}")
        schedules = [as_schedule(s) for s in lr]
    else:
        schedules = as_schedule(lr)

    # noise parameters
    sig = float(getattr(problem, "sigma", 0.0) if sigma is None else sigma)
    if sig < 0 or not np.isfinite(sig):
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma!r}")
    n = getattr(model_obj, "n", None)
    if method == "em":
        if dt is None or not np.isfinite(dt) or dt <= 0:
            raise ValueError(f"dt must be a finite number > 0 for method 'em', got {dt!r}")
        if a is None:
            if n is None:
                raise ValueError("a (the SDE noise scale) is required for this model")
            a = sig**2 / n
        if a < 0:
            raise ValueError(f"a must be >= 0, got {a!r}")
    elif dt is not None:
        raise ValueError("dt applies to method 'em' only (gd and sgd use dt = eta)")
    if batch_size is not None:
        if method != "sgd":
            raise ValueError("batch_size applies to method 'sgd' only")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or not (1 <= batch_size <= n):
            raise ValueError(f"batch_size must be an integer in [1, n] = [1, {n}], got {batch_size!r}")
        if batch_size == n:
            batch_size = None  # all examples every step: the full-batch update
    if stop_loss is not None and (not np.isfinite(stop_loss) or stop_loss <= 0):
        raise ValueError(f"stop_loss must be a finite number > 0, got {stop_loss!r}")
    if chunk_size is None:
        chunk_size = P
    integer("chunk_size", chunk_size, 1)

    rec_steps = _record_grid(steps, record_every, record_steps)
    observe = _observer(model_obj, observables)
    noisy = (method == "sgd" and sig > 0) or (method == "em" and a > 0)

    config = dict(method=method, steps=steps, seed=int(seed), n_paths=P, batch_size=batch_size,
                  sigma=sig, a=a, dt=dt, stop_loss=stop_loss, divergence_loss=divergence_loss,
                  reduce=bool(reduce), path_offset=int(path_offset),
                  lr=[getattr(s, "describe", lambda: repr(s))() for s in schedules] if per_path
                  else getattr(schedules, "describe", lambda: repr(schedules))())

    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=P * steps, unit="path-step", unit_scale=True, desc=f"{method} x{P}")

    t0 = time.perf_counter()
    outs = []
    for c0 in range(0, P, chunk_size):
        c1 = min(P, c0 + chunk_size)
        sch = schedules[c0:c1] if per_path else schedules
        outs.append(_run_chunk(model_obj, W0[c0:c1].copy(), steps, sch, per_path, method, batch_size,
                               sig, a, dt, seed, path_offset + c0, rec_steps, stop_loss, stop_fn,
                               divergence_loss, noisy, bar, observe))
    if bar is not None:
        bar.close()

    W_final = np.concatenate([o[1] for o in outs])
    records = {k: np.concatenate([o[0][k] for o in outs], axis=1) for k in outs[0][0]}
    status = np.concatenate([o[2] for o in outs])
    stop_step = np.concatenate([o[3] for o in outs])
    times = _times(rec_steps, schedules, per_path, method, dt, P)
    if reduction is not None:
        W_final = reduction.lift(W_final)
    counts = {s: int(np.sum(status == s)) for s in ("completed", "stopped", "diverged")}
    message = ", ".join(f"{v} {k}" for k, v in counts.items() if v) + f" of {P} paths"
    if counts["diverged"]:
        first = int(stop_step[status == "diverged"].min())
        message += f"; first divergence at step {first} (lower the learning rate)"
    return SimulationResult(rec_steps, times, records, W_final, status, stop_step, message, config,
                            time.perf_counter() - t0)


def _times(rec_steps, schedules, per_path, method, dt, P):
    """Time ``t_k`` of each record: ``k dt`` for EM, ``sum_{j<k} eta_j`` otherwise; (R,) or (R, P).

    The sums run over blocks of steps so that memory stays bounded (about 32 MB) whatever the
    number of steps and paths."""
    if method == "em":
        return rec_steps * float(dt)
    out = np.zeros((len(rec_steps), P)) if per_path else np.zeros(len(rec_steps))
    acc = np.zeros(P) if per_path else 0.0
    top = int(rec_steps[-1])
    block = max(1, _TIMES_BLOCK // (P if per_path else 1))
    ri = int(np.searchsorted(rec_steps, 0, side="right"))  # records at step 0 have t = 0
    for start in range(0, top, block):
        ks = np.arange(start, min(start + block, top))
        eta = (np.stack([np.broadcast_to(s(ks), ks.shape) for s in schedules], axis=1) if per_path
               else np.broadcast_to(schedules(ks), ks.shape))
        cum = acc + np.cumsum(eta, axis=0)              # cum[i] = t_{start + i + 1}
        while ri < len(rec_steps) and rec_steps[ri] <= ks[-1] + 1:
            out[ri] = cum[rec_steps[ri] - start - 1]
            ri += 1
        acc = cum[-1]
    return out


def _observer(model, observables):
    """A function ``W -> dict`` of the chosen observables (validated once, up front)."""
    if observables is None:
        return model.observables
    builtin, extra = [], []
    for item in observables:
        if isinstance(item, str):
            builtin.append(item)
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str) and callable(item[1]):
            extra.append(item)
        else:
            raise ValueError(f"observables: items must be names or (name, function) pairs, got {item!r}")
    W_probe = np.zeros((1, model.dim))
    W_probe[0, 0] = 1.0
    known = set(model.observables(W_probe))
    unknown = [b for b in builtin if b not in known]
    if unknown:
        raise ValueError(f"observables: unknown names {unknown}; the model records {sorted(known)}")

    def observe(W):
        obs = model.observables(W) if builtin else {}
        out = {k: obs[k] for k in builtin}
        out.update({name: np.asarray(fn(W), dtype=float).reshape(W.shape[0]) for name, fn in extra})
        return out
    return observe


def _run_chunk(model, W, steps, schedules, per_path, method, batch_size, sigma, a, dt, seed, first_path,
               rec_steps, stop_loss, stop_fn, divergence_loss, noisy, bar, observe):
    P = W.shape[0]
    paths = range(first_path, first_path + P)
    noise_gens = path_generators(seed, paths, 0) if noisy else None
    batch_gens = path_generators(seed, paths, 1) if batch_size is not None else None
    ndim_noise = batch_size if batch_size is not None else model.noise_dim
    block = max(1, min(steps, _BLOCK_BYTES // max(1, 8 * P * max(ndim_noise, 1))))

    records: dict = {}
    active = np.ones(P, dtype=bool)
    status = np.full(P, "completed", dtype="U10")
    stop_step = np.full(P, -1, dtype=np.int64)
    ri = 0

    def record(k, W):
        nonlocal ri
        obs = observe(W)
        for name, v in obs.items():
            records.setdefault(name, np.empty((len(rec_steps), P)))[ri] = v
        ri += 1
        if stop_fn is not None:
            hit = np.asarray(stop_fn(obs, k), dtype=bool) & active
            status[hit] = "stopped"
            stop_step[hit] = k
            active[hit] = False

    k = 0
    errstate = np.errstate(over="ignore", invalid="ignore")  # divergence is detected and reported below
    errstate.__enter__()
    while k < steps:
        K = min(block, steps - k)
        ks = np.arange(k, k + K)
        eta = (np.stack([np.broadcast_to(s(ks), ks.shape) for s in schedules], axis=1) if per_path
               else np.broadcast_to(schedules(ks), ks.shape)[:, None] * np.ones((1, P)))
        if noisy:
            xi = np.stack([g.standard_normal((K, ndim_noise)) for g in noise_gens], axis=1)
        if batch_size is not None:
            idx = np.stack([np.argsort(g.random((K, model.n)), axis=1)[:, :batch_size] for g in batch_gens], axis=1)
        for j in range(K):
            if ri < len(rec_steps) and rec_steps[ri] == k:
                record(k, W)
            if not active.any():
                break
            e = eta[j][:, None]  # per-path scalars travel as (P, 1) columns
            if batch_size is not None:
                dW, res = model.minibatch_increment(W, e, idx[j], xi[j] if noisy else np.zeros((P, batch_size)), sigma), None
            else:
                step_dt = e if method != "em" else dt
                if noisy:
                    coef = e * sigma / np.sqrt(model.n) if method == "sgd" else np.sqrt(e * a * dt)
                    dW, res = model.increment(W, step_dt, coef, xi[j])
                else:
                    dW, res = model.increment(W, step_dt, 0.0, None)
            if res is not None:
                loss = 0.5 * np.mean(res**2, axis=-1)
                bad = active & ~(np.isfinite(loss) & (loss <= divergence_loss))
                if stop_loss is not None:
                    hit = active & ~bad & (loss <= stop_loss)
                    status[hit] = "stopped"
                    stop_step[hit] = k
                    active &= ~hit
            else:
                bad = np.zeros(P, dtype=bool)
            W_new = W + dW
            bad |= active & ~np.isfinite(np.einsum("ij->i", W_new))  # a row sum is finite iff every entry is (short of overflow)
            status[bad] = "diverged"
            stop_step[bad] = k
            active &= ~bad
            W = W_new if active.all() else np.where(active[:, None], W_new, W)
            k += 1
            if bar is not None:
                bar.update(P)
        else:
            continue
        break  # every path stopped
    if bar is not None and k < steps:
        bar.update(P * (steps - k))
    while ri < len(rec_steps):  # remaining records (final step, or frozen paths after an early exit)
        record(int(rec_steps[ri]), W)
    errstate.__exit__(None, None, None)
    return records, W, status, stop_step
