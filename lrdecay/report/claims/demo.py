"""Claims on the late-decay effect, Phase II's end point and Phase III (the ``demo`` job)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lrdecay.theory.stats import mean_sem
from lrdecay.theory.studies.decay import (CONVERGED_ATOL, FREEZE_MIN_DROP, FREEZE_RANGE, GAMMA0_SPREAD, LATE_DECAY_SE,
                                  SCHEDULES_SE, TO_MIN_NORM_RTOL, DecaySweep, ScheduleComparison, freeze_ratios)

from .base import NOT_APPLICABLE, Judgement, caption, claim, load, verdict

FIG_DECAY = caption(
    "demo/figures/demo_decay.png",
    "Left: final test loss against the step of the decay (log axis; error bars: one standard error over the paths "
    "of a row) for γ = 1 and γ = 0, with the min-norm test loss (dashed) and the gradient-flow landing point "
    "(dotted). phase3.late_decay needs the γ = 1 curve to fall step by step towards the dashed line, "
    "phase3.gamma0 the γ = 0 curve to stay flat. Right: the test loss along one path per decay step.")
FIG_PHASE = caption(
    "demo/figures/three_phases.png",
    "Train loss, test loss and ‖w‖ along one path per decay step (γ = 1, log step axis), the three phases of "
    "the latest-decay path shaded: Phase I (the fall onto M, until the train loss enters the band of the "
    "predicted plateau, grey), Phase II (the drift at the large rate: ‖w‖ falls to ‖w_mn‖), Phase III (after "
    "the decay the drift slows by (η'/η)², so the test loss almost stops). phase2.to_min_norm needs the latest "
    "decay to end on the dashed min-norm lines; phase3.freeze needs each curve to nearly stop after its decay.")


def _sweep(d: Path, gamma: float):
    return load(DecaySweep, d / f"decay_sweep_gamma{gamma:g}.npz")


def _diverged(sim) -> Judgement | None:
    """A run with diverged paths gives no verdict: its numbers are not data."""
    bad = sim.status == "diverged"
    if not bad.any():
        return None
    return Judgement(NOT_APPLICABLE, f"{int(bad.sum())} of {len(bad)} paths diverged (first at step "
                                     f"{int(sim.stop_step[bad].min())}): no verdict", {"diverged": float(bad.sum())})


@claim("phase3.late_decay", section="§1 Phase III", source="[seed]",
       statement="γ > 0: a later learning-rate decay ends with a lower test loss",
       prediction="final test loss decreases with the decay step",
       tolerance=f"each step down by more than {LATE_DECAY_SE:g} standard errors (or both within {CONVERGED_ATOL:g} "
                 "of the min-norm value)", job="demo", figure=FIG_DECAY,
       flips="the final test losses in reverse order (earlier decay ends lower)")
def late_decay(d):
    sw = _sweep(d, 1.0)
    if sw is None:
        return None
    if _diverged(sw.sim):
        return _diverged(sw.sim)
    mean, sem = mean_sem(sw.final_test)
    mn = sw.min_norm_test_loss
    ok = [(mean[i] - mean[i + 1] > LATE_DECAY_SE * np.hypot(sem[i], sem[i + 1]))
          or (abs(mean[i] - mn) < CONVERGED_ATOL and abs(mean[i + 1] - mn) < CONVERGED_ATOL)
          for i in range(len(mean) - 1)]
    measured = "; ".join(f"k={k}: {m:.4f}" for k, m in zip(sw.decay_steps, mean)) + f" (min-norm {mn:.4f})"
    vals = {f"k{k}": float(m) for k, m in zip(sw.decay_steps, mean)}
    vals.update({f"ode_k{k}": float(v) for k, v in zip(sw.decay_steps, sw.predicted_test(sw.decay_steps))})
    vals["min_norm"] = mn
    return Judgement(verdict(all(ok)), measured, vals,
                     prediction=f"final test loss decreases with the decay step towards {mn:.4f}")


@claim("phase2.to_min_norm", section="§1 Phase II", source="[seed]",
       statement="Phase II (large η kept long) drifts to the minimum-norm solution",
       prediction="latest decay: final test loss ≈ min-norm test loss and ‖w‖ ≈ ‖w_mn‖ (judged only where the "
                  "drift ODE from the landing point has reached w_mn by the latest decay)",
       tolerance=f"relative difference ≤ {100 * TO_MIN_NORM_RTOL:.0f} %; in regime when the ODE's test loss is within "
                 f"{100 * TO_MIN_NORM_RTOL / 3:.0f} % of the min-norm value at τ = η²k", job="demo", figure=FIG_PHASE,
       flips="a drift ODE that reaches w_mn (in regime) while SGD ends 16 % away")
def to_min_norm(d):
    sw = _sweep(d, 1.0)
    if sw is None:
        return None
    if _diverged(sw.sim):
        return _diverged(sw.sim)
    mean = sw.final_test.mean(1)
    mn = sw.min_norm_test_loss
    wn = float(np.linalg.norm(sw.problem.w_mn))
    norm_last = float(sw.final_norm[-1].mean())
    rel_t, rel_n = abs(mean[-1] - mn) / mn, abs(norm_last - wn) / wn
    ode = float(sw.predicted_test(sw.decay_steps[-1]))
    measured = (f"decay at {sw.decay_steps[-1]}: test {mean[-1]:.4f} vs {mn:.4f} ({100 * rel_t:.2f} %), "
                f"‖w‖ {norm_last:.4f} vs {wn:.4f} ({100 * rel_n:.2f} %); drift ODE there {ode:.4f}")
    vals = {"test_rel_diff": rel_t, "norm_rel_diff": rel_n, "ode_test": ode}
    if abs(ode - mn) / mn > TO_MIN_NORM_RTOL / 3:
        return Judgement(NOT_APPLICABLE, measured, vals,
                         f"Outside the regime: by the latest decay (τ = {sw.config['eta'] ** 2 * sw.decay_steps[-1]:.3g}) "
                         "the drift ODE has not reached w_mn, so the run is too short to test the claim.")
    return Judgement(verdict(rel_t <= TO_MIN_NORM_RTOL and rel_n <= TO_MIN_NORM_RTOL), measured, vals)


@claim("phase3.schedules", section="§1 Phase III", source="[derived]",
       statement="At an equal step budget, schedules that keep the large learning rate longer end closer to the "
                 "min-norm solution: step decay at 90 % of the budget and warmup-stable-decay beat step decay at "
                 "10 % and are no worse than cosine",
       prediction="test(step@0.90), test(wsd) < test(step@0.10) and ≤ test(cosine)",
       tolerance=f"differences beyond {SCHEDULES_SE:g} standard errors (≤: within {SCHEDULES_SE:g} standard errors)",
       job="demo", figure=FIG_DECAY, caveat="One problem instance (seed 0), 4 paths per schedule.",
       flips="cosine ending at test loss 0, better than the late decays")
def schedules(d):
    sc = load(ScheduleComparison, d / "schedules.npz")
    if sc is None:
        return None
    if _diverged(sc.sim):
        return _diverged(sc.sim)
    m_, e_ = sc.mean_sem_test()

    def k_se(a, b):
        return SCHEDULES_SE * float(np.hypot(e_[a], e_[b]))
    ok = all(m_[late] < m_["step@0.10"] - k_se(late, "step@0.10") and m_[late] <= m_["cosine"] + k_se(late, "cosine")
             for late in ("step@0.90", "wsd"))
    measured = (", ".join(f"{k}: {v:.4f}" for k, v in m_.items())
                + f" (min-norm {sc.min_norm_test_loss:.4f}; {sc.total_steps} steps)")
    return Judgement(verdict(ok), measured, {k: float(v) for k, v in m_.items()})


@claim("phase3.gamma0", section="§1 Phase III", source="[derived]",
       statement="γ = 0 (linear model): the decay time does not matter",
       prediction="final test loss the same for every decay step", tolerance=f"spread ≤ {GAMMA0_SPREAD:g} × mean",
       job="demo", figure=FIG_DECAY,
       flips="γ = 0 final test losses rising by 50 % with the decay step")
def gamma0(d):
    sw = _sweep(d, 0.0)
    if sw is None or _sweep(d, 1.0) is None:
        return None
    if _diverged(sw.sim):
        return _diverged(sw.sim)
    m0 = sw.final_test.mean(1)
    spread = float(np.ptp(m0) / m0.mean())
    return Judgement(verdict(spread <= GAMMA0_SPREAD),
                     f"final test loss {m0.min():.5f} … {m0.max():.5f} (spread {spread:.1e}); min-norm "
                     f"{sw.min_norm_test_loss:.4f}", {"spread": spread})


@claim("phase3.freeze", section="§1 Phase III", source="[derived]",
       statement="After the decay to η' the drift along M slows by (η'/η)², freezing the position on M: the test "
                 "loss then falls only as much as the large-η run falls in (η'/η)² × the remaining steps",
       prediction="measured drop after the decay / drop of the never-decayed run over (η'/η)² × remaining steps = 1",
       tolerance=f"ratio in [{FREEZE_RANGE[0]:g}, {FREEZE_RANGE[1]:g}] for every decay after Phase I whose predicted "
                 f"drop is > {FREEZE_MIN_DROP:g}", job="demo", figure=FIG_PHASE,
       flips="test losses that stop completely after each decay (measured/predicted drop 0)")
def freeze(d):
    sw = _sweep(d, 1.0)
    if sw is None or _sweep(d, 0.0) is None:
        return None
    if _diverged(sw.sim):
        return _diverged(sw.sim)
    ratios = freeze_ratios(sw)
    if not ratios:
        return None
    lo, hi = FREEZE_RANGE
    return Judgement(verdict(all(lo <= r <= hi for r in ratios)), "ratios " + ", ".join(f"{r:.3f}" for r in ratios),
                     {f"ratio_{i}": r for i, r in enumerate(ratios)})
