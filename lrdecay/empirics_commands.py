"""The ``lrdecay empirics`` subcommands: the VGG-11 experiment, one stage each and one per whole profile.

Torch is imported inside the handlers, so ``lrdecay --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields, replace
from pathlib import Path

DESCRIPTION = """The VGG-11 experiment on CIFAR-10, stage by stage or a whole profile (every stage resumes):

    lrdecay empirics main      --out runs/quick [--profile quick] [--set KEY=VALUE ...]
    lrdecay empirics subpaths  --out runs/quick [--decay-epochs 10 20 ...]
    lrdecay empirics landscape --out runs/quick [--grid 11] [--curved]
    lrdecay empirics figures   --out runs/quick
    lrdecay empirics profile   quick --out runs/quick        (all four stages)
    lrdecay empirics profile   --list
"""


def _common(p: argparse.ArgumentParser, data: bool = True, out_required: bool = True) -> None:
    p.add_argument("--out", required=out_required, type=Path, default=None,
                   help="run directory (created; reused to resume)")
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
                       help="override a setting: a train field (e.g. epochs=20, width=0.5, decay_epochs=10,20) "
                            "or landscape.FIELD (e.g. landscape.grid=21); repeatable (default: none)")
        p.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
        p.add_argument("--tensorboard", action="store_true", help="also log metrics for TensorBoard (<path>/tb)")


def register(subparsers) -> None:
    p = subparsers.add_parser("empirics", help="VGG-11 on CIFAR-10: main path, decayed subpaths, landscape",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="stage", metavar="STAGE")
    sub.required = True

    m = sub.add_parser("main", help="train the main path at the large learning rate (resumable)",
                       description="Train the main path: SGD at the profile's large learning rate for its epochs, "
                                   "with checkpoints (the trajectory and the starting points of the subpaths). "
                                   "Writes <out>/config.json and <out>/main/; resumes from the last checkpoint.")
    _common(m)
    m.add_argument("--profile", default="quick", help="profile whose settings to start from (default: %(default)s)")
    m.set_defaults(func=cmd_main)

    s = sub.add_parser("subpaths", help="branch decayed subpaths from main-path checkpoints (resumable)",
                       description="Branch one subpath from the main-path checkpoint at each decay epoch and train it at "
                                   "the decayed learning rate. Writes <out>/sub_e<epoch>/; resumes.")
    _common(s)
    s.add_argument("--decay-epochs", type=int, nargs="+", default=None, help="decay epochs (default: the run's)")
    s.set_defaults(func=cmd_subpaths)

    la = sub.add_parser("landscape", help="PCA of all checkpoints and the loss grid in its plane",
                        description="PCA of every checkpoint of the main path and the subpaths, and the train and test "
                                    "loss on a grid in the plane of the first two components. Writes "
                                    "<out>/landscape.npz.")
    _common(la)
    la.add_argument("--grid", type=int, default=None, help="grid points per axis (default: the run's)")
    la.add_argument("--curved", action="store_true", default=None,
                    help="use the authors' curved sheet through the checkpoints instead of the plane")
    la.set_defaults(func=cmd_landscape)

    f = sub.add_parser("figures", help="draw the landscape and decay figures from a run directory",
                       description="Draw the figures of a run directory from its saved results "
                                   "(<out>/figures/*.png and .pdf).")
    _common(f, data=False)
    f.set_defaults(func=cmd_figures)

    pr = sub.add_parser("profile", help="run a whole profile: main → subpaths → landscape → figures",
                        description="Run every stage of a named profile (settings: --list) in one run directory; "
                                    "each finished stage is reused, an interrupted one resumes.")
    pr.add_argument("name", nargs="?", help="the profile (see --list)")
    pr.add_argument("--list", action="store_true", help="list the profiles and exit")
    _common(pr, out_required=False)
    pr.set_defaults(func=cmd_profile)


# ----------------------------------------------------------------------------- parsing overrides
def _parse_value(default, text: str, name: str):
    t = text.strip()
    if t.lower() in ("none", "null"):
        return None
    if isinstance(default, bool):
        if t.lower() in ("1", "true", "yes", "on"):
            return True
        if t.lower() in ("0", "false", "no", "off"):
            return False
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


def parse_overrides(items: list[str]) -> tuple[dict, dict]:
    """``KEY=VALUE`` strings → (train overrides, landscape overrides), typed by the dataclass defaults."""
    from empirics.landscape import LandscapeConfig
    from empirics.train import TrainConfig

    tdef, ldef = TrainConfig(), LandscapeConfig()
    tnames, lnames = {f.name for f in fields(TrainConfig)}, {f.name for f in fields(LandscapeConfig)}
    tr, la = {}, {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set: expected KEY=VALUE, got {item!r}")
        key, val = item.split("=", 1)
        key = key.strip()
        if key.startswith("landscape."):
            k = key[len("landscape."):]
            if k not in lnames:
                raise ValueError(f"--set: unknown landscape setting {k!r}; known: {sorted(lnames)}")
            la[k] = _parse_value(getattr(ldef, k), val, key)
        else:
            if key not in tnames:
                raise ValueError(f"--set: unknown setting {key!r}; known: {sorted(tnames)} "
                                 f"and landscape.{{{','.join(sorted(lnames))}}}")
            tr[key] = _parse_value(getattr(tdef, key), val, key)
    return tr, la


# ----------------------------------------------------------------------------- handlers
def _setup(args):
    import torch

    from empirics.train import select_device

    dev = select_device(args.device)
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads: expected an integer >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    return dev


def _stored(args):
    """Configuration stored in the run directory, with --set overrides applied."""
    from empirics.landscape import LandscapeConfig
    from empirics.train import TrainConfig, load_config

    tcfg, d = load_config(args.out)
    lcfg = LandscapeConfig.from_dict(d["landscape"]) if "landscape" in d else LandscapeConfig()
    tr, la = parse_overrides(args.overrides)
    bad = sorted(set(tr) & set(TrainConfig.MAIN_FIELDS))
    if bad:
        raise ValueError(f"--set: {bad} fix the main path of {args.out} and cannot change after it started; "
                         "use a fresh --out")
    return replace(tcfg, **tr), replace(lcfg, **la), d


def cmd_main(args) -> int:
    from empirics import train as T
    from empirics.profiles import get_profile

    prof = get_profile(args.profile)
    tr, la = parse_overrides(args.overrides)
    tcfg, lcfg = replace(prof.train, **tr), replace(prof.landscape, **la)
    tcfg.validate()
    lcfg.validate()
    if args.threads is None and prof.threads:
        args.threads = prof.threads
    dev = _setup(args)
    data = T.load_data(tcfg, args.data, dev, args.source, args.download)
    T.save_config(args.out, tcfg, {"profile": args.profile, "landscape": lcfg.to_dict(), "data": data.info,
                                   "device": str(dev)}, n_train=len(data.y_train))
    r = T.run_main(args.out, tcfg, data, progress=not args.no_progress, tensorboard=args.tensorboard)
    print(f"main path: {r['end_epoch']} epochs, {r['steps']} steps; final {_fmt(r['final'])}")
    print(f"checkpoints and metrics in {Path(args.out) / 'main'}")
    return 0


def cmd_subpaths(args) -> int:
    from empirics import train as T

    tcfg, lcfg, d = _stored(args)
    if args.decay_epochs:
        tcfg = replace(tcfg, decay_epochs=tuple(args.decay_epochs))
    dev = _setup(args)
    data = T.load_data(tcfg, args.data, dev, args.source, args.download)
    T.save_config(args.out, tcfg, {"landscape": lcfg.to_dict()})
    for r in T.run_subpaths(args.out, tcfg, data, progress=not args.no_progress, tensorboard=args.tensorboard):
        print(f"decay at epoch {r['meta']['decay_epoch']:>5}: {_fmt(r['final'])}")
    return 0


def cmd_landscape(args) -> int:
    from empirics import train as T
    from empirics.landscape import run_landscape

    tcfg, lcfg, d = _stored(args)
    if args.grid is not None:
        lcfg = replace(lcfg, grid=args.grid)
    if args.curved:
        lcfg = replace(lcfg, curved=True, n_components=max(lcfg.n_components, 3))
    lcfg.validate()
    dev = _setup(args)
    data = T.load_data(tcfg, args.data, dev, args.source, args.download)
    T.save_config(args.out, tcfg, {"landscape": lcfg.to_dict()})
    res = run_landscape(args.out, tcfg, lcfg, data, progress=not args.no_progress)
    a, c = res["arrays"], res["config"]
    evr = ", ".join(f"{100 * v:.1f}%" for v in a["explained_variance_ratio"])
    print(f"{c['n_checkpoints']} checkpoints of {c['n_parameters']:,} parameters; explained variance {evr}")
    print(f"distance off the {'sheet' if lcfg.curved else 'plane'}: median {float(_median(a['distance'])):.4g}, "
          f"max {float(a['distance'].max()):.4g}; grid {lcfg.grid}×{lcfg.grid} → {Path(args.out) / 'landscape.npz'}")
    return 0


def draw_figures(out) -> list[Path]:
    """The decay figure and, when the landscape exists, the landscape figure of a run directory."""
    from paper_figures import vgg_decay, vgg_landscape

    out = Path(out)
    if not (out / "main" / "result.json").exists():
        raise FileNotFoundError(f"{out / 'main' / 'result.json'} not found: run the main path first")
    paths = vgg_decay.make(out)
    if (out / "landscape.npz").exists():
        paths += vgg_landscape.make(out)
    else:
        print(f"no {out / 'landscape.npz'} yet: landscape figure skipped")
    return paths


def cmd_figures(args) -> int:
    for p in draw_figures(args.out):
        print(p)
    return 0


def cmd_profile(args) -> int:
    from empirics.profiles import PROFILES, run_profile

    if args.list or not args.name:
        for k, v in PROFILES.items():
            print(f"{k:16s} {v.description}")
        return 0 if args.list else 2
    if args.out is None:
        raise ValueError("--out: a run directory is required")
    if args.name not in PROFILES:
        raise ValueError(f"profile: expected one of {list(PROFILES)}, got {args.name!r}")
    tr, la = parse_overrides(args.overrides)
    s = run_profile(args.name, args.out, args.data, progress=not args.no_progress, device=args.device,
                    train_overrides=tr, landscape_overrides=la, source=args.source, download=args.download,
                    tensorboard=args.tensorboard, threads=args.threads)
    draw_figures(args.out)
    print(f"profile {args.name} in {args.out}")
    ld = s.get("late_decay", {})
    if "decay_epochs" in ld:
        print(f"{'decay epoch':>11} {'test loss (mean ± s.e.)':>24} {'test acc':>9}")
        for e, m, se, a in zip(ld["decay_epochs"], ld["test_loss_mean"], ld["test_loss_se"], ld["test_acc_mean"]):
            print(f"{e:>11} {m:>14.5f} ± {se:<7.5f} {a:>9.4f}")
        print(f"{'no decay':>11} {ld['control_test_loss_mean']:>14.5f} ± {ld['control_test_loss_se']:<7.5f} "
              f"{ld['control_test_acc_mean']:>9.4f}  (epoch {ld['end_epoch']}, large lr)")
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
