"""A directory lock held by a real second process, for the tests of "one writer at a time" (within one process
the lock is re-entrant, so a second writer must be another process)."""
from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager

_HOLDER = """
import sys
from lrdecay.theory.io import DirectoryLock
with DirectoryLock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


@contextmanager
def held_by_another_process(directory):
    """Hold ``directory``'s lock in a child process for the ``with`` block; yields the child's pid."""
    child = subprocess.Popen([sys.executable, "-c", _HOLDER, str(directory)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline().strip()
        assert line == "held", f"the lock holder did not start (exit status {child.poll()})"
        yield child.pid
    finally:
        child.stdin.close()
        child.wait(timeout=60)
