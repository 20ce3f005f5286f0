"""Input checks shared by every module: each names the parameter and the accepted range.

Every check returns the validated value (converted to a plain Python number or a numpy array) or
raises ``ValueError`` with a one-line message ``"<name> must be <range>, got <value>"``.
"""
from __future__ import annotations

import math

import numpy as np


def _number(name: str, value, what: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {what}, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return v


def positive(name: str, value) -> float:
    """A finite number > 0."""
    v = _number(name, value, "a finite number > 0")
    if v <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def positive_or_none(name: str, value) -> float | None:
    """``None``, or a finite number > 0."""
    return None if value is None else positive(name, value)


def nonneg(name: str, value) -> float:
    """A finite number >= 0."""
    v = _number(name, value, "a finite number >= 0")
    if v < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return v


def finite(name: str, value) -> float:
    """Any finite number."""
    return _number(name, value, "a finite number")


def open_unit(name: str, value) -> float:
    """A number in the open interval (0, 1)."""
    v = _number(name, value, "a number in the open interval (0, 1)")
    if not 0.0 < v < 1.0:
        raise ValueError(f"{name} must be a number in the open interval (0, 1), got {value!r}")
    return v


def fraction(name: str, value) -> float:
    """A number in (0, 1]."""
    v = _number(name, value, "a number in (0, 1]")
    if not 0.0 < v <= 1.0:
        raise ValueError(f"{name} must be a number in (0, 1], got {value!r}")
    return v


def integer(name: str, value, lo: int = 0, hi: int | None = None) -> int:
    """An integer (not a bool; an integral float such as ``5.0`` is refused too) in ``[lo, hi]``."""
    rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo or (hi is not None and value > hi):
        raise ValueError(f"{name} must be an integer {rng}, got {value!r}")
    return int(value)


def integers(name: str, values, lo: int = 0) -> np.ndarray:
    """A non-empty 1-D list of integers ``>= lo``, as an ``int64`` array."""
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer) or np.any(arr < lo):
        raise ValueError(f"{name} must be a non-empty list of integers >= {lo}, got {values!r}")
    return arr.astype(np.int64)


def numbers(name: str, values, lo: float = -math.inf, *, strict: bool = False) -> np.ndarray:
    """A non-empty 1-D list of finite numbers ``>= lo`` (``> lo`` when ``strict``), as a float array."""
    rel = ">" if strict else ">="
    what = f"a non-empty list of finite numbers {rel} {lo:g}" if math.isfinite(lo) else "a non-empty list of finite numbers"
    try:
        arr = np.asarray(values, dtype=float).reshape(-1) if not isinstance(values, (str, bytes)) else None
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr <= lo if strict else arr < lo):
        raise ValueError(f"{name} must be {what}, got {values!r}")
    return arr


def finite_array(name: str, value, ndim: int, shape: str | None = None) -> np.ndarray:
    """A float array with ``ndim`` dimensions and finite entries; ``shape`` (e.g. ``"(P, d)"``) is named in the
    message about a wrong number of dimensions."""
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a {ndim}-D array of finite numbers, got {type(value).__name__}") from None
    if arr.ndim != ndim:
        of = f" of shape {shape}" if shape else ""
        raise ValueError(f"{name} must be a {ndim}-D array{of}, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must contain finite values only")
    return arr


def choice(name: str, value, options) -> str:
    """One of ``options``."""
    if value not in options:
        raise ValueError(f"{name} must be one of {tuple(options)}, got {value!r}")
    return value
