"""The run directory on disk: checkpoints (written atomically, listed by step), resuming a path from its newest
checkpoint or finished result, the subpaths' folders, and ``config.json`` (written once validated; a directory
made with another main path, or holding checkpoints of an unknown run, is refused). The layout is in
:mod:`lrdecay.empirics.train`'s docstring. Re-exported by :mod:`lrdecay.empirics.train`.
"""
from __future__ import annotations

import io
import re
from pathlib import Path

import torch

from lrdecay.theory.io import DirectoryLock, atomic_write_bytes, load_json, save_json

from .train_config import TrainConfig, check_stored

CKPT_RE = re.compile(r"^ckpt_(\d{9})\.pt$")


def ckpt_path(path_dir: Path, step: int) -> Path:
    return Path(path_dir) / f"ckpt_{step:09d}.pt"


def list_checkpoints(path_dir: Path) -> list[tuple[int, Path]]:
    """``(step, file)`` of every checkpoint in ``path_dir``, by step."""
    path_dir = Path(path_dir)
    if not path_dir.is_dir():
        return []
    out = [(int(m.group(1)), p) for p in path_dir.iterdir() if (m := CKPT_RE.match(p.name))]
    return sorted(out)


def save_checkpoint(path: Path, state: dict) -> Path:
    buf = io.BytesIO()
    torch.save(state, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: Path, device="cpu") -> dict:
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:
        raise ValueError(f"checkpoint {path} is unreadable ({type(exc).__name__}: {exc}); delete it to resume "
                         f"from the one before") from exc


def resume(path_dir, cfg: TrainConfig, *, lr: float, end_epoch: int, start: dict | None, check_fields,
           device) -> tuple[dict | None, dict | None]:
    """Where the path in ``path_dir`` (created if needed) stands, for the sequential and the batched trainers:
    ``(result, None)`` when it is finished (its ``result.json``), else ``(None, snapshot)`` with the state to
    continue from — its newest checkpoint, or ``start`` when it has none (``None``: a fresh model).

    A stored result or checkpoint whose configuration differs from ``cfg`` on ``check_fields``, or whose rate
    differs from ``lr``, is refused (:func:`check_stored`), and so is a result that ends at another epoch."""
    path_dir = Path(path_dir)
    path_dir.mkdir(parents=True, exist_ok=True)
    done = path_dir / "result.json"
    if done.exists():
        old = load_json(done)
        check_stored(old.get("config", {}), cfg, check_fields, str(done), lr, old.get("lr"))
        if old.get("end_epoch") != end_epoch:
            raise ValueError(f"epochs: {done} ends at epoch {old.get('end_epoch')}, the configuration asks for "
                             f"{end_epoch}; use a fresh output directory")
        return old, None
    ckpts = list_checkpoints(path_dir)
    if not ckpts:
        return None, start
    snapshot = load_checkpoint(ckpts[-1][1], device)
    check_stored(snapshot.get("config", {}), cfg, check_fields, str(ckpts[-1][1]), lr, snapshot.get("lr"))
    return None, snapshot


def subpath_dir(out_dir, epoch: int) -> Path:
    return Path(out_dir) / f"sub_e{int(epoch):06d}"


# ----------------------------------------------------------------------------- the run directory's configuration
def _refuse_orphans(out_dir) -> None:
    """Checkpoints without ``config.json`` belong to an unknown run: refuse them."""
    out_dir = Path(out_dir)
    if (out_dir / "config.json").exists():
        return
    dirs = [out_dir / "main"] + sorted(out_dir.glob("sub_e*"))
    if any(list_checkpoints(d) for d in dirs):
        raise ValueError(f"out: {out_dir} holds checkpoints but no config.json (an interrupted or foreign run); "
                         "use a fresh output directory or delete its main/ and sub_e*/ folders")


def save_config(out_dir, cfg: TrainConfig, extra: dict | None = None, n_train: int | None = None) -> dict:
    """Validate ``cfg``, then write ``out/config.json`` (under the directory's lock).

    Refused (nothing written): an invalid configuration; a directory with checkpoints but no
    ``config.json``; a stored main path with another configuration (the differing fields are named).
    """
    cfg.validate(n_train)
    out_dir = Path(out_dir)
    with DirectoryLock(out_dir, "out"):
        p = out_dir / "config.json"
        _refuse_orphans(out_dir)
        new = {"train": cfg.to_dict()} | (extra or {})
        if p.exists():
            old = load_json(p)
            if list_checkpoints(out_dir / "main"):
                check_stored(old.get("train", {}), cfg, TrainConfig.MAIN_FIELDS, str(p))
            new = old | new
        save_json(p, new)
        return new


def load_config(out_dir) -> tuple[TrainConfig, dict]:
    p = Path(out_dir) / "config.json"
    if not p.exists():
        raise FileNotFoundError(f"{p} not found: start with 'lrdecay empirics main --out {out_dir}' "
                                "or 'lrdecay empirics profile'")
    d = load_json(p)
    return TrainConfig.from_dict(d["train"]), d
