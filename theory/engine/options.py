"""The options of :func:`~lrdecay.theory.engine.simulate` that belong together, as validated objects:
what to record (:class:`RecordOptions`), the noise (:class:`NoiseOptions`) and where to run
(:class:`BackendOptions`). ``simulate`` takes them, or the same values as its plain keywords
(``record_every=``, ``sigma=``, ``backend=``, ...), not both for one group."""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from lrdecay.theory.engine.driver import Noise
from lrdecay.theory.engine.setup import noise_params, record_grid
from lrdecay.theory.validation import choice, integer

METHODS = ("gd", "sgd", "em")
BACKENDS = ("auto", "numpy", "numba", "torch")


@dataclass(frozen=True)
class RecordOptions:
    """Where and what to record: every ``every`` steps (default about 200 records) or at the steps
    ``steps`` (in ``[0, steps]``), the observables ``observables`` (``None``: all of the model's; else
    names and ``(name, fn)`` pairs)."""

    KEYWORDS = ("record_every", "record_steps", "observables")

    every: int | None = None
    steps: object = None
    observables: object = None

    def grid(self, n_steps: int) -> np.ndarray:
        """The record steps of a run of ``n_steps`` steps (checked)."""
        return record_grid(n_steps, self.every, self.steps)


@dataclass(frozen=True)
class NoiseOptions:
    """The noise: label-noise level ``sigma`` (default: the problem's), the SDE noise scale ``a`` and time
    step ``dt`` (``"em"`` only), the minibatch size ``batch_size`` (``"sgd"`` only; ``None``: full batch)."""

    KEYWORDS = ("sigma", "a", "dt", "batch_size")

    sigma: float | None = None
    a: float | None = None
    dt: float | None = None
    batch_size: int | None = None

    def resolve(self, method: str, model, problem) -> Noise:
        """The checked values for ``method`` and ``model`` (see :func:`~lrdecay.theory.engine.setup.noise_params`)."""
        sig, a, dt, batch_size = noise_params(method, model, problem, self.sigma, self.a, self.dt, self.batch_size)
        noisy = (method == "sgd" and sig > 0) or (method == "em" and a > 0)
        return Noise(sig, a, dt, batch_size, bool(noisy))


@dataclass(frozen=True)
class BackendOptions:
    """Where the paths run: ``name`` one of :data:`BACKENDS`; ``device`` (``"cpu"`` or ``"cuda[:i]"``) and
    ``dtype`` (``"float64"`` or ``"float32"``) for torch only; ``chunk_size`` paths at a time (``None``:
    all; results do not depend on it). Checked on construction."""

    KEYWORDS = ("backend", "device", "dtype", "chunk_size")

    name: str = "auto"
    device: str | None = None
    dtype: str | None = None
    chunk_size: int | None = None

    def __post_init__(self):
        choice("backend", self.name, BACKENDS)
        if self.name != "torch" and (self.device is not None or self.dtype is not None):
            raise ValueError(f"device and dtype apply to backend 'torch' only, got backend={self.name!r}")
        if self.dtype is not None:
            choice("dtype", self.dtype, ("float64", "float32"))
        if self.device is not None and not (str(self.device) == "cpu" or str(self.device).startswith("cuda")):
            raise ValueError(f"device must be 'cpu' or 'cuda[:i]', got {self.device!r}")

    def chunk(self, P: int) -> int:
        return integer("chunk_size", P if self.chunk_size is None else self.chunk_size, 1)


def grouped(cls, given, *values):
    """``given`` (a ``cls``), or ``cls`` of ``values``, the plain keywords of ``simulate`` that it groups
    (``cls.KEYWORDS``, in field order); both at once are refused."""
    if given is None:
        return cls(*values)
    if not isinstance(given, cls):
        raise ValueError(f"expected a {cls.__name__}, got {type(given).__name__}")
    defaults = [f.default for f in fields(cls)]
    if any(not (v is d or (isinstance(v, str) and v == d)) for v, d in zip(values, defaults)):
        raise ValueError(f"give either a {cls.__name__} or its keywords ({', '.join(cls.KEYWORDS)}), not both")
    return given
