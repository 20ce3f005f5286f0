r"""Training speed of the VGG trainer on the CPU, at each profile's settings, measured in one process.

1. **Images/second at the profiles' settings** (``cpu``, ``cpu_long``, ``authors`` from
   :mod:`lrdecay.empirics.profiles`: width, batch size, dropout, augmentation, label noise, classes):

   * *toolkit*: the per-step work of :func:`lrdecay.empirics.train.train_path` — :func:`lrdecay.empirics.train.make_model`
     (channels-last), :func:`~lrdecay.empirics.train.make_optimizer`, :func:`~lrdecay.empirics.train.draw_step` (permutation,
     crop + flip, dropout masks, label noise, all from the path's generator), the forward pass with those
     masks, :func:`lrdecay.empirics.vgg.target_loss`, ``zero_grad`` / ``backward`` / ``step``,
     :func:`~lrdecay.empirics.train.record_step`. Left out: the evaluations at epoch ends (timed separately in 2.),
     checkpoints and the progress bar;
   * *plain loop*: what one writes by hand — the same network from :func:`lrdecay.empirics.vgg.build_model` in the
     default memory layout with ``torch.nn.Dropout`` in place of the toolkit's mask-taking dropout, the
     training images normalised once into a float tensor (zero-padded by 4 when the profile augments),
     indexed by a per-epoch ``torch.randperm``; crops by slicing image by image, flips by
     ``torch.where``; ``torch.optim.SGD``; the loss :math:`\frac1B\sum_b\frac12\|z_b - t_b\|^2` written out
     (``t_b`` one-hot, plus :math:`\sigma\xi_b` with label noise);
   * *the arithmetic limit*: FLOPs per training image :math:`3\,F`, with the forward count
     :math:`F = \sum_\text{conv} 2k^2 C_\text{in} C_\text{out} H_\text{out} W_\text{out} + \sum_\text{linear}
     2\,n_\text{in} n_\text{out}` from the layer shapes (checked against ``torch.utils.flop_counter``), times
     images/s, as a fraction of the GFLOP/s of a float32 ``torch.mm`` of two 2048 × 2048 matrices on the
     same threads, timed in the same rounds.

2. **Variants against the toolkit's default, in the same rounds**: the default memory layout instead of
   channels-last; ``torch.compile`` of the network (the training step's forward and backward; what
   ``Runtime(compile=True)`` does), its compile time and its losses against eager; evaluation
   (:func:`lrdecay.empirics.train.evaluate` on the profile's test images) under ``torch.no_grad`` and under
   ``torch.inference_mode``, with its results compared bit for bit.

Every contender runs once per round (:func:`engine_speed.interleaved`: one warm-up round, then ``repeats``
timed rounds, ``gc.collect()`` before each call); the tables give medians, and each variant's per-round
ratio to the default with its interquartile range (the run-to-run noise).

    PYTHONPATH=. python benchmarks/bench_vgg_speed.py --threads 1 --md benchmarks/results/vgg_speed.md
    pytest benchmarks/bench_vgg_speed.py --benchmark-enable -p no:cacheprovider
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench_empirics import load_arrays  # noqa: E402  (benchmarks/ is the script's directory)
from lrdecay.empirics import data as D  # noqa: E402
from lrdecay.empirics import profiles as P  # noqa: E402
from lrdecay.empirics import train as T  # noqa: E402
from lrdecay.empirics import vgg as V  # noqa: E402
from engine_speed import interleaved  # noqa: E402

PROFILES = ("cpu", "cpu_long", "authors")
STEPS = {"cpu": 10, "cpu_long": 4, "authors": 2}   # per timed call: 500, 500 and 250 images
MATMUL_N = 2048
COMPILE_LIMIT_S = 60


# ----------------------------------------------------------------------------- setup
def profile_data(name: str):
    """The profile's training configuration and its data (the real subset when present) as tensors."""
    cfg = P.get_profile(name).train
    if cfg.loss != "mse":
        raise ValueError(f"profile: {name!r} uses loss {cfg.loss!r}; the plain loop writes out 'mse' only")
    arr = _arrays()
    data = D.to_tensors(arr, "cpu", cfg.train_size, cfg.train_per_class, cfg.test_size, seed=cfg.data_seed,
                        classes=cfg.classes, draw=cfg.draw, test_on=cfg.test_on)
    return cfg, data


_ARRAYS: list = []


def _arrays():
    if not _ARRAYS:
        _ARRAYS.append(load_arrays())
    return _ARRAYS[0]


class ToolkitSteps:
    """``steps`` optimizer steps exactly as :func:`lrdecay.empirics.train.train_path` takes them (no evaluation)."""

    def __init__(self, cfg, data, channels_last=True, compile=False):
        self.cfg, self.data, self.channels_last = cfg, data, channels_last
        self.model = T.make_model(cfg, "cpu", channels_last=channels_last)
        self.opt = T.make_optimizer(cfg, self.model.parameters(), cfg.lr)
        self.st = T.state_from(None, dir=".", label="bench", lr=cfg.lr, end_epoch=10 ** 9, meta={}, cfg=cfg,
                               device="cpu")
        self.st.run_sum = torch.zeros((), dtype=torch.float64)
        self.spe = cfg.steps_per_epoch(len(data.y_train))
        self.model.train()
        self.step_model = torch.compile(self.model) if compile else self.model

    def __call__(self, steps: int) -> list[float]:
        cfg, st, losses = self.cfg, self.st, []
        for _ in range(steps):
            b = T.draw_step(st, cfg, self.data, self.model, self.channels_last)
            loss = V.target_loss(cfg.loss, self.step_model(b.x, b.masks).float(), b.y, b.targets)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            losses.append(loss.detach())
            if T.record_step(st, losses[-1].double(), self.spe):
                st.pos, st.epoch = 0, st.epoch + 1
        return [float(v) for v in losses]


class PlainSteps:
    """The same training written by hand: float images indexed by a permutation, ``nn.Dropout``,
    ``torch.optim.SGD``, the squared loss written out; default memory layout."""

    def __init__(self, cfg, data):
        self.cfg = cfg
        model = V.build_model(cfg.arch, cfg.width, cfg.batch_norm, cfg.dropout, num_classes=cfg.num_classes,
                              seed=cfg.seed, init=cfg.init)
        for i, m in enumerate(model.classifier):
            if isinstance(m, V.Dropout):
                model.classifier[i] = torch.nn.Dropout(m.p)
        self.model = model.train()
        mean = torch.tensor(D.MEAN).view(1, 3, 1, 1)
        std = torch.tensor(D.STD).view(1, 3, 1, 1)
        x = (data.x_train.float() / 255.0 - mean) / std
        self.x = F.pad(x, (4, 4, 4, 4)) if cfg.augment else x
        self.y = data.y_train
        self.t = F.one_hot(self.y, cfg.num_classes).float()
        self.opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                   weight_decay=cfg.weight_decay)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.spe = len(self.y) // cfg.batch_size
        self.pos, self.perm = 0, None

    def __call__(self, steps: int) -> list[float]:
        cfg, B, g, losses = self.cfg, self.cfg.batch_size, self.gen, []
        for _ in range(steps):
            if self.pos == 0:
                self.perm = torch.randperm(len(self.y), generator=g)
            idx = self.perm[self.pos * B:(self.pos + 1) * B]
            xb = self.x[idx]
            if cfg.augment:
                off = torch.randint(0, 9, (B, 2), generator=g).tolist()
                xb = torch.stack([im[:, i:i + 32, j:j + 32] for im, (i, j) in zip(xb, off)])
                flip = torch.rand(B, generator=g) < 0.5
                xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
            t = self.t[idx]
            if cfg.label_noise > 0:
                t = t + cfg.label_noise * torch.randn(t.shape, generator=g)
            loss = 0.5 * ((self.model(xb) - t) ** 2).sum(1).mean()
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            losses.append(loss.detach())
            self.pos = (self.pos + 1) % self.spe
        return [float(v) for v in losses]


def forward_flops(model, hw: int = 32) -> int:
    r"""Forward FLOPs per image from the layer shapes: convolutions :math:`2 k_h k_w (C_\text{in}/g) C_\text{out}
    H_\text{out} W_\text{out}`, linear layers :math:`2\,n_\text{in} n_\text{out}` (biases, ReLU, pooling and
    dropout not counted); max-pools and strided convolutions shrink the map."""
    flops, h, w = 0, hw, hw
    for m in model.features:
        if isinstance(m, torch.nn.Conv2d):
            (kh, kw), (ph, pw), (sh, sw) = m.kernel_size, m.padding, m.stride
            h, w = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
            flops += 2 * kh * kw * (m.in_channels // m.groups) * m.out_channels * h * w
        elif isinstance(m, torch.nn.MaxPool2d):
            k = m.kernel_size if isinstance(m.kernel_size, int) else m.kernel_size[0]
            s = k if m.stride is None else (m.stride if isinstance(m.stride, int) else m.stride[0])
            h, w = (h - k) // s + 1, (w - k) // s + 1
    return flops + sum(2 * m.in_features * m.out_features for m in model.classifier if isinstance(m, torch.nn.Linear))


def counted_flops(model, batch: int = 2) -> tuple[int, int]:
    """``torch.utils.flop_counter``'s forward and forward + backward FLOPs per image (an independent count)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = copy.deepcopy(model).train()
    x = torch.randn(batch, 3, 32, 32)
    with FlopCounterMode(display=False) as fc:
        out = model(x)
    fwd = fc.get_total_flops()
    with FlopCounterMode(display=False) as fc:
        model(x).sum().backward()
    return fwd // batch, fc.get_total_flops() // batch


def matmul_fn(n: int = MATMUL_N):
    """A float32 ``n × n`` product into a preallocated output; returns its FLOP count per call."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    c = torch.empty(n, n)
    return (lambda: torch.mm(a, b, out=c)), 2 * n ** 3


def eval_variants():
    """:func:`lrdecay.empirics.train.evaluate`'s body under ``torch.no_grad`` and under ``torch.inference_mode``
    (whichever decorator the toolkit's function carries)."""
    inner = T.evaluate.__wrapped__
    return torch.no_grad()(inner), torch.inference_mode()(inner)


def _max_rel_diff(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-30)))


def compile_check(name: str, check_steps: int = 3) -> dict:
    """Compile the profile's training step and compare its losses with eager ones from the same start."""
    cfg, data = profile_data(name)
    eager, comp = ToolkitSteps(cfg, data), ToolkitSteps(cfg, data, compile=True)
    t = time.perf_counter()
    first = comp(1)
    compile_s = time.perf_counter() - t
    got = first + comp(check_steps - 1)
    return {"compile_s": compile_s, "loss_max_rel_diff": _max_rel_diff(got, eager(check_steps)),
            "check_steps": check_steps}


def try_compile(name: str, threads: int, limit_s: int):
    """Does ``torch.compile`` of the step compile within ``limit_s``? Probed in a child process (a cold
    inductor cache in a fresh folder, killed at the limit); when it does, this process compiles from the
    warmed cache and the compiled step joins the timed rounds. Returns the probe's numbers or the reason."""
    import json
    import subprocess
    import tempfile

    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="vgg_speed_inductor_"))
    cmd = [sys.executable, __file__, "--compile-probe", name, "--threads", str(threads)]
    t = time.perf_counter()
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=limit_s, env=os.environ.copy())
    except subprocess.TimeoutExpired:
        return None, f"not compiled within {limit_s} s (the probe was stopped at the limit)"
    if run.returncode != 0:
        err = [ln for ln in run.stderr.strip().splitlines() if ln.strip()]
        return None, f"compile failed: {err[-1][:200] if err else f'exit {run.returncode}'}"
    res = json.loads(run.stdout.strip().splitlines()[-1]) | {"probe_wall_s": time.perf_counter() - t}
    cfg, data = profile_data(name)
    comp = ToolkitSteps(cfg, data, compile=True)
    comp(1)
    return comp, res


# ----------------------------------------------------------------------------- the measurement
def _iqr(v) -> tuple[float, float]:
    q = np.percentile(np.asarray(v, float), [25, 75])
    return float(q[0]), float(q[1])


def _ratios(times, fast, slow):
    """Per-round speed-up of ``fast`` over ``slow`` (time of slow / time of fast): median and quartiles."""
    r = [s / f for f, s in zip(times[fast], times[slow])]
    lo, hi = _iqr(r)
    return {"median": float(np.median(r)), "q25": lo, "q75": hi, "rounds": r}


def _loadavg():
    return os.getloadavg()[0]


def measure(profiles=PROFILES, threads: int = 1, repeats: int = 5, scale: float = 1.0,
            compile_profiles=("cpu",), compile_limit_s: int = COMPILE_LIMIT_S, eval_repeats: int = 11,
            log=print) -> dict:
    """Every number of the benchmark, in one process (see the module docstring)."""
    torch.set_num_threads(threads)
    load = [_loadavg()]
    steps = {p: max(1, round(STEPS[p] * scale)) for p in profiles}
    fns, efns, info = {}, {}, {}
    ev_nograd, ev_inf = eval_variants()
    for p in profiles:
        cfg, data = profile_data(p)
        tk, plain, nchw = ToolkitSteps(cfg, data), PlainSteps(cfg, data), ToolkitSteps(cfg, data, channels_last=False)
        ref, cl_check = nchw(3), tk(3)   # same start; losses of the two layouts (rounding differs)
        fwd = forward_flops(tk.model)
        cnt_fwd, cnt_train = counted_flops(tk.model)
        if cnt_fwd != fwd:
            raise RuntimeError(f"{p}: forward FLOPs from the shapes {fwd} != flop counter {cnt_fwd}")
        emodel = copy.deepcopy(tk.model)
        info[p] = {"cfg": cfg, "steps": steps[p], "batch": cfg.batch_size, "n_train": len(data.y_train),
                   "n_eval": len(data.y_test), "forward_flops": fwd, "counter_train_flops": cnt_train,
                   "layout_loss_max_rel_diff": _max_rel_diff(cl_check, ref)}
        n = steps[p]
        fns[f"{p}/toolkit"] = lambda f=tk, n=n: f(n)
        fns[f"{p}/plain"] = lambda f=plain, n=n: f(n)
        fns[f"{p}/contiguous"] = lambda f=nchw, n=n: f(n)
        xe, ye, lb, eb = data.x_test, data.y_test, cfg.loss, cfg.eval_batch
        efns[f"{p}/eval_no_grad"] = lambda m=emodel, x=xe, y=ye, lb=lb, eb=eb: ev_nograd(m, x, y, lb, eb)
        efns[f"{p}/eval_inference"] = lambda m=emodel, x=xe, y=ye, lb=lb, eb=eb: ev_inf(m, x, y, lb, eb)
        if p in compile_profiles:
            log(f"{p}: torch.compile of the training step (limit {compile_limit_s} s) ...")
            comp, res = try_compile(p, threads, compile_limit_s)
            info[p]["compile"] = res
            if comp is not None:
                fns[f"{p}/compiled"] = lambda f=comp, n=n: f(n)
                log(f"  compiled in {res['compile_s']:.1f} s; losses against eager: max rel. diff "
                    f"{res['loss_max_rel_diff']:.1e} over {res['check_steps']} steps")
            else:
                log(f"  failed: {res}")
    mm, mm_flops = matmul_fn()
    fns["matmul"] = mm
    load.append(_loadavg())
    t0 = time.perf_counter()
    med, times, _ = interleaved(fns, repeats)
    load.append(_loadavg())
    emed, etimes, eouts = interleaved(efns, eval_repeats)
    load.append(_loadavg())
    out = {"threads": threads, "repeats": repeats, "wall_s": time.perf_counter() - t0, "load": load,
           "peak_gflops": mm_flops / med["matmul"] / 1e9, "matmul_n": MATMUL_N,
           "matmul_gflops_rounds": [mm_flops / t / 1e9 for t in times["matmul"]], "eval_repeats": eval_repeats,
           "profiles": {}}
    out["best_peak_gflops"] = max(out["matmul_gflops_rounds"])
    for p in profiles:
        i = info[p]
        n_img = i["steps"] * i["batch"]
        r = {k: v for k, v in i.items() if k != "cfg"}
        c = i["cfg"]
        r["settings"] = (f"width {c.width}, batch {c.batch_size}, dropout {c.dropout}, "
                         f"{'crop + flip' if c.augment else 'no augmentation'}, label noise {c.label_noise}, "
                         f"{c.num_classes} classes, {i['n_train']} images")
        for k in ("toolkit", "plain", "contiguous", "compiled"):
            if f"{p}/{k}" in med:
                r[f"img_s_{k}"] = n_img / med[f"{p}/{k}"]
        r["ratio_plain"] = _ratios(times, f"{p}/toolkit", f"{p}/plain")
        r["ratio_contiguous"] = _ratios(times, f"{p}/toolkit", f"{p}/contiguous")   # > 1: channels-last faster
        if f"{p}/compiled" in med:
            r["ratio_compiled"] = _ratios(times, f"{p}/compiled", f"{p}/toolkit")   # > 1: compiled faster
        r["train_flops"] = 3 * i["forward_flops"]
        r["fraction_of_peak"] = r["train_flops"] * r["img_s_toolkit"] / (out["peak_gflops"] * 1e9)
        r["img_s_toolkit_best"] = n_img / min(times[f"{p}/toolkit"])
        r["fraction_of_best_peak"] = r["train_flops"] * r["img_s_toolkit_best"] / (out["best_peak_gflops"] * 1e9)
        r["eval_img_s_no_grad"] = i["n_eval"] / emed[f"{p}/eval_no_grad"]
        r["eval_img_s_inference"] = i["n_eval"] / emed[f"{p}/eval_inference"]
        r["ratio_inference"] = _ratios(etimes, f"{p}/eval_inference", f"{p}/eval_no_grad")  # > 1: inference faster
        r["eval_identical"] = eouts[f"{p}/eval_no_grad"] == eouts[f"{p}/eval_inference"]
        r["eval_result"] = eouts[f"{p}/eval_no_grad"]
        out["profiles"][p] = r
    pooled = [v for r in out["profiles"].values() for v in r["ratio_inference"]["rounds"]]
    lo, hi = _iqr(pooled)
    out["inference_pooled"] = {"median": float(np.median(pooled)), "q25": lo, "q75": hi, "rounds": pooled,
                               "identical": all(r["eval_identical"] for r in out["profiles"].values())}
    return out


# ----------------------------------------------------------------------------- report
def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version()}


def _beyond_noise(r) -> str:
    """Faster beyond the run-to-run noise: the lower quartile of the per-round speed-ups above 1."""
    if r["q25"] > 1:
        return "faster"
    if r["q75"] < 1:
        return "slower"
    return "within noise"


def report(res: dict, command: str) -> str:
    m = machine()
    L = ["| profile | settings | images/s toolkit | images/s plain loop | ratio (IQR) | FLOP/image (train) "
         "| fraction of measured peak (medians; best rounds) |", "|---|---|---:|---:|---:|---:|---:|"]
    for p, r in res["profiles"].items():
        q = r["ratio_plain"]
        L.append(f"| `{p}` | {r['settings']} | {r['img_s_toolkit']:,.0f} | {r['img_s_plain']:,.0f} | "
                 f"{q['median']:.2f}× ({q['q25']:.2f}–{q['q75']:.2f}) | {r['train_flops'] / 1e6:.1f} M | "
                 f"{100 * r['fraction_of_peak']:.0f} %; {100 * r['fraction_of_best_peak']:.0f} % |")
    L += ["", f"Peak: float32 `torch.mm` {res['matmul_n']} × {res['matmul_n']}, {res['peak_gflops']:.1f} GFLOP/s "
          f"(median; rounds {min(res['matmul_gflops_rounds']):.1f}–{max(res['matmul_gflops_rounds']):.1f}; the "
          "best-rounds column divides the toolkit's fastest round by the fastest matmul round, the least "
          "disturbed of each). "
          "FLOP/image = 3 × the forward count from the layer shapes (equal to `torch.utils.flop_counter`'s "
          "forward count); the flop counter's own forward + backward count is "
          + ", ".join(f"{r['counter_train_flops'] / 1e6:.1f} M (`{p}`)" for p, r in res["profiles"].items())
          + " (the first convolution needs no input gradient).", ""]
    L += ["| profile | variant | default | variant | speed-up of the better (IQR) | verdict | numbers |",
          "|---|---|---:|---:|---:|---|---|"]
    for p, r in res["profiles"].items():
        q = r["ratio_contiguous"]
        L.append(f"| `{p}` | training, contiguous layout vs channels-last (default) | {r['img_s_toolkit']:,.0f} img/s "
                 f"| {r['img_s_contiguous']:,.0f} img/s | channels-last {q['median']:.2f}× ({q['q25']:.2f}–"
                 f"{q['q75']:.2f}) | channels-last {_beyond_noise(q)} | losses over 3 steps: max rel. diff "
                 f"{r['layout_loss_max_rel_diff']:.1e} |")
        if "compile" in r:
            c = r["compile"]
            if "ratio_compiled" in r:
                q = r["ratio_compiled"]
                L.append(f"| `{p}` | training, `torch.compile` (cold compile: first step {c['compile_s']:.0f} s, "
                         f"probe process {c['probe_wall_s']:.0f} s) | "
                         f"{r['img_s_toolkit']:,.0f} img/s | {r['img_s_compiled']:,.0f} img/s | compiled "
                         f"{q['median']:.2f}× ({q['q25']:.2f}–{q['q75']:.2f}) | compiled {_beyond_noise(q)} | "
                         f"losses over {c['check_steps']} steps: max rel. diff {c['loss_max_rel_diff']:.1e} |")
            else:
                L.append(f"| `{p}` | training, `torch.compile` | {r['img_s_toolkit']:,.0f} img/s | failed | – | – "
                         f"| {c} |")
        q = r["ratio_inference"]
        L.append(f"| `{p}` | evaluation ({r['n_eval']} images), `inference_mode` vs `no_grad` | "
                 f"{r['eval_img_s_no_grad']:,.0f} img/s | {r['eval_img_s_inference']:,.0f} img/s | inference_mode "
                 f"{q['median']:.3f}× ({q['q25']:.3f}–{q['q75']:.3f}) | inference_mode {_beyond_noise(q)} | "
                 f"loss, accuracy {'bit-identical' if r['eval_identical'] else 'DIFFER'} |")
    q = res["inference_pooled"]
    L += ["", f"Evaluation, all profiles' rounds pooled ({len(q['rounds'])}): inference_mode {q['median']:.3f}× "
          f"({q['q25']:.3f}–{q['q75']:.3f}), {_beyond_noise(q)}; results "
          f"{'bit-identical' if q['identical'] else 'DIFFER'}."]
    steps = ", ".join(f"`{p}` {r['steps']} steps ({r['steps'] * r['batch']} images)" for p, r in res["profiles"].items())
    load = res["load"]
    L += ["", f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} (Python {m['python']}); "
          f"{res['threads']} torch thread(s). One-minute load average {min(load):.1f}–{max(load):.1f} during the run "
          f"(the machine was shared with other jobs). Per timed call: {steps}; one warm-up round, "
          f"{res['repeats']} timed rounds ({res['eval_repeats']} for the evaluations, interleaved among themselves), "
          f"all contenders interleaved in each round; medians; ratios are per-round "
          f"speed-ups with their interquartile range. 'Faster' means the lower quartile of the per-round "
          f"speed-ups is above 1. Timed part: {res['wall_s']:.0f} s.", "", f"Command: `{command}`"]
    return "\n".join(L) + "\n"


# ----------------------------------------------------------------------------- pytest-benchmark
@pytest.fixture(scope="module")
def cpu_setup():
    torch.set_num_threads(1)
    return profile_data("cpu")


def test_train_toolkit_cpu_profile(benchmark, cpu_setup):
    benchmark.pedantic(ToolkitSteps(*cpu_setup), args=(10,), rounds=3, warmup_rounds=1)


def test_train_plain_loop_cpu_profile(benchmark, cpu_setup):
    benchmark.pedantic(PlainSteps(*cpu_setup), args=(10,), rounds=3, warmup_rounds=1)


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_evaluate_cpu_profile(benchmark, cpu_setup, mode):
    cfg, data = cpu_setup
    fn = eval_variants()[mode == "inference_mode"]
    model = T.make_model(cfg)
    benchmark.pedantic(fn, args=(model, data.x_test, data.y_test, cfg.loss, cfg.eval_batch), rounds=3,
                       warmup_rounds=1)


@pytest.mark.parametrize("name", PROFILES)
def test_forward_flops_match_flop_counter(name):
    model = T.make_model(P.get_profile(name).train)
    assert forward_flops(model) == counted_flops(model)[0]


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--repeats", type=int, default=5, help="timed rounds (default 5)")
    ap.add_argument("--eval-repeats", type=int, default=11, help="timed rounds of the evaluations (default 11)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies the steps per timed call")
    ap.add_argument("--profiles", default=",".join(PROFILES), help=f"comma-separated, of {','.join(PROFILES)}")
    ap.add_argument("--compile", default="cpu", help="profiles whose step is also compiled ('' for none)")
    ap.add_argument("--compile-limit", type=int, default=COMPILE_LIMIT_S,
                    help=f"seconds allowed for a cold compile (default {COMPILE_LIMIT_S})")
    ap.add_argument("--md", help="also write the tables to this Markdown file")
    ap.add_argument("--compile-probe", help=argparse.SUPPRESS)   # the child process of try_compile
    a = ap.parse_args()
    if a.compile_probe:
        import json

        torch.set_num_threads(a.threads)
        print(json.dumps(compile_check(a.compile_probe)))
        sys.exit(0)
    profs = tuple(s for s in a.profiles.split(",") if s)
    bad = [s for s in profs if s not in PROFILES] + [s for s in a.compile.split(",") if s and s not in profs]
    if bad or a.threads < 1 or a.repeats < 1 or not a.scale > 0 or a.compile_limit < 1 or a.eval_repeats < 1:
        ap.error(f"--profiles/--compile: expected names among {','.join(PROFILES)} (compiled ones among the "
                 f"measured), --threads/--repeats/--eval-repeats/--compile-limit >= 1, --scale > 0; got "
                 f"{bad or (a.threads, a.repeats, a.compile_limit, a.scale)}")
    res = measure(profs, a.threads, a.repeats, a.scale, tuple(s for s in a.compile.split(",") if s), a.compile_limit,
                  a.eval_repeats)
    cmd = "PYTHONPATH=. python benchmarks/bench_vgg_speed.py " + " ".join(sys.argv[1:])
    text = report(res, cmd)
    print(text)
    if a.md:
        Path(a.md).write_text("# Training speed of the VGG trainer on the CPU\n\n" + text)
