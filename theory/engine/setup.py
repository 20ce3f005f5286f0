"""Everything ``simulate`` settles before a path moves, each checked with a one-line error: the learning
rates (:class:`Rates`, with the records' times), the record grid, the model and the initial states,
the noise parameters, the observer, and a memory check."""
from __future__ import annotations

import numpy as np

from lrdecay.theory.engine.protocol import examples, paths_held, subset
from lrdecay.theory.problem import Problem
from lrdecay.theory.schedules import as_schedule, checked_rates
from lrdecay.theory.validation import integer, nonneg, positive

_MAX_RECORDS = 10**7        # records per path (each observable holds records x paths numbers)
_TIMES_BLOCK = 2**22        # learning-rate values summed per block when computing record times


class Rates:
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
                raise ValueError(f"lr: an array of per-path learning rates must have one per path ({P}), "
                                 f"got {lr.shape}")
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


def unique_rows(W: np.ndarray) -> np.ndarray:
    """Distinct rows of ``W`` (exact, by their bytes; first occurrence order). Unlike
    ``np.unique(axis=0)`` it does not sort d-long rows, which matters at d = 10^6."""
    first: dict = {}
    for i, row in enumerate(np.ascontiguousarray(W)):
        first.setdefault(row.tobytes(), i)
    return W[sorted(first.values())]


def record_grid(steps: int, record_every, record_steps) -> np.ndarray:
    """The sorted record steps: ``record_steps`` (in ``[0, steps]``), or every ``record_every`` steps
    (default: about 200 records) and the last step."""
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


def prepare_model(model, W0, n_paths, reduce):
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
        W0 = check_W0(W0, model.d)
        if reduce:
            from lrdecay.theory.reduction import Reduction
            reduction = Reduction.from_problem(model, unique_rows(W0))
            return NonlinearModel.from_problem(reduction.reduced), reduction.project(W0), reduction, model
        return NonlinearModel.from_problem(model), W0, None, model
    if reduce:
        raise ValueError("reduce=True needs a Problem as model")
    if W0 is None:
        raise ValueError("W0 is required when model is not a Problem")
    W0 = check_W0(W0, model.dim)
    held = paths_held(model)                    # a stacked model holds data for exactly this many paths
    if held is not None and W0.shape[0] != held:
        raise ValueError(f"W0 must have one row per path of the stacked model ({held} rows), got {W0.shape[0]} rows")
    return model, W0, None, getattr(model, "problem", None)


def check_result_memory(P: int, dim: int, full_dim: int, n_records: int, n_obs: int) -> None:
    """Refuse a call whose results alone (final states ``P x d`` in the problem's coordinates, records
    ``R x P`` per observable) and one chunk of working states would not fit in memory
    (:func:`lrdecay.theory.budget.check_memory`)."""
    from lrdecay.theory.budget import check_memory

    nbytes = 8.0 * P * (full_dim + dim + n_records * max(n_obs, 1))
    check_memory("n_paths", nbytes, f"{P} paths of dimension {full_dim} with {n_records} records each")


def check_W0(W0, dim: int) -> np.ndarray:
    W0 = np.atleast_2d(np.asarray(W0, dtype=float))
    if W0.ndim != 2 or W0.shape[1] != dim or W0.shape[0] < 1:
        raise ValueError(f"W0 must have shape (P, {dim}) with P >= 1, got shape {W0.shape}")
    if not np.all(np.isfinite(W0)):
        raise ValueError("W0 must contain finite values only")
    return W0


def noise_params(method, model, problem, sigma, a, dt, batch_size):
    """Validated ``(sigma, a, dt, batch_size)``; ``batch_size = n`` becomes ``None`` (full batch)."""
    sig = nonneg("sigma", getattr(problem, "sigma", 0.0) if sigma is None else sigma)
    n = examples(model)
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


def observer(model, observables):
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
    probe_model = subset(model, 0, 1)
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

