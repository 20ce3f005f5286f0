"""Named experiment profiles, and the driver that runs a whole one: main paths → subpaths → curvature → landscape.

A profile is a :class:`Profile`: the training, landscape and curvature settings, the training seeds,
the variants (named sets of training overrides run on the same seeds), and which stages run. Every
profile is written as its differences from another (``dataclasses.replace``):

* ``authors`` — the authors' setting (docs/science.md §4; ``yinuoren/landscape``): slim VGG-11 at full width,
  their loss (½‖z − e_y‖², batch mean) and initialisation, SGD 0.1 / momentum 0.9 / weight decay 1e-4,
  batch 125, crop + flip, 5,000 images, 3,000 epochs, a checkpoint every 400 steps; subpaths decayed to
  lr 0.01 at epochs 2000, 2100, …, 2900, all ending at epoch 3000 (equal budget; the main path at 3000 is
  the no-decay control); 31 × 31 curved-sheet landscape. Meant for a GPU (benchmarks/gpu_authors.py).
* ``cpu`` — the report's VGG job, chosen by pilots (docs/empirics.md) to interpolate *and* generalize on
  2 CPU cores: width 0.375 (``init="authors_width"``), the first 5 classes with 100 images each, no
  augmentation, dropout 0.1, label-noise SGD (σ = 0.1), batch 50; 650 epochs at lr 0.1; fixed-length
  subpaths of 100 epochs (the authors' design) branching at 450, 500, 550, 600; three seeds; curvature
  every 50 epochs; a 31 × 31 landscape of seed 0's post-landing checkpoints.
* ``cpu_long`` — the long CPU run (about an hour on 2 cores, one seed): all 5,000 images of 10 classes,
  crop + flip, dropout 0.5, batch 125, 800 epochs (32,000 steps), branches every 50 epochs of 100 epochs
  each; its small result files are committed in ``measurements/vgg_cpu_long``.
* ``cpu_equal_budget`` — the earlier ``cpu`` profile, kept as the equal-budget view: 10 classes, 500
  images, 800 epochs, subpaths at 500, 600, 700, 750 all ending at 800 (it interpolates but its test loss
  sits at the constant predictor's).
* ``cpu_label_noise`` — the ``cpu_equal_budget`` main path with plain SGD and with label-noise SGD (σ = 0.1
  on the one-hot targets) side by side, with curvature; no subpaths, no landscape.
* ``quick`` — seconds to a minute: ``cpu_equal_budget`` on 200 images for tens of epochs (tests and smoke runs; not
  in the regime).
* ``full`` — VGG-11 (configuration A, batch norm) on all 50,000 CIFAR-10 images; needs the full dataset
  and a GPU.

:func:`run_profile` validates everything before it writes anything, holds the output directory's lock,
and is resumable: finished stages are reused, interrupted ones resume from their last checkpoint or
result row. It saves results only; figures are drawn by :mod:`paper_figures` from the saved files.

Layout of a profile's output directory ``out/``::

    profile.json                  the profile's settings (after overrides), seeds, variants, run directories
    <variant>/seed_<s>/           one run directory per (variant, seed): see lrdecay.empirics.train
    <variant>/seed_<s>/curvature.json
    <first variant>/seed_<first>/landscape.npz
    summary.json                  lrdecay.empirics.analysis.measure_profile's numbers
    timings.json                  wall time of every stage of every call
"""
from __future__ import annotations

import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import NamedTuple

from lrdecay.theory.io import DirectoryLock, load_json, load_result, save_json

from . import analysis
from .curvature import CurvatureConfig
from .landscape import LandscapeConfig
from .train import TrainConfig


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    train: TrainConfig
    landscape: LandscapeConfig
    curvature: CurvatureConfig
    seeds: tuple = (0,)
    variants: tuple = (("sgd", ()),)        # (name, ((train field, value), ...)) run on every seed
    subpaths: bool = True
    run_curvature: bool = True
    run_landscape: bool = True
    batched: bool | None = None             # subpaths batched (None: on CUDA only, see lrdecay.empirics.batched)
    threads: int | None = None              # torch CPU threads (None: torch's default)
    workers: int = 1                        # processes running the stages side by side (each with `threads`)


AUTHORS = Profile(
    name="authors",
    description="the authors' setting (GPU): slim VGG-11, 5,000 images, their loss and initialisation, lr 0.1, "
                "3,000 epochs, checkpoints every 400 steps, subpaths decayed to lr 0.01 at epochs 2000..2900 "
                "ending at 3000 (equal budget); curvature along the path; 31 × 31 curved-sheet landscape",
    train=TrainConfig(),
    landscape=LandscapeConfig(grid=31, margin=0.25, n_components=4, curved=True, train_size=None, test_size=None,
                              points_per_batch=32, eval_batch=1000, seed=0),
    curvature=CurvatureConfig(probes=20, lanczos_steps=20, eval_size=1000, eval_batch=500, main_every=100),
)

CPU = replace(
    AUTHORS, name="cpu",
    description="2 CPU cores (two worker processes of one torch thread each), chosen by pilots "
                "(docs/empirics.md): slim VGG-11 at width 0.5 on the first 5 classes (airplane, automobile, bird, "
                "cat, deer), 100 images each, horizontal flips, dropout 0.1, label-noise SGD (σ = 0.1), batch 50; "
                "650 epochs at lr 0.05; fixed-length subpaths of 100 epochs at lr 0.005 branching at 450, 500, 550, "
                "600; 3 seeds; curvature every 50 epochs; 31 × 31 landscape of seed 0's post-landing checkpoints",
    train=replace(AUTHORS.train, width=0.5, init="authors_width", dropout=0.1, batch_size=50, classes=5, lr=0.05,
                  train_size=500, label_noise=0.1, augment="flip", epochs=650, ckpt_every=100,
                  decay_epochs=(450, 500, 550, 600), subpath_epochs=100, eval_every=5, eval_batch=500),
    landscape=replace(AUTHORS.landscape, curved=False, train_size=None, test_size=None, points_per_batch=1,
                      eval_batch=500),
    curvature=replace(AUTHORS.curvature, probes=6, lanczos_steps=8, eval_size=250, eval_batch=250, main_every=50),
    seeds=(0, 1, 2), threads=1, workers=2,
)

CPU_EQUAL_BUDGET = replace(
    CPU, name="cpu_equal_budget",
    description="the earlier cpu profile, kept as the equal-budget view: 10 classes, 500 images, no label noise, "
                "dropout 0.1, batch 50, 800 epochs; subpaths decayed at 500, 600, 700, 750 all ending at 800; "
                "3 seeds (it interpolates but does not generalize: its test loss sits at the constant predictor's)",
    train=replace(CPU.train, width=0.375, augment=False, lr=0.1, classes=None, label_noise=0.0, epochs=800, ckpt_every=250,
                  decay_epochs=(500, 600, 700, 750), subpath_epochs=None, eval_every=10),
    curvature=replace(CPU.curvature, main_every=100), threads=2, workers=1,
)

CPU_LABEL_NOISE = replace(
    CPU_EQUAL_BUDGET, name="cpu_label_noise",
    description="the cpu_equal_budget profile's main path with plain SGD and with label-noise SGD (σ = 0.1 on the "
                "one-hot targets), one seed each, with curvature; no subpaths, no landscape",
    seeds=(0,), variants=(("sgd", ()), ("label_noise", (("label_noise", 0.1),))), subpaths=False,
    run_landscape=False,
)

CPU_LONG = replace(
    CPU, name="cpu_long",
    description="one seed, about an hour or more on 2 CPU cores: slim VGG-11 at width 0.375 on all 5,000 images (10 "
                "classes), crop + flip, dropout 0.5, batch 125, 800 epochs at lr 0.1 (32,000 steps), a checkpoint "
                "every 10 epochs; fixed-length subpaths of 100 epochs at lr 0.01 branching every 50 epochs; "
                "curvature every 50 epochs; landscape of post-landing checkpoints",
    train=replace(CPU.train, width=0.375, init="authors_width", dropout=0.5, augment=True, batch_size=125, lr=0.1,
                  classes=None, train_size=5000, label_noise=0.0, epochs=800, ckpt_every=400,
                  decay_epochs=tuple(range(100, 701, 50)), subpath_epochs=100, eval_every=5, eval_batch=1000),
    landscape=replace(CPU.landscape, grid=21, train_size=2500, test_size=1000, eval_batch=1000),
    curvature=replace(CPU.curvature, probes=6, lanczos_steps=8, eval_size=500, eval_batch=500, main_every=50),
    seeds=(0,), threads=2, workers=1,
)

QUICK = replace(
    CPU_EQUAL_BUDGET, name="quick",
    description="a minute on 2 cores (tests, smoke runs; not in the regime): the cpu_equal_budget recipe at width "
                "0.25 on 200 images, 40 epochs, decays at 20 and 30; 2 seeds; 11 × 11 landscape",
    train=replace(CPU_EQUAL_BUDGET.train, width=0.25, train_size=200, test_size=200, epochs=40, ckpt_every=20,
                  decay_epochs=(20, 30), eval_every=2, eval_batch=200),
    landscape=replace(CPU.landscape, grid=11, test_size=200, eval_batch=200),
    curvature=replace(CPU.curvature, probes=4, lanczos_steps=6, eval_size=100, eval_batch=100, main_every=10),
    seeds=(0, 1), threads=None,
)

FULL = replace(
    AUTHORS, name="full",
    description="full CIFAR-10 (GPU, needs the 50,000-image dataset): VGG-11 with batch norm, lr 0.1, batch 128, "
                "300 epochs, checkpoints every 5 epochs, subpaths at epochs 100..250 (step 50) ending at 300; "
                "25 × 25 landscape on 5,000 + 2,000 evaluation images",
    train=replace(AUTHORS.train, arch="vgg11", batch_norm=True, batch_size=128, train_size=None, epochs=300,
                  ckpt_every=1950, decay_epochs=(100, 150, 200, 250), eval_batch=1000),
    landscape=replace(AUTHORS.landscape, grid=25, curved=False, train_size=5000, test_size=2000, points_per_batch=8),
    curvature=replace(AUTHORS.curvature, eval_size=2000, main_every=50),
)

PROFILES: dict[str, Profile] = {p.name: p for p in (QUICK, CPU, CPU_LONG, CPU_EQUAL_BUDGET, CPU_LABEL_NOISE,
                                                     AUTHORS, FULL)}


def profile_names() -> list[str]:
    return list(PROFILES)


def get_profile(name: str) -> Profile:
    """The named profile (immutable; its configurations are fresh copies)."""
    if name not in PROFILES:
        raise ValueError(f"profile: expected one of {profile_names()}, got {name!r}")
    p = PROFILES[name]
    return replace(p, train=replace(p.train), landscape=replace(p.landscape), curvature=replace(p.curvature))


def _override(obj, overrides: dict | None, what: str):
    overrides = dict(overrides or {})
    known = {f.name for f in fields(obj)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"{what}: unknown settings {unknown}; known: {sorted(known)}")
    return replace(obj, **overrides)


def resolve(name: str, train_overrides: dict | None = None, landscape_overrides: dict | None = None,
            curvature_overrides: dict | None = None, seeds=None) -> Profile:
    """The profile with overrides applied and every configuration validated (nothing is written)."""
    p = get_profile(name)
    p = replace(p, train=_override(p.train, train_overrides, "train"),
                landscape=_override(p.landscape, landscape_overrides, "landscape"),
                curvature=_override(p.curvature, curvature_overrides, "curvature"))
    if seeds is not None:
        seeds = tuple(seeds)
        if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds) \
                or len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds: expected distinct integers >= 0, got {list(seeds)}")
        p = replace(p, seeds=seeds)
    p.train.validate()
    p.landscape.validate()
    p.curvature.validate()
    for vname, ov in p.variants:
        _override(p.train, dict(ov), f"variant {vname}").validate()
    return p


def run_dirs(p: Profile) -> dict[str, list[str]]:
    """Run directories (relative to the output directory) by variant, in seed order."""
    return {v: [f"{v}/seed_{s}" for s in p.seeds] for v, _ in p.variants}


def train_config(p: Profile, variant: str, seed: int) -> TrainConfig:
    ov = dict(dict(p.variants)[variant])
    return replace(p.train, **ov, seed=int(seed))


def landscape_is_current(run_dir, tcfg: TrainConfig, lcfg: LandscapeConfig) -> bool:
    """Whether ``landscape.npz`` exists and was made from the present checkpoints with these settings."""
    from .landscape import count_checkpoints

    p = Path(run_dir) / "landscape.npz"
    if not p.exists():
        return False
    _, cfg = load_result(p)
    return (cfg.get("landscape") == lcfg.to_dict() and cfg.get("train") == _jsonable(tcfg.to_dict())
            and cfg.get("n_checkpoints") == count_checkpoints(run_dir))


def _jsonable(d):
    import json

    return json.loads(json.dumps(d))  # tuples become lists, as in the stored file


def run_profile(name: str, out_dir, data_dir=None, progress: bool = True, device: str = "auto",
                train_overrides: dict | None = None, landscape_overrides: dict | None = None,
                curvature_overrides: dict | None = None, seeds=None, source: str = "auto",
                download: bool = False, tensorboard: bool = False, threads: int | None = None,
                batched: bool | None = None, runtime=None, executor=None, max_workers: int | None = None,
                workers: int | None = None) -> dict:
    """Run the whole profile ``name`` in ``out_dir`` (resumable) and return :func:`summarize`'s dict.

    Everything is validated — settings, seeds, device, thread count, the data's size against batch and
    decay epochs — before anything is written; the output directory is locked for the call (a second
    process gets a one-line error). ``threads``: torch CPU threads (default: the profile's).
    ``batched``: train each run's subpaths as one batched model (default: the profile's, else on CUDA
    only). ``runtime``: an :class:`lrdecay.empirics.train.Runtime` (``torch.compile``, bfloat16 autocast).
    ``executor``: run each seed's subpaths as independent tasks on a sweep executor (``"serial"``,
    ``"processes"``, ``"threads"``, a Dask client or scheduler address; see :mod:`lrdecay.empirics.tasks`) with
    ``max_workers``; each task uses ``threads`` torch threads (default 1). ``workers`` (default: the
    profile's): with more than one, every stage — main paths, subpaths, curvature, landscape — runs in a
    pool of that many processes with ``threads`` torch threads each, as soon as what it reads exists
    (:func:`lrdecay.empirics.tasks.run_stages_parallel`); the files are bit-identical to a sequential run at
    ``threads`` threads. Stage wall times are appended to ``out/timings.json``.
    """
    import torch

    from . import train as T

    p = resolve(name, train_overrides, landscape_overrides, curvature_overrides, seeds)
    runtime = runtime or T.Runtime()
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise ValueError(f"threads: expected an integer >= 1, got {threads!r}")
    workers = p.workers if workers is None else workers
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: expected an integer >= 1, got {workers!r}")
    if workers > 1 and (executor is not None or batched):
        raise ValueError("workers: more than one worker runs every stage in its own process; it does not combine "
                         "with executor or batched (use workers=1 with those)")
    dev = T.select_device(device)
    threads = threads or p.threads
    previous = torch.get_num_threads()
    if threads and dev.type == "cpu":
        torch.set_num_threads(threads)
    try:
        return _run(p, out_dir, data_dir, progress, dev, source, download, tensorboard, batched, runtime,
                    SubpathTasks(executor, max_workers, threads or 1, data_dir, source, workers))
    finally:
        torch.set_num_threads(previous)     # the caller's setting, however the run ends


class SubpathTasks(NamedTuple):
    """How a profile's subpaths run as independent tasks (:mod:`lrdecay.empirics.tasks`); ``executor=None``: in process."""

    executor: object = None
    max_workers: int | None = None
    threads: int = 1
    data_dir: object = None
    source: str = "auto"
    workers: int = 1                 # > 1: every stage in a process pool (lrdecay.empirics.tasks.run_stages_parallel)


def _run(p: Profile, out_dir, data_dir, progress, dev, source, download, tensorboard, batched, runtime,
         tasks: SubpathTasks = SubpathTasks()) -> dict:
    from . import batched as BT
    from . import train as T

    use_batched = (p.batched if p.batched is not None else BT.batched_default(dev)) if batched is None else batched
    if use_batched and p.train.batch_norm:
        use_batched = False
    out_dir = Path(out_dir)
    t_start = time.perf_counter()
    timings: dict[str, float | str] = {}

    t = time.perf_counter()
    data = T.load_data(p.train, data_dir, dev, source=source, download=download)
    n = len(data.y_train)
    for v, _ in p.variants:
        train_config(p, v, p.seeds[0]).validate(n)
    timings["data"] = time.perf_counter() - t

    if tasks.executor is not None:
        from lrdecay.theory.sweep import check_executor
        check_executor(tasks.executor)
    with DirectoryLock(out_dir, "out"):
        return _stages(p, out_dir, data, dev, progress, tensorboard, use_batched, runtime, timings, t_start, tasks)


def _stages(p: Profile, out_dir: Path, data, dev, progress, tensorboard, use_batched, runtime, timings,
            t_start, tasks: SubpathTasks = SubpathTasks()) -> dict:
    """The stages of :func:`run_profile`, under the output directory's lock."""
    import torch

    from . import batched as BT
    from . import curvature as C
    from . import landscape as L
    from . import train as T

    n = len(data.y_train)
    save_json(out_dir / "profile.json", {
        "profile": p.name, "description": p.description, "seeds": list(p.seeds),
        "variants": [v for v, _ in p.variants], "variant_overrides": {v: dict(o) for v, o in p.variants},
        "train": p.train.to_dict(), "landscape": p.landscape.to_dict(), "curvature": p.curvature.to_dict(),
        "stages": {"subpaths": p.subpaths, "curvature": p.run_curvature, "landscape": p.run_landscape},
        "run_dirs": run_dirs(p), "landscape_run": run_dirs(p)[p.variants[0][0]][0] if p.run_landscape else None,
        "device": str(dev), "data": data.info, "provenance": T.provenance()})
    if tasks.workers > 1:
        timings |= _stages_parallel(p, out_dir, data, dev, progress, tasks)
    for v, _ in ([] if tasks.workers > 1 else p.variants):
        for s in p.seeds:
            tcfg = train_config(p, v, s)
            rd = out_dir / v / f"seed_{s}"
            tag = f"{v}/seed_{s}"
            with DirectoryLock(rd, "out"):
                T.save_config(rd, tcfg, {"profile": p.name, "variant": v, "landscape": p.landscape.to_dict(),
                                         "curvature": p.curvature.to_dict(), "data": data.info,
                                         "device": str(dev)}, n_train=n)
                t = time.perf_counter()
                reused = (rd / "main" / "result.json").exists()
                T.run_main(rd, tcfg, data, progress=progress, tensorboard=tensorboard, runtime=runtime)
                timings[f"{tag}/main"] = "reused" if reused else time.perf_counter() - t
                if p.subpaths and tcfg.decay_epochs:
                    t = time.perf_counter()
                    reused = all((T.subpath_dir(rd, e) / "result.json").exists() for e in tcfg.decay_epochs)
                    if tasks.executor is not None:
                        from .tasks import run_subpaths_on
                        run_subpaths_on(rd, tcfg, data, executor=tasks.executor, max_workers=tasks.max_workers,
                                        data_dir=tasks.data_dir, source=tasks.source, threads=tasks.threads,
                                        device=str(dev), progress=progress)
                    elif use_batched:
                        BT.run_subpaths_batched(rd, tcfg, data, progress=progress, runtime=runtime)
                    else:
                        T.run_subpaths(rd, tcfg, data, progress=progress, tensorboard=tensorboard,
                                       runtime=runtime)
                    timings[f"{tag}/subpaths"] = "reused" if reused else time.perf_counter() - t
                if p.run_curvature:
                    t = time.perf_counter()
                    ccfg = p.curvature if p.subpaths else replace(p.curvature, subpaths=False)
                    C.run_curvature(rd, tcfg, ccfg, data, progress=progress)
                    timings[f"{tag}/curvature"] = time.perf_counter() - t
    if p.run_landscape and tasks.workers == 1:
        rd = out_dir / run_dirs(p)[p.variants[0][0]][0]
        tcfg = train_config(p, p.variants[0][0], p.seeds[0])
        t = time.perf_counter()
        if landscape_is_current(rd, tcfg, p.landscape):
            timings["landscape"] = "reused"
        else:
            L.run_landscape(rd, tcfg, p.landscape, data, progress=progress)
            timings["landscape"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t_start
    log = load_json(out_dir / "timings.json") if (out_dir / "timings.json").exists() else []
    log.append({"profile": p.name, "device": str(dev), "threads": torch.get_num_threads(), "batched": use_batched,
                "stages_s": timings, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "provenance": T.provenance()})
    save_json(out_dir / "timings.json", log)
    summary = summarize(out_dir)
    save_json(out_dir / "summary.json", summary | {"provenance": T.provenance()})
    return summary


def _stages_parallel(p: Profile, out_dir: Path, data, dev, progress, tasks: SubpathTasks) -> dict:
    """The stages of :func:`_stages` on ``tasks.workers`` processes (:func:`lrdecay.empirics.tasks.run_stages_parallel`)."""
    from .tasks import run_stages_parallel
    from .train import save_config

    n = len(data.y_train)
    runs = []
    land = run_dirs(p)[p.variants[0][0]][0] if p.run_landscape else None
    for v, _ in p.variants:
        for s in p.seeds:
            tcfg = train_config(p, v, s)
            rd = out_dir / v / f"seed_{s}"
            with DirectoryLock(rd, "out"):
                save_config(rd, tcfg, {"profile": p.name, "variant": v, "landscape": p.landscape.to_dict(),
                                       "curvature": p.curvature.to_dict(), "data": data.info, "device": str(dev)},
                            n_train=n)
            subs = tuple(tcfg.decay_epochs) if p.subpaths else ()
            landscape = p.landscape if f"{v}/seed_{s}" == land else None
            if landscape is not None and landscape_is_current(rd, tcfg, p.landscape):
                landscape = None
            runs.append({"run_dir": rd.resolve(), "tag": f"{v}/seed_{s}", "train": tcfg, "decay_epochs": subs,
                         "curvature": (p.curvature if p.subpaths else replace(p.curvature, subpaths=False))
                         if p.run_curvature else None, "landscape": landscape})
    t = run_stages_parallel(runs, workers=tasks.workers, threads=tasks.threads, device=str(dev),
                            data_dir=None if tasks.data_dir is None else Path(tasks.data_dir).resolve(),
                            source=tasks.source, progress=progress)
    if land is not None:            # named as in the sequential run
        t["landscape"] = t.pop(f"{land}/landscape", "reused")
    return t


def summarize(out_dir) -> dict:
    """:func:`lrdecay.empirics.analysis.measure_profile` plus the last call's timings."""
    out_dir = Path(out_dir)
    s = analysis.measure_profile(out_dir)
    if (out_dir / "timings.json").exists():
        s["timings"] = load_json(out_dir / "timings.json")[-1]
    return s


#: the result files of a profile's output directory (relative glob patterns); checkpoints are left out
RESULT_FILES = ("profile.json", "summary.json", "timings.json", "*/seed_*/config.json", "*/seed_*/curvature.json",
                "*/seed_*/landscape.npz", "*/seed_*/*/metrics.csv", "*/seed_*/*/result.json")


def export_results(out_dir, dest) -> list[Path]:
    """Copy the result files of the profile in ``out_dir`` (:data:`RESULT_FILES`, no checkpoints) to ``dest``.

    ``dest`` must be absent or empty; each file is written atomically. Returns the written paths.
    """
    from lrdecay.theory.io import atomic_write_bytes

    out_dir, dest = Path(out_dir), Path(dest)
    if not (out_dir / "profile.json").exists():
        raise ValueError(f"--out: {out_dir} is not a profile's output directory (no profile.json)")
    if dest.exists() and any(dest.iterdir()):
        raise ValueError(f"--to: {dest} exists and is not empty; choose an empty or new folder")
    files = sorted({f for pat in RESULT_FILES for f in out_dir.glob(pat) if f.is_file()})
    return [atomic_write_bytes(dest / f.relative_to(out_dir), f.read_bytes()) for f in files]
