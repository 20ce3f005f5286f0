"""Run-directory integrity: one writer at a time, no leftovers of interrupted writes.

* :func:`lock` — an exclusive, non-blocking ``fcntl.flock`` on ``<dir>/.lock`` held for as long as a
  stage writes into the directory. A second process asking for it gets :class:`RunDirectoryBusy` (a
  ``ValueError`` whose one-line message names the directory and the holder's pid) at once, before any
  computation. The lock is re-entrant within a process (nested stages share it), and the operating
  system releases it when the holder exits, however it exits.
* :func:`clean_tmp` — removes the ``.<name>.*.tmp`` files that :func:`lrdecay.theory.io.atomic_write_bytes`
  leaves behind when a process is killed between creating its temporary file and renaming it. Called
  right after the lock is taken, when no other writer can be mid-write.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
from pathlib import Path

LOCK_NAME = ".lock"
TMP_RE = re.compile(r"^\..+\.tmp$")

_held: dict[str, list] = {}   # real path -> [open file, depth]


class RunDirectoryBusy(ValueError):
    """Another process holds the run directory's lock."""


@contextlib.contextmanager
def lock(run_dir):
    """Hold the exclusive lock of ``run_dir`` (created if needed) for the ``with`` block."""
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise ValueError(f"out: {run_dir} exists and is not a directory") from exc
    key = os.path.realpath(run_dir)
    if key in _held:
        _held[key][1] += 1
        try:
            yield run_dir
        finally:
            _held[key][1] -= 1
        return
    path = run_dir / LOCK_NAME
    fh = open(path, "a+")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        fh.seek(0)
        holder = fh.read().strip() or "unknown"
        fh.close()
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise RunDirectoryBusy(f"out: {run_dir} is in use by another process (pid {holder}); wait for it to "
                                   f"finish or choose another directory") from None
        raise
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    _held[key] = [fh, 1]
    try:
        clean_tmp(run_dir)
        yield run_dir
    finally:
        _held[key][1] -= 1
        if _held[key][1] == 0:
            del _held[key]
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            fh.close()


def is_locked_here(run_dir) -> bool:
    """Whether this process holds the lock of ``run_dir``."""
    return os.path.realpath(run_dir) in _held


def clean_tmp(run_dir) -> list[Path]:
    """Delete leftover ``.<name>.*.tmp`` files anywhere under ``run_dir``; returns what was removed."""
    removed = []
    for p in Path(run_dir).rglob("*.tmp"):
        if p.is_file() and TMP_RE.match(p.name):
            p.unlink()
            removed.append(p)
    return removed
