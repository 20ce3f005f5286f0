"""The authors' profile end to end on one GPU: 3,000 epochs, subpaths decayed at 2000, 2100, …, 2900 (all ending
at 3000), curvature along the path, the 31 × 31 curved-sheet landscape — with its wall-time estimate printed first.

    PYTHONPATH=. python benchmarks/gpu_authors.py --out runs/authors               # on a CUDA machine
    PYTHONPATH=. python benchmarks/gpu_authors.py --out /tmp/a --estimate-only     # the estimate alone
    PYTHONPATH=. python benchmarks/gpu_authors.py --out /tmp/a --device cpu --scale 0.002   # a CPU check

What it does, in order:

1. **Settings.** The ``authors`` profile (:mod:`lrdecay.empirics.profiles`); ``--scale s`` multiplies every epoch
   count (main path, decay epochs, curvature spacing) by ``s`` for a quick check (rounded so that every
   decay epoch stays on a checkpoint).
2. **Speed options, each kept only where it is safe.** Channels-last layout (always; :mod:`lrdecay.empirics.train`).
   bfloat16 autocast of the training forward passes when, on a batch at the initialisation and after
   a few steps, the bf16 loss is within ``BF16_LOSS_RTOL`` of the float32 one (off on a CPU, where
   bf16 convolutions are slower). ``torch.compile`` of the sequential main path's step on CUDA (off
   with ``--no-compile``). The decayed subpaths train as one batched model (``vmap`` over stacked
   parameters, :mod:`lrdecay.empirics.batched`) on CUDA.
3. **Estimate.** Times a few hundred training steps, batched subpath rounds, evaluation passes and
   Hessian-vector products on the device, multiplies by the profile's counts and prints the estimate
   per stage before anything long starts.
4. **Run.** :func:`lrdecay.empirics.profiles.run_profile` (resumable: rerun the same command after an
   interruption), then the measured stage times next to the estimate, and the figures.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from lrdecay.empirics import batched as BT
from lrdecay.empirics import curvature as C
from lrdecay.empirics import data as D
from lrdecay.empirics import profiles as P
from lrdecay.empirics import train as T
from lrdecay.empirics.vgg import target_loss

# bf16 autocast is kept when the training loss it computes is within this relative tolerance of float32's
# on the same batch (the paper's effects are differences of a few percent in test loss; 1 % of the
# per-step loss is well inside the step-to-step noise of SGD at batch 125).
BF16_LOSS_RTOL = 1e-2


# --check: the whole script on a tiny network in seconds (CPU tests)
CHECK_TRAIN = dict(width=0.125, train_size=100, test_size=100, batch_size=25, epochs=6, ckpt_every=4,
                   decay_epochs=(2, 4), eval_every=1, eval_batch=100, init="torch", lr=0.02)
CHECK_LANDSCAPE = dict(grid=5, train_size=50, test_size=50, eval_batch=50, points_per_batch=5)
CHECK_CURVATURE = dict(probes=2, lanczos_steps=3, eval_size=50, eval_batch=50, main_every=2)


def scaled_overrides(p: P.Profile, scale: float) -> tuple[dict, dict]:
    """Train and curvature overrides multiplying every epoch count by ``scale`` (checkpoint-aligned)."""
    if scale == 1:
        return {}, {}
    if not 0 < scale <= 1:
        raise ValueError(f"scale: expected a factor in (0, 1], got {scale}")
    t = p.train
    spe = (t.train_size or 50000) // t.batch_size
    unit = t.ckpt_every // math.gcd(t.ckpt_every, spe)     # epochs between checkpoints
    step = max(unit, int(round(100 * scale / unit)) * unit)
    first = max(step, int(round(2000 * scale / step)) * step)
    decays = tuple(range(first, first + 10 * step, step))
    return ({"epochs": decays[-1] + step, "decay_epochs": decays},
            {"main_every": step * max(1, int(round(p.curvature.main_every / 100)))})


def bf16_ok(cfg: T.TrainConfig, data: D.CifarTensors, device, steps: int = 5) -> tuple[bool, float]:
    """Whether bf16 autocast keeps the training loss within BF16_LOSS_RTOL, at the initialisation and after
    ``steps`` float32 steps; returns (ok, worst relative difference)."""
    if torch.device(device).type != "cuda":
        return False, float("nan")
    model = T.make_model(cfg, device)
    opt = T.make_optimizer(cfg, model.parameters(), cfg.lr)
    st = T.state_from(None, dir=".", label="probe", lr=cfg.lr, end_epoch=10, meta={}, cfg=cfg, device=device)
    worst = 0.0
    for i in range(steps + 1):
        b = T.draw_step(st, cfg, data, model)
        model.eval()
        with torch.no_grad():
            l32 = target_loss(cfg.loss, model(b.x).float(), b.y, b.targets).item()
            with torch.autocast("cuda", dtype=torch.bfloat16):
                l16 = target_loss(cfg.loss, model(b.x).float(), b.y, b.targets).item()
        worst = max(worst, abs(l16 - l32) / max(abs(l32), 1e-12))
        model.train()
        loss = target_loss(cfg.loss, model(b.x, b.masks), b.y, b.targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        st.pos = (st.pos + 1) % cfg.steps_per_epoch(len(data.y_train))
    return worst <= BF16_LOSS_RTOL, worst


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def rates(p: P.Profile, data: D.CifarTensors, device, runtime: T.Runtime, steps: int = 60) -> dict:
    """Measured per-unit costs on ``device``: a sequential training step, a batched round of K subpaths,
    one image through an evaluation pass, one Hessian-vector product on the curvature subset."""
    cfg = p.train
    spe = cfg.steps_per_epoch(len(data.y_train))
    out = {}
    # sequential step (the main path's loop)
    model = T.make_model(cfg, device)
    opt = T.make_optimizer(cfg, model.parameters(), cfg.lr)
    st = T.state_from(None, dir=".", label="probe", lr=cfg.lr, end_epoch=10 ** 6, meta={}, cfg=cfg, device=device)
    step_model = torch.compile(model) if runtime.compile else model

    def seq(n):
        for _ in range(n):
            b = T.draw_step(st, cfg, data, model)
            with runtime.autocast(device):
                o = step_model(b.x, b.masks)
            loss = target_loss(cfg.loss, o.float(), b.y, b.targets)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            st.pos = (st.pos + 1) % spe
        _sync(device)

    seq(max(10, steps // 3))                  # warm-up (and compilation)
    t = time.perf_counter()
    seq(steps)
    out["seq_step_s"] = (time.perf_counter() - t) / steps
    # batched round of K subpaths
    k = len(cfg.decay_epochs)
    if k:
        bm = T.make_model(cfg, device, channels_last=False).train()
        names = [n for n, _ in bm.named_parameters()]
        Pst = {n: torch.stack([dict(bm.named_parameters())[n].detach().clone()] * k) for n in names}
        Mst = {n: torch.zeros_like(v) for n, v in Pst.items()}
        sts = [T.state_from(None, dir=".", label=f"p{i}", lr=cfg.lr, end_epoch=10 ** 6, meta={},
                            cfg=replace(cfg, seed=i), device=device) for i in range(k)]

        def bat(n):
            for _ in range(n):
                x, y, masks, targets = BT.draw_stacked(sts, cfg, data, bm)
                g, _ = BT.batched_grads(bm, Pst, x, y, masks, targets, cfg.loss, runtime)
                BT.sgd_step_(Pst, Mst, g, cfg.lr, cfg.momentum, cfg.weight_decay)
                for s in sts:
                    s.pos = (s.pos + 1) % spe
            _sync(device)

        nb = max(4, steps // 4)
        bat(2)
        t = time.perf_counter()
        bat(nb)
        out["batched_round_s"] = (time.perf_counter() - t) / nb
        out["k"] = k
    # evaluation throughput
    n_eval = min(len(data.y_test), 2000)
    T.evaluate(model, data.x_test[:n_eval], data.y_test[:n_eval], cfg.loss, cfg.eval_batch)
    _sync(device)
    t = time.perf_counter()
    T.evaluate(model, data.x_test[:n_eval], data.y_test[:n_eval], cfg.loss, cfg.eval_batch)
    _sync(device)
    out["eval_image_s"] = (time.perf_counter() - t) / n_eval
    # one Hessian-vector product on the curvature subset
    cc = p.curvature
    m = min(cc.eval_size or len(data.y_train), len(data.y_train))
    op = C.HessianOperator(model, dict(model.named_parameters()), data.x_train[:m], data.y_train[:m], cfg.loss,
                           cc.eval_batch)
    v = torch.ones(op.dim, device=device)
    op(v)
    _sync(device)
    t = time.perf_counter()
    op(v)
    _sync(device)
    out["hvp_s"] = time.perf_counter() - t
    return out


def estimate(p: P.Profile, n_train: int, n_test: int, r: dict, batched: bool) -> dict:
    """Seconds per stage from the measured unit costs and the profile's counts."""
    t, la, cc = p.train, p.landscape, p.curvature
    spe = n_train // t.batch_size
    evals = lambda epochs: epochs // t.eval_every + 1                          # noqa: E731
    eval_imgs = n_train + n_test
    s = len(p.seeds)
    main = s * (t.epochs * spe * r["seq_step_s"] + evals(t.epochs) * eval_imgs * r["eval_image_s"])
    sub_epochs = [t.epochs - e for e in t.decay_epochs]
    if batched and "batched_round_s" in r:
        train_s = max(sub_epochs, default=0) * spe * r["batched_round_s"]   # upper bound: all K active throughout
    else:
        train_s = sum(sub_epochs) * spe * r["seq_step_s"]
    subs = s * (train_s + sum(evals(e) for e in sub_epochs) * eval_imgs * r["eval_image_s"])
    n_pts = (t.epochs // cc.main_every if cc.main_every else len(t.decay_epochs) + 1) + len(t.decay_epochs)
    curv = s * n_pts * (cc.probes + cc.lanczos_steps + 1) * r["hvp_s"]
    K = t.epochs * spe // t.ckpt_every + 1 + sum(e * spe // t.ckpt_every + 1 for e in sub_epochs)  # checkpoints
    land_imgs = (la.train_size or n_train) + (la.test_size or n_test)
    land = (la.grid ** 2 + K) * land_imgs * r["eval_image_s"]
    out = {"main": main, "subpaths": subs, "curvature": curv, "landscape": land}
    out["total"] = sum(out.values())
    return out


def _fmt(sec: float) -> str:
    return f"{sec / 3600:.2f} h" if sec >= 3600 else f"{sec / 60:.1f} min" if sec >= 90 else f"{sec:.0f} s"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="output directory (reused to resume)")
    ap.add_argument("--data", type=Path, default=None, help="CIFAR-10 directory (default: the offline subset)")
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every epoch count by this (checks)")
    ap.add_argument("--check", action="store_true",
                    help="a seconds-long end-to-end check (tiny network, 100 images, 6 epochs): the same code path")
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="training seeds (default: the profile's)")
    ap.add_argument("--no-bf16", action="store_true", help="never use bfloat16 autocast")
    ap.add_argument("--no-compile", action="store_true", help="never torch.compile")
    ap.add_argument("--estimate-only", action="store_true", help="print the estimate and stop")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    a = ap.parse_args(argv)
    try:
        dev = T.select_device(a.device)
        if a.threads:
            torch.set_num_threads(a.threads)
        base = P.get_profile("authors")
        tr, cu = scaled_overrides(base, a.scale)
        la = None
        if a.check:
            tr, la, cu = CHECK_TRAIN, CHECK_LANDSCAPE, CHECK_CURVATURE
        p = P.resolve("authors", tr, la, cu, a.seeds)
        data = T.load_data(p.train, a.data, dev)
        p.train.validate(len(data.y_train))
    except (ValueError, FileNotFoundError) as exc:
        print(f"gpu_authors: {exc}", file=sys.stderr)
        return 2
    cuda = dev.type == "cuda"
    ok, worst = bf16_ok(p.train, data, dev) if (cuda and not a.no_bf16) else (False, float("nan"))
    runtime = T.Runtime(compile=cuda and not a.no_compile, bf16=ok)
    batched = cuda
    print(f"device {dev}{' (' + torch.cuda.get_device_name(dev) + ')' if cuda else ''}; profile authors, "
          f"{p.train.epochs} epochs, decays at {list(p.train.decay_epochs)}, seeds {list(p.seeds)}, "
          f"{len(data.y_train)} training / {len(data.y_test)} test images", flush=True)
    print(f"speed options: channels-last yes; bf16 autocast {'yes' if ok else 'no'}"
          f"{f' (worst relative loss difference {worst:.2e} vs tolerance {BF16_LOSS_RTOL:g})' if cuda and not a.no_bf16 else ''}; "
          f"torch.compile {'yes' if runtime.compile else 'no'}; batched subpaths {'yes' if batched else 'no'}", flush=True)
    t0 = time.perf_counter()
    r = rates(p, data, dev, runtime)
    est = estimate(p, len(data.y_train), len(data.y_test), r, batched)
    print(f"measured: {1 / r['seq_step_s']:.1f} steps/s sequential"
          + (f", {1 / r['batched_round_s']:.1f} rounds/s for {r['k']} batched subpaths" if "batched_round_s" in r else "")
          + f", {1 / r['eval_image_s']:.0f} evaluation images/s, {r['hvp_s'] * 1e3:.1f} ms per Hessian-vector product"
          f" (probe {time.perf_counter() - t0:.0f} s)", flush=True)
    print("estimated wall time: " + ", ".join(f"{k} {_fmt(v)}" for k, v in est.items()), flush=True)
    if a.estimate_only:
        return 0
    t0 = time.perf_counter()
    s = P.run_profile("authors", a.out, a.data, progress=not a.no_progress, device=str(dev), train_overrides=tr,
                      landscape_overrides=la, curvature_overrides=cu, seeds=a.seeds, batched=batched, runtime=runtime)
    wall = time.perf_counter() - t0
    st = s["timings"]["stages_s"]
    agg = {"main": 0.0, "subpaths": 0.0, "curvature": 0.0, "landscape": 0.0}
    for k, v in st.items():
        for stage in agg:
            if k.endswith(stage) and isinstance(v, float):
                agg[stage] += v
    print("measured wall time:  " + ", ".join(f"{k} {_fmt(v)}" for k, v in agg.items()) + f", total {_fmt(wall)}")
    from lrdecay.paper_figures import vgg_curvature, vgg_decay, vgg_landscape, vgg_late_decay_map, vgg_learning_curves

    for mod in (vgg_learning_curves, vgg_decay, vgg_landscape, vgg_curvature, vgg_late_decay_map):
        mod.make_figure(a.out)
    json_path = Path(a.out) / "gpu_authors.json"
    json_path.write_text(json.dumps({"estimate_s": est, "measured_s": agg, "wall_s": wall, "rates": r,
                                     "bf16": ok, "bf16_worst_rel_diff": worst, "compile": runtime.compile,
                                     "batched": batched, "device": str(dev)}, indent=2))
    print(f"figures in {Path(a.out) / 'figures'}; numbers in {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
