r"""Bounds on the work and memory a run may ask for, checked before it starts.

Every study estimates what a configuration costs before computing anything and refuses a configuration past
a cap with a one-line ``ValueError`` that starts with the parameter to change (the command line replaces it
with the option's name), the estimate and the cap:

* **memory**: the largest arrays a run holds at once (final states ``P x D``, records, a model's parameters),
  in bytes, against :func:`memory_cap` = ``MEMORY_FRACTION`` of the machine's physical memory;
* **work**: multiply-adds of the simulation, ``~ 2 n D`` per path and step of full-batch SGD on a model
  with ``n`` examples and ``D`` parameters, against ``WORK_CAP`` (about an hour on two cores at the
  engine's measured speed, see docs/benchmarks.md);
* **drift-ODE horizon**: the drift ODE ``d theta/d tau = -(a/4) P_T grad tr Hess L_n`` relaxes on the time
  scale ``1 / nu`` with ``nu = a tr Hess L_n(theta) / ||theta||^2`` (the only rate the field's scales form);
  once at its fixed point the solver's steps stop growing (the field's rounding noise sets them), so the
  work grows linearly in ``nu tau_max`` past about ``10^6``. ``nu tau_max`` is capped at ``ODE_HORIZON_CAP``.
"""
from __future__ import annotations

import os

#: multiply-adds a run may ask for (about an hour of the compiled engine on two cores)
WORK_CAP = 5e12
#: the drift ODE's horizon nu * tau_max in its own relaxation times (a few seconds of integration at the cap)
ODE_HORIZON_CAP = 1e8
#: fraction of the physical memory a run may plan to hold
MEMORY_FRACTION = 0.5
_FALLBACK_MEMORY = 8 * 2**30


def physical_memory() -> int:
    """The machine's physical memory in bytes (8 GiB where the system does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return _FALLBACK_MEMORY


def memory_cap() -> int:
    """``MEMORY_FRACTION`` of :func:`physical_memory`, in bytes."""
    return int(MEMORY_FRACTION * physical_memory())


def _gib(b: float) -> str:
    return f"{b / 2**30:.3g} GiB"


def _lower(name: str, lower) -> str:
    """The closing clause ``; lower a or b`` (the command line turns the names into its options)."""
    return "; lower " + " or ".join([name] if lower is None else list(lower))


def check_memory(name: str, nbytes: float, what: str, lower=None) -> float:
    """Refuse (``ValueError`` starting with ``name``) when ``nbytes`` exceeds :func:`memory_cap`; the message
    ends with ``; lower <name>`` (or the names in ``lower``)."""
    cap = memory_cap()
    if not nbytes <= cap:
        raise ValueError(f"{name}: {what} would need about {_gib(nbytes)} of memory, above the cap of {_gib(cap)} "
                         f"(half of this machine's memory){_lower(name, lower)}")
    return nbytes


def check_work(name: str, ops: float, what: str, lower=None) -> float:
    """Refuse (``ValueError`` starting with ``name``) when ``ops`` multiply-adds exceed ``WORK_CAP``."""
    if not ops <= WORK_CAP:
        raise ValueError(f"{name}: {what} would take about {ops:.2g} multiply-adds, above the cap of {WORK_CAP:.0e} "
                         f"(about an hour on two cores){_lower(name, lower)}")
    return ops


def sgd_work(path_steps: float, n: int, dim: int) -> float:
    """Multiply-adds of ``path_steps`` full-batch label-noise SGD steps (``2 n D`` each: ``X beta`` and ``X^T r``)."""
    return 2.0 * float(path_steps) * float(n) * float(dim)


def drift_rate(a: float, trace: float, norm2: float) -> float:
    """``nu = a tr Hess L_n(theta) / ||theta||^2``, the drift ODE's rate scale at ``theta`` (module docstring)."""
    return float(a) * float(trace) / float(norm2)


def check_ode_horizon(name: str, tau_max: float, rate: float, what: str = "the drift ODE", lower=None) -> float:
    """Refuse (``ValueError`` starting with ``name``) when ``rate * tau_max`` exceeds ``ODE_HORIZON_CAP``."""
    h = float(rate) * float(tau_max)
    if not h <= ODE_HORIZON_CAP:
        raise ValueError(f"{name}: {what} would run {h:.2g} of its relaxation times (to tau = {tau_max:.3g} at the "
                         f"rate a tr Hess / ||theta||^2 = {rate:.3g}), above the cap of {ODE_HORIZON_CAP:.0e} (it "
                         f"reaches its end point long before; past the cap the integration takes minutes to hours)"
                         f"{_lower(name, lower)}")
    return h
