r"""The quasistatic picture for any model given as a differentiable prediction function ``f(theta, X)``.

A :class:`GenericModel` holds a prediction function ``predict(theta, X) -> (n,)`` written with torch operations
(``theta`` a float64 tensor of shape ``(D,)``, ``X`` the inputs, a tensor of shape ``(n, ...)``), the train data
``X``, ``y`` (``n`` points), a start ``theta0``, a label-noise level ``sigma`` and optionally a test set
``(X_test, y_test)`` (``m`` points). Everything the engine and the drift need is derived from ``predict`` by
automatic differentiation (``torch.func``: ``vmap`` over paths, ``jacrev``, ``grad``; reverse-mode autograd for the
vector-Jacobian products of the engine's steps); nothing about the
model is written by hand. Notation as in :mod:`lrdecay.theory.models.base`:

* residual ``r = f(theta, X) - y``, train loss ``L_n = (1/2n) ||r||^2``, test loss
  ``L = (1/2m) ||f(theta, X_test) - y_test||^2`` (for a linear read-out ``f = X beta`` and ``X_test = sqrt(d) I_d``,
  ``y_test = sqrt(d) beta*`` it is exactly the population loss ``1/2 ||beta - beta*||^2`` of ``x ~ N(0, I_d)``);
* Jacobian ``J = D_theta f(theta, X)`` (n x D); ``Hess L_n = (J^T J + sum_i r_i Hess f_i) / n``, so on the
  manifold of minima ``M = {r = 0}`` the Hessian is the Gauss–Newton matrix ``H = J^T J / n`` and
  ``tr H = ||J||_F^2 / n`` (:meth:`GenericModel.hessian_trace`, the Gauss–Newton trace, at every point);
* normal space ``range J^T`` (orthonormal basis from a QR factorisation of ``J^T``), tangent space ``ker J``;
* retraction onto M: Gauss–Newton ``theta <- theta - J^T (J J^T)^{-1} r`` until ``max |r| <= tol (1 + ||y||)``, with a
  per-path status (:meth:`GenericModel.retract_status`).

**The drift and its constant.** Label-noise SGD ``theta <- theta - (eta/n) J^T (r - sigma xi)`` is, near a point of
M, an Ornstein–Uhlenbeck process in the normal space with step covariance ``eta^2 a H`` (``a = sigma^2 / n``) and
stationary covariance ``Sigma = sum_j eta a / (2 - eta lambda_j) v_j v_j^T -> (eta a / 2) P_N`` as ``eta -> 0``.
Averaging the third-order term of the loss over it moves the iterate by ``-(eta/2) P_T grad tr(Hess L_n Sigma)
= -(eta^2 a / 4) P_T grad tr H`` per step, so in the drift time ``tau = eta^2 k``

``d theta / d tau = -(a/4) P_T grad_theta tr H``,  ``tr H = ||J||_F^2 / n``,

the constant of :func:`lrdecay.theory.quasistatic.drift_velocity` (the main model) and
:meth:`lrdecay.theory.models.base.LinearReadoutModel.drift_velocity`. On M, ``grad tr Hess L_n`` and ``grad tr H`` differ by
``(1/n) sum_i (tr Hess f_i) grad r_i = J^T c``, a normal vector, so the tangent drift is the same whichever trace
is differentiated (the hand-written models differentiate the full ``tr Hess L_n``). At a finite ``eta`` the exact OU
covariance replaces ``tr H`` by ``R_eta = -(2/eta) sum_j log(1 - eta lambda_j / 2) = -(2/eta) log det(I - eta J J^T
/ (2n))`` (:func:`lrdecay.theory.quasistatic.discrete_regularizer`; ``lambda_j`` the eigenvalues of ``J J^T / n``), differentiated
here through the log-determinant. :func:`drift_flow` integrates the drift from many starts with the gradient-flow
integrator of :mod:`lrdecay.theory.flow` (``solve_ivp`` with a terminal event), retracting onto M after each stretch of drift time, with a per-path
status and a stop at a small drift speed (a trace-minimising point of M).

torch is imported inside the methods only, so :mod:`theory` imports without it.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from lrdecay.theory import io
from lrdecay.theory.models.base import plateau_from_eigs
from lrdecay.theory.validation import finite_array, integer, nonneg, positive

#: statuses of :func:`drift_flow`'s paths
DRIFT_STATUSES = ("time_limit", "stationary", "retraction_failed", "diverged", "failed")


def _torch():
    import torch

    return torch


def reference_of(fn) -> tuple[str, dict] | None:
    """``("module:qualname", kwargs)`` naming a module-level function (or a ``functools.partial`` of one with
    keyword arguments of JSON values), so that a saved model can import it back; ``None`` for a lambda or a
    local function."""
    kwargs = {}
    if isinstance(fn, partial):
        if fn.args:
            return None
        kwargs, fn = dict(fn.keywords), fn.func
    mod, qual = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if not mod or "<" in qual or "." in qual:
        return None
    return f"{mod}:{qual}", kwargs


def load_reference(ref: str, kwargs: dict | None = None):
    """The function named ``"module:function"`` (with ``kwargs`` bound); a one-line ``ValueError`` if it is not there."""
    if not isinstance(ref, str) or ref.count(":") != 1 or not all(ref.split(":")):
        raise ValueError(f"entry point must look like 'module:function', got {ref!r}")
    mod, name = ref.split(":")
    try:
        fn = getattr(importlib.import_module(mod), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"entry point {ref!r} cannot be imported ({type(exc).__name__}: {exc})") from None
    if not callable(fn):
        raise ValueError(f"entry point {ref!r} is not callable")
    return partial(fn, **kwargs) if kwargs else fn


def _compile_step(fn, args):
    """``fn`` (torch tensors in and out) as a graph of the aten operations it runs on ``args``' shapes: traced by
    ``make_fx``, with the no-op ``alias`` nodes removed, then ``torch.jit.trace``d (run by TorchScript's interpreter
    in C++; deprecated in recent torch, so where it fails the FX graph is used, and where that fails, ``fn``)."""
    import warnings

    torch = _torch()
    from torch.fx.experimental.proxy_tensor import make_fx

    try:
        gm = make_fx(fn)(*args)
    except Exception:  # noqa: BLE001 - a function make_fx cannot trace keeps the eager step
        return fn
    for node in list(gm.graph.nodes):
        if node.op == "call_function" and node.target is torch.ops.aten.alias.default:
            node.replace_all_uses_with(node.args[0])
            gm.graph.erase_node(node)
    gm.graph.eliminate_dead_code()
    gm.recompile()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.jit.trace(gm, args, check_trace=False)
    except Exception:  # noqa: BLE001 - no TorchScript: the FX graph
        return gm


@io.record_type
class GenericModel:
    """A model given only by ``predict(theta, X)``; the engine interface (``dim``, ``noise_dim``, ``n``,
    ``increment``, ``minibatch_increment``, ``observables``) and the geometry of M, by automatic differentiation.

    Every method takes one point ``(D,)`` or a batch ``(..., D)`` of numpy arrays and returns numpy arrays with
    the matching leading shape."""

    NAME = "generic"

    def __init__(self, predict, X, y, theta0, *, sigma: float = 0.0, X_test=None, y_test=None, name: str = "generic",
                 meta: dict | None = None):
        if not callable(predict):
            raise ValueError(f"predict must be a function (theta, X) -> predictions, got {type(predict).__name__}")
        X = np.asarray(X, dtype=float)
        if X.ndim < 1 or X.shape[0] < 1 or not np.all(np.isfinite(X)):
            raise ValueError(f"X must be an array of n >= 1 finite inputs along its first axis, got shape {X.shape}")
        n = X.shape[0]
        y = finite_array("y", y, 1)
        if y.shape != (n,):
            raise ValueError(f"y must have shape (n,) = ({n},) to match X, got {y.shape}")
        theta0 = finite_array("theta0", theta0, 1)
        if (X_test is None) != (y_test is None):
            raise ValueError("X_test and y_test must be given together")
        if X_test is not None:
            X_test = np.asarray(X_test, dtype=float)
            y_test = finite_array("y_test", y_test, 1)
            if X_test.shape[1:] != X.shape[1:] or X_test.shape[0] != y_test.shape[0]:
                raise ValueError(f"X_test must have shape (m,) + {X.shape[1:]} with m = len(y_test) = {y_test.shape[0]}, "
                                 f"got {X_test.shape}")
        self.predict_fn = predict
        self.X, self.y, self.theta0 = X, y, theta0
        self.X_test, self.y_test = X_test, y_test
        self.sigma = nonneg("sigma", sigma)
        self.n, self.dim, self.noise_dim = n, theta0.size, n
        self.name = str(name)
        self.meta = dict(meta or {})
        torch = _torch()
        self._tX = torch.as_tensor(X, dtype=torch.float64)
        self._ty = torch.as_tensor(y, dtype=torch.float64)
        self._tXt = None if X_test is None else torch.as_tensor(X_test, dtype=torch.float64)
        try:
            out = predict(torch.as_tensor(theta0, dtype=torch.float64), self._tX)
        except Exception as exc:  # noqa: BLE001 - any failure of user code is reported in one line
            raise ValueError(f"predict(theta0, X) failed: {type(exc).__name__}: {exc}") from None
        if tuple(out.shape) != (n,):
            raise ValueError(f"predict(theta0, X) must return shape (n,) = ({n},), got {tuple(out.shape)}")
        self._build()

    # ---- the torch functions -------------------------------------------------------------------
    def _build(self):
        torch = _torch()
        from torch.func import grad, jacrev, vmap

        f, X, y, n = self.predict_fn, self._tX, self._ty, self.n

        def fx(th):
            return f(th, X)

        self._per_sample = self._separable()
        if self._per_sample:
            # one sample at a time, vmapped over the samples: J row by row (n gradients of one-sample
            # predictions) and grad ||J||_F^2 = sum_i grad ||grad f_i||^2 (reverse over reverse per sample), O(n)
            # passes of one sample each instead of the O(n) passes of all n samples that jacrev(fx) makes
            def one(th, x):
                return f(th, x[None])[0]

            def jac(th):
                return vmap(grad(one), in_dims=(None, 0))(th, X)
        else:
            jac = jacrev(fx)

        def gn_trace(th):                                     # ||J||_F^2 / n, with J as aux
            J = jac(th)
            return torch.sum(J * J) / n, J

        def r_eta(th, eta):                                   # -(2/eta) log det(I - eta J J^T / 2n), with J
            J = jac(th)
            A = torch.eye(n, dtype=th.dtype) - (eta / (2 * n)) * (J @ J.T)
            return -(2 / eta) * torch.linalg.slogdet(A)[1], J

        self._f = vmap(fx)
        self._jac = vmap(jac)
        self._trace_grad = vmap(grad(gn_trace, has_aux=True))
        self._reta_grad = vmap(grad(r_eta, has_aux=True), in_dims=(0, None))
        if self._tXt is not None:
            Xt = self._tXt
            self._f_test = vmap(lambda th: f(th, Xt))

    def _separable(self) -> bool:
        """Whether ``predict`` treats the samples independently, as a prediction function should: one-sample calls
        ``f(theta0, X[i:i+1])`` (vmapped over ``i``) reproduce ``f(theta0, X)`` to rounding. Where they do not (a
        function that couples the samples, or one ``vmap`` cannot batch), the Jacobian is taken of the whole batch."""
        torch = _torch()
        from torch.func import vmap

        th = torch.as_tensor(self.theta0, dtype=torch.float64)
        try:
            one = vmap(lambda x: self.predict_fn(th, x[None])[0])(self._tX)
            full = self.predict_fn(th, self._tX)
        except Exception:  # noqa: BLE001 - any failure means: not batchable one sample at a time
            return False
        scale = 1e-12 * (1.0 + float(torch.max(torch.abs(full))))
        return tuple(one.shape) == (self.n,) and bool(torch.max(torch.abs(one - full)) <= scale)

    def _pull_back(self, T, V):
        """``J(theta_p)^T v_p`` for every path and the predictions: reverse-mode autograd through the batched forward
        pass (one backward pass for all paths, which are independent; much cheaper than a vmapped ``vjp``)."""
        torch = _torch()
        T = T.detach().requires_grad_(True)
        with torch.enable_grad():
            F = self._f(T)
            V = V(F.detach()) if callable(V) else V
            (g,) = torch.autograd.grad(F, T, grad_outputs=V)
        return g.detach(), F.detach()

    def _batch(self, Theta):
        """``(tensor (P, D), leading shape)``."""
        torch = _torch()
        Theta = np.asarray(Theta, dtype=float)
        if Theta.shape[-1:] != (self.dim,):
            raise ValueError(f"theta must have last axis D = {self.dim}, got shape {Theta.shape}")
        lead = Theta.shape[:-1]
        return torch.as_tensor(Theta.reshape(-1, self.dim), dtype=torch.float64), lead

    @staticmethod
    def _np(t, lead, tail=()):
        return t.detach().numpy().reshape(lead + tuple(tail))

    # ---- losses and derivatives ----------------------------------------------------------------
    def predict(self, Theta) -> np.ndarray:
        """``f(theta, X)``, shape ``(..., n)``."""
        T, lead = self._batch(Theta)
        return self._np(self._f(T), lead, (self.n,))

    def residual(self, Theta) -> np.ndarray:
        return self.predict(Theta) - self.y

    def train_loss(self, Theta) -> np.ndarray:
        """``L_n = (1/2n) ||f(theta, X) - y||^2``."""
        return 0.5 * np.mean(self.residual(Theta) ** 2, axis=-1)

    def test_predictions(self, Theta) -> np.ndarray:
        """``f(theta, X_test)``, shape ``(..., m)``."""
        if self.X_test is None:
            raise ValueError("this model has no test set (X_test, y_test)")
        T, lead = self._batch(Theta)
        return self._np(self._f_test(T), lead, (len(self.y_test),))

    #: the name :func:`lrdecay.theory.models.base.drift_ode` and :mod:`lrdecay.theory.studies.model_decay` store the model's
    #: read-out under (for a linear read-out with ``X_test = sqrt(d) I_d`` it is ``sqrt(d) beta``)
    beta = test_predictions

    def test_loss(self, Theta) -> np.ndarray:
        """``L = (1/2m) ||f(theta, X_test) - y_test||^2`` (NaN without a test set)."""
        if self.X_test is None:
            return np.full(np.shape(Theta)[:-1], np.nan)
        return 0.5 * np.mean((self.test_predictions(Theta) - self.y_test) ** 2, axis=-1)

    def jacobian(self, Theta) -> np.ndarray:
        """``J = D_theta f(theta, X)``, shape ``(..., n, D)`` (reverse mode, ``n`` vector-Jacobian products)."""
        T, lead = self._batch(Theta)
        return self._np(self._jac(T), lead, (self.n, self.dim))

    def train_grad(self, Theta) -> np.ndarray:
        """``grad L_n = J^T r / n``."""
        T, lead = self._batch(Theta)
        g, _ = self._pull_back(T, lambda F: (F - self._ty) / self.n)
        return self._np(g, lead, (self.dim,))

    def train_hessian(self, Theta) -> np.ndarray:
        """The full ``Hess L_n`` (``torch.func.hessian``; ``(..., D, D)``; for checks, ``D^2`` memory)."""
        torch = _torch()
        from torch.func import hessian, vmap

        f, X, y = self.predict_fn, self._tX, self._ty
        T, lead = self._batch(Theta)
        H = vmap(hessian(lambda th: 0.5 * torch.mean((f(th, X) - y) ** 2)))(T)
        return self._np(H, lead, (self.dim, self.dim))

    def hessian_trace(self, Theta) -> np.ndarray:
        """The Gauss–Newton trace ``tr H = ||J||_F^2 / n`` (``= tr Hess L_n`` on M)."""
        J = self.jacobian(Theta)
        return np.sum(J**2, axis=(-2, -1)) / self.n

    def hessian_trace_grad(self, Theta) -> np.ndarray:
        """``grad_theta ||J||_F^2 / n`` (reverse over reverse)."""
        T, lead = self._batch(Theta)
        g, _ = self._trace_grad(T)
        return self._np(g, lead, (self.dim,))

    def gauss_newton_eigs(self, theta) -> np.ndarray:
        """Eigenvalues of ``J J^T / n`` (the non-zero spectrum of ``H`` on M), ascending."""
        J = self.jacobian(theta)
        return np.linalg.eigvalsh(J @ np.swapaxes(J, -1, -2) / self.n)

    def sharpness(self, theta) -> float:
        """``lambda_max(J J^T / n)`` at one point."""
        return float(self.gauss_newton_eigs(theta)[..., -1])

    def discrete_regularizer(self, Theta, eta: float) -> np.ndarray:
        """``R_eta = -(2/eta) sum_j log(1 - eta lambda_j / 2)`` (``inf`` where ``eta lambda_max >= 2``)."""
        eta = positive("eta", eta)
        lam = self.gauss_newton_eigs(Theta)
        arg = 1 - eta * lam / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            out = -(2 / eta) * np.sum(np.log(arg), axis=-1)
        return np.where(np.all(arg > 0, axis=-1), out, np.inf)

    # ---- the geometry of M ---------------------------------------------------------------------
    def normal_basis(self, Theta) -> np.ndarray:
        """Orthonormal basis of ``range J^T`` (the normal space), shape ``(..., D, n)``."""
        q, _ = np.linalg.qr(np.swapaxes(self.jacobian(Theta), -1, -2))
        return q

    @staticmethod
    def _tangent(J, V):
        """``V - Q Q^T V`` with ``Q`` from the QR factorisation of ``J^T`` (batched; torch's QR, single-threaded here:
        numpy's batched QR through OpenBLAS's default threads took up to hundreds of ms a call at ``D = 240`` on a
        loaded machine, against below 1 ms with one thread)."""
        torch = _torch()
        Jt = torch.as_tensor(np.asarray(J, dtype=float))
        Vt = torch.as_tensor(np.asarray(V, dtype=float))
        q, _ = torch.linalg.qr(Jt.transpose(-1, -2))
        c = torch.einsum("...dn,...d->...n", q, Vt)
        return (Vt - torch.einsum("...dn,...n->...d", q, c)).numpy()

    def project_tangent(self, Theta, V) -> np.ndarray:
        """``P_T v`` (onto ``ker J``)."""
        return self._tangent(self.jacobian(Theta), np.asarray(V, dtype=float))

    def project_normal(self, Theta, V) -> np.ndarray:
        """``P_N v = v - P_T v`` (onto ``range J^T``)."""
        V = np.asarray(V, dtype=float)
        return V - self.project_tangent(Theta, V)

    def drift_velocity(self, Theta, a: float, eta: float | None = None) -> np.ndarray:
        """``d theta / d tau = -(a/4) P_T grad tr H`` (with ``eta``: ``-(a/4) P_T grad R_eta``); one automatic
        differentiation pass gives ``J`` and the gradient together."""
        T, lead = self._batch(Theta)
        if eta is None:
            g, J = self._trace_grad(T)
        else:
            g, J = self._reta_grad(T, float(positive("eta", eta)))
        v = -0.25 * a * self._tangent(J.detach().numpy(), g.detach().numpy())
        return v.reshape(lead + (self.dim,))

    def retract_status(self, Theta, tol: float = 1e-13, max_iter: int = 50) -> tuple[np.ndarray, np.ndarray]:
        """Gauss–Newton projection onto M, ``theta <- theta - t J^T (J J^T)^{-1} r`` (the minimum-norm correction
        of the linearised constraint, ``t`` halved until ``||r||`` decreases; ``t = 1`` and quadratic convergence
        near M, the identity on M), per path until
        ``max |r| <= tol (1 + ||y||)``. Returns ``(Theta, ok)``: ``ok`` is False for the paths that did not get
        there in ``max_iter`` steps (or met a singular ``J J^T``); those keep their last iterate."""
        Theta = np.array(Theta, dtype=float)
        lead = Theta.shape[:-1]
        W = Theta.reshape(-1, self.dim)
        scale = tol * (1.0 + np.linalg.norm(self.y))
        ok = np.zeros(len(W), dtype=bool)
        bad = np.zeros(len(W), dtype=bool)
        for _ in range(max_iter + 1):
            idx = np.flatnonzero(~ok & ~bad)
            if idx.size == 0:
                break
            r = self.residual(W[idx])
            ok[idx] = np.max(np.abs(r), axis=-1) <= scale
            idx = idx[~ok[idx]]
            if idx.size == 0 or _ == max_iter:
                break
            J = self.jacobian(W[idx])
            r = self.residual(W[idx])
            try:
                lam = np.linalg.solve(J @ np.swapaxes(J, -1, -2), r[..., None])[..., 0]
            except np.linalg.LinAlgError:
                bad[idx] = True
                break
            step = np.einsum("pnD,pn->pD", J, lam)
            fin = np.all(np.isfinite(step), axis=-1)
            bad[idx[~fin]] = True
            idx, step, r0 = idx[fin], step[fin], np.linalg.norm(r[fin], axis=-1)
            # backtracking: halve the step until the residual decreases (a full step near M, where the
            # convergence is quadratic; far from M, or across a kink of a ReLU, a shorter one)
            t = np.ones(len(idx))
            for _h in range(30):
                trial = W[idx] - t[:, None] * step
                worse = ~(np.linalg.norm(self.residual(trial), axis=-1) < r0)
                if not worse.any():
                    break
                t[worse] *= 0.5
            W[idx] = W[idx] - t[:, None] * step
        return W.reshape(lead + (self.dim,)), ok.reshape(lead)

    def retract(self, Theta, tol: float = 1e-13, max_iter: int = 50) -> np.ndarray:
        """:meth:`retract_status` without the status (the interface of :meth:`lrdecay.theory.models.base.LinearReadoutModel.retract`)."""
        return self.retract_status(Theta, tol, max_iter)[0]

    def plateau(self, theta, eta: float, a: float | None = None) -> tuple[float, float]:
        """Predicted Phase II train-loss plateau near ``theta`` on M: ``(leading, exact)``, leading
        ``(eta a / 4) tr H`` and exact ``(eta a / 4) sum lambda_j / (1 - eta lambda_j / 2)`` (``inf`` if
        ``eta lambda_max >= 2``); ``a = sigma^2 / n`` by default (as :meth:`lrdecay.theory.models.base.LinearReadoutModel.plateau`)."""
        eta = positive("eta", eta)
        a = self.sigma**2 / self.n if a is None else nonneg("a", a)
        return plateau_from_eigs(self.gauss_newton_eigs(theta), eta, a)

    # ---- the engine interface ------------------------------------------------------------------
    def increment(self, W, dt, noise_coef, xi):
        r"""Euler–Maruyama increment of ``d theta = -grad L_n dt + c (J^T / sqrt n) xi``; with ``dt = eta``, ``c =
        eta sigma / sqrt(n)`` one step of full-batch label-noise SGD. One vector-Jacobian product per path:
        ``J^T (-r dt / n + c xi / sqrt n)``. ``dt``, ``c`` scalars or columns ``(P, 1)``. Returns ``(dW, L_n(W))``
        (through :meth:`_sgd_step`)."""
        torch = _torch()
        T, _ = self._batch(W)
        P = T.shape[0]
        vs = (-torch.as_tensor(np.asarray(dt, dtype=float)).reshape(-1, 1) / self.n).expand(P, 1).contiguous()
        noise = torch.zeros((P, self.n), dtype=torch.float64) if xi is None else (
            torch.as_tensor(np.asarray(noise_coef, dtype=float)).reshape(-1, 1)
            * torch.as_tensor(np.asarray(xi, dtype=float))
            / float(np.sqrt(self.n))).expand(P, self.n).contiguous()
        dW, L = self._sgd_step(T, vs, noise)
        return dW.numpy(), L.numpy()

    #: calls of :meth:`_sgd_step` at one number of rows before its graph is traced (tracing costs about 0.1-2 s)
    TRACE_AFTER = 50

    def _eager_step(self, T, vs, noise):
        """``(J^T (r * vs + noise), L_n)`` per row of ``T``: the vmapped forward pass and one reverse pass."""
        torch = _torch()
        T = T.detach().requires_grad_(True)
        with torch.enable_grad():
            F = self._f(T)
            r = F.detach() - self._ty
            (g,) = torch.autograd.grad(F, T, grad_outputs=r * vs + noise)
        return g.detach(), 0.5 * torch.mean(r * r, dim=-1)

    def _sgd_step(self, T, vs, noise):
        """:meth:`_eager_step`, replaced after :data:`TRACE_AFTER` calls at ``P`` rows by the graph of the aten
        operations it runs for ``P`` rows (:func:`_compile_step`): the eager computation without ``vmap``'s,
        autograd's and Python's per-operation dispatch (at d = 50, n = 10, 16 paths: 560 us eager, 230 us as an FX
        graph, 80 us as a TorchScript graph, CPU time; bit for bit the same numbers). It is exact: ``vmap`` already
        refuses a ``predict`` whose Python control flow depends on values, so the traced operations are the ones every
        call would run. A trace that fails leaves the eager step in place."""
        P = int(T.shape[0])
        steps = self.__dict__.setdefault("_traced_steps", {})
        fn = steps.get(P)
        if fn is None:
            calls = self.__dict__.setdefault("_step_calls", {})
            calls[P] = calls.get(P, 0) + 1
            if calls[P] < self.TRACE_AFTER:
                return self._eager_step(T, vs, noise)
            fn = steps[P] = _compile_step(lambda t, v, z: self._eager_step(t, v, z), (T, vs, noise))
        return fn(T, vs, noise)

    def minibatch_increment(self, W, eta, idx, xi, sigma):
        """``-(eta/b) sum_{i in B} grad f_i (f_i - y_i - sigma xi_i)`` for batches ``idx`` (P, b)."""
        P, b = idx.shape
        res = self.residual(W)
        rows = np.arange(P)[:, None]
        V = np.zeros((P, self.n))
        V[rows, idx] = (res[rows, idx] - sigma * xi) * (-np.asarray(eta, dtype=float).reshape(-1, 1) / b)
        T, _ = self._batch(W)
        return self._pull_back(T, _torch().as_tensor(V))[0].numpy()

    def observables(self, W) -> dict:
        """``train_loss``, ``test_loss``, ``norm`` (``||theta||``) and ``trace`` (``||J||_F^2 / n``)."""
        return {"train_loss": self.train_loss(W), "test_loss": self.test_loss(W),
                "norm": np.linalg.norm(W, axis=-1), "trace": self.hessian_trace(W)}

    # ---- persistence (a record type for Result fields) -----------------------------------------
    def arrays(self, prefix: str = "") -> dict:
        out = {f"{prefix}X": self.X, f"{prefix}y": self.y, f"{prefix}theta0": self.theta0}
        if self.X_test is not None:
            out.update({f"{prefix}X_test": self.X_test, f"{prefix}y_test": self.y_test})
        return out

    def config(self) -> dict:
        ref = reference_of(self.predict_fn)
        if ref is None:
            raise ValueError("predict must be a module-level function (or a functools.partial of one with keyword "
                             "arguments) for the model to be saved")
        return {"name": self.name, "predict": ref[0], "predict_kwargs": ref[1], "n": self.n, "D": self.dim,
                "sigma": self.sigma, "meta": self.meta}

    @classmethod
    def from_arrays(cls, arrays: dict, config: dict, prefix: str = ""):
        has_test = f"{prefix}X_test" in arrays
        return cls(load_reference(config["predict"], config.get("predict_kwargs")), arrays[f"{prefix}X"],
                   arrays[f"{prefix}y"], arrays[f"{prefix}theta0"], sigma=config["sigma"],
                   X_test=arrays[f"{prefix}X_test"] if has_test else None,
                   y_test=arrays[f"{prefix}y_test"] if has_test else None, name=config.get("name", "generic"),
                   meta=config.get("meta", {}))

    def with_(self, **changes):
        """A copy with some of ``X, y, theta0, sigma, X_test, y_test, name, meta`` replaced."""
        kw = dict(X=self.X, y=self.y, theta0=self.theta0, sigma=self.sigma, X_test=self.X_test, y_test=self.y_test,
                  name=self.name, meta=dict(self.meta))
        kw.update(changes)
        return type(self)(self.predict_fn, **kw)

    def __repr__(self) -> str:
        return f"GenericModel({self.name}, n={self.n}, D={self.dim}, sigma={self.sigma:g})"


# --------------------------------------------------------------------------------------------------
# The drift flow on M
# --------------------------------------------------------------------------------------------------

@dataclass
class DriftFlow:
    """:func:`drift_flow`'s solution for ``P`` starts: ``tau`` (R,), ``theta`` (R, P, D) (each retracted onto M; a
    stopped path repeats its last point), ``test_loss``, ``trace`` and ``speed`` (``||d theta / d tau||``) (R, P);
    per path ``status`` (:data:`DRIFT_STATUSES`) and ``tau_stop`` (the drift time where it stopped, ``tau[-1]`` for
    ``"time_limit"``); ``off_manifold``: the largest train loss of the integrated points before retraction."""

    tau: np.ndarray
    theta: np.ndarray
    test_loss: np.ndarray
    trace: np.ndarray
    speed: np.ndarray
    status: np.ndarray
    tau_stop: np.ndarray
    off_manifold: float
    config: dict = field(default_factory=dict)

    @property
    def theta_end(self) -> np.ndarray:
        """``(P, D)``: the last point of each path."""
        return self.theta[-1]


def drift_flow(model: GenericModel, Theta_start, tau_max: float, a: float, *, eta: float | None = None,
               speed_tol: float | None = None, speed_rtol: float = 1e-6, n_eval: int = 50, tau_eval=None,
               rtol: float = 1e-9, atol: float = 1e-12, method: str = "LSODA", retract_tol: float = 1e-13) -> DriftFlow:
    """Integrate ``d theta / d tau = -(a/4) P_T grad tr H`` (``eta``: ``grad R_eta``) from every row of
    ``Theta_start`` (retracted onto M first) up to ``tau_max``.

    The drift time is cut at ``tau_eval`` (default ``n_eval`` equal stretches); on each stretch every unfinished
    path runs :func:`lrdecay.theory.flow.gradient_flow` (``solve_ivp``'s ``method``, default LSODA: the drift is stiff, its
    tangent modes range from the fast ones of the landing region to the slow approach of coordinates that vanish at
    the end; ``rtol``, ``atol``) on the field with a terminal event at ``||d theta / d tau|| = speed_tol`` (default ``speed_rtol`` times the path's starting speed), and is then
    retracted onto M (:meth:`GenericModel.retract_status`). A path ends ``"stationary"`` at the event (a
    trace-minimising point of M, to that tolerance), ``"retraction_failed"`` if Gauss–Newton does not bring it back
    to M, ``"diverged"``/``"failed"`` as the integrator says, else ``"time_limit"``."""
    from lrdecay.theory.flow import gradient_flow

    tau_max = positive("tau_max", tau_max)
    a = positive("a", a)
    if eta is not None:
        eta = positive("eta", eta)
    speed_rtol = positive("speed_rtol", speed_rtol)
    W0 = np.atleast_2d(np.asarray(Theta_start, dtype=float))
    if W0.ndim != 2 or W0.shape[1] != model.dim:
        raise ValueError(f"Theta_start must have shape (P, {model.dim}), got {np.shape(Theta_start)}")
    tau = np.linspace(0.0, tau_max, integer("n_eval", n_eval, 2)) if tau_eval is None else \
        np.asarray(tau_eval, dtype=float)
    if tau[0] != 0.0 or np.any(np.diff(tau) <= 0):
        raise ValueError("tau_eval must start at 0 and increase strictly")
    P = len(W0)
    W, ok = model.retract_status(W0, retract_tol)
    status = np.where(ok, "time_limit", "retraction_failed").astype(object)
    speed0 = np.linalg.norm(model.drift_velocity(W, a, eta), axis=-1)
    tol = np.full(P, positive("speed_tol", speed_tol)) if speed_tol is not None else speed_rtol * speed0
    tol = np.maximum(tol, 1e-300)
    tau_stop = np.full(P, tau[-1])
    thetas, off = [W.copy()], 0.0
    for k in range(1, len(tau)):
        for p in np.flatnonzero(status == "time_limit"):
            fr = gradient_flow(lambda w: -model.drift_velocity(w, a, eta),
                               W[p], loss=lambda w, _t=tol[p]: float(np.linalg.norm(model.drift_velocity(w, a, eta))) / _t,
                               eps=1.0, t_max=float(tau[k] - tau[k - 1]), rtol=rtol, atol=atol, method=method)
            off = max(off, float(model.train_loss(fr.w_final)))
            w, ok = model.retract_status(fr.w_final, retract_tol)
            W[p] = w
            if not ok:
                status[p] = "retraction_failed"
            elif fr.status == "reached_eps":
                status[p] = "stationary"
            elif fr.status in ("diverged", "failed"):
                status[p] = fr.status
            if status[p] != "time_limit":
                tau_stop[p] = tau[k - 1] + fr.t_final
        thetas.append(W.copy())
    Th = np.stack(thetas)
    flat = Th.reshape(-1, model.dim)
    return DriftFlow(tau, Th, model.test_loss(flat).reshape(len(tau), P), model.hessian_trace(flat).reshape(len(tau), P),
                     np.linalg.norm(model.drift_velocity(flat, a, eta), axis=-1).reshape(len(tau), P),
                     status.astype(str), tau_stop, off,
                     dict(tau_max=float(tau_max), a=float(a), eta=eta, speed_rtol=float(speed_rtol),
                          speed_tol=None if speed_tol is None else float(speed_tol), rtol=rtol, atol=atol,
                          method=method))
