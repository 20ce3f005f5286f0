r"""Loss landscapes in the plane of the trajectories' principal components.

1. **Collect.** Every checkpoint of the main path and of each subpath (the subpath starting at its
   branch point on the main path) is flattened to :math:`\theta_k \in \mathbb{R}^P`
   (trainable parameters; batch-norm running statistics are not parameters).
2. **PCA.** Fitted to the checkpoints after the main path's landing (train accuracy stays >= 99 %) and
   the subpaths branching there or later — never the initialisation, never a duplicated branch point
   (``fit="all"``: every checkpoint but step 0); every checkpoint is then projected on the components.
   With :math:`\bar\theta` the mean and :math:`X_c` the centred ``K × P`` matrix, the
   eigen-decomposition of the ``K × K`` Gram matrix :math:`X_c X_c^\top = U S^2 U^\top` gives the
   principal directions :math:`v_i = X_c^\top u_i / s_i` and the coordinates
   :math:`c_{ki} = s_i u_{ki}`; explained variance ratio :math:`s_i^2 / \sum_j s_j^2`. (``K`` is at
   most a few hundred, ``P`` up to millions: the Gram route costs :math:`O(K^2 P)` and never forms a
   ``P × P`` matrix.)
3. **Surface.** Flat: :math:`\theta(a, b) = \bar\theta + a v_1 + b v_2`. Curved (the authors'
   sheet): :math:`\theta(a, b) = \bar\theta + a v_1 + b v_2 + q(a) v_3` with
   :math:`q(a) = q_0 + q_1 a + q_2 a^2` the least-squares fit of the checkpoints' third coordinate
   against their first.
4. **Grid.** Train and test loss and accuracy at every point of an ``n × n`` grid covering the
   bounding box of the fitted checkpoints' projections plus ``margin`` (15 %) of its span on every side; the evaluation images are normalised once and kept on the
   device, and the network runs through ``functional_call`` on views of the flat parameter vectors —
   ``points_per_batch`` vectors at a time with ``torch.func.vmap`` on a GPU, one after another on a
   CPU (see :func:`evaluate_points`).
5. **Trajectories.** Each checkpoint's coordinates :math:`(c_{k1}, c_{k2})` and its distance to the
   surface, :math:`\|X_{c,k} - (c_{k1} v_1 + c_{k2} v_2)\|` (flat) or
   :math:`\|X_{c,k} - (c_{k1} v_1 + c_{k2} v_2 + q(c_{k1}) v_3)\|` (curved, measured at the projected
   coordinates), next to the checkpoint's own losses and the grid's (bilinear) value at its
   projection: where the two disagree, the trajectory is off the plane and the contours do not show
   its loss.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from tqdm.auto import tqdm

from lrdecay.theory.io import DirectoryLock, load_json, load_result, save_result

from . import data as D
from .analysis import landing_epoch
from .train import TrainConfig, ckpt_path, list_checkpoints, load_checkpoint
from .vgg import build_model, per_example_loss


FITS = ("post_landing", "all")


@dataclass
class LandscapeConfig:
    grid: int = 31                   # points per axis
    margin: float = 0.15             # fraction of the fitted checkpoints' span added on every side
    fit: str = "post_landing"        # checkpoints the PCA is fitted to: "post_landing" or "all" (never step 0)
    n_components: int = 4            # principal components reported (>= 2; >= 3 for curved)
    curved: bool = False
    train_size: int | None = None    # class-balanced evaluation subset of the training set (None: all)
    test_size: int | None = None     # ... of the test set
    points_per_batch: int = 16       # grid points evaluated together (vmap strategy)
    strategy: str = "auto"           # "vmap" (GPU), "loop" (CPU) or "auto"
    eval_batch: int = 500            # images per forward pass
    eval_checkpoints: bool = True    # also evaluate every checkpoint on the same images
    seed: int = 0

    def validate(self) -> "LandscapeConfig":
        def need(ok, name, rng):
            if not ok:
                raise ValueError(f"{name}: expected {rng}, got {getattr(self, name)!r}")

        need(isinstance(self.grid, int) and 2 <= self.grid <= 501, "grid", "an integer in 2..501")
        need(0 <= self.margin <= 10, "margin", "a fraction in [0, 10]")
        need(isinstance(self.n_components, int) and (3 if self.curved else 2) <= self.n_components <= 64,
             "n_components", f"an integer in {3 if self.curved else 2}..64")
        need(isinstance(self.points_per_batch, int) and self.points_per_batch >= 1, "points_per_batch", "an integer >= 1")
        need(isinstance(self.eval_batch, int) and self.eval_batch >= 1, "eval_batch", "an integer >= 1")
        need(self.strategy in STRATEGIES, "strategy", f"one of {STRATEGIES}")
        need(self.fit in FITS, "fit", f"one of {FITS}")
        return self

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "LandscapeConfig":
        known = {f.name for f in fields(cls)}
        if set(d) - known:
            raise ValueError(f"landscape config: unknown keys {sorted(set(d) - known)}; known keys {sorted(known)}")
        return cls(**d)


# ----------------------------------------------------------------------------- collecting checkpoints
def _subpath_dirs(out_dir: Path) -> list[Path]:
    return sorted(p for p in Path(out_dir).glob("sub_e*") if p.is_dir() and list_checkpoints(p))


def count_checkpoints(out_dir) -> int:
    """Number of rows :func:`collect_trajectories` would return (without loading anything)."""
    return len(list_checkpoints(Path(out_dir) / "main")) + sum(len(list_checkpoints(d)) + 1
                                                               for d in _subpath_dirs(out_dir))


def collect_trajectories(out_dir) -> dict:
    """Flattened parameters of every checkpoint (main path first, then the subpaths by decay epoch).

    Returns ``theta`` (``K × P`` float32), ``path`` (0 = main, i = i-th subpath), ``step``,
    ``labels`` (path names), ``decay_epochs``, ``names`` (parameter names, in flattening order) and
    ``duplicate`` (rows that repeat another row). A subpath's first row is its branch point on the main
    path, a copy of the main path's checkpoint there (kept so that a drawn subpath starts at its branch;
    flagged as a duplicate so that no fit counts it twice).
    """
    out_dir = Path(out_dir)
    main = list_checkpoints(out_dir / "main")
    if not main:
        raise FileNotFoundError(f"no main-path checkpoints in {out_dir / 'main'}; run 'lrdecay empirics main' first")
    subs = _subpath_dirs(out_dir)
    first = load_checkpoint(main[0][1])["model"]
    # trainable parameters in named_parameters() order (a state_dict lists each module's parameters
    # before its buffers, so dropping the batch-norm buffers leaves that order)
    names = [k for k in first if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    theta = np.empty((count_checkpoints(out_dir), sum(first[k].numel() for k in names)), np.float32)
    path_id, steps, dup = [], [], []

    def add(p, pid, step, duplicate=False):
        dup.append(duplicate)
        sd = load_checkpoint(p)["model"]
        theta[len(steps)] = torch.cat([sd[k].reshape(-1).float() for k in names]).numpy()
        path_id.append(pid)
        steps.append(step)

    for s, p in main:
        add(p, 0, s)
    labels, decay_epochs = ["main"], []
    for i, sd in enumerate(subs, start=1):
        ck = list_checkpoints(sd)
        e = int(sd.name[len("sub_e"):])
        branch_step = int(load_checkpoint(ck[0][1])["meta"]["branch_step"])
        add(ckpt_path(out_dir / "main", branch_step), i, branch_step, duplicate=True)
        for s, p in ck:
            add(p, i, s)
        labels.append(f"decay@{e}")
        decay_epochs.append(e)
    return {"theta": theta, "path": np.asarray(path_id), "step": np.asarray(steps), "labels": labels,
            "decay_epochs": decay_epochs, "names": names, "duplicate": np.asarray(dup, bool)}


def fit_rows(tr: dict, landing_step: int | None, fit: str = "post_landing") -> tuple[np.ndarray, str]:
    """Which rows of :func:`collect_trajectories` the PCA is fitted to, and a word on what was used.

    Never the initialisation (step 0: its displacement to everything else would be the first component)
    and never a duplicated row. ``"post_landing"``: the main path from its landing step on and every
    subpath that branches there or later — the part of the trajectory the paper's landscape is about;
    falls back to ``"all"`` when the path never landed.
    """
    base = (tr["step"] > 0) & ~tr["duplicate"]
    if fit == "all" or landing_step is None:
        return base, "all" if fit == "all" else "all (the main path never landed)"
    branch = {i: int(tr["step"][np.flatnonzero(tr["path"] == i)[0]]) for i in range(1, len(tr["labels"]))}
    late = np.array([(tr["step"][k] >= landing_step) if p == 0 else branch[int(p)] >= landing_step
                     for k, p in enumerate(tr["path"])], bool)
    return base & late, "post_landing"


# ----------------------------------------------------------------------------- PCA
@dataclass
class PCA:
    mean: np.ndarray                 # P
    components: np.ndarray           # k × P, orthonormal rows
    singular_values: np.ndarray      # all K (non-negative, descending)
    coords: np.ndarray               # K × k
    sq_norms: np.ndarray             # K: ||theta_k - mean||²

    @property
    def explained_variance_ratio(self) -> np.ndarray:
        s2 = self.singular_values ** 2
        return s2 / s2.sum()

    def distance_to_plane(self) -> np.ndarray:
        """:math:`\\|X_{c,k} - c_{k1} v_1 - c_{k2} v_2\\|` for every checkpoint."""
        return np.sqrt(np.maximum(self.sq_norms - (self.coords[:, :2] ** 2).sum(1), 0.0))

    def distance_to_sheet(self, q: np.ndarray) -> np.ndarray:
        """Distance to the curved sheet at the projected coordinates (needs 3 components)."""
        c = self.coords
        off = c[:, 2] - np.polyval(q[::-1], c[:, 0])
        return np.sqrt(np.maximum(self.sq_norms - (c[:, :3] ** 2).sum(1) + off ** 2, 0.0))


def pca(theta: np.ndarray, k: int = 3, anchor: int = -1, block: int = 1 << 18) -> PCA:
    """PCA of the rows of ``theta`` (``K × P``) through the Gram matrix, accumulated in float64 by column blocks.

    Signs are fixed so that row ``anchor`` has non-negative coordinates (the main path's end, say).
    """
    theta = np.asarray(theta)
    K, P = theta.shape
    if K < 3:
        raise ValueError(f"theta: PCA of a trajectory needs at least 3 checkpoints, got {K}")
    k = min(k, K - 1)
    mean = theta.mean(0, dtype=np.float64)
    G = np.zeros((K, K))
    for j in range(0, P, block):
        B = theta[:, j:j + block].astype(np.float64) - mean[j:j + block]
        G += B @ B.T
    evals, U = np.linalg.eigh(G)
    order = np.argsort(evals)[::-1]
    evals, U = np.maximum(evals[order], 0.0), U[:, order]
    s = np.sqrt(evals)
    comps = np.empty((k, P))
    for j in range(0, P, block):
        B = theta[:, j:j + block].astype(np.float64) - mean[j:j + block]
        comps[:, j:j + block] = (U[:, :k].T @ B) / s[:k, None]
    coords = U[:, :k] * s[:k]
    sign = np.where(coords[anchor] < 0, -1.0, 1.0)
    return PCA(mean, comps * sign[:, None], s, coords * sign, np.diag(G).copy())


def project(p: PCA, theta: np.ndarray, block: int = 1 << 18) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of the rows of ``theta`` on ``p``'s components and their squared distances to its mean."""
    theta = np.asarray(theta)
    coords = np.zeros((len(theta), len(p.components)))
    sq = np.zeros(len(theta))
    for j in range(0, theta.shape[1], block):
        B = theta[:, j:j + block].astype(np.float64) - p.mean[j:j + block]
        coords += B @ p.components[:, j:j + block].T
        sq += (B * B).sum(1)
    return coords, sq


def fit_sheet(coords: np.ndarray) -> np.ndarray:
    """Least-squares ``(q0, q1, q2)`` of ``c3 ≈ q0 + q1 c1 + q2 c1²``."""
    a = coords[:, 0]
    A = np.stack([np.ones_like(a), a, a * a], 1)
    return np.linalg.lstsq(A, coords[:, 2], rcond=None)[0]


def grid_axes(coords: np.ndarray, n: int, margin: float) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = coords[:, :2].min(0), coords[:, :2].max(0)
    span = np.maximum(hi - lo, 1e-12)
    lo, hi = lo - margin * span, hi + margin * span
    return np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n)


def surface_points(p: PCA, a: np.ndarray, b: np.ndarray, q: np.ndarray | None = None) -> np.ndarray:
    """Parameter vectors θ(a_i, b_i) (rows), flat or on the curved sheet ``q``."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    th = p.mean[None] + a[:, None] * p.components[0] + b[:, None] * p.components[1]
    if q is not None:
        th = th + np.polyval(q[::-1], a)[:, None] * p.components[2]
    return th


# ----------------------------------------------------------------------------- evaluation
def _param_specs(model) -> list[tuple[str, torch.Size, int]]:
    return [(n, p.shape, p.numel()) for n, p in model.named_parameters()]


def _unflatten(theta: torch.Tensor, specs) -> dict:
    """``G × P`` → {name: ``G × shape``} (views)."""
    out, off = {}, 0
    for name, shape, numel in specs:
        out[name] = theta[:, off:off + numel].view(theta.shape[0], *shape)
        off += numel
    return out


STRATEGIES = ("auto", "vmap", "loop")


@torch.no_grad()
def evaluate_points(model, thetas, x, y, loss: str, points_per_batch: int = 16, eval_batch: int = 500,
                    progress: bool = False, desc: str = "grid", strategy: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Mean loss and accuracy on uint8 images ``x`` at each parameter vector (row of ``thetas``).

    The images are normalised once and kept on the device; the parameters are never copied into the
    model: ``functional_call`` runs it with views into the flat vectors. ``strategy``:

    * ``"vmap"`` — ``points_per_batch`` vectors at a time through ``vmap(functional_call)``: one batched
      (grouped-convolution) forward pass serves the whole group; the fast path on a GPU, where one small
      network alone leaves the device idle;
    * ``"loop"`` — one ``functional_call`` per point; the fast path on a CPU, where grouped convolutions
      run several times slower than plain ones (see benchmarks/bench_empirics.py);
    * ``"auto"`` — ``vmap`` on CUDA, ``loop`` otherwise.

    The model is used in evaluation mode; a model with batch norm should have had
    :func:`torch.func.replace_all_batch_norm_modules_` applied (batch statistics per image batch, since
    running statistics are not defined off the trajectory).
    """
    from torch.func import functional_call, vmap
    from tqdm.auto import tqdm

    if strategy not in STRATEGIES:
        raise ValueError(f"strategy: expected one of {STRATEGIES}, got {strategy!r}")
    dev = x.device
    if strategy == "auto":
        strategy = "vmap" if dev.type == "cuda" else "loop"
    group = points_per_batch if strategy == "vmap" else 1
    model.eval()
    specs = _param_specs(model)
    buffers = {n: b for n, b in model.named_buffers()}
    thetas = torch.as_tensor(np.asarray(thetas), dtype=torch.float32)
    xs = [D.normalize(x[i:i + eval_batch]) for i in range(0, len(y), eval_batch)]
    ys = [y[i:i + eval_batch] for i in range(0, len(y), eval_batch)]

    def f(params, xb, yb):
        out = functional_call(model, (params, buffers), (xb,))
        return per_example_loss(loss, out, yb).sum(), (out.argmax(-1) == yb).sum()

    batched = vmap(f, in_dims=(0, None, None))
    losses, accs = [], []
    for i in tqdm(range(0, len(thetas), group), desc=desc, disable=not progress, leave=False):
        th = thetas[i:i + group].to(dev)
        params = _unflatten(th, specs)
        tot_l = torch.zeros(len(th), dtype=torch.float64, device=dev)
        tot_a = torch.zeros(len(th), dtype=torch.float64, device=dev)
        for xb, yb in zip(xs, ys):
            if strategy == "vmap":
                l, a = batched(params, xb, yb)
            else:
                l, a = f({k: v[0] for k, v in params.items()}, xb, yb)
            tot_l += l.double()
            tot_a += a.double()
        losses.append((tot_l / len(y)).cpu())
        accs.append((tot_a / len(y)).cpu())
    return torch.cat(losses).numpy(), torch.cat(accs).numpy()


@torch.no_grad()
def evaluate_points_loop(model, thetas, x, y, loss: str, eval_batch: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Reference: one point at a time (copy θ into the model, evaluate). Same numbers, slower."""
    from .train import evaluate

    model.eval()
    ls, accs = [], []
    for th in np.asarray(thetas):
        torch.nn.utils.vector_to_parameters(torch.as_tensor(th, dtype=torch.float32, device=x.device),
                                            model.parameters())
        l, a = evaluate(model, x, y, loss, eval_batch)
        ls.append(l)
        accs.append(a)
    return np.asarray(ls), np.asarray(accs)


def bilinear(ax: np.ndarray, bx: np.ndarray, Z: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of ``Z[i, j] = f(ax[i], bx[j])`` at the points ``(a, b)``."""
    from scipy.interpolate import RegularGridInterpolator

    return RegularGridInterpolator((ax, bx), Z, bounds_error=False, fill_value=None)(np.stack([a, b], 1))


# ----------------------------------------------------------------------------- the stage
def run_landscape(out_dir, tcfg: TrainConfig, lcfg: LandscapeConfig, data: D.CifarTensors,
                  progress: bool = True) -> dict:
    """PCA of all checkpoints, the grid of losses, the projected trajectories → ``out/landscape.npz``."""
    lcfg.validate()
    with DirectoryLock(out_dir, "out"):
        return _run_landscape(Path(out_dir), tcfg, lcfg, data, progress)


def _fit_surface(out_dir: Path, tr: dict, lcfg: LandscapeConfig):
    """The checkpoints the PCA is fitted to (all, or the main path from landing on), the PCA with every
    checkpoint projected, the curved sheet (or ``None``) and each checkpoint's distance off the surface;
    returns ``(fit, fit_used, land_step, pca, sheet, distance)``."""
    main_res = Path(out_dir) / "main" / "result.json"
    land_step = None
    if main_res.exists():
        res = load_json(main_res)
        land = landing_epoch(res["metrics"])
        land_step = None if land is None else land * int(res["steps_per_epoch"])
    fit, fit_used = fit_rows(tr, land_step, lcfg.fit)
    if fit.sum() < 3:
        raise ValueError(f"landscape: the PCA needs at least 3 checkpoints to fit ({fit_used}), found "
                         f"{int(fit.sum())}; save checkpoints more often (ckpt_every) or use fit='all'")
    idx = np.flatnonzero(fit)
    main_fit = idx[tr["path"][idx] == 0]
    p0 = pca(tr["theta"][idx], lcfg.n_components,
             anchor=int(np.flatnonzero(idx == main_fit[-1])[0]) if len(main_fit) else -1)
    coords, sq = project(p0, tr["theta"])
    p = PCA(p0.mean, p0.components, p0.singular_values, coords, sq)
    q = fit_sheet(coords[fit]) if lcfg.curved else None
    dist = p.distance_to_sheet(q) if lcfg.curved else p.distance_to_plane()
    return fit, fit_used, land_step, p, q, dist


def _eval_sets(data: D.CifarTensors, lcfg: LandscapeConfig):
    """The class-balanced train and test subsets the landscape is evaluated on, and their indices."""
    dev = data.device
    itr = D.balanced_indices(data.y_train.cpu().numpy(), lcfg.train_size, None, lcfg.seed)
    ite = D.balanced_indices(data.y_test.cpu().numpy(), lcfg.test_size, None, lcfg.seed + 1)
    sets = {"train": (data.x_train[torch.as_tensor(itr, device=dev)], data.y_train[torch.as_tensor(itr, device=dev)]),
            "test": (data.x_test[torch.as_tensor(ite, device=dev)], data.y_test[torch.as_tensor(ite, device=dev)])}
    return sets, itr, ite


def _run_landscape(out_dir: Path, tcfg: TrainConfig, lcfg: LandscapeConfig, data: D.CifarTensors,
                   progress: bool) -> dict:
    tr = collect_trajectories(out_dir)
    fit, fit_used, land_step, p, q, dist = _fit_surface(out_dir, tr, lcfg)
    coords = p.coords
    ax, bx = grid_axes(coords[fit], lcfg.grid, lcfg.margin)
    A, B = np.meshgrid(ax, bx, indexing="ij")

    dev = data.device
    sets, itr, ite = _eval_sets(data, lcfg)
    model = build_model(tcfg.arch, tcfg.width, tcfg.batch_norm, tcfg.dropout, num_classes=tcfg.num_classes,
                        init=tcfg.init).to(dev)
    if tcfg.batch_norm:
        torch.func.replace_all_batch_norm_modules_(model)
    n = lcfg.grid
    arrays = {"a": ax, "b": bx}
    K = len(tr["theta"])
    chunk = max(4 * lcfg.points_per_batch, 64)  # grid points built at a time (n² × P floats would not fit)
    bar = tqdm(total=2 * (n * n + K * lcfg.eval_checkpoints), desc="landscape", unit="pt", disable=not progress,
               leave=False)

    # resumable: every finished chunk goes to landscape.partial.npz, keyed by the settings and the PCA
    partial = out_dir / "landscape.partial.npz"
    key = json.loads(json.dumps({"train": tcfg.to_dict(), "landscape": lcfg.to_dict(), "n_checkpoints": K,
                                 "singular_values": [float(v) for v in p.singular_values[:4]]}))
    done: dict[str, np.ndarray] = {}
    if partial.exists():
        parr, pcfg = load_result(partial)
        if pcfg.get("key") == key:
            done = dict(parr)

    def run(name, thetas, x, y):
        if f"{name}_loss" not in done:
            out = evaluate_points(model, thetas(), x, y, tcfg.loss, lcfg.points_per_batch, lcfg.eval_batch,
                                  strategy=lcfg.strategy)
            done[f"{name}_loss"], done[f"{name}_acc"] = out
            save_result(partial, done, {"key": key})
        bar.update(len(done[f"{name}_loss"]))
        return done[f"{name}_loss"], done[f"{name}_acc"]

    for split, (x, y) in sets.items():
        res = [run(f"{split}_grid{i}", lambda i=i: surface_points(p, A.ravel()[i:i + chunk], B.ravel()[i:i + chunk],
                                                                   q).astype(np.float32), x, y)
               for i in range(0, n * n, chunk)]
        l, acc = np.concatenate([r[0] for r in res]), np.concatenate([r[1] for r in res])
        arrays[f"{split}_loss"], arrays[f"{split}_acc"] = l.reshape(n, n), acc.reshape(n, n)
        if lcfg.eval_checkpoints:
            res = [run(f"{split}_ckpt{i}", lambda i=i: tr["theta"][i:i + chunk], x, y) for i in range(0, K, chunk)]
            cl, ca = np.concatenate([r[0] for r in res]), np.concatenate([r[1] for r in res])
            arrays[f"ckpt_{split}_loss"], arrays[f"ckpt_{split}_acc"] = cl, ca
        arrays[f"proj_{split}_loss"] = bilinear(ax, bx, arrays[f"{split}_loss"], p.coords[:, 0], p.coords[:, 1])
    arrays |= {"coords": p.coords, "distance": dist, "norm_from_mean": np.sqrt(p.sq_norms), "path": tr["path"],
               "step": tr["step"], "explained_variance_ratio": p.explained_variance_ratio[:lcfg.n_components],
               "singular_values": p.singular_values, "sheet": q if q is not None else np.zeros(0),
               "fit": fit, "duplicate": tr["duplicate"]}
    config = {"train": tcfg.to_dict(), "landscape": lcfg.to_dict(), "labels": tr["labels"],
              "decay_epochs": tr["decay_epochs"], "n_parameters": int(tr["theta"].shape[1]),
              "n_checkpoints": int(tr["theta"].shape[0]), "eval_train_size": int(len(itr)),
              "eval_test_size": int(len(ite)), "data": data.info, "seed": tcfg.seed, "fit_used": fit_used,
              "landing_step": land_step, "n_fitted": int(fit.sum())}
    bar.close()
    save_result(out_dir / "landscape.npz", arrays, config)
    partial.unlink(missing_ok=True)
    return {"arrays": arrays, "config": config}
