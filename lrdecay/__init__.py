"""lrdecay: check by computation why late learning-rate decay helps generalization.

The application on top of the library: the ``lrdecay`` command line (:mod:`lrdecay.cli`) and the
verification report (:mod:`lrdecay.report`). The library is :mod:`theory` (the nonlinear model, the
engine, the studies), :mod:`empirics` (VGG-11 on CIFAR-10) and :mod:`paper_figures` (the figures).

One import namespace: the library is ``lrdecay.theory``, ``lrdecay.empirics`` and ``lrdecay.paper_figures``.
In the source tree they are the top-level folders ``theory/``, ``empirics/`` and ``paper_figures/`` beside
this one; a wheel installs them inside ``lrdecay/`` (setuptools' ``package-dir`` mapping in
``pyproject.toml``). A source tree, installed editable or used as it is (``PYTHONPATH=.``), resolves them
through the repository root appended to this package's search path below, so all three import the same
way. Nothing installs top-level ``theory``, ``empirics`` or ``paper_figures`` packages.
"""
from __future__ import annotations

from pathlib import Path as _Path

_SOURCE_ROOT = _Path(__file__).resolve().parent.parent
if (_SOURCE_ROOT / "theory" / "__init__.py").is_file() and (_SOURCE_ROOT / "pyproject.toml").is_file():
    __path__.append(str(_SOURCE_ROOT))      # noqa: F821 - a source tree: lrdecay.theory is ./theory

try:
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("lrdecay")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without installing
    __version__ = "0.0.0+unknown"
