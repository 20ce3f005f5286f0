"""The entry point, :func:`simulate`: check everything, choose the backend, run the chunks of paths
(:func:`~lrdecay.theory.engine.driver.run_chunk`) and assemble the :class:`SimulationResult`."""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from lrdecay.theory.engine import dispatch
from lrdecay.theory.engine.driver import Plan, run_chunk
from lrdecay.theory.engine.options import (METHODS, BackendOptions, NoiseOptions, RecordOptions, grouped)
from lrdecay.theory.engine.protocol import subset
from lrdecay.theory.engine.records import SimulationResult, StopWhen, stop_conditions, summary
from lrdecay.theory.engine.setup import Rates, check_result_memory, observer, prepare_model
from lrdecay.theory.validation import choice, integer, positive


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
    backend: str | BackendOptions = "auto",
    device: str | None = None,
    dtype: str | None = None,
    records: RecordOptions | None = None,
    noise: NoiseOptions | None = None,
) -> SimulationResult:
    """Simulate ``P`` paths for ``steps`` steps.

    Parameters
    ----------
    model : a :class:`~lrdecay.theory.problem.Problem` (wrapped in
        :class:`~lrdecay.theory.models.nonlinear.NonlinearModel`) or any object with the engine
        interface (:mod:`lrdecay.theory.engine.protocol`).
    W0 : initial points ``(P, d)`` or ``(d,)``; defaults to ``problem.w0`` repeated ``n_paths`` times.
    lr : a number, a schedule ``step -> eta``, a sequence of ``P`` schedules (one per path, e.g. a
        decay-time sweep in one batch) or a 1-D array of ``P`` per-path constants.
    method : ``"gd"``, ``"sgd"`` or ``"em"`` (see :mod:`lrdecay.theory.engine`).
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
    backend : ``"auto"`` (default), ``"numpy"``, ``"numba"`` or ``"torch"`` (see
        :mod:`lrdecay.theory.engine.dispatch`), or a :class:`BackendOptions`; a backend that cannot
        serve the call raises a ``ValueError`` saying why.
    device, dtype : torch only: ``"cpu"`` or ``"cuda"`` (default: cuda where available) and
        ``"float64"`` (default) or ``"float32"``.
    records, noise : the record and noise keywords grouped (:class:`RecordOptions`, :class:`NoiseOptions`),
        in place of ``record_every``, ``record_steps``, ``observables`` and ``sigma``, ``a``, ``dt``,
        ``batch_size``.
    """
    choice("method", method, METHODS)
    run = (grouped(BackendOptions, backend, "auto", device, dtype, chunk_size) if isinstance(backend, BackendOptions)
           else BackendOptions(backend, device, dtype, chunk_size))
    records = grouped(RecordOptions, records, record_every, record_steps, observables)
    noise = grouped(NoiseOptions, noise, sigma, a, dt, batch_size)
    steps = integer("steps", steps, 0)
    seed = integer("seed", seed, 0)
    integer("path_offset", path_offset, 0)
    divergence_loss = positive("divergence_loss", divergence_loss)
    if stop_loss is not None:
        stop_loss = positive("stop_loss", stop_loss)
    engine_model, W0, reduction, problem = prepare_model(model, W0, n_paths, reduce)
    P = W0.shape[0]
    if n_paths is not None and n_paths != P:
        raise ValueError(f"n_paths = {n_paths} does not match W0 with {P} rows")
    rates = Rates(lr, P, method)
    resolved = noise.resolve(method, engine_model, problem)
    chunk = run.chunk(P)
    rec_steps = records.grid(steps)
    full_dim = problem.d if reduction is not None else engine_model.dim
    check_result_memory(P, engine_model.dim, full_dim, len(rec_steps), 6)
    times, tau = rates.times(rec_steps, P, steps, resolved.dt if method == "em" else None)   # checks every rate first
    observe, obs_names = observer(engine_model, records.observables)
    conditions = tuple(stop_conditions(stop_loss, stop_fn, divergence_loss))
    name = dispatch.choose(run.name, engine_model, conditions)
    config = dict(method=method, steps=steps, seed=seed, n_paths=P, batch_size=resolved.batch_size,
                  sigma=resolved.sigma, a=resolved.a, dt=resolved.dt, stop_loss=stop_loss,
                  divergence_loss=divergence_loss, reduce=bool(reduce), path_offset=int(path_offset),
                  lr=rates.describe(), backend=name)
    plan = Plan(method, steps, seed, resolved, rec_steps, conditions, observe, divergence_loss, stop_loss,
                dispatch.kernel_observables(engine_model, obs_names, conditions))
    make = dispatch.backend_factory(name, run.device, run.dtype)

    t0 = time.perf_counter()
    outs = _run_chunks(make, engine_model, W0, rates, plan, chunk, int(path_offset), progress)
    W_final = np.concatenate([o[1] for o in outs])
    recs = {k: np.concatenate([o[0][k] for o in outs], axis=1) for k in outs[0][0]}
    status = np.concatenate([o[2] for o in outs])
    stop_step = np.concatenate([o[3] for o in outs])
    if reduction is not None:
        W_final = reduction.lift(W_final)
    return SimulationResult(rec_steps, times, recs, W_final, status, stop_step, summary(status, stop_step),
                            config, time.perf_counter() - t0, problem, tau)


def _run_chunks(make, model, W0, rates, plan: Plan, chunk: int, path_offset: int, progress: bool) -> list:
    """Every chunk of ``chunk`` paths in turn, each on its own backend object."""
    P = W0.shape[0]
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=P * plan.steps, unit="path-step", unit_scale=True, desc=f"{plan.method} x{P}")
    outs = []
    try:
        for c0 in range(0, P, chunk):
            c1 = min(P, c0 + chunk)
            backend = make(subset(model, c0, c1), W0[c0:c1].copy(), rates, c0, c1, path_offset + c0, plan)
            outs.append(run_chunk(backend, bar))
    finally:
        if bar is not None:
            bar.close()
    return outs
