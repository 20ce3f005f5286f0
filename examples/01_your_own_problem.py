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
# # Your own problem: label-noise SGD, a late decay, and the drift ODE
#
# Build a `Problem` of your own, run label-noise SGD with a learning rate decayed at several steps (an equal
# budget of steps for every run), and compare with the quasistatic drift ODE, which predicts where each run sits
# on the manifold of minima from its drift budget $\tau_S = \sum_k \eta_k^2$ alone.
#
# **Run time**, measured on 2 cores shared with other jobs (upper bounds): 25 s at the tested size
# (`LRDECAY_EXAMPLE_SIZE=small`, as the tests run it); 90 s at the default size below, most of it numba compiling
# the engine's kernels on a first run (13 s once they are cached).

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from lrdecay.theory.engine import simulate
from lrdecay.theory.flow import problem_gradient_flow
from lrdecay.theory.problem import Problem
from lrdecay.theory.quasistatic import drift_at_budget
from lrdecay.theory.schedules import StepDecay

SMALL = os.environ.get("LRDECAY_EXAMPLE_SIZE") == "small"

# %% [markdown]
# ## The problem
#
# The model is $f(w; x) = \|w\|^\gamma\, w^\top x$ with $d$ parameters and $n < d$ samples: the train loss
# $L_n(w) = \frac{1}{2n}\sum_i (f(w; x_i) - y_i)^2$ has a manifold $M$ of minima of dimension $d - n$, and on it the
# minimum-norm point $w_{mn}$ has the smallest test loss. `Problem.generate` draws $X$, a target $\alpha^*$,
# $y = X\alpha^*$ and a start $w_0$.

# %%
prob = Problem.generate(d=100, n=20, gamma=1.0, sigma=0.3, seed=0)
print(prob)
print(f"min-norm test loss {prob.min_norm_test_loss:.4f}")

# %% [markdown]
# ## Label-noise SGD with a late decay
#
# Rate $\eta = 0.02$, decayed $\times 0.1$ at each of several steps; every run has $T$ steps in all, so the decay
# step is the only difference. `reduce=True` simulates in the $n + 1$ coordinates of
# $\mathrm{span}\{w_0, x_1, \dots, x_n\}$ and lifts back (exact).

# %%
T = 6_000 if SMALL else 40_000
decays = [0, T // 4, T // 2, 3 * T // 4]
per = 4                                            # paths per decay step
schedules = [StepDecay(0.02, decay_step=k, factor=0.1) for k in decays]
res = simulate(prob, n_paths=per * len(decays), steps=T, lr=[s for s in schedules for _ in range(per)],
               seed=1, reduce=True)
print(res.message)
final = res.final("test_loss").reshape(len(decays), per)

# %% [markdown]
# ## The drift ODE beside it
#
# $\frac{dw}{d\tau} = -\frac{a}{4} P_T \nabla \operatorname{tr} \nabla^2 L_n(w)$ with $a = \sigma^2/n$, started
# where Phase I lands (the gradient-flow landing point on $M$), evaluated at each schedule's drift budget.

# %%
landing = problem_gradient_flow(prob, eps=1e-10, t_max=1e4).w_final
ode = drift_at_budget(prob, schedules, steps=T, w_start=landing)

print(f"{'decay at':>9} {'tau_S':>7} {'SGD test loss':>18} {'drift ODE':>10}")
for i, k in enumerate(decays):
    se = final[i].std(ddof=1) / np.sqrt(per)
    print(f"{k:>9} {ode.budgets[i]:>7.3f} {final[i].mean():>10.4f} ± {se:.4f} {ode.test_loss[i]:>10.4f}")

# %% [markdown]
# ## Plot
#
# Test loss along the runs (mean over each decay step's paths) against the steps, and the drift ODE's test loss
# at each budget (dots at the end).

# %%
fig, ax = plt.subplots(figsize=(7, 4))
tl = res.records["test_loss"]
for i, k in enumerate(decays):
    line, = ax.plot(res.steps, tl[:, i * per:(i + 1) * per].mean(axis=1), label=f"decay at {k}")
    ax.plot([T], [ode.test_loss[i]], "o", color=line.get_color())
ax.axhline(prob.min_norm_test_loss, color="k", ls="--", lw=1, label="min-norm solution")
ax.set(xlabel="step", ylabel="test loss", yscale="log", title="a later decay ends lower")
ax.legend()
fig.tight_layout()
