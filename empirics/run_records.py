"""Reading a VGG run directory's saved results, and the small pieces every measurement shares.

A run directory holds ``main/result.json`` and ``sub_e*/result.json`` (one per decayed subpath): :func:`load_run`
reads them; :func:`landing_epoch` and :func:`analysed_decay_epochs` place a path's landing and the decays a
statistic uses; :func:`tail_mean` is a path's value (the mean of its last evaluations);
:func:`constant_predictor_loss` is the test loss of the best constant output, the floor a network must beat;
the rest are the statistics (means with standard errors, t quantiles, correlations, an OLS slope) the
measurements of :mod:`lrdecay.empirics.analysis` are built from.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from lrdecay.theory.io import load_json

from .tolerances import LAST_K, REGIME_MIN_TRAIN_ACC


# ----------------------------------------------------------------------------- reading runs
def _as_dirs(run_dirs) -> list[Path]:
    if isinstance(run_dirs, (str, Path)):
        run_dirs = [run_dirs]
    dirs = [Path(d) for d in run_dirs]
    if not dirs:
        raise ValueError("run_dirs: expected at least one run directory")
    return dirs


def load_run(run_dir) -> dict:
    """The main path's and the finished subpaths' ``result.json`` of one run directory."""
    run_dir = Path(run_dir)
    p = run_dir / "main" / "result.json"
    if not p.exists():
        raise FileNotFoundError(f"{p} not found: the main path of {run_dir} has not finished")
    main = load_json(p)
    subs = [load_json(d / "result.json") for d in sorted(run_dir.glob("sub_e*")) if (d / "result.json").exists()]
    subs.sort(key=lambda r: r["meta"]["decay_epoch"])
    return {"dir": str(run_dir), "main": main, "subs": subs, "config": main["config"], "seed": main["seed"]}


def _row_at(metrics: list[dict], epoch: int) -> dict | None:
    """The last evaluated row at or before ``epoch``."""
    rows = [r for r in metrics if r["epoch"] <= epoch]
    return rows[-1] if rows else None


def _window_at(metrics: list[dict], epoch: int, key: str, window: int) -> tuple[dict, list[float]]:
    """The last evaluated row at or before ``epoch`` and ``key`` over the ``window`` evaluations ending there."""
    row = _row_at(metrics, epoch)
    k = metrics.index(row)
    return row, [x[key] for x in metrics[max(0, k + 1 - window):k + 1]]


def landing_epoch(metrics: list[dict], min_acc: float = REGIME_MIN_TRAIN_ACC) -> int | None:
    """The first evaluated epoch from which the train accuracy *stays* at or above ``min_acc`` at every
    later evaluation (the path has landed for good), else ``None``.

    A first crossing followed by a fall back (an instability of the large rate early on) is not a
    landing: the landing is the start of the last unbroken run of evaluations at ``min_acc`` or above,
    provided that run reaches the path's last evaluation.
    """
    land = None
    for r in metrics:
        if r["train_acc"] >= min_acc:
            land = int(r["epoch"]) if land is None else land
        else:
            land = None
    return land


def first_crossing_epoch(metrics: list[dict], min_acc: float = REGIME_MIN_TRAIN_ACC) -> int | None:
    """First evaluated epoch whose train accuracy reaches ``min_acc`` (it may fall back later), else ``None``."""
    return next((int(r["epoch"]) for r in metrics if r["train_acc"] >= min_acc), None)


# ----------------------------------------------------------------------------- the decays a statistic uses
def is_fixed_length(cfg: dict) -> bool:
    """Whether the run's subpaths have a fixed length (the authors' design) rather than a common end."""
    return cfg.get("subpath_epochs") is not None


def analysed_decay_epochs(cfg: dict, metrics: list[dict]) -> list[int]:
    """The decay epochs a run's late-decay statistic uses.

    Equal budget: all of them (the profile places them after landing). Fixed-length branches (the
    authors' design, branching at regular epochs whatever the path does): those at or after the landing
    epoch, since the paper's claim is about decays *after* the network has landed; none if it never did.
    """
    epochs = sorted(int(e) for e in cfg.get("decay_epochs") or ())
    if not is_fixed_length(cfg):
        return epochs
    land = landing_epoch(metrics)
    return [] if land is None else [e for e in epochs if e >= land]


def first_decay_epoch(run: dict) -> int:
    """The first analysed decay epoch of a loaded run (its main path's end when there is none)."""
    e = analysed_decay_epochs(run["config"], run["main"]["metrics"])
    return e[0] if e else int(run["main"]["end_epoch"])


def tail_mean(metrics: list[dict], key: str, k: int = LAST_K) -> tuple[float, float]:
    """Mean of ``key`` over a path's last ``k`` evaluations and its standard error over them."""
    v = np.asarray([r[key] for r in metrics[-k:]], float)
    return float(v.mean()), (float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan"))


# ----------------------------------------------------------------------------- the constant predictor
def constant_predictor_loss(loss: str, train_counts, test_counts) -> float:
    r"""Test loss of the best constant predictor fitted to the training labels.

    With training class frequencies :math:`p_k` and test frequencies :math:`q_k`, the constant output
    minimising the training loss is :math:`z = p` for the squared losses and :math:`\log p` (softmax
    :math:`p`) for cross-entropy, so its test loss is

    * ``"mse"`` (:math:`\tfrac12\|z - e_y\|^2`): :math:`\tfrac12(1 - 2\sum_k p_k q_k + \sum_k p_k^2)`;
    * ``"mse_mean"`` (per-element mean over :math:`K` outputs): :math:`\tfrac2K` times that;
    * ``"ce"``: :math:`-\sum_k q_k \log p_k`.

    A network whose test loss is not clearly below this number has learnt nothing that transfers to
    the test images, whatever it does on its training set.
    """
    p = np.asarray(train_counts, float)
    q = np.asarray(test_counts, float)
    if p.shape != q.shape or p.ndim != 1 or len(p) < 2 or p.sum() <= 0 or q.sum() <= 0 or (p < 0).any() \
            or (q < 0).any():
        raise ValueError(f"train_counts, test_counts: expected two non-negative count vectors of one length >= 2, "
                         f"got {list(p)} and {list(q)}")
    p, q = p / p.sum(), q / q.sum()
    if loss in ("mse", "mse_mean"):
        v = 0.5 * (1.0 - 2.0 * float(p @ q) + float(p @ p))
        return v if loss == "mse" else 2.0 * v / len(p)
    if loss == "ce":
        return float(-(q[q > 0] * np.log(p[q > 0])).sum()) if (p[q > 0] > 0).all() else float("inf")
    raise ValueError(f"loss: expected one of ('mse', 'mse_mean', 'ce'), got {loss!r}")


def run_constant_loss(run: dict) -> float:
    """:func:`constant_predictor_loss` of a loaded run (its configuration's loss, its data's class counts)."""
    info = run["main"]["data"]
    if "test_per_class" not in info:
        raise ValueError(f"{run['dir']}: the run's data description has no test class counts (made by an older "
                         "version); rerun its main path to record them")
    return constant_predictor_loss(run["config"]["loss"], info["train_per_class"], info["test_per_class"])


def rolling_mean(x, window: int) -> np.ndarray:
    """Means of ``window`` consecutive values (all of them when there are fewer)."""
    x = np.asarray(x, float)
    w = max(1, min(int(window), len(x)))
    return np.convolve(x, np.ones(w) / w, mode="valid")


def _mean_se(x) -> tuple[float, float]:
    x = np.asarray(x, float)
    if len(x) == 0:
        return float("nan"), float("nan")
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else float("nan")


def _t_quantile(conf: float, dof: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + conf / 2, dof))


def _pearson(x, y) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or np.ptp(y) == 0 or np.ptp(x) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def _spearman(x, y) -> float:
    from scipy.stats import spearmanr

    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or np.ptp(y) == 0 or np.ptp(x) == 0:
        return float("nan")
    return float(spearmanr(x, y)[0])

def _slope(x, y) -> tuple[float, float]:
    """OLS slope of ``y`` on ``x`` and its standard error."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2:
        return float("nan"), float("nan")
    X = np.stack([np.ones_like(x), x], 1)
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    if len(x) < 3:
        return float(coef[1]), float("nan")
    resid = y - X @ coef
    s2 = resid @ resid / (len(x) - 2)
    cov = s2 * np.linalg.inv(X.T @ X)
    return float(coef[1]), float(math.sqrt(cov[1, 1]))
