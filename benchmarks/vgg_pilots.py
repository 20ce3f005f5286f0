"""Pilot runs for choosing a VGG profile that generalizes: main paths only, measured against the constant predictor.

Each candidate is the ``cpu_equal_budget`` profile's training recipe (the earlier ``cpu`` profile) with a few
settings changed (classes, images,
augmentation, dropout, batch). For every candidate the main path is trained (resumably, one run
directory per candidate under ``--out``) and this table is printed and saved as ``pilots.json``:

* the best constant predictor's test loss (:func:`lrdecay.empirics.analysis.constant_predictor_loss`);
* the test loss at the candidate's first decay epoch (mean of the ``REGIME_WINDOW`` evaluations ending
  there) and its relative margin below the constant predictor — the generalization gate;
* the landing epoch (train accuracy stays >= 99 %) and the steps after landing up to the first decay
  and to the end of the main path;
* the wall time of the main path.

Usage::

    PYTHONPATH=. python benchmarks/vgg_pilots.py --out runs/pilots --threads 1
    PYTHONPATH=. python benchmarks/vgg_pilots.py --out runs/pilots --only c5_n1000_aug
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from lrdecay.empirics import analysis as A
from lrdecay.empirics.profiles import get_profile

_CPU = dict(classes=5, train_size=500, label_noise=0.1, ckpt_every=200, decay_epochs=(), eval_every=5)

# name -> (training overrides, first decay epoch used for the gate)
CANDIDATES = {
    "c10_n500_cpu": ({}, 500),                                     # the earlier cpu profile (reference)
    "c5_n1000": (dict(classes=5, train_size=1000, epochs=300, ckpt_every=200, decay_epochs=(), eval_every=5), 150),
    "c5_n1000_aug": (dict(classes=5, train_size=1000, augment=True, epochs=300, ckpt_every=200, decay_epochs=(),
                          eval_every=5), 150),
    "c10_n1000_aug": (dict(train_size=1000, augment=True, epochs=250, ckpt_every=200, decay_epochs=(),
                           eval_every=5), 150),
    "c5_n500_torch": (dict(classes=5, train_size=500, init="torch", epochs=400, ckpt_every=200, decay_epochs=(),
                           eval_every=5), 300),
    "c2_n500_torch": (dict(classes=2, train_size=500, init="torch", epochs=400, ckpt_every=200, decay_epochs=(),
                           eval_every=5), 300),
    "c5_n500": (dict(classes=5, train_size=500, epochs=400, ckpt_every=200, decay_epochs=(), eval_every=5), 300),
    "c5_n750": (dict(classes=5, train_size=750, epochs=400, ckpt_every=200, decay_epochs=(), eval_every=5), 300),
    "c5_n500_ln": (dict(classes=5, train_size=500, label_noise=0.1, epochs=400, ckpt_every=200, decay_epochs=(),
                        eval_every=5), 300),
    "c5_n1000_ln": (dict(classes=5, train_size=1000, label_noise=0.1, epochs=500, ckpt_every=200, decay_epochs=(),
                         eval_every=5), 400),
    "c5_n500_ln2": (dict(classes=5, train_size=500, label_noise=0.2, epochs=500, ckpt_every=200, decay_epochs=(),
                         eval_every=5), 400),
    "c5_n500_ln_aug": (dict(classes=5, train_size=500, label_noise=0.1, augment=True, epochs=500, ckpt_every=200,
                            decay_epochs=(), eval_every=5), 400),
    "c10_n2000": (dict(train_size=2000, epochs=300, ckpt_every=400, decay_epochs=(), eval_every=5), 150),
    "c10_n5000_b125": (dict(train_size=5000, batch_size=125, epochs=200, ckpt_every=400, decay_epochs=(),
                            eval_every=5), 150),
    "c10_n2000_aug": (dict(train_size=2000, augment=True, epochs=200, ckpt_every=400, decay_epochs=(),
                           eval_every=5), 150),
    # the cpu profile's main path (5 classes x 100 images, label noise 0.1) to epoch 600, gated at its first branch (450)
    "cpu_ref": (dict(_CPU, epochs=600), 450),
    "cpu_flip": (dict(_CPU, epochs=600, augment="flip"), 450),
    "cpu_w05": (dict(_CPU, epochs=600, width=0.5), 450),
    "cpu_do05": (dict(_CPU, epochs=600, dropout=0.5), 450),
    "cpu_flip_w05": (dict(_CPU, epochs=600, augment="flip", width=0.5), 450),
    "cpu_flip_w05_lr05": (dict(_CPU, epochs=600, augment="flip", width=0.5, lr=0.05), 450),
    "c5_n2500_aug": (dict(classes=5, train_size=2500, augment=True, batch_size=125, epochs=200, ckpt_every=200,
                          decay_epochs=(), eval_every=5), 150),
}


def summarize(run_dir: Path, first_decay: int, wall: float) -> dict:
    r = A.load_run(run_dir)
    m = r["main"]["metrics"]
    const = A.run_constant_loss(r)
    spe = int(r["main"]["steps_per_epoch"])
    row = A._row_at(m, first_decay)
    k = m.index(row)
    window = [x["test_loss"] for x in m[max(0, k + 1 - A.REGIME_WINDOW):k + 1]]
    test_at = float(np.mean(window))
    land = A.landing_epoch(m)
    return {"constant_loss": const, "test_loss_at_first_decay": test_at,
            "relative_margin": (const - test_at) / const, "test_acc_at_first_decay": float(row["test_acc"]),
            "min_test_loss": float(min(x["test_loss"] for x in m)),
            "min_test_epoch": int(min(m, key=lambda x: x["test_loss"])["epoch"]),
            "final_test_loss": float(m[-1]["test_loss"]), "final_train_acc": float(m[-1]["train_acc"]),
            "landing_epoch": land, "first_crossing_epoch": A.first_crossing_epoch(m),
            "steps_after_landing_to_first_decay": None if land is None else max(0, first_decay - land) * spe,
            "steps_after_landing_to_end": None if land is None else (int(r["main"]["end_epoch"]) - land) * spe,
            "steps_per_epoch": spe, "epochs": int(r["main"]["end_epoch"]), "wall_s": wall,
            "n_train": int(r["main"]["data"]["train_size"]),
            "n_test": int(r["main"]["data"]["test_size"])}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--only", nargs="+", choices=sorted(CANDIDATES), default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    import torch

    from lrdecay.empirics import train as T

    torch.set_num_threads(a.threads)
    base = get_profile("cpu_equal_budget").train      # the earlier cpu profile: every pilot is its difference
    table = {}
    for name in a.only or CANDIDATES:
        over, first_decay = CANDIDATES[name]
        cfg = replace(base, **over, seed=a.seed).validate()
        data = T.load_data(cfg, None, "cpu")
        rd = a.out / name / f"seed_{a.seed}"
        t = time.perf_counter()
        T.run_main(rd, cfg, data, progress=False)
        table[name] = summarize(rd, first_decay, time.perf_counter() - t) | {"overrides": {
            k: list(v) if isinstance(v, tuple) else v for k, v in over.items()}, "threads": a.threads}
        print(name, json.dumps(table[name]), flush=True)
    old = json.loads((a.out / "pilots.json").read_text()) if (a.out / "pilots.json").exists() else {}
    (a.out / "pilots.json").write_text(json.dumps(old | table, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
