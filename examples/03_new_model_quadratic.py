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
# # A new model on the engine: the quadratically parameterized model β = w ⊙ w
#
# Any overparameterized model given as a prediction function written in torch runs on the engine through
# `lrdecay.theory.models.generic.GenericModel`: the Jacobian, the Gauss–Newton trace, the projections onto the
# manifold of minima $M$ and the SGD steps all come from automatic differentiation. Here the model is
# $f(w; x) = x^\top (w \odot w)$, a linear predictor $\beta = w \odot w \ge 0$.
#
# **What the drift should do.** On $M$ the Hessian trace is
# $\operatorname{tr} H = \frac{1}{n}\|J\|_F^2 = \frac{4}{n}\sum_j \|X_{:j}\|^2 w_j^2 = \sum_j c_j \beta_j$ with
# $c_j = \frac{4}{n}\|X_{:j}\|^2$. The label-noise drift decreases it along $M$, so it should end at the
# interpolator with the smallest weighted $\ell_1$ norm among non-negative ones:
# $\min_\beta \sum_j c_j\beta_j$ subject to $X\beta = y$, $\beta \ge 0$ — a linear programme, solved below
# independently with `scipy.optimize.linprog`. A late decay should then help when the target is sparse.
#
# **Run time**, measured on 2 cores shared with other jobs (upper bounds; torch CPU): 110 s at the tested size
# (`LRDECAY_EXAMPLE_SIZE=small`; 12 s of CPU time); 150 s at the default size below. Needs the `empirics` extra
# (torch).

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy.optimize import linprog

from lrdecay.theory.engine import simulate
from lrdecay.theory.models.generic import GenericModel, drift_flow
from lrdecay.theory.schedules import StepDecay

SMALL = os.environ.get("LRDECAY_EXAMPLE_SIZE") == "small"
torch.set_num_threads(1)

# %% [markdown]
# ## The model and a start on M
#
# $d = 20$ parameters, $n = 5$ samples, a non-negative target with two non-zero entries. The start is a point of
# $M$ far from the target: a strictly positive interpolator (the one whose smallest entry is largest, from a
# linear programme), so $w_0 = \sqrt{\beta_0}$ fits the data exactly and Phase I is skipped.

# %%
def predict(theta, X):
    """f(w; x) = x . (w * w): written with torch operations, as GenericModel needs."""
    return X @ (theta * theta)


rng = np.random.default_rng(0)
d, n = 20, 5
X, X_test = rng.standard_normal((n, d)), rng.standard_normal((500, d))
beta_star = np.zeros(d)
beta_star[:2] = [1.0, 0.5]
y = X @ beta_star

# maximise s subject to X beta = y, s <= beta_j <= 3
inner = linprog(np.r_[np.zeros(d), -1.0], A_ub=np.c_[-np.eye(d), np.ones(d)], b_ub=np.zeros(d),
                A_eq=np.c_[X, np.zeros(n)], b_eq=y, bounds=[(0, 3)] * d + [(None, None)], method="highs")
beta0 = inner.x[:d]
model = GenericModel(predict, X, y, theta0=np.sqrt(beta0), sigma=1.0,
                     X_test=X_test, y_test=X_test @ beta_star, name="quadratic")
theta_land, ok = model.retract_status(model.theta0)     # already on M: the retraction only checks it
a = model.sigma**2 / model.n                              # the noise scale of full-batch label noise
print(f"smallest entry of beta0 {beta0.min():.3f}; on M: {bool(ok)}; train loss {model.train_loss(theta_land):.1e}")

# %% [markdown]
# ## The drift ODE to its end, against the linear programme

# %%
flow = drift_flow(model, theta_land[None], tau_max=60.0 if SMALL else 400.0, a=a, n_eval=15 if SMALL else 50)
beta_end = flow.theta_end[0] ** 2

c = 4.0 / n * (X**2).sum(axis=0)
lp = linprog(c, A_eq=X, b_eq=y, bounds=[(0, None)] * d, method="highs")
print(f"drift ended '{flow.status[0]}' at tau = {flow.tau_stop[0]:.1f}")
print("drift end  beta =", np.round(beta_end, 3))
print("linprog    beta =", np.round(lp.x, 3))
gap = np.linalg.norm(beta_end - lp.x) / np.linalg.norm(lp.x)
print(f"relative distance {gap:.1e}; test loss: start {flow.test_loss[0, 0]:.4f}, end {flow.test_loss[-1, 0]:.4f}")
assert gap < 0.01

# %% [markdown]
# ## Label-noise SGD with a late decay, against the drift ODE's prediction
#
# SGD at $\eta = 0.5/\lambda_{\max}$ from the landing point, decayed $\times 0.1$ at several steps (an equal budget
# of $T$ steps). The quasistatic prediction of each run's final test loss is the drift ODE's at the run's drift
# budget $\tau_S = \sum_k \eta_k^2$.

# %%
eta = 0.5 / model.sharpness(theta_land)
T = 600 if SMALL else 12_000
per = 2 if SMALL else 6
decays = [0, T // 2, T] if SMALL else [0, T // 4, T // 2, 3 * T // 4, T]
schedules = [StepDecay(eta, decay_step=k, factor=0.1) for k in decays]
sim = simulate(model, np.repeat(theta_land[None], per * len(decays), axis=0), steps=T,
               lr=[s for s in schedules for _ in range(per)], method="sgd", sigma=model.sigma, seed=0)
sgd = sim.final("test_loss").reshape(len(decays), per)
budgets = np.array([sum(s(k) ** 2 for k in range(T)) for s in schedules])
pred = drift_flow(model, theta_land[None], tau_max=budgets.max(), a=a, tau_eval=np.unique(np.r_[0.0, budgets]),
                  speed_rtol=1e-12)
pred_test = np.interp(budgets, pred.tau, pred.test_loss[:, 0])
print(sim.message)
print(f"{'decay at':>9} {'tau_S':>8} {'SGD test loss':>18} {'drift ODE':>10}")
for i, k in enumerate(decays):
    print(f"{k:>9} {budgets[i]:>8.3f} {sgd[i].mean():>10.4f} ± {sgd[i].std(ddof=1) / np.sqrt(per):.4f} "
          f"{pred_test[i]:>10.4f}")

# %%
fig, ax = plt.subplots(figsize=(6, 4))
ax.errorbar(decays, sgd.mean(1), yerr=sgd.std(1, ddof=1) / np.sqrt(per), fmt="o", label="label-noise SGD")
ax.plot(decays, pred_test, "s--", label="drift ODE at τ_S")
ax.set(xlabel="decay step", ylabel="final test loss", title="β = w ⊙ w: a later decay ends lower")
ax.legend()
fig.tight_layout()
