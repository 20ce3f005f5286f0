r"""A fixed-step explicit integrator with :func:`scipy.integrate.solve_ivp`'s interface, for fields with kinks.

The manifold drift of a ReLU network (:mod:`lrdecay.theory.models.generic`) is discontinuous where a unit's
pre-activation on a train sample crosses zero, and near such a kink the drift can push the point onto it from
both sides (it then slides along the kink, a Filippov solution). An error-controlled method (RK45, LSODA) shrinks
its step to resolve every crossing and, on a sliding kink, to a standstill; a fixed step chatters across the kink
and follows the sliding solution with an error of order ``step`` there, and of order ``step^2`` where the field is
smooth (Heun's method, the explicit trapezoidal rule: two field evaluations a step).

``solve_ivp(fun, t_span, y0, method=fixed_step_heun(step), t_eval=..., events=...)``; ``rtol``/``atol`` are
ignored (there is no error control: check the step by halving it). A non-finite state ends the run as a failure.
"""
from __future__ import annotations

import numpy as np

from lrdecay.theory.validation import positive


def fixed_step_heun(step: float):
    """A :class:`scipy.integrate.OdeSolver` subclass taking Heun steps of ``step`` (the last one shortened to end on
    ``t_bound``), with linear interpolation between steps as its dense output."""
    from scipy.integrate import DenseOutput, OdeSolver

    step = positive("step", step)

    class _Linear(DenseOutput):
        def __init__(self, t_old, t, y_old, y):
            super().__init__(t_old, t)
            self.y_old, self.dy = y_old, y - y_old

        def _call_impl(self, t):
            s = (np.asarray(t) - self.t_old) / (self.t - self.t_old)
            return self.y_old[:, None] + self.dy[:, None] * np.atleast_1d(s)[None] if np.ndim(t) else \
                self.y_old + self.dy * s

    class FixedStepHeun(OdeSolver):
        STEP = step

        def __init__(self, fun, t0, y0, t_bound, vectorized=False, **_ignored):
            super().__init__(fun, t0, y0, t_bound, vectorized)
            self.f = self.fun(self.t, self.y)
            self.y_old = None

        def _step_impl(self):
            h = min(self.STEP, abs(self.t_bound - self.t)) * self.direction
            k2 = self.fun(self.t + h, self.y + h * self.f)
            y_new = self.y + 0.5 * h * (self.f + k2)
            if not np.all(np.isfinite(y_new)):
                return False, "the state became non-finite"
            self.y_old, self.t_old = self.y, self.t
            self.t, self.y = self.t + h, y_new
            self.f = self.fun(self.t, self.y)
            return True, None

        def _dense_output_impl(self):
            return _Linear(self.t_old, self.t, self.y_old, self.y)

    FixedStepHeun.__name__ = FixedStepHeun.__qualname__ = f"FixedStepHeun(step={step:g})"
    return FixedStepHeun
