"""Which backend runs a call, and the backend object for each chunk.

``"auto"`` picks numba wherever it is installed and can serve the call, else numpy; it never picks
torch, whose random numbers differ. numba and torch serve the built-in nonlinear model
(:class:`~lrdecay.theory.engine.protocol.CompiledModel`: its steps, per-step stops from ``stop_loss``
and ``divergence_loss`` only, any observables and record-time ``stop_fn``); a forced backend that
cannot serve a call raises a ``ValueError`` saying why.
"""
from __future__ import annotations

from lrdecay.theory.engine.backends import kernels
from lrdecay.theory.engine.protocol import CompiledModel

#: the observables the compiled and torch backends compute themselves, in the kernels' order
BUILTIN_OBSERVABLES = kernels.OBSERVABLES


def unserved(model, conditions) -> str | None:
    """Why the compiled and torch backends cannot run this call (``None`` when they can)."""
    if not isinstance(model, CompiledModel):
        return (f"the model ({type(model).__name__}) is not a lrdecay.theory.models.nonlinear.NonlinearModel "
                "(it has no kernel_data())")
    try:
        model.kernel_data()
    except NotImplementedError as why:
        return str(why)
    if any(c.every_step and not c.builtin for c in conditions):
        return "a per-step StopWhen other than stop_loss and divergence_loss needs the numpy loop"
    return None


def choose(backend: str, model, conditions) -> str:
    """``"numpy"``, ``"numba"`` or ``"torch"``: the forced one if it can serve the call (else a
    ValueError), or for ``"auto"`` numba where installed and able, else numpy."""
    from lrdecay.theory.engine.backends import torch as torch_backend

    why = unserved(model, conditions)
    if backend == "auto":
        return "numba" if kernels.HAVE_NUMBA and why is None else "numpy"
    if backend == "numba" and not kernels.HAVE_NUMBA:
        raise ValueError("backend='numba' needs numba (pip install -e '.[fast]'); use backend='numpy' or 'auto'")
    if backend in ("numba", "torch") and why is not None:
        raise ValueError(f"backend={backend!r} cannot serve this call: {why}; use backend='numpy' or 'auto'")
    if backend == "torch" and not torch_backend.available():
        raise ValueError("backend='torch' needs torch (pip install -e '.[empirics]')")
    return backend


def kernel_observables(model, obs_names, conditions) -> tuple | None:
    """The observables a backend can record itself: the model's built-in four (or a chosen subset of
    them) when no record-time stop condition needs the Python observer; else ``None``."""
    if not isinstance(model, CompiledModel):
        return None
    try:
        builtin = model.kernel_data().builtin_observables
    except NotImplementedError:         # only the numpy backend runs it, with the Python observer
        return None
    if not builtin or obs_names is None or any(not c.every_step for c in conditions):
        return None
    return BUILTIN_OBSERVABLES if obs_names == "all" else tuple(obs_names)


def backend_factory(name: str, device=None, dtype=None):
    """``make(model, W, rates, c0, c1, first_path, plan) -> Backend`` for the chosen backend."""
    if name == "numpy":
        from lrdecay.theory.engine.backends.numpy import NumpyBackend
        return NumpyBackend
    if name == "numba":
        from lrdecay.theory.engine.backends import numba
        return numba.make
    from lrdecay.theory.engine.backends.torch import Device, TorchBackend
    where = Device.make(device, dtype)
    return lambda *args: TorchBackend(*args, where)
