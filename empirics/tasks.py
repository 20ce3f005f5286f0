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

from lrdecay.theory.io import DirectoryLock

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
    with DirectoryLock(plan.dir, "out"):
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
    with DirectoryLock(out_dir, "out"):
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


# ---------------------------------------------------------------------------------------------------------------------
# A whole profile's stages in worker processes (``run_profile(..., workers=N)``)

STAGES = ("main", "subpath", "curvature", "landscape")


def stage_task(job: dict) -> dict:
    """One stage of a profile's run in a worker process: ``job["stage"]`` is ``"main"`` (the main path),
    ``"subpath"`` (the one at ``job["decay_epoch"]``), ``"curvature"`` or ``"landscape"``.

    The worker sets ``job["threads"]`` torch threads, loads the data itself and calls the function the
    sequential run calls (:func:`lrdecay.empirics.train.run_main`, :func:`subpath_task`,
    :func:`lrdecay.empirics.curvature.run_curvature`, :func:`lrdecay.empirics.landscape.run_landscape`), so the
    files are bit-identical to a sequential run at the same thread count. Returns ``{"stage", "seconds", ...}``.
    """
    import time

    import torch

    from . import curvature as C
    from . import landscape as L
    from . import train as T

    t = time.perf_counter()
    stage, cfg = job["stage"], job["train"]
    rd = Path(job["run_dir"])
    done = {"main": rd / "main", "subpath": T.subpath_dir(rd, job.get("decay_epoch", 0))}.get(stage)
    reused = done is not None and (done / "result.json").exists()
    if stage == "subpath":
        out = subpath_task({"train": cfg.to_dict(), "threads": job["threads"], "device": job["device"],
                            "data_dir": job["data_dir"], "source": job["source"], "run_dir": job["run_dir"],
                            "decay_epoch": job["decay_epoch"]})
        return out | {"stage": stage, "seconds": time.perf_counter() - t, "reused": reused}
    torch.set_num_threads(int(job["threads"]))
    dev = T.select_device(job["device"])
    data = T.load_data(cfg, job["data_dir"], dev, source=job["source"])
    if stage == "main":
        T.run_main(rd, cfg, data, progress=False)
    elif stage == "curvature":
        C.run_curvature(rd, cfg, job["curvature"], data, progress=False)
    elif stage == "landscape":
        L.run_landscape(rd, cfg, job["landscape"], data, progress=False)
    else:
        raise ValueError(f"stage: expected one of {STAGES}, got {stage!r}")
    return {"stage": stage, "seconds": time.perf_counter() - t, "reused": reused}


def run_stages_parallel(runs: list[dict], *, workers: int, threads: int, device: str, data_dir=None,
                        source: str = "auto", progress: bool = True) -> dict[str, float]:
    """Every stage of ``runs`` on ``workers`` processes, each stage as soon as what it reads exists.

    ``runs``: one dict a run directory — ``run_dir``, ``tag``, ``train`` (its :class:`TrainConfig`),
    ``decay_epochs`` (the subpaths to train, ``()`` for none), ``curvature`` (a config or ``None``) and
    ``landscape`` (a config or ``None``). Order of work: the main paths first; a run's subpaths once its
    main path is done; its landscape, then its curvature, once its subpaths are done (they read their
    checkpoints and lock the run directory). Each stage is :func:`stage_task` in a fresh (spawned) process with ``threads`` torch
    threads, so the results do not depend on ``workers`` or on the order stages finish in. Returns each
    stage's wall time in seconds by ``"<tag>/<stage>"`` (subpaths summed; ``"reused"`` where every path
    of the stage had finished before).
    """
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from tqdm.auto import tqdm

    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: expected an integer >= 1, got {workers!r}")
    common = {"threads": threads, "device": device, "data_dir": None if data_dir is None else str(data_dir),
              "source": source}
    timings: dict[str, float] = {}
    fresh: set[str] = set()
    left = {r["tag"]: len(r["decay_epochs"]) for r in runs}
    finished: set[str] = set()
    n_jobs = sum(1 + len(r["decay_epochs"]) + (r["curvature"] is not None) + (r["landscape"] is not None)
                 for r in runs)
    bar = tqdm(total=n_jobs, desc="stages", unit="stage", disable=not progress)
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as ex:
        running = {}

        def submit(run, stage, **extra):
            job = common | {"stage": stage, "run_dir": str(run["run_dir"]), "train": run["train"],
                            "curvature": run["curvature"], "landscape": run["landscape"]} | extra
            running[ex.submit(stage_task, job)] = (run, stage)

        def next_stage(run, after):
            """The run's curvature and landscape lock its directory: one after the other, the landscape
            (the longest) first."""
            order = [s for s in ("landscape", "curvature") if run[s] is not None]
            later = order[order.index(after) + 1:] if after in order else order
            if later:
                submit(run, later[0])

        for run in runs:
            submit(run, "main")
        try:
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for f in done:
                    run, stage = running.pop(f)
                    out = f.result()
                    key = f"{run['tag']}/{stage}" + ("s" if stage == "subpath" else "")
                    timings[key] = timings.get(key, 0.0) + out["seconds"]
                    if not out["reused"]:
                        fresh.add(key)
                    bar.update()
                    if stage == "main":
                        for e in run["decay_epochs"]:
                            submit(run, "subpath", decay_epoch=int(e))
                    if stage == "subpath":
                        left[run["tag"]] -= 1
                    if stage in ("main", "subpath") and left[run["tag"]] == 0 and run["tag"] not in finished:
                        finished.add(run["tag"])
                        next_stage(run, None)
                    elif stage in ("landscape", "curvature"):
                        next_stage(run, stage)
        except BaseException:
            ex.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            bar.close()
    return {k: v if k in fresh or k.endswith(("/curvature", "/landscape")) else "reused" for k, v in timings.items()}
