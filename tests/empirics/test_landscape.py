"""PCA of trajectories, the curved sheet, and grid evaluation against closed forms."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lrdecay.empirics import data as D
from lrdecay.empirics import landscape as L
from lrdecay.empirics import train as T
from lrdecay.empirics.vgg import build_model

from tests.empirics.helpers import tiny_arrays, tiny_cfg  # noqa: E402


# --------------------------------------------------------------------------- PCA
def planted(K=30, P=500, noise=1e-3, seed=0):
    """Rows m + a_k u1 + b_k u2 + e_k with orthonormal u1, u2 and e_k orthogonal to both."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(P, 2)))
    u1, u2 = Q[:, 0], Q[:, 1]
    a, b = rng.normal(0, 3.0, K), rng.normal(0, 1.0, K)
    e = rng.normal(0, noise, (K, P))
    e -= np.outer(e @ u1, u1) + np.outer(e @ u2, u2)
    m = rng.normal(size=P)
    return m + np.outer(a, u1) + np.outer(b, u2) + e, u1, u2, e


def test_pca_recovers_planted_plane_and_matches_svd():
    X, u1, u2, e = planted()
    p = L.pca(X, 3, block=37)  # odd block size: exercises the blocked accumulation
    Uplane = np.stack([u1, u2], 1)
    for v in p.components[:2]:  # the first two directions span the planted plane
        assert np.linalg.norm(Uplane.T @ v) > 1 - 1e-5
    np.testing.assert_allclose(p.components @ p.components.T, np.eye(3), atol=1e-10)
    # oracle: numpy's SVD of the centred matrix
    Xc = X - X.mean(0)
    U, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    # the last singular value is zero (centring); through the Gram matrix it comes out at ~sqrt(eps)·s_max
    np.testing.assert_allclose(p.singular_values[:-1], s[:-1], rtol=1e-8)
    assert p.singular_values[-1] < 1e-6 * s[0]
    np.testing.assert_allclose(p.explained_variance_ratio[:3], (s ** 2 / (s ** 2).sum())[:3], rtol=1e-8)
    np.testing.assert_allclose(np.abs(p.coords), np.abs(U[:, :3] * s[:3]), rtol=1e-7, atol=1e-9)
    resid = Xc - (Xc @ Vt[:2].T) @ Vt[:2]
    np.testing.assert_allclose(p.distance_to_plane(), np.linalg.norm(resid, axis=1), rtol=1e-6, atol=1e-9)
    # the planted off-plane noise sets the scale of the distances
    assert 0.5 < np.median(p.distance_to_plane()) / np.median(np.linalg.norm(e - e.mean(0), axis=1)) <= 1.0
    assert np.all(p.coords[-1] >= 0)  # sign convention: anchor row on the positive side


def test_sheet_fit_and_distance():
    """Points whose third coordinate is exactly quadratic in the first lie on the fitted sheet."""
    rng = np.random.default_rng(2)
    P = 200
    Q, _ = np.linalg.qr(rng.normal(size=(P, 4)))
    a = np.linspace(-2, 2, 25)
    b = rng.normal(0, 0.3, 25)
    c = 0.1 - 0.2 * a + 0.4 * a ** 2
    mean = rng.normal(size=P)
    X = mean + np.outer(a, Q[:, 0]) + np.outer(b, Q[:, 1]) + np.outer(c, Q[:, 2])
    coords = np.stack([a, b, c], 1)
    p = L.PCA(mean, Q[:, :3].T, np.ones(25), coords, ((X - mean) ** 2).sum(1))
    q = L.fit_sheet(p.coords)
    np.testing.assert_allclose(q, [0.1, -0.2, 0.4], atol=1e-10)
    assert p.distance_to_sheet(q).max() < 1e-6
    np.testing.assert_allclose(p.distance_to_plane(), np.abs(c), rtol=1e-6)  # the flat plane misses the bend
    np.testing.assert_allclose(L.surface_points(p, a, b, q), X, atol=1e-9)
    # off-sheet points: distance is the offset along a fourth direction
    X2 = X + np.outer(np.full(25, 0.5), Q[:, 3])
    p2 = L.PCA(mean, Q[:, :3].T, np.ones(25), coords, ((X2 - mean) ** 2).sum(1))
    np.testing.assert_allclose(p2.distance_to_sheet(q), 0.5, rtol=1e-6)


def test_pca_needs_three_points():
    with pytest.raises(ValueError, match="theta"):
        L.pca(np.zeros((2, 5)))


# --------------------------------------------------------------------------- grid evaluation
class Linear(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3072, 10)

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_grid_on_linear_model_matches_closed_form():
    """For a linear model the squared loss on the plane θ0 + a v1 + b v2 is a quadratic in (a, b), computed here
    in float64 numpy from the outputs' affine dependence; the grid must match it and find its minimum."""
    rng = np.random.default_rng(0)
    arr = tiny_arrays(40, 10)
    x = torch.from_numpy(arr.x_train)
    y = torch.from_numpy(arr.y_train)
    Z = D.normalize(x).flatten(1).double().numpy()
    P = 3072 * 10 + 10
    th0, v1, v2 = (rng.normal(0, 0.01, P) for _ in range(3))

    def out(th):
        return Z @ th[:30720].reshape(10, 3072).T + th[30720:]

    o0, o1, o2 = out(th0), out(v1) - out(np.zeros(P)), out(v2) - out(np.zeros(P))
    T1 = np.eye(10)[arr.y_train]

    def mse(a, b):   # the authors' loss: ½ Σ_k (z_k − e_y,k)², averaged over the images
        return 0.5 * ((o0 + a * o1 + b * o2 - T1) ** 2).sum(1).mean()

    # analytic minimiser of the quadratic
    r0 = (o0 - T1).ravel()
    M = np.stack([o1.ravel(), o2.ravel()], 1)
    a_star, b_star = np.linalg.lstsq(M, -r0, rcond=None)[0]
    ax = np.linspace(a_star - 3, a_star + 3, 13)
    bx = np.linspace(b_star - 2, b_star + 2, 9)
    A, B = np.meshgrid(ax, bx, indexing="ij")
    thetas = th0 + A.ravel()[:, None] * v1 + B.ravel()[:, None] * v2
    model = Linear()
    got, acc = L.evaluate_points(model, thetas, x, y, "mse", points_per_batch=5, eval_batch=16, strategy="vmap")
    got2, _ = L.evaluate_points(model, thetas, x, y, "mse", eval_batch=16, strategy="loop")
    np.testing.assert_allclose(got2, got, rtol=1e-5)
    want = np.array([mse(a, b) for a, b in zip(A.ravel(), B.ravel())])
    np.testing.assert_allclose(got, want, rtol=1e-5)
    k = np.argmin(got)
    assert abs(A.ravel()[k] - a_star) <= 0.25 + 1e-9 and abs(B.ravel()[k] - b_star) <= 0.25 + 1e-9
    pred = np.stack([(o0 + a * o1 + b * o2).argmax(1) for a, b in zip(A.ravel(), B.ravel())])
    np.testing.assert_allclose(acc, (pred == arr.y_train).mean(1), atol=1e-12)


@pytest.mark.parametrize("bn", [False, True])
def test_batched_grid_equals_per_point_loop(bn):
    torch.manual_seed(0)
    model = build_model("vgg11", 0.125, batch_norm=bn, seed=1)
    if bn:
        torch.func.replace_all_batch_norm_modules_(model)
    base = torch.nn.utils.parameters_to_vector(model.parameters()).detach().numpy()
    rng = np.random.default_rng(0)
    thetas = base + rng.normal(0, 0.02, (7, base.size))
    arr = tiny_arrays(30, 10)
    x, y = torch.from_numpy(arr.x_train), torch.from_numpy(arr.y_train)
    for loss in ("mse", "ce"):
        l2, a2 = L.evaluate_points_loop(model, thetas, x, y, loss, eval_batch=12)
        for strategy in ("vmap", "loop"):
            l1, a1 = L.evaluate_points(model, thetas, x, y, loss, points_per_batch=3, eval_batch=12, strategy=strategy)
            np.testing.assert_allclose(l1, l2, rtol=2e-5)
            np.testing.assert_allclose(a1, a2, atol=1e-12)


# --------------------------------------------------------------------------- the stage end to end
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    data = D.to_tensors(tiny_arrays())
    cfg = tiny_cfg(epochs=6, decay_epochs=(2, 4))
    T.run_main(out, cfg, data, progress=False)
    T.run_subpaths(out, cfg, data, progress=False)
    return out, cfg, data


@pytest.mark.parametrize("curved", [False, True])
def test_run_landscape(tiny_run, curved):
    out, cfg, data = tiny_run
    lc = L.LandscapeConfig(grid=5, curved=curved, n_components=3, train_size=40, test_size=20, points_per_batch=4,
                           eval_batch=16)
    res = L.run_landscape(out, cfg, lc, data, progress=False)
    a, c = res["arrays"], res["config"]
    K = c["n_checkpoints"]
    # main 0, 2, …, 18; subpath at 2: steps 8…18 plus its branch point; at 4: 14…18 plus its branch point
    assert K == L.count_checkpoints(out) == (18 // 2 + 1) + (6 + 1) + (3 + 1)
    assert a["train_loss"].shape == (5, 5) and a["coords"].shape == (K, 3)
    evr = a["explained_variance_ratio"]
    assert np.all(np.diff(evr) <= 0) and 0 < evr.sum() <= 1 + 1e-12
    # the PCA is fitted without the initialisation and without the duplicated branch points (this tiny run
    # never lands, so every other checkpoint), and the window is their bounding box plus 15 % of its span
    fit = a["fit"]
    assert not fit[a["step"] == 0].any() and not fit[a["duplicate"]].any()
    assert fit.sum() == K - 1 - 2 and c["fit_used"].startswith("all")
    lo, hi = a["coords"][fit, 0].min(), a["coords"][fit, 0].max()
    assert a["a"][0] == pytest.approx(lo - 0.15 * (hi - lo)) and a["a"][-1] == pytest.approx(hi + 0.15 * (hi - lo))
    # an independent PCA (numpy's SVD of the centred fitted rows) gives the same variance ratios and coordinates
    tr = L.collect_trajectories(out)
    X = tr["theta"][fit].astype(np.float64)
    U, S, Vt = np.linalg.svd(X - X.mean(0), full_matrices=False)
    np.testing.assert_allclose(evr, (S ** 2 / (S ** 2).sum())[:len(evr)], rtol=1e-6)
    proj = (tr["theta"].astype(np.float64) - X.mean(0)) @ Vt[:2].T
    np.testing.assert_allclose(np.abs(a["coords"][:, :2]), np.abs(proj), rtol=1e-4, atol=1e-6 * np.abs(proj).max())
    assert c["labels"] == ["main", "decay@2", "decay@4"] and c["decay_epochs"] == [2, 4]
    # checkpoint losses: oracle = the training module's evaluate() on the loaded checkpoint
    itr = D.balanced_indices(data.y_train.numpy(), 40, None, 0)
    last_main = T.list_checkpoints(out / "main")[-1][1]
    m = build_model(cfg.arch, cfg.width, cfg.batch_norm, cfg.dropout)
    m.load_state_dict(T.load_checkpoint(last_main)["model"])
    want, _ = T.evaluate(m, data.x_train[torch.as_tensor(itr)], data.y_train[torch.as_tensor(itr)], cfg.loss)
    k = int(np.flatnonzero(a["path"] == 0)[-1])
    assert a["ckpt_train_loss"][k] == pytest.approx(want, rel=1e-5)
    # a subpath's first row is its branch point on the main path
    first_sub = int(np.flatnonzero(a["path"] == 1)[0])
    assert a["step"][first_sub] == 2 * (60 // 16)
    j = int(np.flatnonzero((a["path"] == 0) & (a["step"] == a["step"][first_sub]))[0])
    np.testing.assert_allclose(a["coords"][first_sub], a["coords"][j], atol=1e-9)
    assert np.all(a["distance"] >= 0)
    assert (out / "landscape.npz").exists()


def test_fit_rows_take_the_post_landing_checkpoints_once():
    """Main path from landing on, subpaths branching there or later; never step 0, never a duplicated row."""
    tr = {"step": np.array([0, 10, 20, 30, 40, 10, 20, 30, 30, 40]),
          "path": np.array([0, 0, 0, 0, 0, 1, 1, 1, 2, 2]),
          "duplicate": np.array([0, 0, 0, 0, 0, 1, 0, 0, 1, 0], bool), "labels": ["main", "decay@1", "decay@3"]}
    fit, used = L.fit_rows(tr, landing_step=20)
    assert used == "post_landing" and fit.tolist() == [0, 0, 1, 1, 1, 0, 0, 0, 0, 1]
    fit, used = L.fit_rows(tr, landing_step=None)
    assert used.startswith("all") and fit.tolist() == [0, 1, 1, 1, 1, 0, 1, 1, 0, 1]


def test_landscape_parameter_errors():
    with pytest.raises(ValueError, match=r"grid: expected an integer in 2\.\.501"):
        L.LandscapeConfig(grid=1).validate()
    with pytest.raises(ValueError, match=r"n_components: expected an integer in 3\.\.64"):
        L.LandscapeConfig(curved=True, n_components=2).validate()
    with pytest.raises(ValueError, match="strategy"):
        L.LandscapeConfig(strategy="gpu").validate()


def test_batch_norm_run_flattens_in_parameter_order(tmp_path):
    """With batch norm the state_dict interleaves buffers; the landscape must still rebuild each
    checkpoint exactly (oracle: the checkpoint loaded into a model, batch statistics, evaluate())."""
    data = D.to_tensors(tiny_arrays())
    cfg = tiny_cfg(arch="vgg11", batch_norm=True, epochs=3, decay_epochs=(2,))
    T.run_main(tmp_path, cfg, data, progress=False)
    T.run_subpaths(tmp_path, cfg, data, progress=False)
    lc = L.LandscapeConfig(grid=3, train_size=30, test_size=10, eval_batch=30)
    a = L.run_landscape(tmp_path, cfg, lc, data, progress=False)["arrays"]
    itr = torch.as_tensor(D.balanced_indices(data.y_train.numpy(), 30, None, 0))
    for k in (0, len(a["step"]) - 1):
        path = tmp_path / "main" if a["path"][k] == 0 else T.subpath_dir(tmp_path, 2)
        ck = dict(T.list_checkpoints(path))[int(a["step"][k])]
        m = build_model(cfg.arch, cfg.width, True, cfg.dropout)
        m.load_state_dict(T.load_checkpoint(ck)["model"])
        torch.func.replace_all_batch_norm_modules_(m)
        want, _ = T.evaluate(m, data.x_train[itr], data.y_train[itr], cfg.loss, batch=30)
        assert a["ckpt_train_loss"][k] == pytest.approx(want, rel=1e-5)


def test_interrupted_landscape_resumes_from_its_finished_chunks(tiny_run, tmp_path, monkeypatch):
    """Killed after two chunks, the stage reuses them and ends with the uninterrupted result."""
    import shutil

    out, cfg, data = tiny_run
    run = tmp_path / "run"
    shutil.copytree(out, run)
    (run / "landscape.npz").unlink(missing_ok=True)
    lc = L.LandscapeConfig(grid=9, train_size=40, test_size=20, points_per_batch=4, eval_batch=16)
    ref = L.run_landscape(out, cfg, lc, data, progress=False)["arrays"]
    calls = {"n": 0}
    real = L.evaluate_points

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(L, "evaluate_points", flaky)
    with pytest.raises(KeyboardInterrupt):
        L.run_landscape(run, cfg, lc, data, progress=False)
    assert (run / "landscape.partial.npz").exists() and not (run / "landscape.npz").exists()
    calls["n"] = -100   # no more interruptions
    counted = []
    monkeypatch.setattr(L, "evaluate_points", lambda *a, **k: counted.append(1) or real(*a, **k))
    got = L.run_landscape(run, cfg, lc, data, progress=False)["arrays"]
    # 81 grid points in chunks of 64 (2 per split) + checkpoints (1 chunk per split): 6 chunks, 2 reused
    assert len(counted) == 4
    for k in ("train_loss", "test_loss", "ckpt_train_loss", "coords"):
        np.testing.assert_array_equal(got[k], ref[k])
    assert not (run / "landscape.partial.npz").exists()
