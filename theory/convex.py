r"""The convex example of Nakkiran (2020): Lemma 2 in general and Proposition 1 by Monte Carlo.

Setting and notation (the paper's Appendix A)
---------------------------------------------
Linear regression :math:`\hat y = \langle\beta, x\rangle`, labels :math:`y = \langle\beta^*, x\rangle`.

* population covariance :math:`\Sigma = \mathbb E[x x^\top]`, sample covariance
  :math:`S = \tfrac1n X^\top X`, assumed *simultaneously diagonalizable*,
  :math:`\Sigma = U \Lambda U^\top`, :math:`S = U \Gamma U^\top`, :math:`\Lambda = \mathrm{diag}(\lambda_i)`,
  :math:`\Gamma = \mathrm{diag}(\gamma_i)`, ordered :math:`\gamma_1 \ge \gamma_2 \ge \dots \ge \gamma_d`;
* eigen-coordinates of the residual :math:`\delta = U^\top(\beta - \beta^*)`.

Normalization (used everywhere in this module). Both the paper's equation (1) and its appendix use

.. math::  \hat L(\beta) = \frac1n \sum_{i=1}^n (\langle\beta, x_i\rangle - y_i)^2
           = \|\beta - \beta^*\|_S^2 = \sum_i \gamma_i \delta_i^2, \qquad
           L_{\mathcal D}(\beta) = \mathbb E[(\langle\beta, x\rangle - y)^2]
           = \|\beta - \beta^*\|_\Sigma^2 = \sum_i \lambda_i \delta_i^2,

with *no* factor 1/2, so :math:`\nabla \hat L(\beta) = 2 S (\beta - \beta^*)`. Hence

* gradient flow :math:`\dot\delta_i = -2\gamma_i \delta_i`, i.e. :math:`\delta_i(t) = \delta_i(0) e^{-2\gamma_i t}`;
* gradient descent with step :math:`\eta`: :math:`\delta_i(t+1) = (1 - 2\eta\gamma_i)\,\delta_i(t)`;
* the "large" step :math:`\eta = 1/\gamma_1` makes the top coordinate oscillate,
  :math:`\delta_1(t+1) = -\delta_1(t)`. (With a :math:`\tfrac1{2n}` loss the same oscillation needs
  :math:`\eta = 2/\gamma_1`; :math:`\eta = 1/\gamma_1` would then solve the top coordinate in one step.)

Lemma 2 (reconstructed from its proof where the seed text is garbled). Let
:math:`\mathcal S = \{k, \dots, d\}` be a block of small sample eigenvalues with a gap
:math:`\gamma_i / \gamma_k \ge 1 + \rho` for all :math:`i \in \bar{\mathcal S} = [d]\setminus\mathcal S`,
and :math:`0 < \alpha < 1`. Conditions on the initialization :math:`\delta(0)`:

1. :math:`\gamma_1 \delta_1(0)^2 > \varepsilon`;
2. :math:`\dfrac{\varepsilon^\rho}{(|\mathcal S|\, \gamma_{j^*}\delta_{j^*}(0)^2)^{1+\rho}}
   \sum_{i\in\bar{\mathcal S}} \gamma_i \delta_i(0)^2 \le \alpha`,
   :math:`j^* = \arg\min_{j\in\mathcal S} \gamma_j \delta_j(0)^2`.

Conclusions, with :math:`\eta = 1/\gamma_1`:

* gradient flow stopped at :math:`\hat L = \varepsilon`:
  :math:`L_{\mathcal D}(\beta_\text{slow}) \ge \varepsilon (1-\alpha) \min_{j\in\mathcal S} \lambda_j/\gamma_j`;
* annealed GD (:math:`K` steps at :math:`\eta`, then gradient flow to :math:`\varepsilon`):
  :math:`L_{\mathcal D}(\beta_\text{fast}) \le \varepsilon \max_{j:\gamma_j=\gamma_1} \lambda_j/\gamma_j
  + \tau_K`, where the proof gives the explicit tail
  :math:`\tau_K = c^K \sum_{i\in Q} \lambda_i \delta_i(0)^2`,
  :math:`c = \max_{j\in Q} (1 - 2\eta\gamma_j)^2`, :math:`Q = \{i : \gamma_i \ne \gamma_1\}`.
  The paper writes :math:`\tau_K` as :math:`\exp(-\Omega(K))` with
  :math:`\Omega(K) = -K \log \max_{j\in Q} |1 - 2\gamma_j/\gamma_1|`; that form drops the constant
  :math:`\sum_{Q}\lambda_i\delta_i(0)^2` and is only an order statement (it is reported as
  ``tail_paper`` for comparison; the bound that is checked uses :math:`\tau_K`).

Proposition 1. :math:`x` uniform on :math:`\{e_1, e_2\}` (:math:`\Sigma = I/2`),
:math:`\beta^* = 100\,\alpha^{-1/2} (1, 1)`, :math:`n = 3`, start at 0. With probability 3/4 two
samples coincide, :math:`S \simeq \mathrm{diag}(2/3, 1/3)`, and Lemma 2 with :math:`\mathcal S = \{2\}`
gives :math:`L_{\mathcal D}(\beta_\text{slow}) \ge \tfrac32\varepsilon(1-\alpha)` and
:math:`L_{\mathcal D}(\beta_\text{fast}) \le \tfrac34\varepsilon + \tau_K`, a factor 2. With probability
1/4 all three samples coincide and both optimizers end at the same test loss.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from lrdecay.theory.convex_dynamics import (  # re-exported: every public name stays importable from here
    EigenBasis, NumericalFlow, _nonneg_int, _sym_matrix, _vector, gd_delta, gd_phase_closed, gf_delta,
    gf_stopping_time, gradient_descent_numerical, gradient_flow_numerical, population_loss, sample_covariance,
    simultaneous_eigenbasis, train_grad, train_loss)
from lrdecay.theory.validation import open_unit as _open_unit, positive as _positive

__all__ = [
    "NORMALIZATION", "EigenBasis", "simultaneous_eigenbasis", "sample_covariance", "train_loss",
    "population_loss", "train_grad", "gf_delta", "gf_stopping_time", "gd_delta", "gradient_flow_numerical",
    "gradient_descent_numerical", "Lemma2Result", "lemma2", "PROP1_SIGMA", "PROP1_N", "prop1_beta_star",
    "prop1_sample_covariance",
]

NORMALIZATION = (
    "train loss L_n(beta) = (1/n) sum_i (<beta,x_i> - y_i)^2 = ||beta - beta*||_S^2 (no 1/2), "
    "gradient 2 S (beta - beta*); population loss L_D(beta) = E[(<beta,x> - y)^2] = ||beta - beta*||_Sigma^2; "
    "gradient flow delta_i(t) = delta_i(0) exp(-2 gamma_i t); gradient descent "
    "delta_i(t+1) = (1 - 2 eta gamma_i) delta_i(t); large step eta = 1/gamma_1"
)

# Relative tolerance used when comparing floating-point losses against the lemma's bounds.
BOUND_RTOL = 1e-9


# --------------------------------------------------------------------------------------------------
# Lemma 2
# --------------------------------------------------------------------------------------------------

@dataclass
class Lemma2Result:
    r"""Everything Lemma 2 talks about, for one instance.

    Eigen-data: ``lam``, ``gam`` (:math:`\gamma` descending), ``U``, ``delta0``.
    Block: ``small`` (0-based indices of :math:`\mathcal S`), ``rho`` (the largest admissible gap,
    :math:`\min_{i\in\bar{\mathcal S}}\gamma_i/\gamma_k - 1`).
    Conditions: ``cond1_value`` :math:`=\gamma_1\delta_1(0)^2` (needs :math:`>\varepsilon`),
    ``cond2_value`` (the left side of condition 2, needs :math:`\le\alpha`).
    Gradient flow ("slow"): ``T_slow``, ``beta_slow`` (closed form), ``beta_slow_num``/``T_slow_num``
    (numerical), losses. Annealed GD ("fast"): ``gd_steps`` taken (fewer than ``K`` only if the
    train loss fell to :math:`\varepsilon` during the GD phase), ``T_fast`` (time of the final flow),
    ``beta_fast`` (closed form), ``beta_fast_num`` (numerical), losses.
    Bounds: ``bound_slow`` :math:`=\varepsilon(1-\alpha)\min_{\mathcal S}\lambda_j/\gamma_j`,
    ``bound_fast`` :math:`=\varepsilon\max_{\gamma_j=\gamma_1}\lambda_j/\gamma_j + \tau_K`, ``tail`` :math:`=\tau_K`,
    ``tail_paper`` :math:`=\max_{Q}|1-2\gamma_j/\gamma_1|^K` (the paper's :math:`e^{-\Omega(K)}`).
    """

    Sigma: np.ndarray
    S: np.ndarray
    beta_star: np.ndarray
    beta0: np.ndarray
    eps: float
    alpha: float
    K: int
    eta: float
    eta_lemma: float
    U: np.ndarray
    lam: np.ndarray
    gam: np.ndarray
    delta0: np.ndarray
    small: np.ndarray
    rho: float
    cond1_value: float
    cond2_value: float
    j_star: int
    T_slow: float
    beta_slow: np.ndarray
    train_slow: float
    test_slow: float
    gd_steps: int
    gd_path: np.ndarray
    T_fast: float
    beta_fast: np.ndarray
    train_fast: float
    test_fast: float
    bound_slow: float
    bound_fast_main: float
    tail: float
    tail_paper: float
    beta_slow_num: np.ndarray | None = None
    T_slow_num: float = float("nan")
    beta_fast_num: np.ndarray | None = None
    T_fast_num: float = float("nan")
    numerical_status: str = "not run"
    extra: dict = field(default_factory=dict)

    @property
    def cond1(self) -> bool:
        return bool(self.cond1_value > self.eps)

    @property
    def cond2(self) -> bool:
        return bool(self.cond2_value <= self.alpha)

    @property
    def conditions_hold(self) -> bool:
        return self.cond1 and self.cond2

    @property
    def eta_is_lemma(self) -> bool:
        """True if the step is the lemma's ``1/gamma_1`` (relative tolerance 1e-12)."""
        return bool(abs(self.eta - self.eta_lemma) <= 1e-12 * self.eta_lemma)

    @property
    def bound_fast(self) -> float:
        return self.bound_fast_main + self.tail

    @property
    def slow_bound_holds(self) -> bool:
        return bool(self.test_slow >= self.bound_slow * (1 - BOUND_RTOL))

    @property
    def fast_bound_holds(self) -> bool:
        return bool(self.test_fast <= self.bound_fast * (1 + BOUND_RTOL) + 1e-300)

    @property
    def ratio(self) -> float:
        """Test-loss ratio gradient flow / annealed GD."""
        return self.test_slow / self.test_fast if self.test_fast > 0 else float("inf")

    def _scale(self) -> float:
        return float(np.linalg.norm(self.beta_star - self.beta0) + np.linalg.norm(self.beta_star) + 1.0)

    @property
    def slow_discrepancy(self) -> float:
        """||beta_slow (closed form) - beta_slow (numerical)|| / (||beta* - beta0|| + ||beta*|| + 1)."""
        if self.beta_slow_num is None:
            return float("nan")
        return float(np.linalg.norm(self.beta_slow - self.beta_slow_num) / self._scale())

    @property
    def fast_discrepancy(self) -> float:
        if self.beta_fast_num is None:
            return float("nan")
        return float(np.linalg.norm(self.beta_fast - self.beta_fast_num) / self._scale())


def lemma2(Sigma, S, beta_star, beta0=None, *, eps, alpha, K, eta=None, n_small=None,
           numerical: bool = True, tol: float = 1e-9) -> Lemma2Result:
    r"""Evaluate Lemma 2 of Nakkiran (2020) on one instance.

    Parameters
    ----------
    Sigma : (d, d) population covariance :math:`\Sigma`, symmetric positive definite.
    S : (d, d) sample covariance :math:`S = \frac1n X^\top X`, symmetric PSD, commuting with ``Sigma``.
    beta_star : (d,) ground truth :math:`\beta^*`.
    beta0 : (d,) initialization (default 0).
    eps : early-stopping train loss :math:`\varepsilon > 0`.
    alpha : the lemma's :math:`0 < \alpha < 1`.
    K : number of large steps, integer :math:`\ge 0`.
    eta : large step, > 0 (default the lemma's :math:`1/\gamma_1`).
    n_small : :math:`|\mathcal S|`, the number of smallest sample eigen-directions forming the
        "small" block, in ``[1, d-1]``; the split must fall at a strict gap
        :math:`\gamma_{d-|\mathcal S|} > \gamma_{d-|\mathcal S|+1}`. Default: the eigenspace of the
        smallest :math:`\gamma` (requires two distinct sample eigenvalues).
    numerical : also integrate both optimizers numerically in the original coordinates.

    Gradient flow: stop time :math:`T` from :func:`gf_stopping_time`,
    :math:`\delta(T) = \delta(0)e^{-2\Gamma T}`. Annealed GD: :math:`\delta(K) = (I-2\eta\Gamma)^K\delta(0)`
    (stopping early if :math:`\hat L \le \varepsilon`), then gradient flow from :math:`\delta(K)`.
    """
    basis = simultaneous_eigenbasis(Sigma, S, tol=tol)
    Sigma = _sym_matrix("Sigma", Sigma)
    d = Sigma.shape[0]
    S = _sym_matrix("S", S, d)
    beta_star = _vector("beta_star", beta_star, d)
    beta0 = np.zeros(d) if beta0 is None else _vector("beta0", beta0, d)
    eps = _positive("eps", eps)
    alpha = _open_unit("alpha", alpha)
    K = _nonneg_int("K", K)
    lam, gam, U = basis.lam, basis.gam, basis.U
    if gam[0] <= 0:
        raise ValueError("S must be nonzero (largest sample eigenvalue gamma_1 > 0)")
    eta_lemma = 1.0 / gam[0]
    eta = eta_lemma if eta is None else _positive("eta", eta)
    gscale = tol * gam[0]
    n_small, small, large, rho = _small_block(gam, n_small, gscale)

    delta0 = basis.to_eigen(beta0, beta_star)
    cond1_value, cond2_value, j_star = _conditions(gam * delta0 ** 2, small, large, rho, eps)

    # gradient flow (closed form)
    T_slow = gf_stopping_time(gam, delta0, eps)
    d_slow = gf_delta(gam, delta0, T_slow)
    beta_slow = basis.from_eigen(d_slow, beta_star)

    # annealed gradient descent (closed form)
    steps, gd_path_delta = gd_phase_closed(gam, delta0, eta, K, eps)
    d_K = gd_path_delta[-1]
    T_fast = gf_stopping_time(gam, d_K, eps)
    d_fast = gf_delta(gam, d_K, T_fast)
    beta_fast = basis.from_eigen(d_fast, beta_star)

    bound_slow, bound_fast_main, tail, tail_paper = _bounds(lam, gam, delta0, small, gscale, eps=eps, alpha=alpha,
                                                            eta=eta, K=K)
    res = Lemma2Result(
        Sigma=Sigma, S=S, beta_star=beta_star, beta0=beta0, eps=eps, alpha=alpha, K=K, eta=eta,
        eta_lemma=eta_lemma, U=U, lam=lam, gam=gam, delta0=delta0, small=small, rho=rho,
        cond1_value=cond1_value, cond2_value=cond2_value, j_star=j_star,
        T_slow=T_slow, beta_slow=beta_slow, train_slow=train_loss(beta_slow, S, beta_star),
        test_slow=population_loss(beta_slow, Sigma, beta_star),
        gd_steps=steps, gd_path=basis.from_eigen(gd_path_delta, beta_star), T_fast=T_fast,
        beta_fast=beta_fast, train_fast=train_loss(beta_fast, S, beta_star),
        test_fast=population_loss(beta_fast, Sigma, beta_star),
        bound_slow=bound_slow, bound_fast_main=bound_fast_main, tail=tail, tail_paper=tail_paper,
    )
    if numerical:
        _add_numerical(res, eta)
    return res


def _small_block(gam: np.ndarray, n_small, gscale: float) -> tuple[int, np.ndarray, np.ndarray, float]:
    """The small block S = {k, ..., d} (0-based: indices d - n_small, ..., d - 1), checked to end at a strict gap
    of the sample spectrum; returns (n_small, small indices, large indices, rho)."""
    d = gam.size
    if n_small is None:
        n_small = int(np.sum(np.abs(gam - gam[-1]) <= gscale))
        if n_small >= d:
            raise ValueError("n_small: S has a single distinct eigenvalue, so there is no small block; "
                             "Lemma 2 needs two distinct sample eigenvalues")
    if isinstance(n_small, bool) or not isinstance(n_small, (int, np.integer)) or not (1 <= n_small <= d - 1):
        raise ValueError(f"n_small must be an integer in [1, {d - 1}] (the size of the small block), got {n_small!r}")
    n_small = int(n_small)
    k = d - n_small
    if gam[k - 1] - gam[k] <= gscale:
        raise ValueError(
            f"n_small = {n_small} does not split the sample spectrum at a strict gap "
            f"(gamma_{k} = {gam[k - 1]:.6g} equals gamma_{k + 1} = {gam[k]:.6g}); choose n_small so that the "
            "small block is a union of whole eigenspaces of S")
    small = np.arange(k, d)
    large = np.arange(0, k)
    gk = gam[k]
    rho = float(np.min(gam[large]) / gk - 1.0) if gk > 0 else float("inf")
    return n_small, small, large, rho


def _conditions(w0: np.ndarray, small: np.ndarray, large: np.ndarray, rho: float,
                eps: float) -> tuple[float, float, int]:
    r"""The left sides of the lemma's conditions 1 and 2 for the initial energies ``w0`` :math:`=\gamma_i\delta_i(0)^2`,
    and :math:`j^*` (condition 2 computed in logarithms; ``inf`` where it overflows)."""
    cond1_value = float(w0[0])
    j_rel = int(np.argmin(w0[small]))
    j_star = int(small[j_rel])
    m = float(w0[j_star])
    A = float(np.sum(w0[large]))
    if m <= 0 or not math.isfinite(rho):
        cond2_value = float("inf")
    elif A == 0:
        cond2_value = 0.0
    else:
        logv = math.log(A) + rho * math.log(eps) - (1.0 + rho) * math.log(small.size * m)
        cond2_value = math.exp(logv) if logv < 700 else float("inf")
    return cond1_value, cond2_value, j_star


def _bounds(lam, gam, delta0, small, gscale: float, *, eps: float, alpha: float, eta: float,
            K: int) -> tuple[float, float, float, float]:
    r"""The lemma's bounds: (``bound_slow``, ``bound_fast_main``, the tail :math:`\tau_K`, the paper's tail)."""
    with np.errstate(divide="ignore"):
        ratios = np.where(gam > 0, lam / np.where(gam > 0, gam, 1.0), np.inf)
    bound_slow = eps * (1 - alpha) * float(np.min(ratios[small]))
    top = np.abs(gam - gam[0]) <= gscale
    Q = ~top
    bound_fast_main = eps * float(np.max(ratios[top]))
    if np.any(Q):
        c = float(np.max((1.0 - 2.0 * eta * gam[Q]) ** 2))
        tail = (c ** K if K > 0 else 1.0) * float(np.sum(lam[Q] * delta0[Q] ** 2))
        tail_paper = float(np.max(np.abs(1.0 - 2.0 * gam[Q] / gam[0]))) ** K
    else:
        tail, tail_paper = 0.0, 0.0
    return bound_slow, bound_fast_main, tail, tail_paper


def _add_numerical(res: Lemma2Result, eta: float) -> None:
    """Both optimizers integrated numerically in the original coordinates, stored on ``res``."""
    S, beta_star, beta0, eps, K = res.S, res.beta_star, res.beta0, res.eps, res.K
    slow = gradient_flow_numerical(S, beta_star, beta0, eps)
    n_steps, gd_path = gradient_descent_numerical(S, beta_star, beta0, eta, K, eps)
    fast = gradient_flow_numerical(S, beta_star, gd_path[-1], eps)
    res.beta_slow_num, res.T_slow_num = slow.beta_final, slow.t_final
    res.beta_fast_num, res.T_fast_num = fast.beta_final, fast.t_final
    res.numerical_status = f"{slow.status}/{fast.status}"
    res.extra["gd_steps_num"] = n_steps
    res.extra["gd_path_num"] = gd_path
    res.extra["slow_flow"] = slow
    res.extra["fast_flow"] = fast


# --------------------------------------------------------------------------------------------------
# Proposition 1
# --------------------------------------------------------------------------------------------------

#: Population covariance of x uniform on {e1, e2}.
PROP1_SIGMA = 0.5 * np.eye(2)
PROP1_N = 3


def prop1_beta_star(alpha) -> np.ndarray:
    r"""The paper's ground truth :math:`\beta^* = 100\,\alpha^{-1/2}(1, 1)`."""
    alpha = _open_unit("alpha", alpha)
    return 100.0 / math.sqrt(alpha) * np.ones(2)


def prop1_sample_covariance(idx) -> np.ndarray:
    r""":math:`S = \frac1n\sum_i x_i x_i^\top` for samples :math:`x_i = e_{\mathrm{idx}_i}` (``idx`` in {0, 1})."""
    idx = np.asarray(idx)
    if idx.ndim != 1 or idx.size < 1 or not np.all((idx == 0) | (idx == 1)):
        raise ValueError(f"idx must be a 1-D array of sample coordinates in {{0, 1}}, got {idx!r}")
    X = np.eye(2)[idx]
    return sample_covariance(X)
