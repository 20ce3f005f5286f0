"""Result files: arrays plus their configuration, written atomically.

A result file is a single ``.npz`` archive. Its arrays are stored under their own names and the
configuration (a JSON-serialisable dict: parameters, seed, problem description, package version)
under the reserved key ``__config__``. Writes go to a temporary file in the same directory which is
then renamed over the target, so an interrupted run never leaves a truncated file behind.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

CONFIG_KEY = "__config__"


def _to_jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file in the same directory, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def save_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    return atomic_write_text(path, json.dumps(_to_jsonable(obj), indent=2, sort_keys=True) + "\n")


def load_json(path: str | os.PathLike) -> Any:
    with open(path, "r", encoding="utf-8") as fh:
        return json.load(fh)


def save_result(path: str | os.PathLike, arrays: Mapping[str, Any], config: Mapping[str, Any]) -> Path:
    """Save ``arrays`` (name -> array-like) and ``config`` (JSON-serialisable) to one ``.npz`` file.

    The write is atomic. ``config`` should hold everything needed to reproduce the arrays: the
    parameters, the seed and the problem instance (or the path of its own file).
    """
    if CONFIG_KEY in arrays:
        raise ValueError(f"arrays: the name {CONFIG_KEY!r} is reserved for the configuration")
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"path: result files end in '.npz', got {str(path)!r}")
    import io as _io

    buf = _io.BytesIO()
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    payload[CONFIG_KEY] = np.array(json.dumps(_to_jsonable(dict(config)), sort_keys=True))
    np.savez_compressed(buf, **payload)
    return atomic_write_bytes(path, buf.getvalue())


def load_result(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Load a file written by :func:`save_result`; returns ``(arrays, config)``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"result file not found: {path}")
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files if k != CONFIG_KEY}
        config = json.loads(str(data[CONFIG_KEY])) if CONFIG_KEY in data.files else {}
    return arrays, config
