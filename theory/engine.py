r"""The simulation engine: batched gradient descent, label-noise SGD and Euler–Maruyama.

One loop serves every stochastic experiment. A *model* supplies the increment; the engine owns time,
learning rates, random streams, recording, per-path stopping and divergence detection.

Methods (``eta_k`` the learning rate of step ``k``, ``res = X alpha(w) - y``, ``J = X D alpha(w)``):

* ``"gd"``   ``w <- w - eta_k grad L_n(w)``;
* ``"sgd"``  full-batch label-noise SGD ``w <- w - (eta_k/n) J^T (res - sigma xi)``, ``xi ~ N(0, I_n)``,
  which is exactly Euler–Maruyama for the label-noise SDE with ``dt = eta_k`` and ``a = sigma^2/n``;
  with ``batch_size = b`` each step uses a batch ``B`` of ``b`` distinct examples drawn uniformly,
  ``w <- w - (eta_k/b) sum_{i in B} grad f_i (f_i - y_i - sigma xi_i)``;
* ``"em"``   Euler–Maruyama for ``dw = -grad L_n dt + sqrt(eta_k a) (J^T / sqrt n) dB`` with a fixed
  ``dt`` (``a`` defaults to ``sigma^2/n``, the full-batch value; ``sigma^2/b`` matches batch size b).

Learning rates: one number, one schedule ``step -> eta``, a list of schedules (one per path) or an
array of per-path constants.

Randomness: path ``p`` draws from its own streams ``SeedSequence(seed, spawn_key=(p, 0))`` (noise) and
``(p, 1)`` (batch sampling), consumed in step order, so a path's numbers do not depend on how many
paths run together or how they are chunked. Same seed and chunking: bit-identical results; other chunk
sizes: equal to floating-point rounding (the BLAS summation order can change).

Stopping: every condition is a :class:`StopWhen` — a test of the per-step train loss (checked every
step) or of the recorded observables (checked at record steps) that ends a path with the status
``"stopped"`` or ``"diverged"``. ``stop_loss``, ``stop_fn`` and ``divergence_loss`` build them.

Backends (``backend=``): ``"numpy"`` is the loop below, for every model; ``"numba"`` runs the built-in
:class:`~lrdecay.theory.models.nonlinear.NonlinearModel`'s steps in compiled kernels (:mod:`lrdecay.theory.kernels`) on the same
random numbers, so its results equal the numpy loop's to rounding; ``"torch"`` runs them batched in
torch (CPU or CUDA, float64 or float32) with torch's own random numbers (equal in distribution, not
path by path). ``"auto"`` (the default) picks numba wherever it is installed and can serve the call
(the built-in model's increments, per-step stops from ``stop_loss`` and ``divergence_loss`` only; any
observables and record-time ``stop_fn``), else numpy; it never picks torch, whose numbers differ.

Models implement ``dim``, ``noise_dim``, ``increment(W, dt, noise_coef, xi) -> (dW, loss or None)`` and
``observables(W) -> dict``; optionally ``n``, ``minibatch_increment`` and ``select(index)`` (the model
of a subset of paths, for models with per-path data). ``dt`` and ``noise_coef`` are scalars or
per-path columns of shape ``(P, 1)``; ``xi`` is ``(P, noise_dim)``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np

from lrdecay.theory import io
from lrdecay.theory.problem import Problem
from lrdecay.theory.schedules import as_schedule, checked_rates
from lrdecay.theory.validation import choice, integer, nonneg, positive

METHODS = ("gd", "sgd", "em")
BACKENDS = ("auto", "numpy", "numba", "torch")
STATUSES = ("completed", "stopped", "diverged")
_BLOCK_BYTES = 16 * 2**20  # noise drawn in blocks of at most this many bytes per chunk
_MAX_RECORDS = 10**7        # records per path (each observable holds records x paths numbers)
_TIMES_BLOCK = 2**22        # learning-rate values summed per block when computing record times


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------

@dataclass
class SimulationResult(io.Result):
    """Records on a grid of steps, final states and per-path status.

    ``records[name]`` has shape ``(len(steps), P)``; a stopped or diverged path keeps its last state,
    so its later records repeat. ``status[p]`` is ``"completed"`` (ran all steps), ``"stopped"``
    (a stop condition held at ``stop_step[p]``) or ``"diverged"`` (non-finite or exploding loss at
    ``stop_step[p]``; ``W_final`` is the last finite state). ``times`` are the records' times
    ``t_k = sum_{j<k} eta_j`` (``k dt`` for EM), per path ``(R, P)`` when the learning rate is.
    ``tau`` beside them are the records' drift times ``tau_k = sum_{j<k} eta_j^2`` (``dt sum_{j<k} eta_j``
    for EM), the clock of the quasistatic drift along M (``eta^2 k`` at a constant rate; compare with
    :func:`lrdecay.theory.quasistatic.drift_ode`), with the shape of ``times``; ``None`` in files saved before
    it was recorded. ``problem`` is the simulated instance when the model was a
    :class:`~lrdecay.theory.problem.Problem`.
    """

    KIND = "SimulationResult"

    steps: np.ndarray
    times: np.ndarray
    records: dict
    W_final: np.ndarray
    status: np.ndarray
    stop_step: np.ndarray
    message: str
    config: dict = field(default_factory=dict)
    wall_time: float = 0.0
    problem: Problem | None = None
    tau: np.ndarray | None = None

    @property
    def n_paths(self) -> int:
        return self.W_final.shape[0]

    @property
    def diverged(self) -> np.ndarray:
        return self.status == "diverged"

    def final(self, name: str) -> np.ndarray:
        """The last record of observable ``name`` for every path."""
        if name not in self.records:
            raise KeyError(f"no record named {name!r}; recorded: {sorted(self.records)}")
        return self.records[name][-1]

    def __repr__(self) -> str:
        return (f"SimulationResult({self.config.get('method', '?')}, {self.n_paths} paths, "
                f"{int(self.steps[-1]) if len(self.steps) else 0} steps, {len(self.steps)} records "
                f"of {sorted(self.records)}; {self.message})")


def path_generators(seed: int, paths: Sequence[int], stream: int):
    """One ``numpy.random.Generator`` per path index: ``SeedSequence(seed, spawn_key=(p, stream))``."""
    return [np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(int(p), stream))) for p in paths]


# --------------------------------------------------------------------------------------------------
# Stop conditions
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StopWhen:
    """End a path when ``test`` holds.

    ``every_step=True``: ``test(loss, step) -> bool (P,)`` sees the train loss of the current state
    before each step; ``every_step=False``: ``test(obs, step)`` sees the dict of recorded observables at
    record steps. The path ends with ``status`` (``"stopped"`` or ``"diverged"``) at that step.
    """

    test: Callable
    every_step: bool = False
    status: str = "stopped"
    name: str = ""

    def mask(self, value, k: int, P: int) -> np.ndarray:
        """``test(value, k)`` as a bool array ``(P,)`` (one bool applies to every path); any other shape is
        refused with a ``ValueError`` naming the condition, before it could end the wrong paths."""
        hit = np.asarray(self.test(value, k), dtype=bool)
        if hit.shape not in ((), (P,)):
            name = self.name if self.name and not self.name.startswith(_BUILTIN_STOP) else "stop_fn"
            raise ValueError(f"{name} must return one bool per path, shape ({P},) (or one bool for all paths), "
                             f"got shape {hit.shape}")
        return np.broadcast_to(hit, (P,))


_BUILTIN_STOP = "builtin:"   # name prefix of the conditions built from stop_loss and divergence_loss


def _stop_conditions(stop_loss, stop_fn, divergence_loss) -> list[StopWhen]:
    div = float(divergence_loss)
    conds = [StopWhen(lambda loss, k: ~(np.isfinite(loss) & (loss <= div)), True, "diverged",
                      f"{_BUILTIN_STOP}train loss > {div:g} or not finite")]
    if stop_loss is not None:
        eps = float(stop_loss)
        conds.append(StopWhen(lambda loss, k: loss <= eps, True, "stopped", f"{_BUILTIN_STOP}train loss <= {eps:g}"))
    if stop_fn is not None:
        conds.append(stop_fn if isinstance(stop_fn, StopWhen) else StopWhen(stop_fn, False, "stopped", "stop_fn"))
    return conds


# --------------------------------------------------------------------------------------------------
# Learning rates
# --------------------------------------------------------------------------------------------------

class _Rates:
    """The learning rate of every (step, path): one schedule, one per path, or per-path constants."""

    def __init__(self, lr, P: int, method: str):
        if lr is None:
            if method != "em":
                raise ValueError("lr is required for methods 'gd' and 'sgd'")
            lr = 1.0
        self.constants = None
        self.per_path = False
        if isinstance(lr, np.ndarray) and lr.ndim == 1:
            if lr.shape != (P,):
                raise ValueError(f"lr: an array of per-path learning rates must have one per path ({P}), got {lr.shape}")
            self.constants = np.array([positive(f"lr[{i}]", v) for i, v in enumerate(lr)])
            self.per_path = True
        elif isinstance(lr, (list, tuple)):
            if len(lr) != P:
                raise ValueError(f"lr: a list of schedules must have one per path ({P}), got {len(lr)}")
            self.schedules = [as_schedule(s) for s in lr]
            self.per_path = True
        else:
            self.schedule = as_schedule(lr)

    def _shared(self, ks: np.ndarray) -> np.ndarray:
        """``eta`` of steps ``ks`` under the one shared schedule, checked (finite, >= 0): ``(len(ks),)``."""
        return checked_rates(self.schedule, ks, "lr")

    def block(self, ks: np.ndarray, c0: int, c1: int) -> np.ndarray:
        """``eta`` of steps ``ks`` for paths ``c0..c1-1``: shape ``(len(ks), c1 - c0)``."""
        if self.constants is not None:
            return np.broadcast_to(self.constants[c0:c1], (len(ks), c1 - c0))
        if self.per_path:
            return np.stack([checked_rates(s, ks, f"lr[{c0 + i}]") for i, s in enumerate(self.schedules[c0:c1])],
                            axis=1)
        return self._shared(ks)[:, None] * np.ones((1, c1 - c0))

    def describe(self):
        def d(s):
            return getattr(s, "describe", lambda: repr(s))()
        if self.constants is not None:
            return {"kind": "per-path constants", "eta": self.constants.tolist()}
        return [d(s) for s in self.schedules] if self.per_path else d(self.schedule)

    def times(self, rec_steps: np.ndarray, P: int, steps: int | None = None,
              dt: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The record times and drift times, ``(R,)`` or ``(R, P)`` per path:

        * ``t_k = sum_{j<k} eta_j`` and ``tau_k = sum_{j<k} eta_j^2`` (gd, sgd: each step is a time step
          ``dt = eta_j``);
        * ``t_k = k dt`` and ``tau_k = dt sum_{j<k} eta_j`` with a fixed ``dt`` (em).

        ``tau`` is the time of the quasistatic drift (:mod:`lrdecay.theory.quasistatic`): a step moves the point
        along M by ``eta_j dt_j`` times the drift velocity, so ``tau = eta^2 k`` at a constant rate.
        Every rate of steps ``0 .. steps - 1`` (default: up to the last record) is checked (finite,
        ``>= 0``) on the way, so that a bad schedule is refused before the simulation starts. The sums
        run over blocks of steps so that memory stays bounded (about 32 MB)."""
        top = int(rec_steps[-1]) if steps is None else int(steps)
        if self.constants is not None:
            c = self.constants[None, :]
            if dt is not None:
                return rec_steps * float(dt), rec_steps[:, None] * float(dt) * c
            return rec_steps[:, None] * c, rec_steps[:, None] * c**2
        width = P if self.per_path else 1
        shape = (len(rec_steps), P) if self.per_path else (len(rec_steps),)
        t_out, tau_out = np.zeros(shape), np.zeros(shape)
        acc = np.zeros((2, P)) if self.per_path else np.zeros(2)
        block = max(1, _TIMES_BLOCK // width)
        ri = int(np.searchsorted(rec_steps, 0, side="right"))  # records at step 0 have t = tau = 0
        for start in range(0, top, block):
            ks = np.arange(start, min(start + block, top))
            eta = self.block(ks, 0, P) if self.per_path else self._shared(ks)
            cum_t = acc[0] + np.cumsum(eta, axis=0)          # cum_t[i] = sum_{j <= start + i} eta_j
            cum_tau = acc[1] + np.cumsum(eta * eta if dt is None else eta * float(dt), axis=0)
            while ri < len(rec_steps) and rec_steps[ri] <= ks[-1] + 1:
                t_out[ri] = cum_t[rec_steps[ri] - start - 1]
                tau_out[ri] = cum_tau[rec_steps[ri] - start - 1]
                ri += 1
            acc = np.stack([cum_t[-1], cum_tau[-1]])
        return (rec_steps * float(dt) if dt is not None else t_out), tau_out


# --------------------------------------------------------------------------------------------------
# Set-up helpers (validation first, before any long computation)
# --------------------------------------------------------------------------------------------------

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
    if steps // record_every > _MAX_RECORDS:
        raise ValueError(f"record_every: {steps} steps recorded every {record_every} make {steps // record_every + 1} "
                         f"records, more than {_MAX_RECORDS}; record less often or run fewer steps")
    return np.unique(np.append(np.arange(0, steps + 1, record_every), steps))


def _prepare_model(model, W0, n_paths, reduce):
    """The engine model, the initial states in its coordinates, the reduction (or None), the problem."""
    from lrdecay.theory.models.nonlinear import NonlinearModel

    if n_paths is not None:
        integer("n_paths", n_paths, 1)
    if isinstance(model, Problem):
        if W0 is None:   # problem.w0 for every path: a read-only view, materialised one chunk at a time
            P = 1 if n_paths is None else n_paths
            if reduce:
                from lrdecay.theory.reduction import Reduction
                reduction = Reduction.from_problem(model, model.w0[None, :])
                u0 = reduction.project(model.w0[None, :])
                return (NonlinearModel.from_problem(reduction.reduced), np.broadcast_to(u0, (P, u0.shape[1])),
                        reduction, model)
            return NonlinearModel.from_problem(model), np.broadcast_to(model.w0, (P, model.d)), None, model
        W0 = _check_W0(W0, model.d)
        if reduce:
            from lrdecay.theory.reduction import Reduction
            reduction = Reduction.from_problem(model, _unique_rows(W0))
            return NonlinearModel.from_problem(reduction.reduced), reduction.project(W0), reduction, model
        return NonlinearModel.from_problem(model), W0, None, model
    if reduce:
        raise ValueError("reduce=True needs a Problem as model")
    if W0 is None:
        raise ValueError("W0 is required when model is not a Problem")
    W0 = _check_W0(W0, model.dim)
    held = getattr(model, "n_paths", None)      # a stacked model holds data for exactly this many paths
    if held is not None and W0.shape[0] != held:
        raise ValueError(f"W0 must have one row per path of the stacked model ({held} rows), got {W0.shape[0]} rows")
    return model, W0, None, getattr(model, "problem", None)


def _check_memory(P: int, dim: int, full_dim: int, n_records: int, n_obs: int) -> None:
    """Refuse a call whose results alone (final states ``P x d`` in the problem's coordinates, records
    ``R x P`` per observable) and one chunk of working states would not fit in memory
    (:func:`lrdecay.theory.budget.check_memory`)."""
    from lrdecay.theory.budget import check_memory

    nbytes = 8.0 * P * (full_dim + dim + n_records * max(n_obs, 1))
    check_memory("n_paths", nbytes, f"{P} paths of dimension {full_dim} with {n_records} records each")


def _check_W0(W0, dim: int) -> np.ndarray:
    W0 = np.atleast_2d(np.asarray(W0, dtype=float))
    if W0.ndim != 2 or W0.shape[1] != dim or W0.shape[0] < 1:
        raise ValueError(f"W0 must have shape (P, {dim}) with P >= 1, got shape {W0.shape}")
    if not np.all(np.isfinite(W0)):
        raise ValueError("W0 must contain finite values only")
    return W0


def _noise_params(method, model, problem, sigma, a, dt, batch_size):
    """Validated ``(sigma, a, dt, batch_size)``; ``batch_size = n`` becomes ``None`` (full batch)."""
    sig = nonneg("sigma", getattr(problem, "sigma", 0.0) if sigma is None else sigma)
    n = getattr(model, "n", None)
    if method == "em":
        if dt is None:
            raise ValueError("dt must be a finite number > 0 for method 'em', got None")
        dt = positive("dt", dt)
        if a is None:
            if n is None:
                raise ValueError("a (the SDE noise scale) is required for this model")
            a = sig**2 / n
        a = nonneg("a", a)
    else:
        if dt is not None:
            raise ValueError("dt applies to method 'em' only (gd and sgd use dt = eta)")
        if a is not None:
            raise ValueError("a applies to method 'em' only (sgd's noise scale is sigma^2 / n)")
    if batch_size is not None:
        if method != "sgd":
            raise ValueError("batch_size applies to method 'sgd' only")
        integer("batch_size", batch_size, 1, n)
        if batch_size == n:
            batch_size = None  # all examples every step: the full-batch update
    return sig, a, dt, batch_size


def _observer(model, observables):
    """A function ``W -> dict`` of the chosen observables (validated once, up front), and the names
    chosen from the model's (``"all"`` for every one of them, ``None`` when some are functions)."""
    if observables is None:
        return (lambda W, m=None: (m or model).observables(W)), "all"
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
    probe_model = model.select(slice(0, 1)) if hasattr(model, "select") else model
    known = set(probe_model.observables(W_probe))
    unknown = [b for b in builtin if b not in known]
    if unknown:
        raise ValueError(f"observables: unknown names {unknown}; the model records {sorted(known)}")

    def observe(W, m=None):
        obs = (m or model).observables(W) if builtin else {}
        out = {k: obs[k] for k in builtin}
        out.update({name: np.asarray(fn(W), dtype=float).reshape(W.shape[0]) for name, fn in extra})
        return out
    return observe, (tuple(builtin) if not extra else None)


# --------------------------------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------------------------------

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
    stop_fn: Callable | StopWhen | None = None,
    divergence_loss: float = 1e8,
    chunk_size: int | None = None,
    reduce: bool = False,
    progress: bool = False,
    path_offset: int = 0,
    observables=None,
    backend: str = "auto",
    device: str | None = None,
    dtype: str | None = None,
) -> SimulationResult:
    """Simulate ``P`` paths for ``steps`` steps.

    Parameters
    ----------
    model : a :class:`~lrdecay.theory.problem.Problem` (wrapped in :class:`~lrdecay.theory.models.nonlinear.NonlinearModel`) or
        any object with the engine interface (see module docstring).
    W0 : initial points ``(P, d)`` or ``(d,)``; defaults to ``problem.w0`` repeated ``n_paths`` times.
    lr : a number, a schedule ``step -> eta``, a sequence of ``P`` schedules (one per path, e.g. a
        decay-time sweep in one batch) or a 1-D array of ``P`` per-path constants.
    method : ``"gd"``, ``"sgd"`` or ``"em"`` (see module docstring).
    batch_size : minibatch size ``b`` for ``"sgd"`` (``None`` = full batch).
    sigma : label-noise level (default: the problem's). ``a`` : SDE noise scale for ``"em"``.
    dt : Euler–Maruyama time step (``"em"`` only).
    record_every / record_steps : where to record observables (default: about 200 points).
    stop_loss : stop a path once its train loss is ``<= stop_loss`` (checked every step).
    stop_fn : ``stop_fn(obs: dict, step) -> bool array (P,)``, checked at record steps (or a
        :class:`StopWhen`).
    divergence_loss : a path whose train loss exceeds this (or is not finite) is marked diverged.
    chunk_size : paths simulated together (memory bound); results do not depend on it.
    reduce : simulate in the invariant subspace ``span{W0, x_i}`` and lift back (exact; see
        :mod:`lrdecay.theory.reduction`).
    progress : show a tqdm progress bar.
    path_offset : global index of the first path (for splitting a batch across processes).
    observables : what to record: ``None`` for all of the model's (``train_loss``, ``test_loss``,
        ``norm``, ``dist_mn``), or a list whose items are those names or ``(name, fn)`` pairs, where
        ``fn(W) -> (P,)`` receives the states in the simulation's coordinates (reduced when
        ``reduce=True``; norms, inner products with ``w_mn`` and losses are unchanged by the reduction).
    backend : ``"auto"`` (default), ``"numpy"``, ``"numba"`` or ``"torch"`` (see module docstring);
        a backend that cannot serve the call raises a ``ValueError`` saying why.
    device, dtype : torch only: ``"cpu"`` or ``"cuda"`` (default: cuda where available) and
        ``"float64"`` (default) or ``"float32"``.
    """
    choice("method", method, METHODS)
    choice("backend", backend, BACKENDS)
    if backend != "torch" and (device is not None or dtype is not None):
        raise ValueError(f"device and dtype apply to backend 'torch' only, got backend={backend!r}")
    if dtype is not None:
        choice("dtype", dtype, ("float64", "float32"))
    if device is not None and not (str(device) == "cpu" or str(device).startswith("cuda")):
        raise ValueError(f"device must be 'cpu' or 'cuda[:i]', got {device!r}")
    steps = integer("steps", steps, 0)
    integer("seed", seed, 0)
    integer("path_offset", path_offset, 0)
    divergence_loss = positive("divergence_loss", divergence_loss)
    if stop_loss is not None:
        stop_loss = positive("stop_loss", stop_loss)
    engine_model, W0, reduction, problem = _prepare_model(model, W0, n_paths, reduce)
    P = W0.shape[0]
    if n_paths is not None and n_paths != P:
        raise ValueError(f"n_paths = {n_paths} does not match W0 with {P} rows")
    rates = _Rates(lr, P, method)
    sig, a, dt, batch_size = _noise_params(method, engine_model, problem, sigma, a, dt, batch_size)
    chunk_size = integer("chunk_size", P if chunk_size is None else chunk_size, 1)
    rec_steps = _record_grid(steps, record_every, record_steps)
    _check_memory(P, engine_model.dim, problem.d if reduction is not None else engine_model.dim, len(rec_steps), 6)
    times, tau = rates.times(rec_steps, P, steps, dt if method == "em" else None)   # checks every rate first
    observe, obs_names = _observer(engine_model, observables)
    conditions = _stop_conditions(stop_loss, stop_fn, divergence_loss)
    noisy = (method == "sgd" and sig > 0) or (method == "em" and a > 0)
    backend = _choose_backend(backend, engine_model, conditions)
    config = dict(method=method, steps=steps, seed=int(seed), n_paths=P, batch_size=batch_size,
                  sigma=sig, a=a, dt=dt, stop_loss=stop_loss, divergence_loss=divergence_loss,
                  reduce=bool(reduce), path_offset=int(path_offset), lr=rates.describe(), backend=backend)
    kernel_obs = _kernel_observables(engine_model, obs_names, conditions)
    spec = _ChunkSpec(steps, method, batch_size, sig, a, dt, seed, rec_steps, conditions, noisy, observe,
                      divergence_loss, stop_loss, kernel_obs)
    run = {"numpy": _run_chunk, "numba": _run_chunk_numba, "torch": _run_chunk_torch}[backend]
    if backend == "torch":
        from lrdecay.theory import torch_backend
        spec = replace(spec, torch=torch_backend.Options.make(device, dtype, seed))

    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=P * steps, unit="path-step", unit_scale=True, desc=f"{method} x{P}")
    t0 = time.perf_counter()
    outs = []
    try:
        for c0 in range(0, P, chunk_size):
            c1 = min(P, c0 + chunk_size)
            sub = engine_model.select(slice(c0, c1)) if hasattr(engine_model, "select") else engine_model
            outs.append(run(sub, W0[c0:c1].copy(), rates, c0, c1, path_offset + c0, spec, bar))
    finally:
        if bar is not None:
            bar.close()
    W_final = np.concatenate([o[1] for o in outs])
    records = {k: np.concatenate([o[0][k] for o in outs], axis=1) for k in outs[0][0]}
    status = np.concatenate([o[2] for o in outs])
    stop_step = np.concatenate([o[3] for o in outs])
    if reduction is not None:
        W_final = reduction.lift(W_final)
    return SimulationResult(rec_steps, times, records, W_final, status, stop_step, _message(status, stop_step),
                            config, time.perf_counter() - t0, problem, tau)


def _message(status, stop_step) -> str:
    P = len(status)
    counts = {s: int(np.sum(status == s)) for s in STATUSES}
    message = ", ".join(f"{v} {k}" for k, v in counts.items() if v) + f" of {P} paths"
    if counts["diverged"]:
        first = int(stop_step[status == "diverged"].min())
        message += f"; first divergence at step {first} (lower the learning rate)"
    return message


@dataclass(frozen=True)
class _ChunkSpec:
    steps: int
    method: str
    batch_size: int | None
    sigma: float
    a: float | None
    dt: float | None
    seed: int
    rec_steps: np.ndarray
    conditions: list
    noisy: bool
    observe: Callable
    divergence_loss: float = 1e8
    stop_loss: float | None = None
    kernel_obs: tuple | None = None     # observables a kernel records itself (None: the Python observer)
    torch: object = None                # lrdecay.theory.torch_backend.Options for backend "torch"


# --------------------------------------------------------------------------------------------------
# Backend selection
# --------------------------------------------------------------------------------------------------

def _builtin_dynamics(model) -> str | None:
    """Why the compiled and torch backends cannot run ``model``'s steps (``None`` when they can)."""
    from lrdecay.theory.models.nonlinear import NonlinearModel

    if not isinstance(model, NonlinearModel):
        return f"the model ({type(model).__name__}) is not a lrdecay.theory.models.nonlinear.NonlinearModel"
    for name in ("increment", "minibatch_increment"):
        if getattr(type(model), name) is not getattr(NonlinearModel, name):
            return f"{type(model).__name__} overrides NonlinearModel.{name}"
    return None


def _unserved(model, conditions) -> str | None:
    why = _builtin_dynamics(model)
    if why is None and any(c.every_step and not c.name.startswith(_BUILTIN_STOP) for c in conditions):
        why = "a per-step StopWhen other than stop_loss and divergence_loss needs the numpy loop"
    return why


def _choose_backend(backend: str, model, conditions) -> str:
    """``"numpy"``, ``"numba"`` or ``"torch"``: the forced one if it can serve the call (else a
    ValueError), or for ``"auto"`` numba where installed and able, else numpy."""
    from lrdecay.theory import kernels

    why = _unserved(model, conditions)
    if backend == "auto":
        return "numba" if kernels.HAVE_NUMBA and why is None else "numpy"
    if backend == "numba" and not kernels.HAVE_NUMBA:
        raise ValueError("backend='numba' needs numba (pip install -e '.[fast]'); use backend='numpy' or 'auto'")
    if backend in ("numba", "torch") and why is not None:
        raise ValueError(f"backend={backend!r} cannot serve this call: {why}; use backend='numpy' or 'auto'")
    if backend == "torch":
        try:
            import torch  # noqa: F401
        except ImportError:
            raise ValueError("backend='torch' needs torch (pip install -e '.[empirics]')") from None
    return backend


def _kernel_observables(model, obs_names, conditions):
    """The observables a kernel can record itself: the model's built-in four (or a chosen subset of
    them) when no record-time stop condition needs the Python observer; else ``None``."""
    from lrdecay.theory.kernels import OBSERVABLES
    from lrdecay.theory.models.nonlinear import NonlinearModel

    if not isinstance(model, NonlinearModel) or type(model).observables is not NonlinearModel.observables:
        return None
    if obs_names is None or any(not c.every_step for c in conditions):
        return None
    return OBSERVABLES if obs_names == "all" else tuple(obs_names)


def _run_chunk(model, W, rates: _Rates, c0: int, c1: int, first_path: int, spec: _ChunkSpec, bar):
    """Run paths ``c0..c1-1`` (global indices from ``first_path``); returns records, final states,
    status and stop steps."""
    P = W.shape[0]
    steps, method, batch_size, rec_steps = spec.steps, spec.method, spec.batch_size, spec.rec_steps
    paths = range(first_path, first_path + P)
    noise_gens = path_generators(spec.seed, paths, 0) if spec.noisy else None
    batch_gens = path_generators(spec.seed, paths, 1) if batch_size is not None else None
    ndim_noise = batch_size if batch_size is not None else model.noise_dim
    block = max(1, min(steps, _BLOCK_BYTES // max(1, 8 * P * max(ndim_noise, 1))))
    per_step = [c for c in spec.conditions if c.every_step]
    at_records = [c for c in spec.conditions if not c.every_step]
    sqrt_n = math.sqrt(model.n) if getattr(model, "n", None) else None
    zeros_xi = np.zeros((P, batch_size)) if batch_size is not None else None

    records: dict = {}
    active = np.ones(P, dtype=bool)
    status = np.full(P, "completed", dtype="U10")
    stop_step = np.full(P, -1, dtype=np.int64)
    ri = 0

    def end(mask, k, label):
        mask = mask & active
        status[mask] = label
        stop_step[mask] = k
        active[mask] = False

    def record(k, W):
        nonlocal ri
        obs = spec.observe(W, model)
        for name, v in obs.items():
            records.setdefault(name, np.empty((len(rec_steps), P)))[ri] = v
        ri += 1
        for c in at_records:
            end(c.mask(obs, k, P), k, c.status)

    k = 0
    with np.errstate(over="ignore", invalid="ignore"):  # divergence is detected and reported below
        while k < steps and active.any():
            K = min(block, steps - k)
            ks = np.arange(k, k + K)
            eta = rates.block(ks, c0, c1)
            xi = np.stack([g.standard_normal((K, ndim_noise)) for g in noise_gens], axis=1) if spec.noisy else None
            if batch_size is not None:
                idx = np.stack([np.argsort(g.random((K, model.n)), axis=1)[:, :batch_size] for g in batch_gens], axis=1)
            for j in range(K):
                if ri < len(rec_steps) and rec_steps[ri] == k:
                    record(k, W)
                if not active.any():
                    break
                e = eta[j][:, None]  # per-path scalars travel as (P, 1) columns
                if batch_size is not None:
                    dW = model.minibatch_increment(W, e, idx[j], xi[j] if spec.noisy else zeros_xi, spec.sigma)
                    loss = None
                elif method == "em":
                    coef = np.sqrt(e * spec.a * spec.dt) if spec.noisy else 0.0
                    dW, loss = model.increment(W, spec.dt, coef, xi[j] if spec.noisy else None)
                else:
                    coef = e * spec.sigma / sqrt_n if spec.noisy else 0.0
                    dW, loss = model.increment(W, e, coef, xi[j] if spec.noisy else None)
                if loss is not None:
                    for c in per_step:
                        end(c.mask(loss, k, P), k, c.status)
                W_new = W + dW
                # a row sum is finite iff every entry is (short of overflow)
                end(~np.isfinite(np.einsum("ij->i", W_new)), k, "diverged")
                W = W_new if active.all() else np.where(active[:, None], W_new, W)
                k += 1
                if bar is not None:
                    bar.update(P)
        if bar is not None and k < steps:
            bar.update(P * (steps - k))
        while ri < len(rec_steps):  # remaining records (final step, or frozen paths after an early exit)
            record(int(rec_steps[ri]), W)
    return records, W, status, stop_step


# --------------------------------------------------------------------------------------------------
# The compiled backend
# --------------------------------------------------------------------------------------------------

#: full-batch runs with shared data and ``n * dim`` at least this use two BLAS products per step in
#: place (lrdecay.theory.kernels.BatchedStep); smaller ones the per-path compiled loop (path_segment)
_BATCHED_MIN_SIZE = 8192


def _kernel_arrays(model, P: int):
    """The model's data for :func:`lrdecay.theory.kernels.path_segment`: leading axis ``P`` (per path) or 1."""
    def lead(v, ndim):
        v = np.asarray(v, dtype=float)
        return np.ascontiguousarray(v if v.ndim == ndim else v.reshape((1,) + v.shape))
    X = lead(model.X, 3)
    XT = np.ascontiguousarray(np.swapaxes(X, 1, 2))
    gam = np.ascontiguousarray(np.asarray(model.gamma, dtype=float).reshape(-1))
    off = np.ascontiguousarray(np.asarray(model.test_offset, dtype=float).reshape(-1))
    out = X, XT, lead(model.y, 2), gam, lead(model.alpha_star, 2), lead(model.w_mn, 2), off
    # the kernels index every array by path without bounds checks: each must hold one entry per path, or one for all
    for name, v in zip(("X", "X^T", "y", "gamma", "alpha_star", "w_mn", "test_offset"), out):
        if v.shape[0] not in (1, P):
            raise ValueError(f"W0 must have one row per path of the model's data: {name} holds {v.shape[0]} "
                             f"paths, W0 has {P} rows")
    return out


class _Streams:
    """Each path's random numbers and learning rates, drawn ahead in blocks of steps (the same
    numbers, in the same order, as the numpy loop draws: ``SeedSequence(seed, spawn_key=(p, 0))``
    for the noise and ``(p, 1)`` for the batches). ``eta``, ``xi`` and ``idx`` hold steps
    ``k0 .. k0 + K - 1``, path-major (``(P, K)``, ``(P, K, q)``, ``(P, K, b)``)."""

    def __init__(self, model, rates, c0, c1, first_path, spec, P):
        paths = range(first_path, first_path + P)
        self.rates, self.c0, self.c1 = rates, c0, c1
        self.noise_gens = path_generators(spec.seed, paths, 0) if spec.noisy else None
        self.batch_gens = path_generators(spec.seed, paths, 1) if spec.batch_size is not None else None
        self.b, self.n = spec.batch_size, model.n
        self.q = spec.batch_size if spec.batch_size is not None else model.n
        self.block = max(1, min(spec.steps, _BLOCK_BYTES // max(1, 8 * P * max(self.q, 1))))
        self.P, self.k0, self.K = P, 0, 0
        self.xi = np.zeros((P, 1, 1))
        self.idx = np.zeros((P, 1, 1), dtype=np.int64)

    def cover(self, k: int, active: np.ndarray, steps: int) -> None:
        """Make sure step ``k`` is in the block (draws the next block for the active paths)."""
        if self.k0 <= k < self.k0 + self.K:
            return
        K = min(self.block, steps - k)
        self.k0, self.K = k, K
        self.eta = np.ascontiguousarray(self.rates.block(np.arange(k, k + K), self.c0, self.c1).T)
        live = np.flatnonzero(active)
        if self.noise_gens is not None:
            self.xi = np.empty((self.P, K, self.q))
            for p in live:
                self.noise_gens[p].standard_normal(out=self.xi[p])
        if self.batch_gens is not None:
            self.idx = np.zeros((self.P, K, self.b), dtype=np.int64)
            for p in live:
                self.idx[p] = np.argsort(self.batch_gens[p].random((K, self.n)), axis=1)[:, :self.b]


def _run_chunk_numba(model, W, rates: _Rates, c0: int, c1: int, first_path: int, spec: _ChunkSpec, bar):
    """:func:`_run_chunk` with compiled steps (see :mod:`lrdecay.theory.kernels`); same returns."""
    from lrdecay.theory import kernels as kn

    P, m = W.shape
    W = np.ascontiguousarray(W, dtype=float)
    steps, rec_steps = spec.steps, spec.rec_steps
    R = len(rec_steps)
    status = np.zeros(P, dtype=np.int8)
    stop_step = np.full(P, -1, dtype=np.int64)
    streams = _Streams(model, rates, c0, c1, first_path, spec, P)
    at_records = [c for c in spec.conditions if not c.every_step]
    code = {"gd": kn.GD, "em": kn.EM, "sgd": kn.SGD if spec.batch_size is None else kn.MINIBATCH}[spec.method]
    batched = (spec.batch_size is None and not getattr(model, "stacked", False) and model.n * m >= _BATCHED_MIN_SIZE)
    records: dict = {}

    def python_record(k, ri):
        obs = spec.observe(W, model)
        for name, v in obs.items():
            records.setdefault(name, np.empty((R, P)))[ri] = v
        for c in at_records:
            hit = c.mask(obs, k, P) & (status == kn.ACTIVE)
            status[hit] = _STATUS_CODE[c.status]
            stop_step[hit] = k

    with np.errstate(over="ignore", invalid="ignore"):
        if batched:
            _batched_loop(model, W, spec, streams, status, stop_step, python_record, bar, records)
        elif spec.kernel_obs is None:
            _segment_loop(model, W, spec, streams, code, status, stop_step, python_record, bar)
        else:
            rec_out = np.empty((R, len(kn.OBSERVABLES), P))
            _segment_loop(model, W, spec, streams, code, status, stop_step, None, bar, rec_out)
            records = {name: rec_out[:, kn.OBSERVABLES.index(name)] for name in spec.kernel_obs}
    return records, W, np.asarray(STATUSES)[status], stop_step


_STATUS_CODE = {"stopped": 1, "diverged": 2}


def _segment_loop(model, W, spec, streams, code, status, stop_step, python_record, bar, rec_out=None):
    """Drive :func:`lrdecay.theory.kernels.path_segment`: segments up to the next record step when the
    observer is Python (``python_record``), else whole blocks with the records kept by the kernel."""
    from lrdecay.theory import kernels as kn

    P = W.shape[0]
    steps, rec_steps = spec.steps, spec.rec_steps
    R = len(rec_steps)
    X, XT, y, gam, a_star, w_mn, off = _kernel_arrays(model, P)
    a_dt = float(spec.a * spec.dt) if spec.method == "em" and spec.noisy else 0.0
    dt = float(spec.dt) if spec.method == "em" else 0.0
    stop_loss = float(spec.stop_loss) if spec.stop_loss is not None else 0.0
    no_rec = np.zeros(0, dtype=np.int64)
    out = rec_out if rec_out is not None else np.zeros((1, len(kn.OBSERVABLES), P))
    rows = np.arange(R, dtype=np.int64)

    def kernel(k, K, rs, rr):
        eta = streams.eta if K else np.zeros((P, 1))
        with kn.LOCK:
            kn.path_segment(W, X, XT, y, gam, a_star, w_mn, off, eta, streams.xi, streams.idx, code, bool(spec.noisy),
                            float(spec.sigma), a_dt, dt, float(spec.divergence_loss), stop_loss,
                            spec.stop_loss is not None, int(k), int(K), int(k - streams.k0) if K else 0,
                            status, stop_step, rs, rr, out)

    k, ri = 0, 0
    while k < steps and (status == kn.ACTIVE).any():
        if python_record is not None and ri < R and rec_steps[ri] == k:
            python_record(k, ri)
            ri += 1
            if not (status == kn.ACTIVE).any():
                break
        streams.cover(k, status == kn.ACTIVE, steps)
        end = min(steps, streams.k0 + streams.K)
        if python_record is not None and ri < R:
            end = min(end, int(rec_steps[ri]))
        K = end - k
        if python_record is None:
            hi = int(np.searchsorted(rec_steps, end, side="left"))
            kernel(k, K, rec_steps[ri:hi], rows[ri:hi])
            ri = hi
        else:
            kernel(k, K, no_rec, no_rec)
        k = end
        if bar is not None:
            bar.update(P * K)
    if bar is not None and k < steps:
        bar.update(P * (steps - k))
    if python_record is not None:
        while ri < R:
            python_record(int(rec_steps[ri]), ri)
            ri += 1
    elif ri < R:  # records after the last step or after every path ended: the final states
        kernel(k, 0, rec_steps[ri:], rows[ri:])


def _batched_loop(model, W, spec, streams, status, stop_step, python_record, bar, records):
    """Full-batch steps with shared data at large ``d``: two BLAS products per step, updated in
    place (:class:`lrdecay.theory.kernels.BatchedStep`), one step at a time for all paths."""
    from lrdecay.theory import kernels as kn

    P = W.shape[0]
    steps, rec_steps = spec.steps, spec.rec_steps
    R = len(rec_steps)
    stepper = kn.BatchedStep(model, W)
    sqrt_n = math.sqrt(model.n)

    def python_record_synced(k, ri, loss=None):
        if spec.kernel_obs is not None:             # the built-in observables, from the stepper
            obs = stepper.observables(stepper.loss() if loss is None else loss)
            for name in spec.kernel_obs:
                records.setdefault(name, np.empty((R, P)))[ri] = obs[name]
            return
        stepper.W                                   # fold the row scales into W before reading it
        python_record(k, ri)
    k, ri = 0, 0
    active = status == kn.ACTIVE

    def end(mask, label):
        mask = mask & active
        status[mask] = label
        stop_step[mask] = k
        active[mask] = False

    while k < steps and active.any():
        loss = stepper.loss()
        if ri < R and rec_steps[ri] == k:
            python_record_synced(k, ri, loss)
            ri += 1
            active[:] = status == kn.ACTIVE
            if not active.any():
                break
        streams.cover(k, active, steps)
        j = k - streams.k0
        end(~(np.isfinite(loss) & (loss <= spec.divergence_loss)), kn.DIVERGED)
        if spec.stop_loss is not None:
            end(loss <= spec.stop_loss, kn.STOPPED)
        e = streams.eta[:, j][:, None]
        xi = streams.xi[:, j] if spec.noisy else None
        if spec.method == "em":
            dt, coef = spec.dt, (np.sqrt(e * spec.a * spec.dt) if spec.noisy else 0.0)
        else:
            dt, coef = e, (e * spec.sigma / sqrt_n if spec.noisy else 0.0)
        end(stepper.update(dt, coef, xi, active), kn.DIVERGED)
        k += 1
        if bar is not None:
            bar.update(P)
    if bar is not None and k < steps:
        bar.update(P * (steps - k))
    while ri < R:
        python_record_synced(int(rec_steps[ri]), ri)
        ri += 1
    stepper.W          # reading W folds the row scales back into the caller's array (in place)


def _run_chunk_torch(model, W, rates: _Rates, c0: int, c1: int, first_path: int, spec: _ChunkSpec, bar):
    """:func:`_run_chunk` with torch (see :mod:`lrdecay.theory.torch_backend`); same returns."""
    from lrdecay.theory import torch_backend

    return torch_backend.run_chunk(model, W, rates, c0, c1, first_path, spec, bar, STATUSES)
