r"""The simulation engine: batched gradient descent, label-noise SGD and Euler–Maruyama.

One loop serves every stochastic experiment. A *model* supplies the increment; the engine owns time,
learning rates, random streams, recording, per-path stopping and divergence detection.

Methods (``eta_k`` the learning rate of step ``k``, ``res = X alpha(w) - y``, ``J = X D alpha(w)``):

* ``"gd"``   ``w <- w - eta_k grad L_n(w)``;
* ``"sgd"``  full-batch label-noise SGD ``w <- w - (eta_k/n) J^T (res - sigma xi)``, ``xi ~ N(0, I_n)``,
  which is exactly Euler–Maruyama for the label-noise SDE with ``dt = eta_k`` and ``a = sigma^2/n``;
  with ``batch_size = b`` each step uses a batch ``B`` of ``b`` distinct examples drawn uniformly,
  ``w <- w - (eta_k/b) sum_{i in B} grad f_i (f_i - y_i - sigma xi_i)``;
* ``"em"``   Euler–Maruyama for ``dw = -grad L_n dt + sqrt(eta_k a) (J^T / sqrt n) dB`` with a fixed
  ``dt`` (``a`` defaults to ``sigma^2/n``, the full-batch value; ``sigma^2/b`` matches batch size b).

Learning rates: one number, one schedule ``step -> eta``, a list of schedules (one per path) or an
array of per-path constants.

Randomness: path ``p`` draws from its own streams ``SeedSequence(seed, spawn_key=(p, 0))`` (noise) and
``(p, 1)`` (batch sampling), consumed in step order, so a path's numbers do not depend on how many
paths run together or how they are chunked. Same seed and chunking: bit-identical results; other chunk
sizes: equal to floating-point rounding (the BLAS summation order can change).

Stopping: every condition is a :class:`StopWhen` — a test of the per-step train loss (checked every
step) or of the recorded observables (checked at record steps) that ends a path with the
:class:`Status` ``"stopped"`` or ``"diverged"``. ``stop_loss``, ``stop_fn`` and ``divergence_loss``
build them.

Backends (``backend=``, :mod:`.dispatch`): ``"numpy"`` runs any model; ``"numba"`` runs the built-in
:class:`~lrdecay.theory.models.nonlinear.NonlinearModel`'s steps compiled on the same random numbers,
so its results equal the numpy backend's to rounding; ``"torch"`` runs them batched in torch (CPU or
CUDA, float64 or float32) with torch's own random numbers (equal in distribution, not path by path).
``"auto"`` (the default) picks numba wherever it is installed and can serve the call, else numpy.

Models: any object with the engine interface, :class:`~lrdecay.theory.engine.protocol.EngineModel`.

Where things are: :mod:`.simulate` (the entry point), :mod:`.setup` (rates, record grid, initial
states, noise), :mod:`.options` (the grouped keywords), :mod:`.records` (:class:`SimulationResult`,
:class:`StopWhen`, :class:`Status`), :mod:`.driver` (the one chunk loop and the random streams),
:mod:`.dispatch` (which backend), :mod:`.backends` (numpy, numba, torch: ``advance`` and ``observe``).
"""
from lrdecay.theory.engine.driver import path_generators
from lrdecay.theory.engine.options import BACKENDS, METHODS, BackendOptions, NoiseOptions, RecordOptions
from lrdecay.theory.engine.protocol import EngineModel
from lrdecay.theory.engine.records import STATUSES, SimulationResult, Status, StopWhen
from lrdecay.theory.engine.simulate import simulate

__all__ = ["simulate", "SimulationResult", "StopWhen", "Status", "STATUSES", "METHODS", "BACKENDS",
           "path_generators", "EngineModel", "RecordOptions", "NoiseOptions", "BackendOptions"]
