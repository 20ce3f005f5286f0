"""Subpaths as independent tasks on the sweep executors (serial, processes, threads, a Dask cluster).

A run's subpaths share nothing but the main path's checkpoints: each starts from the checkpoint at its
decay epoch (weights, momentum, random stream) and writes only its own ``sub_e<epoch>/`` folder. So
they can run anywhere that sees the run directory and the data — several processes on one machine,
several GPUs, or the workers of a Dask cluster — through :func:`lrdecay.theory.sweep.run_sweep`.

Each task is :func:`subpath_task` on a plain-JSON configuration (the run directory, the decay epoch,
the training configuration, where the data are, the torch thread count and device). It loads the data
itself, takes the subpath folder's lock, and trains the subpath exactly as
:func:`lrdecay.empirics.train.run_subpaths` does (the same :func:`lrdecay.empirics.train.train_path`), so with the same
thread count and device the results are bit-identical to the serial ones (tested), whatever the
executor, the number of workers or the order in which tasks finish. A task that is interrupted resumes
from the subpath's own last checkpoint when it runs again; a finished subpath is reused.
"""
from __future__ import annotations

from pathlib import Path

from . import rundir
from .train import TrainConfig, plan_subpaths, save_config, train_path


def subpath_task(config: dict) -> dict:
    """Train one subpath (the task function of :func:`run_subpaths_on`); returns its final metrics."""
    import torch

    from . import train as T

    cfg = TrainConfig.from_dict(config["train"])
    torch.set_num_threads(int(config["threads"]))
    dev = T.select_device(config["device"])
    data = T.load_data(cfg, config["data_dir"], dev, source=config["source"])
    run = Path(config["run_dir"])
    e = int(config["decay_epoch"])
    plan = next(p for p in plan_subpaths(run, cfg, data, (e,)))
    with rundir.lock(plan.dir):
        res = train_path(plan.dir, cfg, data, lr=cfg.lr * cfg.decay_factor, end_epoch=cfg.subpath_end(e),
                         start=plan.start, progress=False, label=f"decay@{e}", meta=plan.meta,
                         check_fields=TrainConfig.SUBPATH_FIELDS)
    return {"decay_epoch": e, "end_epoch": int(res["end_epoch"]), "steps": int(res["steps"]),
            "final_test_loss": float(res["final"]["test_loss"]), "final_train_loss": float(res["final"]["train_loss"])}


def run_subpaths_on(out_dir, cfg: TrainConfig, data, *, executor="processes", max_workers: int | None = None,
                    data_dir=None, source: str = "auto", threads: int = 1, device: str = "cpu",
                    decay_epochs=None, progress: bool = True) -> list[dict]:
    """Every subpath of the run in ``out_dir`` as one task on ``executor`` (see :func:`lrdecay.theory.sweep.run_sweep`:
    ``"serial"``, ``"processes"``, ``"threads"``, an executor, a Dask client or scheduler address).

    ``data`` (loaded here) checks the configuration and the main-path checkpoints before any task starts;
    the tasks load the data again from ``data_dir``/``source`` with ``threads`` torch threads on ``device``.
    Returns each subpath's ``result.json`` in the order of the decay epochs.
    """
    from lrdecay.theory.io import load_json
    from lrdecay.theory.sweep import run_sweep

    out_dir = Path(out_dir)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads: expected an integer >= 1, got {threads!r}")
    with rundir.lock(out_dir):
        save_config(out_dir, cfg, n_train=len(data.y_train))
        plans = plan_subpaths(out_dir, cfg, data, decay_epochs)   # refuses missing or foreign checkpoints now
    base = {"run_dir": str(out_dir.resolve()), "train": _jsonable(cfg.to_dict()),
            "data_dir": None if data_dir is None else str(Path(data_dir).resolve()), "source": source,
            "threads": threads, "device": device}
    configs = [base | {"decay_epoch": p.decay_epoch} for p in plans]
    run_sweep(subpath_task, configs, cache_dir=None, executor=executor, max_workers=max_workers, progress=progress)
    return [load_json(p.dir / "result.json") for p in plans]


def _jsonable(d: dict) -> dict:
    import json

    return json.loads(json.dumps(d))
