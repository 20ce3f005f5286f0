"""The ``lrdecay empirics`` subcommands: the VGG-11 experiment, one stage each and one per whole profile.

Torch is imported inside the handlers, so ``lrdecay --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields, replace
from pathlib import Path

DESCRIPTION = """The VGG-11 experiment on CIFAR-10, stage by stage or a whole profile (every stage resumes):

    lrdecay empirics main      --out runs/cpu [--profile cpu] [--seed 0] [--set KEY=VALUE ...]
    lrdecay empirics subpaths  --out runs/cpu [--decay-epochs 500 600 ...] [--batched]
    lrdecay empirics curvature --out runs/cpu [--probes 6] [--main-every 100]
    lrdecay empirics landscape --out runs/cpu [--grid 31] [--curved]
    lrdecay empirics figures   --out runs/cpu
    lrdecay empirics profile   cpu --out runs/cpu_profile [--seeds 0 1 2]      (every stage, every seed)
    lrdecay empirics profile   --list
"""


def _common(p: argparse.ArgumentParser, data: bool = True, out_required: bool = True) -> None:
    p.add_argument("--out", required=out_required, type=Path, default=None,
                   help="run directory (a profile's output directory for 'profile' and 'figures'); created, and "
                        "reused to resume")
    if data:
        p.add_argument("--data", type=Path, default=None,
                       help="CIFAR-10 directory (holding cifar-10-batches-py/); default $LRDECAY_CIFAR10, "
                            "else ../shared/data/cifar10-subset beside the repository")
        p.add_argument("--source", choices=("auto", "torchvision", "pickle"), default="auto",
                       help="reader: torchvision (official files, MD5-checked), pickle (any python-version "
                            "layout, structure-checked) or auto (torchvision when the checksums match) "
                            "(default: %(default)s)")
        p.add_argument("--download", action="store_true", help="download CIFAR-10 through torchvision (network)")
        p.add_argument("--device", default="auto",
                       help="auto (cuda if available), cpu, cuda or cuda:N (default: %(default)s)")
        p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: the profile's)")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a setting: a train field (e.g. epochs=20, width=0.5, decay_epochs=10,20), "
                            "landscape.FIELD (e.g. landscape.grid=21) or curvature.FIELD (e.g. curvature.probes=4); "
                            "repeatable (default: none)")
        p.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
        p.add_argument("--tensorboard", action="store_true", help="also log metrics for TensorBoard (<path>/tb)")


def _batched(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batched", action=argparse.BooleanOptionalAction, default=None,
                   help="train the subpaths together as one batched model (default: on CUDA only; on a CPU the "
                        "batched convolutions are slower)")
    p.add_argument("--executor", default=None,
                   help="run each subpath as an independent task: serial, processes, threads or a Dask scheduler "
                        "address tcp://HOST:PORT (results identical to the sequential run; default: in this process)")
    p.add_argument("--max-workers", type=int, default=None,
                   help="pool size for --executor processes/threads (default: the CPUs available)")


def register(subparsers) -> None:
    p = subparsers.add_parser("empirics", help="VGG-11 on CIFAR-10: main path, decayed subpaths, curvature, landscape",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="stage", metavar="STAGE")
    sub.required = True

    m = sub.add_parser("main", help="train the main path at the large learning rate (resumable)",
                       description="Train the main path: SGD at the profile's large learning rate for its epochs, "
                                   "with checkpoints (the trajectory and the starting points of the subpaths). "
                                   "Writes <out>/config.json and <out>/main/; resumes from the last checkpoint.")
    _common(m)
    m.add_argument("--profile", default="cpu", help="profile whose settings to start from (default: %(default)s)")
    m.add_argument("--seed", type=int, default=None, help="training seed (default: the profile's first seed)")
    m.set_defaults(func=cmd_main)

    s = sub.add_parser("subpaths", help="branch decayed subpaths from main-path checkpoints (resumable)",
                       description="Branch one subpath from the main-path checkpoint at each decay epoch and train it "
                                   "at the decayed learning rate to the main path's end (equal budget). Writes "
                                   "<out>/sub_e<epoch>/; resumes.")
    _common(s)
    s.add_argument("--decay-epochs", type=int, nargs="+", default=None, help="decay epochs (default: the run's)")
    _batched(s)
    s.set_defaults(func=cmd_subpaths)

    c = sub.add_parser("curvature", help="Hessian trace and top eigenvalue along the path (resumable)",
                       description="The Hutchinson trace (Rademacher probes, with its standard error) and the Lanczos "
                                   "top eigenvalue of the train loss's Hessian at main-path checkpoints and at each "
                                   "subpath's end, on a fixed evaluation subset. Writes <out>/curvature.json.")
    _common(c)
    c.add_argument("--probes", type=int, default=None, help="Rademacher probes per point (default: the run's)")
    c.add_argument("--lanczos-steps", type=int, default=None, help="Lanczos steps (default: the run's)")
    c.add_argument("--eval-size", type=int, default=None, help="evaluation images (default: the run's)")
    c.add_argument("--main-every", type=int, default=None,
                   help="epochs between main-path points (default: the run's)")
    c.add_argument("--no-subpaths", action="store_true", help="only the main path, not the subpaths' ends")
    c.set_defaults(func=cmd_curvature)

    la = sub.add_parser("landscape", help="PCA of all checkpoints and the loss grid in its plane",
                        description="PCA of every checkpoint of the main path and the subpaths, and the train and test "
                                    "loss on a grid in the plane of the first two components. Writes "
                                    "<out>/landscape.npz (resumable).")
    _common(la)
    la.add_argument("--grid", type=int, default=None, help="grid points per axis (default: the run's)")
    la.add_argument("--curved", action="store_true", default=None,
                    help="use the authors' curved sheet through the checkpoints instead of the plane")
    la.set_defaults(func=cmd_landscape)

    f = sub.add_parser("figures", help="draw the figures of a run or profile directory",
                       description="Draw the figures of a run directory or a profile's output directory from its saved "
                                   "results: learning curves, decay, late-decay map, curvature, landscape "
                                   "(<out>/figures/*.png and .pdf).")
    _common(f, data=False)
    f.add_argument("--levels", choices=("linear", "log"), default="linear",
                   help="colour levels of the landscape: linear (as the authors') or log (default: %(default)s)")
    f.set_defaults(func=cmd_figures)

    ex = sub.add_parser("export", help="copy a profile's small result files (no checkpoints) to another folder",
                        description="Copy the result files of a profile's output directory — profile.json, "
                                    "summary.json, timings.json, every config.json, metrics.csv, result.json, "
                                    "curvature.json and landscape.npz — to --to, leaving the checkpoints behind: "
                                    "what a run needs to be judged and drawn again.")
    _common(ex, data=False)
    ex.add_argument("--to", type=Path, required=True, help="destination folder (created; must be empty or absent)")
    ex.set_defaults(func=cmd_export)

    pr = sub.add_parser("profile", help="run a whole profile: every seed's main path, subpaths, curvature, landscape",
                        description="Run every stage of a named profile (settings: --list) for each of its seeds in one "
                                    "output directory, then draw the figures; each finished stage is reused, an "
                                    "interrupted one resumes.")
    pr.add_argument("name", nargs="?", help="the profile (see --list)")
    pr.add_argument("--list", action="store_true", help="list the profiles and exit")
    pr.add_argument("--seeds", type=int, nargs="+", default=None, help="training seeds (default: the profile's)")
    pr.add_argument("--workers", type=int, default=None,
                    help="processes running the stages side by side, each with --threads torch threads; the files "
                         "equal a sequential run's at that thread count (default: the profile's)")
    _batched(pr)
    _common(pr, out_required=False)
    pr.set_defaults(func=cmd_profile)


# ----------------------------------------------------------------------------- parsing overrides
def _parse_value(default, text: str, name: str, words_ok: bool = False):
    """``text`` typed like ``default``; ``words_ok``: a flag field that also takes words (its annotation names
    ``str``, e.g. ``augment``), which its configuration's ``validate`` then checks."""
    t = text.strip()
    if t.lower() in ("none", "null"):
        return None
    if isinstance(default, bool):
        if t.lower() in ("1", "true", "yes", "on"):
            return True
        if t.lower() in ("0", "false", "no", "off"):
            return False
        if words_ok:
            return t
        raise ValueError(f"{name}: expected true or false, got {text!r}")
    try:
        if isinstance(default, tuple):
            return tuple(int(x) for x in t.replace(" ", "").split(",") if x)
        if isinstance(default, float):
            return float(t)
        if isinstance(default, int) or default is None:
            return int(t)
    except ValueError as exc:
        raise ValueError(f"{name}: cannot read {text!r} as {type(default).__name__ if default is not None else 'int'}") from exc
    return t


def parse_overrides(items: list[str]) -> tuple[dict, dict, dict]:
    """``KEY=VALUE`` strings → (train, landscape, curvature overrides), typed by the dataclass defaults."""
    from lrdecay.empirics.curvature import CurvatureConfig
    from lrdecay.empirics.landscape import LandscapeConfig
    from lrdecay.empirics.train import TrainConfig

    groups = {"": TrainConfig(), "landscape.": LandscapeConfig(), "curvature.": CurvatureConfig()}
    names = {k: {f.name for f in fields(v)} for k, v in groups.items()}
    words = {k: {f.name for f in fields(v) if "str" in str(f.type)} for k, v in groups.items()}
    out = {k: {} for k in groups}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set: expected KEY=VALUE, got {item!r}")
        key, val = item.split("=", 1)
        key = key.strip()
        prefix = next((p for p in ("landscape.", "curvature.") if key.startswith(p)), "")
        k = key[len(prefix):]
        if k not in names[prefix]:
            what = f"{prefix[:-1]} setting" if prefix else "setting"
            raise ValueError(f"--set: unknown {what} {k!r}; known: {sorted(names[prefix])}"
                             + ("" if prefix else " and landscape.FIELD, curvature.FIELD"))
        out[prefix][k] = _parse_value(getattr(groups[prefix], k), val, key, k in words[prefix])
    return out[""], out["landscape."], out["curvature."]


# ----------------------------------------------------------------------------- handlers
def _setup(args):
    import torch

    from lrdecay.empirics.train import select_device

    dev = select_device(args.device)
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads: expected an integer >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    return dev


def _stored(args):
    """Configuration stored in the run directory, with --set overrides applied."""
    from lrdecay.empirics.curvature import CurvatureConfig
    from lrdecay.empirics.landscape import LandscapeConfig
    from lrdecay.empirics.train import TrainConfig, load_config

    tcfg, d = load_config(args.out)
    lcfg = LandscapeConfig.from_dict(d["landscape"]) if "landscape" in d else LandscapeConfig()
    ccfg = CurvatureConfig.from_dict(d["curvature"]) if "curvature" in d else CurvatureConfig()
    tr, la, cu = parse_overrides(args.overrides)
    bad = sorted(set(tr) & set(TrainConfig.MAIN_FIELDS))
    if bad:
        raise ValueError(f"--set: {bad} fix the main path of {args.out} and cannot change after it started; "
                         "use a fresh --out")
    return replace(tcfg, **tr), replace(lcfg, **la), replace(ccfg, **cu), d


def cmd_main(args) -> int:
    from lrdecay.empirics import train as T
    from lrdecay.empirics.profiles import get_profile

    prof = get_profile(args.profile)
    tr, la, cu = parse_overrides(args.overrides)
    if args.seed is not None and "seed" in tr and tr["seed"] != args.seed:
        raise ValueError(f"--seed {args.seed} and --set seed={tr['seed']} disagree; give the seed once")
    seed = tr.pop("seed", prof.seeds[0]) if args.seed is None else args.seed
    tr.pop("seed", None)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"--seed must be an integer >= 0, got {seed}")
    tcfg = replace(prof.train, **tr, seed=int(seed))
    lcfg, ccfg = replace(prof.landscape, **la), replace(prof.curvature, **cu)
    tcfg.validate()
    lcfg.validate()
    ccfg.validate()
    if args.threads is None and prof.threads:
        args.threads = prof.threads
    dev = _setup(args)
    data = T.load_data(tcfg, args.data, dev, args.source, args.download)
    T.save_config(args.out, tcfg, {"profile": args.profile, "landscape": lcfg.to_dict(), "curvature": ccfg.to_dict(),
                                   "data": data.info, "device": str(dev)}, n_train=len(data.y_train))
    r = T.run_main(args.out, tcfg, data, progress=not args.no_progress, tensorboard=args.tensorboard)
    print(f"main path: {r['end_epoch']} epochs, {r['steps']} steps; final {_fmt(r['final'])}")
    print(f"checkpoints and metrics in {Path(args.out) / 'main'}")
    return 0


def _check_executor(args) -> None:
    """Refuse a bad ``--executor`` before any work, naming the option."""
    if getattr(args, "executor", None) is not None:
        from lrdecay.theory.sweep import check_executor
        try:
            check_executor(args.executor)
        except ValueError as exc:
            raise ValueError(f"--{exc}") from None


def cmd_subpaths(args) -> int:
    from lrdecay.empirics import batched as BT
    from lrdecay.empirics import train as T

    _check_executor(args)
    tcfg, lcfg, ccfg, d = _stored(args)
    if args.decay_epochs:
        tcfg = replace(tcfg, decay_epochs=tuple(args.decay_epochs))
    dev = _setup(args)
    data = T.load_data(tcfg, args.data, dev, args.source, args.download)
    T.save_config(args.out, tcfg, {"landscape": lcfg.to_dict(), "curvature": ccfg.to_dict()},
                  n_train=len(data.y_train))
    if args.executor is not None:
        from lrdecay.empirics.tasks import run_subpaths_on
        results = run_subpaths_on(args.out, tcfg, data, executor=args.executor, max_workers=args.max_workers,
                                  data_dir=args.data, source=args.source, threads=args.threads or 1,
                                  device=str(dev), progress=not args.no_progress)
    else:
        batched = BT.batched_default(dev) if args.batched is None else args.batched
        run = BT.run_subpaths_batched if batched else T.run_subpaths
        kw = {} if batched else {"tensorboard": args.tensorboard}
        results = run(args.out, tcfg, data, progress=not args.no_progress, **kw)
    for r in results:
        print(f"decay at epoch {r['meta']['decay_epoch']:>5}: {_fmt(r['final'])}")
    return 0


def cmd_curvature(args) -> int:
    from lrdecay.empirics import train as T
    from lrdecay.empirics.curvature import run_curvature

    tcfg, lcfg, ccfg, d = _stored(args)
    for opt, field in (("probes", "probes"), ("lanczos_steps", "lanczos_steps"), ("eval_size", "eval_size"),
                       ("main_every", "main_every")):
        if getattr(args, opt) is not None:
            ccfg = replace(ccfg, **{field: getattr(args, opt)})
    if args.no_subpaths:
        ccfg = replace(ccfg, subpaths=False)
    ccfg.validate()
    dev = _setup(args)
    data = T.load_data(tcfg, args.data, dev, args.source, args.download)
    res = run_curvature(args.out, tcfg, ccfg, data, progress=not args.no_progress)
    n = len(res.get("points", res.get("rows", [])))
    print(f"curvature at {n} points → {Path(args.out) / 'curvature.json'}")
    return 0


def cmd_landscape(args) -> int:
    from lrdecay.empirics import train as T
    from lrdecay.empirics.landscape import run_landscape

    tcfg, lcfg, ccfg, d = _stored(args)
    if args.grid is not None:
        lcfg = replace(lcfg, grid=args.grid)
    if args.curved:
        lcfg = replace(lcfg, curved=True, n_components=max(lcfg.n_components, 3))
    lcfg.validate()
    dev = _setup(args)
    data = T.load_data(tcfg, args.data, dev, args.source, args.download)
    T.save_config(args.out, tcfg, {"landscape": lcfg.to_dict(), "curvature": ccfg.to_dict()},
                  n_train=len(data.y_train))
    res = run_landscape(args.out, tcfg, lcfg, data, progress=not args.no_progress)
    a, c = res["arrays"], res["config"]
    evr = ", ".join(f"{100 * v:.1f}%" for v in a["explained_variance_ratio"])
    print(f"{c['n_checkpoints']} checkpoints of {c['n_parameters']:,} parameters; explained variance {evr}")
    print(f"distance off the {'sheet' if lcfg.curved else 'plane'}: median {float(_median(a['distance'])):.4g}, "
          f"max {float(a['distance'].max()):.4g}; grid {lcfg.grid}×{lcfg.grid} → {Path(args.out) / 'landscape.npz'}")
    return 0


def draw_figures(out, levels: str = "linear") -> list[Path]:
    """Every figure a run directory or a profile's output directory has the results for (the landscape with
    ``levels`` "linear" or "log" colour levels)."""
    from lrdecay.paper_figures import vgg_curvature, vgg_decay, vgg_landscape, vgg_late_decay_map, vgg_learning_curves

    out = Path(out)
    is_profile = (out / "profile.json").exists()
    if not is_profile and not (out / "main" / "result.json").exists():
        raise FileNotFoundError(f"{out / 'main' / 'result.json'} not found: run the main path first "
                                "(or give a profile's output directory)")
    paths = vgg_learning_curves.make_figure(out)
    for fig, kw in ((vgg_decay, {}), (vgg_late_decay_map, {}), (vgg_curvature, {}),
                    (vgg_landscape, {"levels": levels})):
        try:
            paths += fig.make_figure(out, **kw)
        except FileNotFoundError as exc:
            print(f"{fig.__name__.rsplit('.', 1)[-1]} skipped: {exc}")
    return paths


def cmd_figures(args) -> int:
    for p in draw_figures(args.out, args.levels):
        print(p)
    return 0


def cmd_export(args) -> int:
    from lrdecay.empirics.profiles import export_results

    files = export_results(args.out, args.to)
    print(f"{len(files)} files ({sum(f.stat().st_size for f in files) / 1e6:.1f} MB) in {args.to}")
    return 0


def cmd_profile(args) -> int:
    from lrdecay.empirics.profiles import PROFILES, run_profile

    if args.list or not args.name:
        for k, v in PROFILES.items():
            print(f"{k:16s} {v.description}")
        if args.list:
            return 0
        raise ValueError("profile: name the profile to run (see --list)")
    if args.out is None:
        raise ValueError("--out: a run directory is required")
    if args.name not in PROFILES:
        raise ValueError(f"profile: expected one of {list(PROFILES)}, got {args.name!r}")
    _check_executor(args)
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers: expected an integer >= 1, got {args.workers}")
    tr, la, cu = parse_overrides(args.overrides)
    s = run_profile(args.name, args.out, args.data, progress=not args.no_progress, device=args.device,
                    train_overrides=tr, landscape_overrides=la, curvature_overrides=cu, seeds=args.seeds,
                    source=args.source, download=args.download, tensorboard=args.tensorboard,
                    threads=args.threads, batched=args.batched, executor=args.executor,
                    max_workers=args.max_workers, workers=args.workers)
    draw_figures(args.out)
    print(f"profile {args.name} in {args.out}")
    g = s.get("generalization", {})
    for p in g.get("per_seed", []):
        print(f"seed {p['seed']}: test loss {p['test_loss']:.4f} at epoch {p['first_decay_epoch']} against the "
              f"constant predictor's {p['constant_loss']:.4f} ({100 * p['relative_margin']:.1f} % below)")
    ld = s.get("late_decay", {})
    if ld.get("decay_epochs"):
        print(f"{'decay epoch':>11} {'test loss (mean ± s.e.)':>24} {'test acc':>9}   ({ld['design']}, mean of the "
              f"last {ld['last_k']} evaluations)")
        for e, m, se, a in zip(ld["decay_epochs"], ld["test_loss_mean"], ld["test_loss_se"], ld["test_acc_mean"]):
            print(f"{e:>11} {m:>14.5f} ± {se:<7.5f} {a:>9.4f}")
        sl = ld["test_loss_slope"]
        print(f"late-decay slope {sl['slope']:+.5f} per {sl['per_epochs']} epochs "
              f"[{sl['interval'][0]:+.5f}, {sl['interval'][1]:+.5f}] ({sl['basis']})")
    if "timings" in s:
        print("wall time (s): " + json.dumps({k: (round(v, 1) if isinstance(v, float) else v)
                                              for k, v in s["timings"]["stages_s"].items()}))
    return 0


def _fmt(row: dict | None) -> str:
    if not row:
        return "(no metrics)"
    return (f"train loss {row['train_loss']:.5f} acc {row['train_acc']:.4f} | "
            f"test loss {row['test_loss']:.5f} acc {row['test_acc']:.4f}")


def _median(x):
    import numpy as np

    return np.median(x)
