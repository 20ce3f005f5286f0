r"""All decayed subpaths of a run trained together as one batched model.

The ``K`` subpaths share the network's structure, not its numbers: each keeps its own parameters
:math:`\theta^{(k)}`, momentum :math:`b^{(k)}`, generator (data order, crops and flips, dropout masks,
label noise — drawn by :func:`lrdecay.empirics.train.draw_step`, exactly as the sequential loop draws them),
step counter and metrics. The parameters are stacked along a leading axis, one batch per subpath is
stacked the same way, and one call,
``torch.func.vmap(torch.func.grad_and_value(loss ∘ functional_call))``, computes all ``K`` gradients
(grouped convolutions): one launch sequence instead of ``K`` keeps a GPU busy with a small network.

The update is torch's SGD written on the stacks, operation for operation
(:math:`g \leftarrow \nabla + \lambda\theta`, :math:`b \leftarrow \mu b + g`, :math:`\theta \leftarrow \theta - \eta b`),
so that a batched subpath equals a sequential one to float rounding (the batched kernels sum in
another order); tests/test_empirics_batched.py checks this against :func:`lrdecay.empirics.train.train_path`.

Checkpoints, ``metrics.csv`` and ``result.json`` are written per subpath in the sequential format,
so a batched run resumes (batched or sequentially) from them, and the landscape reads them alike.
Batch-norm models (running statistics) are trained sequentially.
"""
from __future__ import annotations

from pathlib import Path

import torch

from lrdecay.theory.io import DirectoryLock

from . import data as D
from .train import (Runtime, TrainConfig, ckpt_due, ckpt_path, close_epoch, draw_step, make_model, make_optimizer,
                    plan_subpaths, record_step, resume, save_checkpoint, save_config, state_from, write_result)
from .vgg import target_loss

def batched_default(device) -> bool:
    """Whether subpaths train batched by default on ``device``: on CUDA yes; on a CPU no — there the
    network is compute-bound in oneDNN's convolutions and the grouped convolutions of ``vmap`` run no
    faster than ``K`` separate channels-last ones (benchmarks/bench_empirics.py measures both)."""
    return torch.device(device).type == "cuda"


# ----------------------------------------------------------------------------- the batched gradient
def batched_grads(model, params: dict, x, y, masks, targets, loss: str, runtime: Runtime = Runtime()):
    """``({name: K × shape gradient}, K losses)`` of ``K`` paths at once:
    ``vmap(grad_and_value(loss ∘ functional_call))`` over the stacked parameters, batches, masks and targets."""
    from torch.func import functional_call, grad_and_value, vmap

    def f(p, xb, yb, mb, tb):
        with runtime.autocast(xb.device):
            out = functional_call(model, p, (xb, mb))
        return target_loss(loss, out.float(), yb, tb)

    return vmap(grad_and_value(f), in_dims=(0, 0, 0, 0, None if targets is None else 0))(params, x, y, masks, targets)


@torch.no_grad()
def sgd_step_(params: dict, bufs: dict, grads: dict, lr: float, momentum: float, weight_decay: float) -> None:
    """torch.optim.SGD's update (momentum, weight decay, no dampening, no Nesterov) on stacked tensors, in place:
    :math:`g = \\nabla + \\lambda\\theta`, :math:`b \\leftarrow \\mu b + g`, :math:`\\theta \\leftarrow \\theta - \\eta b`
    (a zero buffer before the first step gives torch's :math:`b = g` exactly)."""
    for n in params:
        g = grads[n].add(params[n], alpha=weight_decay)
        bufs[n].mul_(momentum).add_(g)
        params[n].add_(bufs[n], alpha=-lr)


def draw_stacked(states, cfg: TrainConfig, data: D.CifarTensors, model):
    """Every path's next batch and randomness (:func:`lrdecay.empirics.train.draw_step`), stacked along a first axis."""
    draws = [draw_step(st, cfg, data, model, channels_last=False) for st in states]
    x = torch.stack([b.x for b in draws])
    y = torch.stack([b.y for b in draws])
    masks = tuple(torch.stack([b.masks[j] for b in draws]) for j in range(len(draws[0].masks)))
    targets = None if draws[0].targets is None else torch.stack([b.targets for b in draws])
    return x, y, masks, targets


# ----------------------------------------------------------------------------- the loop
def _opt_state(names, bufs: dict, k: int, template: dict, lr: float) -> dict:
    return {"state": {i: {"momentum_buffer": bufs[n][k].clone()} for i, n in enumerate(names)},
            "param_groups": [dict(template["param_groups"][0], lr=lr)]}


def train_paths_batched(cfg: TrainConfig, data: D.CifarTensors, items: list[dict], *, lr: float, end_epoch: int,
                        progress: bool = True, on_step=None, runtime: Runtime = Runtime(),
                        check_fields=TrainConfig.SUBPATH_FIELDS) -> list[dict]:
    """Train the paths ``items`` together (each ``{"dir", "start", "label", "meta"}``, optionally with an
    ``"end_epoch"`` of its own) to ``end_epoch``.

    A path resumes from its own newest checkpoint when it has one (refused if made with another
    configuration), else starts from ``start`` (a checkpoint dict). ``on_step(round)`` is called after
    every batched step. Returns the paths' results, in the order of ``items``.
    """
    from tqdm.auto import tqdm

    if cfg.batch_norm:
        raise ValueError("batched: batch-norm models keep running statistics per path; train them sequentially")
    dev = data.device
    spe = cfg.steps_per_epoch(len(data.y_train))
    model = make_model(cfg, dev, channels_last=False)
    model.train()
    names = [n for n, _ in model.named_parameters()]
    template = make_optimizer(cfg, model.parameters(), lr).state_dict()

    states, params, bufs, results = [], [], [], {}
    for i, it in enumerate(items):
        d, end = Path(it["dir"]), it.get("end_epoch", end_epoch)
        done, snap = resume(d, cfg, lr=lr, end_epoch=end, start=it["start"], check_fields=check_fields, device=dev)
        if done is not None:
            results[i] = done
            continue
        st = state_from(snap, dir=d, label=it["label"], lr=lr, end_epoch=end, meta=it["meta"], cfg=cfg, device=dev)
        p = {n: snap["model"][n].to(dev).contiguous() for n in names}
        ost = snap["optimizer"]["state"]
        b = {n: (ost[j]["momentum_buffer"].to(dev) if j in ost and ost[j].get("momentum_buffer") is not None
                 else torch.zeros_like(p[n])) for j, n in enumerate(names)}
        states.append((i, st))
        params.append(p)
        bufs.append(b)

    def stack(dicts):
        return {n: torch.stack([d[n] for d in dicts]) for n in names}

    active = list(range(len(states)))
    P, M = stack(params), stack(bufs)
    total = sum(st.end_epoch - st.epoch for _, st in states)
    bar = tqdm(total=total, desc=f"{len(states)} subpaths", unit="ep", disable=not progress, leave=False)
    rnd = 0
    while active:
        x, y, masks, targets = draw_stacked([states[a][1] for a in active], cfg, data, model)
        grads, losses = batched_grads(model, P, x, y, masks, targets, cfg.loss, runtime)
        sgd_step_(P, M, grads, lr, cfg.momentum, cfg.weight_decay)
        finished = []
        for row, a in enumerate(active):
            st = states[a][1]
            if record_step(st, losses[row].detach().double(), spe):
                mine = {n: P[n][row] for n in names}
                if close_epoch(st, cfg, data, model, params=mine) is not None:
                    st.run_sum = 0.0
                model.train()
                bar.update(1)
            if ckpt_due(st, cfg, spe):
                save_checkpoint(ckpt_path(st.dir, st.step),
                                st.snapshot({n: P[n][row].detach().clone() for n in names},
                                            _opt_state(names, M, row, template, lr), cfg))
            if st.done:
                st.run_sum = float(st.run_sum)
                results[states[a][0]] = write_result(st, cfg, data, spe, runtime)
                finished.append(row)
        if finished:
            keep = [r for r in range(len(active)) if r not in finished]
            active = [active[r] for r in keep]
            P = {n: v[keep].contiguous() for n, v in P.items()}
            M = {n: v[keep].contiguous() for n, v in M.items()}
        rnd += 1
        if on_step is not None:
            on_step(rnd)
    bar.close()
    return [results[i] for i in range(len(items))]


def run_subpaths_batched(out_dir, cfg: TrainConfig, data: D.CifarTensors, decay_epochs=None, progress=True,
                         on_step=None, runtime: Runtime = Runtime()) -> list[dict]:
    """:func:`lrdecay.empirics.train.run_subpaths`, with all subpaths trained together (see the module docstring)."""
    with DirectoryLock(out_dir, "out"):
        save_config(out_dir, cfg, n_train=len(data.y_train))
        plans = plan_subpaths(out_dir, cfg, data, decay_epochs)
        items = [{"dir": p.dir, "start": p.start, "label": f"decay@{p.decay_epoch}", "meta": p.meta,
                  "end_epoch": cfg.subpath_end(p.decay_epoch)} for p in plans]
        return train_paths_batched(cfg, data, items, lr=cfg.lr * cfg.decay_factor, end_epoch=cfg.epochs,
                                   progress=progress, on_step=on_step, runtime=runtime)
