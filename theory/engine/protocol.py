r"""The one contract between the engine and a model.

A model the engine can run is any object with

* ``dim`` — the dimension of a state ``w``; ``noise_dim`` — the length of the noise ``xi`` of one step;
* ``n`` — the number of examples (``None`` for a model without a data set; then ``sigma`` noise and
  ``em``'s default ``a = sigma^2 / n`` are unavailable, and ``batch_size`` is refused);
* ``increment(W, dt, noise_coef, xi) -> (dW, loss or None)`` — one Euler–Maruyama increment of all
  paths, ``W (P, dim)``, ``xi (P, noise_dim)`` or ``None``; ``dt`` and ``noise_coef`` scalars or per-path
  columns ``(P, 1)``; ``loss`` the train loss at ``W`` when the model has it for free (the engine's
  per-step stop rules test it);
* ``observables(W) -> dict`` of per-path arrays ``(P,)``.

Optional:

* ``minibatch_increment(W, eta, idx, xi, sigma) -> dW`` — a minibatch label-noise SGD step, ``idx (P, b)``
  each path's batch, ``xi (P, b)`` its label noise (needed for ``batch_size``);
* ``select(index) -> model`` and ``n_paths`` — models with per-path data: the model of a subset of
  the paths, and the number of paths the data are for (``W0`` must have that many rows);
* ``kernel_data() -> KernelData`` — a model whose steps are those of
  :class:`~lrdecay.theory.models.nonlinear.NonlinearModel` hands its arrays to the compiled and torch
  backends through it (and raises ``NotImplementedError`` saying why when a subclass changed the steps).
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class EngineModel(Protocol):
    """What :func:`lrdecay.theory.engine.simulate` needs of a model (see the module docstring)."""

    dim: int
    noise_dim: int

    def increment(self, W: np.ndarray, dt, noise_coef, xi: np.ndarray | None) -> tuple:
        ...

    def observables(self, W: np.ndarray) -> dict:
        ...


@runtime_checkable
class MinibatchModel(EngineModel, Protocol):
    """A model that can take minibatch label-noise SGD steps."""

    def minibatch_increment(self, W: np.ndarray, eta, idx: np.ndarray, xi: np.ndarray, sigma: float) -> np.ndarray:
        ...


@runtime_checkable
class PerPathModel(EngineModel, Protocol):
    """A model that may hold data per path: ``select`` gives the model of a subset of the paths (and an
    ``n_paths`` attribute, where present, the number of paths the data are for; ``None``: shared)."""

    def select(self, index) -> "PerPathModel":
        ...


@runtime_checkable
class CompiledModel(EngineModel, Protocol):
    """A model whose steps the compiled and torch backends can run (the built-in nonlinear model)."""

    def kernel_data(self):
        ...


def examples(model) -> int | None:
    """The model's ``n`` (``None`` when it has no data set)."""
    return getattr(model, "n", None)


def subset(model, c0: int, c1: int):
    """The model of paths ``c0 .. c1 - 1``: ``select`` for a per-path model, else the model itself."""
    return model.select(slice(c0, c1)) if isinstance(model, PerPathModel) else model


def paths_held(model) -> int | None:
    """The number of paths a per-path model holds data for (``None``: any number)."""
    return getattr(model, "n_paths", None)
