# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The VGG-11 experiment from its saved files
#
# A finished VGG-11 profile leaves small result files: each path's `metrics.csv` and `result.json` (the main path
# at the large rate and the subpaths decayed from its checkpoints), `curvature.json` and the loss landscape in the
# plane of the checkpoints' principal components (`landscape.npz`). This notebook reads the long CPU run committed in
# `measurements/vgg_cpu_long/` (`lrdecay empirics profile cpu_long`: 5,000 CIFAR-10 images, 800 epochs, 13
# branches, one seed; 92 minutes on 2 cores) with `lrdecay.empirics.analysis`, and draws its learning curves,
# the late-decay table and the landscape. No training and no torch: point `RUN` at your own run directory
# (`runs/cpu/sgd/seed_0`, …) to read yours.
#
# **Run time**, measured on 2 cores shared with other jobs (upper bounds): 17 s, at the tested size and at any
# other (it reads saved files).

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from lrdecay.empirics.analysis import (load_run, measure_generalization, measure_late_decay, measure_regime,
                                       run_constant_loss)
from lrdecay.theory.io import load_result

ROOT = Path.cwd() if (Path.cwd() / "measurements").is_dir() else Path.cwd().parent
RUN = ROOT / "measurements" / "vgg_cpu_long" / "sgd" / "seed_0"

# %% [markdown]
# ## The main path and the gate
#
# The constant predictor (the training class frequencies, predicted for every image) is the baseline every VGG
# verdict is gated on: the main path's test loss must be at least 10 % below it. The regime needs an interpolating
# main path (train accuracy ≥ 99 %).

# %%
run = load_run(RUN)
const = run_constant_loss(run)
regime, gen = measure_regime([RUN]), measure_generalization([RUN])
print(f"seed {run['seed']}: {len(run['subs'])} decayed subpaths; constant predictor's test loss {const:.4f}")
r, g = regime["per_seed"][0], gen["per_seed"][0]
print(f"regime: train accuracy at the first decay (epoch {r['first_decay_epoch']}) {r['train_acc_at_first_decay']:.3f} "
      f"(needs >= 0.99), landing epoch {r['landing_epoch']}")
print(f"gate: test loss {g['test_loss']:.4f} ± {g['test_loss_se']:.4f}, {g['relative_margin']:.1%} below the constant "
      f"predictor (needs >= 10 % and > 3 s.e.): {'passes' if g['passes'] else 'fails'}")

m = run["main"]["metrics"]
epoch = np.array([r["epoch"] for r in m])
fig, ax = plt.subplots(1, 2, figsize=(11, 3.8))
ax[0].plot(epoch, [r["train_loss"] for r in m], label="train")
ax[0].plot(epoch, [r["test_loss"] for r in m], label="test")
ax[0].axhline(const, color="k", ls="--", lw=1, label="constant predictor")
ax[0].set(xlabel="epoch", ylabel="loss", title="main path (lr 0.1)")
ax[1].plot(epoch, [r["train_acc"] for r in m], label="train")
ax[1].plot(epoch, [r["test_acc"] for r in m], label="test")
ax[1].set(xlabel="epoch", ylabel="accuracy")
for a in ax:
    a.legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# ## The late-decay table
#
# Each subpath's test loss (the mean of its last 10 evaluations) against its decay epoch, and the late-decay
# statistic: the least-squares slope per 100 epochs (negative: a later decay generalizes better). This run never
# interpolates, so its branches are shown with `all_branches=True` — a description, not a verdict.

# %%
t = measure_late_decay([RUN], all_branches=True)
print(f"{'decay epoch':>11} {'end epoch':>9} {'test loss':>10} {'test acc':>9} {'main path (control)':>20}")
for j, e in enumerate(t["decay_epochs"]):
    print(f"{e:>11} {t['end_epochs'][j]:>9} {t['test_loss_mean'][j]:>10.4f} {t['test_acc_mean'][j]:>9.3f} "
          f"{t['control_test_loss_per_seed'][0][j]:>20.4f}")
s = t["test_loss_slope"]
print(f"slope {s['slope']:+.4f} ± {s['slope_se']:.4f} per {s['per_epochs']} epochs over {s['n_branches']} branches "
      f"({s['basis']}); Pearson r of the curve {s['pearson_r_mean_curve']:.2f}")

# %% [markdown]
# ## The landscape
#
# Train and test loss on a grid in the plane of the first two principal components of the checkpoints after the
# landing, with the main path (black) and the decayed subpaths (dots) projected onto it.

# %%
arr, cfg = load_result(RUN / "landscape.npz")[:2]
A, B = np.meshgrid(arr["a"], arr["b"], indexing="ij")
fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
main = np.flatnonzero(arr["path"] == 0)
main = main[np.argsort(arr["step"][main])]
for ax, split, cmap in zip(axes, ("train", "test"), ("viridis", "magma")):
    Z = arr[f"{split}_loss"]
    top = np.quantile(Z, 0.6)
    cs = ax.contourf(A, B, np.clip(Z, Z.min(), top), levels=20, cmap=cmap)
    fig.colorbar(cs, ax=ax, label=f"{split} loss")
    ax.plot(arr["coords"][main, 0], arr["coords"][main, 1], "k-", lw=1.2, label="main path")
    sub = arr["path"] > 0
    ax.plot(arr["coords"][sub, 0], arr["coords"][sub, 1], ".", color="tab:orange", ms=3, label="subpaths")
    ax.set(xlabel=f"PC1 ({arr['explained_variance_ratio'][0]:.0%})",
           ylabel=f"PC2 ({arr['explained_variance_ratio'][1]:.0%})", title=f"{split} loss")
axes[0].legend(fontsize=8)
fig.tight_layout()
