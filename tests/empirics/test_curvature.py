"""Hessian–vector products, Hutchinson trace and Lanczos top eigenvalue against the exact Hessian of a tiny VGG."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lrdecay.empirics import curvature as C
from lrdecay.empirics import data as D
from lrdecay.empirics import train as T
from lrdecay.empirics.vgg import VGG, target_loss

from tests.empirics.helpers import tiny_arrays, tiny_cfg  # noqa: E402


def tiny_vgg(seed=0):
    """Two 3×3 convolutions (2 channels), five pools, one hidden layer of 3: 143 parameters."""
    torch.manual_seed(seed)
    m = VGG((2, "M", 2, "M", "M", "M", "M"), hidden=(3,), dropout=0.0, init="torch")
    return m.eval()


@pytest.fixture(scope="module")
def setup():
    m = tiny_vgg()
    arr = tiny_arrays(24, 4, seed=1)
    x, y = torch.from_numpy(arr.x_train), torch.from_numpy(arr.y_train)
    params = {n: p.detach().clone() for n, p in m.named_parameters()}
    names = list(params)
    sizes = [params[n].numel() for n in names]
    flat0 = torch.cat([params[n].reshape(-1) for n in names]).double()

    def loss_of_flat(th):   # the oracle: the same loss as a function of the flat vector, in float64
        mm = tiny_vgg().double()
        p = {n: t.view(params[n].shape) for n, t in zip(names, torch.split(th, sizes))}
        out = torch.func.functional_call(mm, p, (D.normalize(x).double(),))
        return target_loss("mse", out, y)

    H = torch.autograd.functional.hessian(loss_of_flat, flat0).numpy()
    op = C.HessianOperator(m, params, x, y, "mse", batch=10)   # 3 batches: exercises the weighted sum
    return op, H, flat0.numel()


def test_hvp_equals_exact_hessian(setup):
    op, H, P = setup
    assert P == op.dim == 143
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        v = torch.randn(P, generator=g)
        np.testing.assert_allclose(op(v).double().numpy(), H @ v.double().numpy(), rtol=2e-4, atol=2e-5 * np.abs(H).max())


def test_hutchinson_against_exact_trace(setup):
    op, H, P = setup
    g = torch.Generator().manual_seed(1)
    r = C.hutchinson_trace(op, P, 200, g)
    tr = float(np.trace(H))
    # each sample is exactly v^T H v (checked with the same Rademacher vectors)
    g2 = torch.Generator().manual_seed(1)
    v = C.rademacher(P, g2).double().numpy()
    assert r["samples"][0] == pytest.approx(v @ H @ v, rel=1e-3, abs=1e-6)
    # the estimate is unbiased: within 4 standard errors of tr H ...
    assert abs(r["trace"] - tr) < 4 * r["trace_se"]
    # ... and its standard error is the right size: Var(v^T H v) = 2 Σ_{i≠j} H_ij² for Rademacher v
    sd = np.sqrt(2 * ((H ** 2).sum() - (np.diag(H) ** 2).sum()))
    assert r["trace_se"] == pytest.approx(sd / np.sqrt(200), rel=0.3)
    with pytest.raises(ValueError, match="probes"):
        C.hutchinson_trace(op, P, 0, g)


def test_lanczos_against_exact_eigenvalues(setup):
    op, H, P = setup
    ev = np.linalg.eigvalsh(H)
    full = C.lanczos_top(op, P, 60, torch.Generator().manual_seed(2))
    assert full["top"] == pytest.approx(ev[-1], rel=1e-4)
    assert full["top"] <= ev[-1] * (1 + 1e-4)          # a Ritz value never exceeds λ_max
    few = C.lanczos_top(op, P, 12, torch.Generator().manual_seed(3))
    assert few["top"] == pytest.approx(ev[-1], rel=1e-2)
    assert few["residual"] >= 0 and few["steps"] == 12
    with pytest.raises(ValueError, match="lanczos_steps"):
        C.lanczos_top(op, P, 1, torch.Generator())


def test_curvature_config_errors():
    with pytest.raises(ValueError, match=r"probes: expected an integer >= 1"):
        C.CurvatureConfig(probes=0).validate()
    with pytest.raises(ValueError, match="lanczos_steps"):
        C.CurvatureConfig(lanczos_steps=1).validate()
    with pytest.raises(ValueError, match="unknown keys"):
        C.CurvatureConfig.from_dict({"probs": 3})


def test_run_curvature_stage_resumes_and_is_seeded(tmp_path):
    data = D.to_tensors(tiny_arrays())
    cfg = tiny_cfg(epochs=4, decay_epochs=(2,), init="torch")
    T.run_main(tmp_path, cfg, data, progress=False)
    T.run_subpaths(tmp_path, cfg, data, progress=False)
    cc = C.CurvatureConfig(probes=3, lanczos_steps=4, eval_size=30, eval_batch=16, main_every=2)
    r = C.run_curvature(tmp_path, cfg, cc, data, progress=False)
    assert [(x["path"], x["epoch"]) for x in r["rows"]] == [("main", 2), ("main", 4), ("decay@2", 4)]
    for x in r["rows"]:
        assert np.isfinite([x["trace"], x["trace_se"], x["top_eig"], x["loss"]]).all()
    # reuse: same numbers, nothing recomputed; a fresh computation with the same seed gives the same numbers
    again = C.run_curvature(tmp_path, cfg, cc, data, progress=False)
    assert again["rows"] == r["rows"]
    (tmp_path / "curvature.json").unlink()
    fresh = C.run_curvature(tmp_path, cfg, cc, data, progress=False)
    assert [x["trace"] for x in fresh["rows"]] == [x["trace"] for x in r["rows"]]
    with pytest.raises(ValueError, match="main_every"):
        C.run_curvature(tmp_path, cfg, C.CurvatureConfig(main_every=1, eval_size=30), data, progress=False)


def test_fixed_length_subpath_ends_are_labelled_with_their_own_end(tmp_path):
    """A fixed-length subpath's end is its branch epoch plus its length (here 2 + 1 = 3, before the main
    path's end at 4), and its curvature is taken at its own last checkpoint; the parameter norm is that
    checkpoint's (an independent sum of squares)."""
    data = D.to_tensors(tiny_arrays())
    cfg = tiny_cfg(epochs=4, decay_epochs=(2,), subpath_epochs=1, init="torch")
    T.run_main(tmp_path, cfg, data, progress=False)
    T.run_subpaths(tmp_path, cfg, data, progress=False)
    cc = C.CurvatureConfig(probes=2, lanczos_steps=3, eval_size=30, eval_batch=16, main_every=2)
    r = C.run_curvature(tmp_path, cfg, cc, data, progress=False)
    sub = next(x for x in r["rows"] if x["path"] == "decay@2")
    last_step, last = T.list_checkpoints(T.subpath_dir(tmp_path, 2))[-1]
    assert sub["epoch"] == 3 and sub["step"] == last_step
    sd = T.load_checkpoint(last)["model"]
    names = [n for n, _ in T.make_model(cfg).named_parameters()]
    assert sub["param_norm"] == pytest.approx(float(np.sqrt(sum(float((sd[n].double() ** 2).sum()) for n in names))))
