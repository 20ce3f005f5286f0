r"""Curvature of the training loss along the trajectory: Hessian trace and top eigenvalue.

The loss is the deterministic training loss on a fixed, class-balanced evaluation subset
:math:`S` of the training images (no augmentation, dropout off, weight decay not included):
:math:`L_S(\theta) = \frac{1}{|S|}\sum_{i\in S} \ell(f(x_i;\theta), y_i)`, and :math:`H = \nabla^2 L_S(\theta)`.

* **Hessian–vector products** :math:`Hv = \nabla_\theta(\nabla_\theta L_S \cdot v)` by double backward
  (autograd through the gradient; as fast here as forward-over-reverse ``torch.func.jvp(grad(L_S))``),
  batch by batch (:math:`Hv = \sum_b \frac{|B_b|}{|S|} H_b v`). Never forms :math:`H`.
* **Trace** (Hutchinson 1990): :math:`\operatorname{tr} H = \mathbb E[v^\top H v]` for Rademacher
  :math:`v \in \{\pm1\}^P`; with ``m`` probes :math:`\widehat{\operatorname{tr}} = \frac1m\sum_i v_i^\top H v_i`,
  standard error :math:`s/\sqrt m` (:math:`s` the sample standard deviation of the :math:`v_i^\top H v_i`).
* **Top eigenvalue** (Lanczos with full reorthogonalisation): ``k`` steps from a Rademacher start
  :math:`q_1 = v/\|v\|` build the tridiagonal :math:`T_k = Q_k^\top H Q_k` (:math:`\alpha_j = q_j^\top H q_j`,
  :math:`\beta_j = \|r_j\|`); the largest eigenvalue :math:`\theta` of :math:`T_k` (a Ritz value, never above
  :math:`\lambda_{\max}`) estimates :math:`\lambda_{\max}(H)`, and :math:`|\beta_k s_k|` (:math:`s` its
  eigenvector of :math:`T_k`) equals :math:`\|H y - \theta y\|` for the Ritz vector :math:`y`.

:func:`run_curvature` evaluates both at main-path checkpoints and at every subpath's end, with probes
seeded by (seed, path, step), and writes ``curvature.json`` after every point (resumable).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from lrdecay.theory.io import DirectoryLock, load_json, save_json

from . import data as D
from .train import TrainConfig, list_checkpoints, load_checkpoint, make_model, provenance, subpath_dir
from .vgg import target_loss


@dataclass
class CurvatureConfig:
    probes: int = 20                 # Rademacher probes of the Hutchinson estimate (>= 1)
    lanczos_steps: int = 20          # Krylov dimension of the top-eigenvalue estimate (>= 2)
    eval_size: int | None = 500      # class-balanced subset of the training images (None: all)
    eval_batch: int = 500
    main_every: int | None = None    # main-path points every this many epochs (None: at the decay epochs and the end)
    subpaths: bool = True            # also at each subpath's end
    seed: int = 0

    def validate(self) -> "CurvatureConfig":
        def need(ok, name, rng):
            if not ok:
                raise ValueError(f"{name}: expected {rng}, got {getattr(self, name)!r}")

        def is_int(v):
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

        need(is_int(self.probes) and self.probes >= 1, "probes", "an integer >= 1 (Hessian probes)")
        need(is_int(self.lanczos_steps) and self.lanczos_steps >= 2, "lanczos_steps", "an integer >= 2")
        need(self.eval_size is None or (is_int(self.eval_size) and self.eval_size >= 1), "eval_size",
             "an integer >= 1 or none")
        need(is_int(self.eval_batch) and self.eval_batch >= 1, "eval_batch", "an integer >= 1")
        need(self.main_every is None or (is_int(self.main_every) and self.main_every >= 1), "main_every",
             "an integer >= 1 or none")
        need(isinstance(self.subpaths, bool), "subpaths", "true or false")
        need(is_int(self.seed) and self.seed >= 0, "seed", "an integer >= 0")
        return self

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "CurvatureConfig":
        known = {f.name for f in fields(cls)}
        if set(d) - known:
            raise ValueError(f"curvature config: unknown keys {sorted(set(d) - known)}; known keys {sorted(known)}")
        return cls(**d)


# ----------------------------------------------------------------------------- Hessian-vector products
class HessianOperator:
    """:math:`v \\mapsto H v` for the loss of ``model`` at ``params`` on images ``x`` (uint8) with labels ``y``.

    Vectors are flat float32 tensors in ``model.named_parameters()`` order. The model runs in evaluation
    mode. ``loss_and_grad()`` gives :math:`L_S` and :math:`\\nabla L_S` at the same point.
    """

    def __init__(self, model, params: dict, x, y, loss: str, batch: int = 500):
        self.model = model.eval()
        self.names = [n for n, _ in model.named_parameters()]
        self.shapes = [params[n].shape for n in self.names]
        self.sizes = [params[n].numel() for n in self.names]
        self.params = {n: params[n].detach().to(x.device, torch.float32) for n in self.names}
        self.buffers = {n: b for n, b in model.named_buffers()}
        self.xs = [D.normalize(x[i:i + batch]) for i in range(0, len(y), batch)]
        self.ys = [y[i:i + batch] for i in range(0, len(y), batch)]
        self.n = len(y)
        self.loss = loss
        self.dim = sum(self.sizes)
        self.calls = 0

    def _f(self, p, xb, yb):
        from torch.func import functional_call

        return target_loss(self.loss, functional_call(self.model, (p, self.buffers), (xb,)), yb)

    def unflat(self, v: torch.Tensor) -> dict:
        return {n: t.view(s) for n, t, s in zip(self.names, torch.split(v, self.sizes), self.shapes)}

    def flat(self, d) -> torch.Tensor:
        return torch.cat([t.reshape(-1) for t in (d.values() if isinstance(d, dict) else d)])

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        """:math:`Hv` by double backward: :math:`\\nabla_\\theta (\\nabla_\\theta L_S \\cdot v)`."""
        self.calls += 1
        vs = torch.split(v.to(torch.float32), self.sizes)
        out = torch.zeros(self.dim, dtype=torch.float32, device=v.device)
        for xb, yb in zip(self.xs, self.ys):
            leaves = {n: t.clone().requires_grad_(True) for n, t in self.params.items()}
            g = torch.autograd.grad(self._f(leaves, xb, yb), list(leaves.values()), create_graph=True)
            gv = sum((gi * vi.view_as(gi)).sum() for gi, vi in zip(g, vs))
            out += self.flat(torch.autograd.grad(gv, list(leaves.values()))) * (len(yb) / self.n)
        return out

    def loss_and_grad(self) -> tuple[float, torch.Tensor]:
        g = torch.zeros(self.dim, dtype=torch.float32)
        tot = 0.0
        for xb, yb in zip(self.xs, self.ys):
            leaves = {n: t.clone().requires_grad_(True) for n, t in self.params.items()}
            lb = self._f(leaves, xb, yb)
            gb = torch.autograd.grad(lb, list(leaves.values()))
            g += self.flat(gb).cpu() * (len(yb) / self.n)
            tot += float(lb.detach()) * len(yb) / self.n
        return tot, g


def rademacher(dim: int, generator: torch.Generator, device="cpu") -> torch.Tensor:
    return (torch.randint(0, 2, (dim,), generator=generator, device=device) * 2 - 1).to(torch.float32)


def hutchinson_trace(hvp, dim: int, probes: int, generator: torch.Generator, device="cpu") -> dict:
    """:math:`\\frac1m\\sum_i v_i^\\top H v_i` over ``probes`` Rademacher vectors, with its standard error."""
    if not (isinstance(probes, int) and probes >= 1):
        raise ValueError(f"probes: expected an integer >= 1 (Hessian probes), got {probes!r}")
    s = []
    for _ in range(probes):
        v = rademacher(dim, generator, device)
        s.append(float(torch.dot(v.double(), hvp(v).double())))
    s = np.asarray(s)
    se = float(s.std(ddof=1) / math.sqrt(len(s))) if len(s) > 1 else float("nan")
    return {"trace": float(s.mean()), "trace_se": se, "samples": s.tolist()}


def lanczos_top(hvp, dim: int, steps: int, generator: torch.Generator, device="cpu") -> dict:
    """Largest Ritz value of ``steps`` Lanczos steps (full reorthogonalisation, float64 recurrences).

    Returns ``top`` (the estimate of :math:`\\lambda_{\\max}`), ``bottom`` (smallest Ritz value),
    ``residual`` (:math:`\\|Hy-\\theta y\\|`), ``ritz`` (all Ritz values) and ``steps`` actually taken (fewer
    when the Krylov space is exhausted).
    """
    if not (isinstance(steps, int) and steps >= 2):
        raise ValueError(f"lanczos_steps: expected an integer >= 2, got {steps!r}")
    steps = min(steps, dim)
    q = rademacher(dim, generator, device).double()
    q /= q.norm()
    Q = [q]
    alpha, beta = [], []
    for j in range(steps):
        w = hvp(Q[j].float()).double()
        a = float(torch.dot(w, Q[j]))
        alpha.append(a)
        for qi in Q:                       # full reorthogonalisation (twice is enough)
            w -= torch.dot(w, qi) * qi
        for qi in Q:
            w -= torch.dot(w, qi) * qi
        b = float(w.norm())
        if j == steps - 1 or b < 1e-10 * max(1.0, abs(a)):
            beta.append(b)
            break
        beta.append(b)
        Q.append(w / b)
    k = len(alpha)
    T = np.diag(alpha) + np.diag(beta[:k - 1], 1) + np.diag(beta[:k - 1], -1)
    evals, evecs = np.linalg.eigh(T)
    return {"top": float(evals[-1]), "bottom": float(evals[0]), "residual": float(abs(beta[k - 1] * evecs[-1, -1])),
            "ritz": evals.tolist(), "steps": k}


def curvature_at(model, params: dict, x, y, loss: str, cfg: CurvatureConfig, generator: torch.Generator) -> dict:
    """Trace (Hutchinson), top eigenvalue (Lanczos), loss, gradient norm of :math:`L_S` at ``params`` and the
    parameters' Euclidean norm (without batch norm, rescaling one layer up and the next down leaves the
    function alone but changes the trace, so a falling trace is read beside the norm)."""
    op = HessianOperator(model, params, x, y, loss, cfg.eval_batch)
    lval, g = op.loss_and_grad()
    tr = hutchinson_trace(op, op.dim, cfg.probes, generator, x.device)
    lz = lanczos_top(op, op.dim, cfg.lanczos_steps, generator, x.device)
    pnorm = float(torch.sqrt(sum((v.double() ** 2).sum() for v in op.params.values())))
    return {"loss": lval, "grad_norm": float(g.norm()), "param_norm": pnorm, "trace": tr["trace"],
            "trace_se": tr["trace_se"],
            "trace_samples": tr["samples"], "top_eig": lz["top"], "top_eig_residual": lz["residual"],
            "bottom_ritz": lz["bottom"], "lanczos_steps": lz["steps"], "hvp_calls": op.calls}


# ----------------------------------------------------------------------------- the stage
def curvature_points(out_dir, tcfg: TrainConfig, ccfg: CurvatureConfig, n_train: int) -> list[dict]:
    """The checkpoints to evaluate: main path (every ``main_every`` epochs, else the decay epochs and the end)
    and, with ``subpaths``, every finished subpath's last checkpoint."""
    out_dir = Path(out_dir)
    spe = tcfg.steps_per_epoch(n_train)
    main = dict(list_checkpoints(out_dir / "main"))
    if ccfg.main_every:
        epochs = list(range(ccfg.main_every, tcfg.epochs + 1, ccfg.main_every))
        bad = [e for e in epochs if e * spe not in main and e * spe % tcfg.ckpt_every]
        if bad:
            raise ValueError(f"main_every: epoch {bad[0]} ends at step {bad[0] * spe}, which is not a checkpoint "
                             f"(every {tcfg.ckpt_every} steps, {spe} per epoch)")
        if tcfg.epochs not in epochs:
            epochs.append(tcfg.epochs)
    else:
        epochs = sorted(set(tcfg.decay_epochs) | {tcfg.epochs})
    pts = []
    for e in epochs:
        s = e * spe
        if s not in main:
            raise FileNotFoundError(f"curvature: main-path checkpoint at epoch {e} (step {s}) not found in "
                                    f"{out_dir / 'main'}; run the main path first")
        pts.append({"path": "main", "epoch": e, "step": s, "file": str(main[s])})
    if ccfg.subpaths:
        for e in tcfg.decay_epochs:
            ck = list_checkpoints(subpath_dir(out_dir, e))
            if not ck or not (subpath_dir(out_dir, e) / "result.json").exists():
                raise FileNotFoundError(f"curvature: subpath decayed at epoch {e} has not finished "
                                        f"({subpath_dir(out_dir, e)}); run the subpaths first")
            pts.append({"path": f"decay@{e}", "decay_epoch": e, "epoch": tcfg.subpath_end(e), "step": ck[-1][0],
                        "file": str(ck[-1][1])})
    return pts


def _point_seed(seed: int, path: str, step: int) -> int:
    tag = 0 if path == "main" else int(path.split("@")[1]) + 1
    return int(np.random.SeedSequence([int(seed), tag, int(step)]).generate_state(1)[0])


def run_curvature(out_dir, tcfg: TrainConfig, ccfg: CurvatureConfig, data: D.CifarTensors,
                  progress: bool = True) -> dict:
    """Curvature at every point of :func:`curvature_points` → ``out/curvature.json`` (resumable)."""
    from tqdm.auto import tqdm

    ccfg.validate()
    out_dir = Path(out_dir)
    with DirectoryLock(out_dir, "out"):
        dev = data.device
        pts = curvature_points(out_dir, tcfg, ccfg, len(data.y_train))
        idx = torch.as_tensor(D.balanced_indices(data.y_train.cpu().numpy(), ccfg.eval_size, None, ccfg.seed),
                              device=dev)
        x, y = data.x_train[idx], data.y_train[idx]
        config = {"curvature": ccfg.to_dict(), "train": tcfg.to_dict(), "eval_size": int(len(idx)),
                  "seed": tcfg.seed}
        p = out_dir / "curvature.json"
        rows = []
        if p.exists():
            old = load_json(p)
            if _same(old.get("config"), config):
                rows = old["rows"]
        done = {(r["path"], r["step"]) for r in rows}
        model = make_model(tcfg, dev)
        todo = [pt for pt in pts if (pt["path"], pt["step"]) not in done]
        for pt in tqdm(todo, desc="curvature", unit="pt", disable=not progress, leave=False):
            sd = load_checkpoint(Path(pt["file"]), dev)["model"]
            gen = torch.Generator(device=dev)
            gen.manual_seed(_point_seed(ccfg.seed, pt["path"], pt["step"]))
            r = curvature_at(model, sd, x, y, tcfg.loss, ccfg, gen)
            rows.append({k: v for k, v in pt.items() if k != "file"} | r)
            save_json(p, {"config": config, "rows": rows})
        order = {(pt["path"], pt["step"]): i for i, pt in enumerate(pts)}
        rows = sorted((r for r in rows if (r["path"], r["step"]) in order), key=lambda r: order[(r["path"], r["step"])])
        # a row's labels (its epoch) come from its point, so a row reused from an earlier call carries today's
        rows = [r | {k: v for k, v in pts[order[(r["path"], r["step"])]].items() if k != "file"} for r in rows]
        out = {"config": config, "rows": rows}
        save_json(p, out | {"provenance": provenance()})
        return out


def _same(a, b) -> bool:
    import json

    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)
