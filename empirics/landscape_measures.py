"""Measurements of a VGG run's loss landscape (``landscape.npz``, made by :mod:`lrdecay.empirics.landscape`):
the valley as a sublevel set of the train-loss grid (claim ``vgg.valley``) and where the grid's test-loss minimum
lies (claim ``vgg.test_minimum``). Re-exported by :mod:`lrdecay.empirics.analysis`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lrdecay.theory.io import load_result

from .run_records import landing_epoch, load_run, rolling_mean, run_constant_loss
from .tolerances import VALLEY_LEVEL, VALLEY_MAX_AREA, VALLEY_MIN_CONTAINED, VALLEY_WINDOW


def _landscape(run_dir):
    p = Path(run_dir) / "landscape.npz"
    if not p.exists():
        raise FileNotFoundError(f"{p} not found: run the landscape stage first")
    return load_result(p)


def _main_points(arr, cfg, run_dir):
    """Main-path rows of the landscape (coords, losses) and the step at which the path landed."""
    r = load_run(run_dir)
    spe = int(r["main"]["steps_per_epoch"])
    land = landing_epoch(r["main"]["metrics"])
    m = np.flatnonzero(arr["path"] == 0)
    m = m[np.argsort(arr["step"][m])]
    return m, (None if land is None else land * spe), r


def _sides_touched(mask: np.ndarray) -> int:
    return int(mask[0, :].any()) + int(mask[-1, :].any()) + int(mask[:, 0].any()) + int(mask[:, -1].any())


def _nearest_cells(a: np.ndarray, b: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    i = np.clip(np.searchsorted(a, pts[:, 0]), 1, len(a) - 1)
    i -= (pts[:, 0] - a[i - 1]) < (a[i] - pts[:, 0])
    j = np.clip(np.searchsorted(b, pts[:, 1]), 1, len(b) - 1)
    j -= (pts[:, 1] - b[j - 1]) < (b[j] - pts[:, 1])
    return i, j


def _post_landing_main(arr, run_dir):
    """Main-path rows of the landscape after landing and all of them (by step), the landing step and the run."""
    m, land_step, run = _main_points(arr, None, run_dir)
    after = m[:0] if land_step is None else m[arr["step"][m] >= land_step]
    return after, m, land_step, run


def measure_valley(run_dir, window: int = VALLEY_WINDOW) -> dict:
    """The valley as a sublevel set of the train-loss grid (as the toy model's landscape is judged).

    The level is :data:`VALLEY_LEVEL` times the median grid train loss at the projections of the
    post-landing main-path checkpoints; the valley is the connected component (4-neighbours) of the
    sublevel set ``{L_train <= level}`` that holds most of those projections. Measured: the fraction of
    the projections in it, the sides of the window it touches, the fraction of the window it covers.
    Also (reported, not judged): the checkpoints' own train-loss ratio after landing (windowed over
    ``window`` checkpoints) and the lowest train accuracy after landing.
    """
    from scipy.ndimage import label

    arr, _ = _landscape(run_dir)
    after, _, land_step, run = _post_landing_main(arr, run_dir)
    out = {"landing_step": land_step, "level_factor": VALLEY_LEVEL}
    if land_step is None or len(after) == 0:
        return out | {"landed": False}
    spe = int(run["main"]["steps_per_epoch"])
    Z, a, b = arr["train_loss"], arr["a"], arr["b"]
    pts = arr["coords"][after, :2]
    proj = arr["proj_train_loss"][after]
    level = VALLEY_LEVEL * float(np.median(proj))
    lab, n = label(Z <= level)
    i, j = _nearest_cells(a, b, pts)
    cells = lab[i, j]
    comp = int(np.bincount(cells[cells > 0]).argmax()) if (cells > 0).any() else 0
    mask = lab == comp if comp else np.zeros_like(Z, bool)
    low = min((x for x in run["main"]["metrics"] if x["epoch"] * spe >= land_step), key=lambda x: x["train_acc"])
    ratio = float("nan")
    if "ckpt_train_loss" in arr:
        la = rolling_mean(arr["ckpt_train_loss"][after], window)
        ratio = float(la.max() / la.min()) if la.min() > 0 else float("inf")
    return out | {"landed": True, "landing_epoch": land_step // spe, "n_after_landing": int(len(after)),
                  "level": level, "contained_fraction": float((cells == comp).mean()) if comp else 0.0,
                  "sides_touched": _sides_touched(mask), "area_fraction": float(mask.mean()),
                  "n_components": int(n), "loss_ratio_after_landing": ratio, "window": window,
                  "min_train_acc_after_landing": float(low["train_acc"]), "min_train_acc_epoch": int(low["epoch"]),
                  "passes": bool(comp and (cells == comp).mean() >= VALLEY_MIN_CONTAINED
                                 and _sides_touched(mask) >= 2 and mask.mean() <= VALLEY_MAX_AREA)}


def measure_test_minimum(run_dir) -> dict:
    """Where the grid's test-loss minimum lies in the window: interior or not; the lowest edge's rise above
    it as a fraction of the grid's spread (median − minimum), as the toy model's landscape is judged; its
    distances to the main path's late end and landing point; the grid's train/test agreement (Pearson on
    log losses; Spearman, which logs do not change); the fraction of the window whose test loss is above
    the best constant predictor's."""
    from scipy.stats import pearsonr, spearmanr

    arr, _ = _landscape(run_dir)
    after, m, land_step, run = _post_landing_main(arr, run_dir)
    Z, Ztr, a, b = arr["test_loss"], arr["train_loss"], arr["a"], arr["b"]
    n1, n2 = Z.shape
    i, j = np.unravel_index(int(np.argmin(Z)), Z.shape)
    zmin, med = float(Z[i, j]), float(np.median(Z))
    edges = {"a_min": Z[0, :], "a_max": Z[-1, :], "b_min": Z[:, 0], "b_max": Z[:, -1]}
    margin = {k: float((v.min() - zmin) / (med - zmin)) if med > zmin else 0.0 for k, v in edges.items()}
    pt = np.array([a[i], b[j]])
    end = arr["coords"][m[-1], :2]
    const = run_constant_loss(run)
    pos = (Z > 0).all() and (Ztr > 0).all()
    out = {"grid": [int(n1), int(n2)], "test_min": zmin, "test_median": med, "test_min_index": [int(i), int(j)],
           "test_min_coords": pt.tolist(), "interior": bool(0 < i < n1 - 1 and 0 < j < n2 - 1),
           "edge_margin": margin, "min_edge_margin": min(margin.values()),
           "distance_to_late_end": float(np.linalg.norm(pt - end)), "constant_loss": const,
           "fraction_above_constant": float((Z > const).mean()),
           "pearson_log_train_test": float(pearsonr(np.log(Ztr.ravel()), np.log(Z.ravel()))[0]) if pos
           else float("nan"),
           "spearman_train_test": float(spearmanr(Ztr.ravel(), Z.ravel())[0])}
    k, l = np.unravel_index(int(np.argmin(Ztr)), Ztr.shape)
    out |= {"train_min": float(Ztr[k, l]), "train_min_coords": [float(a[k]), float(b[l])],
            "train_min_interior": bool(0 < k < n1 - 1 and 0 < l < n2 - 1)}
    if land_step is None or len(after) == 0:
        return out | {"distance_to_landing": float("nan"), "nearer_late_end": False, "landed": False}
    land = arr["coords"][after[0], :2]
    dl = float(np.linalg.norm(pt - land))
    return out | {"landed": True, "landing_coords": land.tolist(), "late_end_coords": end.tolist(),
                  "distance_to_landing": dl, "nearer_late_end": bool(out["distance_to_late_end"] < dl)}
