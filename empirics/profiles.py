"""Named experiment profiles and the driver that runs a whole one: main path → subpaths → landscape (the figures are drawn by the caller from the saved results).

* ``quick`` — CPU, minutes on 2 cores: the authors' recipe (slim VGG-11, MSE, SGD 0.1 with momentum
  0.9 and weight decay 1e-4, batch 125, crop + flip, the 5,000-image subset) at reduced width and with
  tens instead of thousands of epochs; a small landscape grid on an evaluation subset.
* ``authors`` — the setting of the authors' code (THEORY.md §4): 5,000 images, 3,000 epochs,
  checkpoints every 400 steps, subpaths at epochs 2000, 2100, …, 3000 with lr × 0.1; meant for a GPU.
* ``full`` — VGG-11 (configuration A, full width, batch norm) on all 50,000 CIFAR-10 training images;
  needs the full dataset (``--download`` or ``--data``) and a GPU.

:func:`run_profile` is resumable: a finished stage (a path's ``result.json``, a ``landscape.npz``
made from the same checkpoints and settings) is reused, an interrupted one resumes from its last
checkpoint. :func:`summarize` reads a run directory back.
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from theory.io import load_json, load_result, save_json

from .landscape import LandscapeConfig
from .train import TrainConfig

PROFILES: dict[str, dict] = {
    "quick": {
        "description": "CPU, a few minutes on 2 cores: slim VGG-11 at width 0.375 on the 5,000-image subset, "
                       "60 epochs at lr 0.1, subpaths at lr 0.01 for 10 epochs from epochs 12, 24, 36, 48, 60; "
                       "11 × 11 grid on 500 + 500 evaluation images",
        "train": TrainConfig(arch="slim_vgg11", width=0.375, batch_norm=False, dropout=0.5, loss="mse", lr=0.1,
                             momentum=0.9, weight_decay=1e-4, batch_size=125, epochs=60, ckpt_every=80,
                             decay_epochs=(12, 24, 36, 48, 60), decay_factor=0.1, subpath_epochs=10,
                             train_size=5000, test_size=None, augment=True, eval_every=2, eval_batch=500,
                             seed=0),
        "landscape": LandscapeConfig(grid=11, margin=0.25, n_components=4, curved=False, train_size=500,
                                     test_size=500, points_per_batch=11, eval_batch=500, seed=0),
        "threads": 2,
    },
    "authors": {
        "description": "the authors' setting (GPU): slim VGG-11, 5,000 images, MSE, lr 0.1, 3,000 epochs, "
                       "checkpoints every 400 steps, subpaths at epochs 2000..3000 (step 100) with lr 0.01 "
                       "for 300 epochs; 31 × 31 curved-sheet landscape on all images",
        "train": TrainConfig(arch="slim_vgg11", width=1.0, batch_norm=False, dropout=0.5, loss="mse", lr=0.1,
                             momentum=0.9, weight_decay=1e-4, batch_size=125, epochs=3000, ckpt_every=400,
                             decay_epochs=tuple(range(2000, 3001, 100)), decay_factor=0.1, subpath_epochs=300,
                             train_size=5000, test_size=None, augment=True, eval_every=1, eval_batch=1000,
                             seed=0),
        "landscape": LandscapeConfig(grid=31, margin=0.25, n_components=4, curved=True, train_size=None,
                                     test_size=None, points_per_batch=32, eval_batch=1000, seed=0),
        "threads": None,
    },
    "full": {
        "description": "full CIFAR-10 (GPU, needs the 50,000-image dataset): VGG-11 with batch norm, MSE, lr 0.1, "
                       "batch 128, 300 epochs, checkpoints every 5 epochs, subpaths at epochs 100..300 (step 50) "
                       "with lr 0.01 for 50 epochs; 25 × 25 landscape on 5,000 + 2,000 evaluation images",
        "train": TrainConfig(arch="vgg11", width=1.0, batch_norm=True, dropout=0.5, loss="mse", lr=0.1,
                             momentum=0.9, weight_decay=1e-4, batch_size=128, epochs=300, ckpt_every=1950,
                             decay_epochs=(100, 150, 200, 250, 300), decay_factor=0.1, subpath_epochs=50,
                             train_size=None, test_size=None, augment=True, eval_every=1, eval_batch=1000,
                             seed=0),
        "landscape": LandscapeConfig(grid=25, margin=0.25, n_components=4, curved=False, train_size=5000,
                                     test_size=2000, points_per_batch=8, eval_batch=1000, seed=0),
        "threads": None,
    },
}


def profile_names() -> list[str]:
    return list(PROFILES)


def get_profile(name: str) -> tuple[TrainConfig, LandscapeConfig]:
    """Fresh copies of the named profile's train and landscape configurations."""
    if name not in PROFILES:
        raise ValueError(f"profile: expected one of {profile_names()}, got {name!r}")
    p = PROFILES[name]
    return replace(p["train"]), replace(p["landscape"])


def landscape_is_current(out_dir, tcfg: TrainConfig, lcfg: LandscapeConfig) -> bool:
    """Whether ``landscape.npz`` exists and was made from the present checkpoints with these settings."""
    from .landscape import count_checkpoints

    p = Path(out_dir) / "landscape.npz"
    if not p.exists():
        return False
    _, cfg = load_result(p)
    return (cfg.get("landscape") == lcfg.to_dict() and cfg.get("train") == _jsonable(tcfg.to_dict())
            and cfg.get("n_checkpoints") == count_checkpoints(out_dir))


def _jsonable(d):
    import json

    return json.loads(json.dumps(d))  # tuples become lists, as in the stored file


def run_profile(name: str, out_dir, data_dir=None, progress: bool = True, device: str = "auto",
                train_overrides: dict | None = None, landscape_overrides: dict | None = None,
                source: str = "auto", download: bool = False, tensorboard: bool = False,
                threads: int | None = None) -> dict:
    """Run the whole profile ``name`` in ``out_dir`` (resumable) and return :func:`summarize`'s dict.

    ``threads``: torch CPU threads (default: the profile's). Stage wall times of this call are added
    to ``out/timings.json``; stages already finished are reused (recorded as ``"reused"``).
    """
    from . import landscape as L
    from . import train as T

    tcfg, lcfg = get_profile(name)
    tcfg = replace(tcfg, **(train_overrides or {}))
    lcfg = replace(lcfg, **(landscape_overrides or {}))
    tcfg.validate()
    lcfg.validate()
    out_dir = Path(out_dir)
    t_start = time.perf_counter()
    timings: dict[str, float | str] = {}
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads: expected an integer >= 1, got {threads!r}")
    threads = threads or PROFILES[name]["threads"]
    dev = T.select_device(device)
    _set_threads(threads if dev.type == "cpu" else None)

    t = time.perf_counter()
    data = T.load_data(tcfg, data_dir, dev, source=source, download=download)
    T.save_config(out_dir, tcfg, {"profile": name, "landscape": lcfg.to_dict(), "data": data.info,
                                  "device": str(dev)})
    timings["data"] = time.perf_counter() - t

    t = time.perf_counter()
    reused = (out_dir / "main" / "result.json").exists()
    T.run_main(out_dir, tcfg, data, progress=progress, tensorboard=tensorboard)
    timings["main"] = "reused" if reused else time.perf_counter() - t

    t = time.perf_counter()
    reused = all((T.subpath_dir(out_dir, e) / "result.json").exists() for e in tcfg.decay_epochs)
    T.run_subpaths(out_dir, tcfg, data, progress=progress, tensorboard=tensorboard)
    timings["subpaths"] = "reused" if reused else time.perf_counter() - t

    t = time.perf_counter()
    if landscape_is_current(out_dir, tcfg, lcfg):
        timings["landscape"] = "reused"
    else:
        L.run_landscape(out_dir, tcfg, lcfg, data, progress=progress)
        timings["landscape"] = time.perf_counter() - t

    timings["total"] = time.perf_counter() - t_start
    log = load_json(out_dir / "timings.json") if (out_dir / "timings.json").exists() else []
    log.append({"profile": name, "device": str(dev), "threads": _threads(), "stages_s": timings,
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S")})
    save_json(out_dir / "timings.json", log)
    summary = summarize(out_dir)
    save_json(out_dir / "summary.json", summary)
    return summary


def _set_threads(n: int | None) -> None:
    import torch

    if n is not None:
        torch.set_num_threads(n)


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def summarize(out_dir) -> dict:
    """The run's numbers: final metrics per decay epoch, the main path's end, the landscape's PCA.

    Keys: ``decay_epochs``, ``final_test_loss``, ``final_test_acc``, ``final_train_loss``,
    ``final_train_acc`` (one entry per subpath, by decay epoch), ``main_path_final_test_loss``,
    ``main_path_final_test_acc``, ``main_path_epochs``, ``subpath_epochs``, ``trend`` (Spearman's ρ of
    final test loss against decay epoch and whether the losses decrease monotonically),
    ``landscape`` (explained variance ratios, distances off the plane) when present, ``config``.
    """
    out_dir = Path(out_dir)
    main_p = out_dir / "main" / "result.json"
    if not main_p.exists():
        raise FileNotFoundError(f"{main_p} not found: the main path of {out_dir} has not finished")
    main = load_json(main_p)
    subs = []
    for d in sorted(out_dir.glob("sub_e*")):
        if (d / "result.json").exists():
            subs.append(load_json(d / "result.json"))
    subs.sort(key=lambda r: r["meta"]["decay_epoch"])
    f = lambda key: [float(r["final"][key]) for r in subs]  # noqa: E731
    out = {
        "decay_epochs": [int(r["meta"]["decay_epoch"]) for r in subs],
        "final_test_loss": f("test_loss"), "final_test_acc": f("test_acc"),
        "final_train_loss": f("train_loss"), "final_train_acc": f("train_acc"),
        "subpath_epochs": [int(r["end_epoch"] - r["meta"]["decay_epoch"]) for r in subs],
        "main_path_final_test_loss": float(main["final"]["test_loss"]),
        "main_path_final_test_acc": float(main["final"]["test_acc"]),
        "main_path_final_train_loss": float(main["final"]["train_loss"]),
        "main_path_epochs": int(main["end_epoch"]),
        "config": main["config"],
    }
    if len(subs) >= 2:
        from scipy.stats import spearmanr

        loss = np.asarray(out["final_test_loss"])
        out["trend"] = {"spearman_rho_loss_vs_decay_epoch": float(spearmanr(out["decay_epochs"], loss)[0]),
                        "monotone_decreasing": bool(np.all(np.diff(loss) < 0)),
                        "last_minus_first_test_loss": float(loss[-1] - loss[0])}
    lp = out_dir / "landscape.npz"
    if lp.exists():
        arr, cfg = load_result(lp)
        span = float(np.ptp(arr["coords"][:, :2], axis=0).max())
        out["landscape"] = {
            "explained_variance_ratio": arr["explained_variance_ratio"].tolist(),
            "n_checkpoints": cfg["n_checkpoints"], "n_parameters": cfg["n_parameters"],
            "grid": cfg["landscape"]["grid"], "curved": cfg["landscape"]["curved"],
            "distance_off_surface_median": float(np.median(arr["distance"])),
            "distance_off_surface_max": float(np.max(arr["distance"])),
            "plane_span": span,
        }
    timings = out_dir / "timings.json"
    if timings.exists():
        out["timings"] = load_json(timings)[-1]
    return out
