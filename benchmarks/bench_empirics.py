"""Speed of the empirics module against the plain alternatives, measured in one process.

1. Training images/second: the in-memory tensor loop of :mod:`lrdecay.empirics.train` (uint8 tensors on the
   device, batched crop + flip from one generator) against a plain ``torch.utils.data.DataLoader`` loop
   (a ``Dataset`` of PIL images with ``RandomCrop(32, padding=4)``, ``RandomHorizontalFlip``,
   ``ToTensor``, ``Normalize``; ``num_workers=0``, the usual tutorial loop, with the model in the
   default memory layout). Same network, optimizer and batch size; the tensor loop includes what
   :mod:`lrdecay.empirics.train` does besides (channels-last layout). Also the data pipelines alone (no model).
2. Grid points/second: :func:`lrdecay.empirics.landscape.evaluate_points` (``strategy="loop"``, the CPU
   default, and ``"vmap"`` over groups of parameter vectors, the GPU default) against per-point loops
   that copy each point into the model and evaluate it — over the same in-memory tensors
   (:func:`lrdecay.empirics.landscape.evaluate_points_loop`) and over a plain ``DataLoader`` (the baseline).

3. Decayed subpaths, images/second: ``K`` (default 5) subpaths trained as one batched model
   (:mod:`lrdecay.empirics.batched`: stacked parameters, ``vmap`` of ``grad(loss ∘ functional_call)``, the
   stacked SGD update) against the same ``K`` trained one after another by the sequential step of
   :mod:`lrdecay.empirics.train` (channels-last model, ``torch.optim.SGD``). Both draw their batches, dropout
   masks and label noise through :func:`lrdecay.empirics.train.draw_step`; the cpu profile's settings (slim
   VGG-11 width 0.375, batch 50, dropout 0.1) unless told otherwise. Medians of ``repeats`` timings.

The model is slim VGG-11 at width 0.375 unless ``--width`` says otherwise.

    PYTHONPATH=. python benchmarks/bench_empirics.py            # prints the table
    PYTHONPATH=. python benchmarks/bench_empirics.py --only subpaths --threads 1
    pytest benchmarks/bench_empirics.py --benchmark-enable      # pytest-benchmark
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pytest
import torch

from lrdecay.empirics import data as D
from lrdecay.empirics import landscape as L
from lrdecay.empirics.vgg import build_model, loss_fn

BATCH = 125


def load_arrays(n_train=5000, n_test=1000) -> D.CifarArrays:
    """The real subset when present, else random images of the same shape."""
    try:
        return D.load_cifar10()
    except (FileNotFoundError, ValueError):
        rng = np.random.default_rng(0)
        return D.CifarArrays(rng.integers(0, 256, (n_train, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, n_train),
                             rng.integers(0, 256, (n_test, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, n_test))


def make_model(width, channels_last=False):
    model = build_model("slim_vgg11", width, seed=0)
    if channels_last:  # as lrdecay.empirics.train does
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    return model, opt


# ----------------------------------------------------------------------------- the two training loops
def tensor_loop(model, opt, x, y, steps, gen, train=True, nchw=False):
    """The loop of lrdecay.empirics.train: index a device tensor, augment the batch, normalise, step.
    ``nchw``: feed the default memory layout instead of channels-last (to separate the two gains)."""
    lossf = loss_fn("mse")
    perm = torch.randperm(len(y), generator=gen)
    for s in range(steps):
        idx = perm[(s * BATCH) % (len(y) - BATCH + 1):][:BATCH]
        xb = D.normalize(D.augment(x[idx], gen))
        if nchw:
            xb = xb.contiguous()
        if train:
            loss = lossf(model(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


class PILDataset(torch.utils.data.Dataset):
    """What a torchvision ``CIFAR10`` dataset does per item: PIL image → transforms."""

    def __init__(self, x_nchw, y):
        import torchvision.transforms as Tr

        self.x = np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1))
        self.y = y
        self.t = Tr.Compose([Tr.RandomCrop(32, padding=4), Tr.RandomHorizontalFlip(), Tr.ToTensor(),
                             Tr.Normalize(D.MEAN, D.STD)])

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        from PIL import Image

        return self.t(Image.fromarray(self.x[i])), int(self.y[i])


class PILEvalDataset(PILDataset):
    def __init__(self, x_nchw, y):
        import torchvision.transforms as Tr

        super().__init__(x_nchw, y)
        self.t = Tr.Compose([Tr.ToTensor(), Tr.Normalize(D.MEAN, D.STD)])


@torch.no_grad()
def dataloader_grid(model, thetas, loader):
    """The plain landscape loop: copy each point into the model, iterate a DataLoader over the images."""
    lossf = loss_fn("mse")
    model.eval()
    res = []
    for th in thetas:
        torch.nn.utils.vector_to_parameters(torch.as_tensor(th, dtype=torch.float32), model.parameters())
        tot, n = 0.0, 0
        for xb, yb in loader:
            tot += lossf(model(xb), yb).item() * len(yb)
            n += len(yb)
        res.append(tot / n)
    return res


def dataloader_loop(model, opt, loader, steps, train=True):
    lossf = loss_fn("mse")
    it = iter(loader)
    for _ in range(steps):
        try:
            xb, yb = next(it)
        except StopIteration:
            it = iter(loader)
            xb, yb = next(it)
        if train:
            loss = lossf(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


def _best(f, repeats):
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return best


def measure(width=0.375, steps=20, grid_points=22, eval_images=500, repeats=3, threads=2) -> dict:
    """All numbers in one process (interleaved, best of ``repeats``)."""
    torch.set_num_threads(threads)
    arr = load_arrays()
    x, y = torch.from_numpy(arr.x_train), torch.from_numpy(arr.y_train)
    loader = torch.utils.data.DataLoader(PILDataset(arr.x_train, arr.y_train), batch_size=BATCH, shuffle=True,
                                         num_workers=0, drop_last=True)
    model, opt = make_model(width, channels_last=True)
    pmodel, popt = make_model(width)
    gen = torch.Generator().manual_seed(0)
    tensor_loop(model, opt, x, y, 2, gen)
    dataloader_loop(pmodel, popt, loader, 2)
    out = {"width": width, "threads": threads, "steps": steps, "batch": BATCH}
    n_img = steps * BATCH
    t_tensor = _best(lambda: tensor_loop(model, opt, x, y, steps, gen), repeats)
    t_loader = _best(lambda: dataloader_loop(pmodel, popt, loader, steps), repeats)
    t_nchw = _best(lambda: tensor_loop(pmodel, popt, x, y, steps, gen, nchw=True), repeats)
    out["train_img_per_s_tensor"] = n_img / t_tensor
    out["train_img_per_s_tensor_nchw"] = n_img / t_nchw
    out["train_img_per_s_dataloader"] = n_img / t_loader
    p_tensor = _best(lambda: tensor_loop(model, opt, x, y, steps, gen, train=False), repeats)
    p_loader = _best(lambda: dataloader_loop(model, opt, loader, steps, train=False), repeats)
    out["pipeline_img_per_s_tensor"] = n_img / p_tensor
    out["pipeline_img_per_s_dataloader"] = n_img / p_loader

    base = torch.nn.utils.parameters_to_vector(pmodel.parameters()).detach().numpy().astype(np.float64)
    rng = np.random.default_rng(0)
    thetas = base + rng.normal(0, 1e-3, (grid_points, base.size))
    xe, ye = torch.from_numpy(arr.x_test[:eval_images]), torch.from_numpy(arr.y_test[:eval_images])
    emodel = build_model("slim_vgg11", width)
    eloader = torch.utils.data.DataLoader(PILEvalDataset(arr.x_test[:eval_images], arr.y_test[:eval_images]),
                                          batch_size=BATCH, shuffle=False, num_workers=0)
    out["grid_points"], out["eval_images"] = grid_points, eval_images
    runs = {
        "loop": lambda: L.evaluate_points(emodel, thetas, xe, ye, "mse", eval_batch=eval_images, strategy="loop"),
        "vmap_4": lambda: L.evaluate_points(emodel, thetas, xe, ye, "mse", 4, eval_images, strategy="vmap"),
        "vmap_11": lambda: L.evaluate_points(emodel, thetas, xe, ye, "mse", 11, eval_images, strategy="vmap"),
        "per_point_tensors": lambda: L.evaluate_points_loop(emodel, thetas, xe, ye, "mse", eval_batch=eval_images),
        "per_point_dataloader": lambda: dataloader_grid(emodel, thetas, eloader),
    }
    for k, f in runs.items():
        f()
        out[f"grid_pts_per_s_{k}"] = grid_points / _best(f, repeats)
    return out


# ----------------------------------------------------------------------------- batched against sequential subpaths
def subpath_setup(k=5, width=0.375, batch=50, dropout=0.1, label_noise=0.0, n_train=500):
    """``k`` paths of the cpu profile's model, each with its own seed, generator and optimizer."""
    from dataclasses import replace

    from lrdecay.empirics import profiles as P
    from lrdecay.empirics import train as T

    cfg = replace(P.get_profile("cpu").train, width=width, batch_size=batch, dropout=dropout, label_noise=label_noise,
                  train_size=n_train, decay_epochs=())
    arr = load_arrays()
    data = D.to_tensors(arr, "cpu", train_size=min(n_train, len(arr.y_train)), test_size=100, seed=0)
    models = [T.make_model(cfg, seed=i) for i in range(k)]
    opts = [T.make_optimizer(cfg, m.parameters(), cfg.lr * cfg.decay_factor) for m in models]
    states = [T.state_from(None, dir=".", label=f"p{i}", lr=cfg.lr, end_epoch=10 ** 6, meta={},
                           cfg=replace(cfg, seed=i), device="cpu") for i in range(k)]
    return cfg, data, models, opts, states


def sequential_steps(cfg, data, models, opts, states, steps):
    """``steps`` steps of every path, one path after another (the loop of lrdecay.empirics.train.train_path)."""
    from lrdecay.empirics import train as T
    from lrdecay.empirics.vgg import target_loss

    spe = cfg.steps_per_epoch(len(data.y_train))
    for m, opt, st in zip(models, opts, states):
        m.train()
        for _ in range(steps):
            b = T.draw_step(st, cfg, data, m)
            loss = target_loss(cfg.loss, m(b.x, b.masks), b.y, b.targets)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if T.record_step(st, loss.detach(), spe):
                st.pos, st.epoch = 0, st.epoch + 1


def batched_steps(cfg, data, model, P_, M_, states, steps):
    """``steps`` batched steps of all paths at once (the loop of lrdecay.empirics.batched.train_paths_batched)."""
    from lrdecay.empirics import batched as BT
    from lrdecay.empirics import train as T

    spe = cfg.steps_per_epoch(len(data.y_train))
    model.train()
    for _ in range(steps):
        x, y, masks, targets = BT.draw_stacked(states, cfg, data, model)
        grads, losses = BT.batched_grads(model, P_, x, y, masks, targets, cfg.loss)
        BT.sgd_step_(P_, M_, grads, cfg.lr, cfg.momentum, cfg.weight_decay)
        for st, l in zip(states, losses):
            if T.record_step(st, l.detach(), spe):
                st.pos, st.epoch = 0, st.epoch + 1


def _median(f, repeats):
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def measure_subpaths(k=5, width=0.375, batch=50, steps=10, repeats=5, threads=2, dropout=0.1) -> dict:
    """Images/s of ``k`` subpaths trained batched against sequentially (medians of ``repeats``)."""
    from lrdecay.empirics import train as T

    torch.set_num_threads(threads)
    cfg, data, models, opts, states = subpath_setup(k, width, batch, dropout)
    model = T.make_model(cfg, channels_last=False)
    names = [n for n, _ in model.named_parameters()]
    P_ = {n: torch.stack([dict(m.named_parameters())[n].detach().clone() for m in models]) for n in names}
    M_ = {n: torch.zeros_like(v) for n, v in P_.items()}
    seq = lambda: sequential_steps(cfg, data, models, opts, states, steps)  # noqa: E731
    bat = lambda: batched_steps(cfg, data, model, P_, M_, states, steps)    # noqa: E731
    seq(), bat()                                                              # warm-up
    t_seq, t_bat = [], []
    for _ in range(repeats):                                                  # interleaved
        t_seq.append(_median(seq, 1))
        t_bat.append(_median(bat, 1))
    n_img = k * steps * batch
    out = {"k": k, "width": width, "batch": batch, "dropout": dropout, "steps": steps, "threads": threads,
           "repeats": repeats, "sequential_img_per_s": n_img / float(np.median(t_seq)),
           "batched_img_per_s": n_img / float(np.median(t_bat)),
           "sequential_s": t_seq, "batched_s": t_bat}
    out["ratio"] = out["batched_img_per_s"] / out["sequential_img_per_s"]
    return out


def measure_grid(width=0.375, points=20, images=1000, repeats=3, threads=2) -> dict:
    """Landscape grid points/s of evaluate_points (CPU strategy) on the cpu profile's evaluation size
    (500 train + 500 test images per point)."""
    torch.set_num_threads(threads)
    arr = load_arrays()
    model = build_model("slim_vgg11", width, seed=0)
    base = torch.nn.utils.parameters_to_vector(model.parameters()).detach().numpy()
    thetas = base + np.random.default_rng(0).normal(0, 1e-3, (points, base.size))
    x, y = torch.from_numpy(arr.x_test[:images]), torch.from_numpy(arr.y_test[:images])
    f = lambda: L.evaluate_points(model, thetas, x, y, "mse", eval_batch=500, strategy="loop")  # noqa: E731
    f()
    t = _median(f, repeats)
    return {"points": points, "images_per_point": images, "threads": threads, "grid_pts_per_s": points / t}


# ----------------------------------------------------------------------------- pytest-benchmark
@pytest.fixture(scope="module")
def setup():
    torch.set_num_threads(2)
    arr = load_arrays()
    return arr, torch.from_numpy(arr.x_train), torch.from_numpy(arr.y_train)


def test_train_tensor_loop(benchmark, setup):
    arr, x, y = setup
    model, opt = make_model(0.375, channels_last=True)
    gen = torch.Generator().manual_seed(0)
    benchmark.pedantic(tensor_loop, args=(model, opt, x, y, 10, gen), rounds=3, warmup_rounds=1)


def test_train_dataloader_loop(benchmark, setup):
    arr, x, y = setup
    model, opt = make_model(0.375)
    loader = torch.utils.data.DataLoader(PILDataset(arr.x_train, arr.y_train), batch_size=BATCH, shuffle=True,
                                         num_workers=0, drop_last=True)
    benchmark.pedantic(dataloader_loop, args=(model, opt, loader, 10), rounds=3, warmup_rounds=1)


@pytest.fixture(scope="module")
def grid_setup(setup):
    arr, *_ = setup
    model = build_model("slim_vgg11", 0.375, seed=0)
    base = torch.nn.utils.parameters_to_vector(model.parameters()).detach().numpy()
    thetas = base + np.random.default_rng(0).normal(0, 1e-3, (11, base.size))
    return model, thetas, torch.from_numpy(arr.x_test[:500]), torch.from_numpy(arr.y_test[:500])


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_grid_evaluate_points(benchmark, grid_setup, strategy):
    model, thetas, x, y = grid_setup
    benchmark.pedantic(L.evaluate_points, args=(model, thetas, x, y, "mse", 11, 500), kwargs={"strategy": strategy},
                       rounds=3, warmup_rounds=1)


def test_subpaths_sequential(benchmark):
    cfg, data, models, opts, states = subpath_setup()
    benchmark.pedantic(sequential_steps, args=(cfg, data, models, opts, states, 5), rounds=3, warmup_rounds=1)


def test_subpaths_batched(benchmark):
    from lrdecay.empirics import train as T

    cfg, data, models, opts, states = subpath_setup()
    model = T.make_model(cfg, channels_last=False)
    names = [n for n, _ in model.named_parameters()]
    P_ = {n: torch.stack([dict(m.named_parameters())[n].detach().clone() for m in models]) for n in names}
    M_ = {n: torch.zeros_like(v) for n, v in P_.items()}
    benchmark.pedantic(batched_steps, args=(cfg, data, model, P_, M_, states, 5), rounds=3, warmup_rounds=1)


def test_grid_loop(benchmark, grid_setup):
    model, thetas, x, y = grid_setup
    benchmark.pedantic(L.evaluate_points_loop, args=(model, thetas, x, y, "mse", 500), rounds=3, warmup_rounds=1)


def _print_main(r, repeats):
    print(f"slim VGG-11 width {r['width']}, batch {r['batch']}, {r['threads']} threads, {r['steps']} steps, best of {repeats}")
    print(f"training  images/s: tensor loop {r['train_img_per_s_tensor']:8.0f} | DataLoader loop "
          f"{r['train_img_per_s_dataloader']:8.0f} | ratio {r['train_img_per_s_tensor'] / r['train_img_per_s_dataloader']:.2f}x")
    print(f"          images/s: tensor loop, default memory layout {r['train_img_per_s_tensor_nchw']:8.0f} | ratio "
          f"{r['train_img_per_s_tensor_nchw'] / r['train_img_per_s_dataloader']:.2f}x  (without channels-last)")
    print(f"pipeline  images/s: tensor       {r['pipeline_img_per_s_tensor']:8.0f} | DataLoader      "
          f"{r['pipeline_img_per_s_dataloader']:8.0f} | ratio {r['pipeline_img_per_s_tensor'] / r['pipeline_img_per_s_dataloader']:.2f}x"
          "  (data only, no model)")
    base = r["grid_pts_per_s_per_point_dataloader"]
    names = {"loop": "evaluate_points, strategy loop (CPU default)", "vmap_4": "evaluate_points, vmap ×4",
             "vmap_11": "evaluate_points, vmap ×11", "per_point_tensors": "per-point loop, tensors in memory",
             "per_point_dataloader": "per-point loop, DataLoader (baseline)"}
    print(f"grid points/s ({r['eval_images']} images each, {r['grid_points']} points):")
    for k, name in names.items():
        v = r[f"grid_pts_per_s_{k}"]
        print(f"  {name:42s} {v:8.2f}  ratio {v / base:5.2f}x")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=float, default=0.375)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", choices=("all", "loops", "subpaths", "grid"), default="all")
    a = ap.parse_args()
    if a.only in ("all", "loops"):
        _print_main(measure(a.width, a.steps, repeats=a.repeats, threads=a.threads), a.repeats)
    if a.only in ("all", "subpaths"):
        r = measure_subpaths(width=a.width, steps=min(a.steps, 10), repeats=max(a.repeats, 5), threads=a.threads)
        print(f"{r['k']} subpaths (width {r['width']}, batch {r['batch']}, dropout {r['dropout']}, {r['threads']} threads, "
              f"{r['steps']} steps each, median of {r['repeats']}): sequential {r['sequential_img_per_s']:7.0f} img/s | "
              f"batched {r['batched_img_per_s']:7.0f} img/s | ratio {r['ratio']:.2f}x")
    if a.only in ("all", "grid"):
        g = measure_grid(a.width, repeats=a.repeats, threads=a.threads)
        print(f"landscape grid: {g['grid_pts_per_s']:.1f} points/s ({g['images_per_point']} images per point, "
              f"{g['threads']} threads, median of {a.repeats})")
