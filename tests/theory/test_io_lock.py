"""The one directory lock and temporary-file cleaner (lrdecay.theory.io), used by the commands, the report and
the empirics' run directories: exclusive between processes, re-entrant within one, leftovers removed."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from lrdecay.theory.io import (DirectoryLock, DirectoryLockedError, atomic_write_text, clean_temporary_files,
                               is_locked_here)

HOLD = """
import sys
from lrdecay.theory.io import DirectoryLock, DirectoryLockedError
try:
    DirectoryLock(sys.argv[1], "out").__enter__()
except DirectoryLockedError as e:
    assert isinstance(e, ValueError)
    print(e)
    sys.exit(3)
"""


def _try_in_another_process(directory):
    return subprocess.run([sys.executable, "-c", HOLD, str(directory)], capture_output=True, text=True, timeout=120)


def test_lock_is_exclusive_between_processes_and_reentrant_within_one(tmp_path):
    with DirectoryLock(tmp_path, "out"):
        with DirectoryLock(tmp_path / ".", "--out"):          # nested stages of one process share it
            assert is_locked_here(tmp_path)
        assert is_locked_here(tmp_path)
        assert (tmp_path / ".lock").read_text() == f"pid {os.getpid()}"
        r = _try_in_another_process(tmp_path)
        assert r.returncode == 3, r.stderr
        assert r.stdout.strip() == (f"out: {tmp_path} is in use by pid {os.getpid()}; wait for it to finish or "
                                    "choose another directory")
    assert not is_locked_here(tmp_path) and (tmp_path / ".lock").read_text() == ""
    assert _try_in_another_process(tmp_path).returncode == 0          # free again (the holder exited)


def test_one_lock_object_may_be_entered_twice(tmp_path):
    lock = DirectoryLock(tmp_path)
    with lock:
        with lock:
            assert is_locked_here(tmp_path)
        assert is_locked_here(tmp_path)
    assert not is_locked_here(tmp_path)


def test_threads_of_one_process_share_the_lock(tmp_path):
    seen, errors = [], []

    def stage():
        try:
            with DirectoryLock(tmp_path):
                seen.append(is_locked_here(tmp_path))
        except Exception as exc:      # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=stage) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and seen == [True] * 8 and not is_locked_here(tmp_path)


def test_the_lock_is_released_when_the_block_raises(tmp_path):
    with pytest.raises(KeyError):
        with DirectoryLock(tmp_path):
            raise KeyError("boom")
    assert not is_locked_here(tmp_path)
    assert _try_in_another_process(tmp_path).returncode == 0


def test_a_file_in_the_way_is_named(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match=r"^--out: .*/f exists and is not a directory$"):
        with DirectoryLock(tmp_path / "f"):
            pass


def test_taking_the_lock_removes_leftovers_of_interrupted_writes_only(tmp_path):
    junk = [tmp_path / "main" / ".ckpt_000000004.pt.abc123.tmp", tmp_path / ".config.json.x.tmp",
            tmp_path / "a" / "b" / ".r.npz.q.tmp"]
    keep = [tmp_path / "notes.tmp", tmp_path / "main" / "ckpt_000000004.pt", tmp_path / ".hidden"]
    for p in junk + keep:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x")
    with DirectoryLock(tmp_path):
        assert not any(p.exists() for p in junk) and all(p.exists() for p in keep)
        late = tmp_path / ".late.json.z.tmp"           # written while the lock is held: a nested stage keeps it
        late.write_text("x")
        with DirectoryLock(tmp_path):
            assert late.exists()
    assert sorted(clean_temporary_files(tmp_path)) == [late]
    assert clean_temporary_files(tmp_path / "absent") == []


def test_atomic_writes_leave_nothing_for_the_cleaner(tmp_path):
    atomic_write_text(tmp_path / "x.json", "{}")
    assert clean_temporary_files(tmp_path) == [] and (tmp_path / "x.json").read_text() == "{}"


def test_the_error_is_one_exception_type_for_every_caller():
    assert issubclass(DirectoryLockedError, ValueError)
