"""lrdecay: check by computation why late learning-rate decay helps generalization.

The application on top of the library: the ``lrdecay`` command line (:mod:`lrdecay.cli`) and the
verification report (:mod:`lrdecay.report`). The library is :mod:`theory` (the nonlinear model, the
engine, the studies), :mod:`empirics` (VGG-11 on CIFAR-10) and :mod:`paper_figures` (the figures).
"""
from __future__ import annotations

try:
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("lrdecay")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without installing
    __version__ = "0.0.0+unknown"
