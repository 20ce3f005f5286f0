"""Mutation check: apply each planted science bug of ``benchmarks/mutations.py`` alone to a scratch copy
of the project and run the default test suite there (``pytest -x``); a mutant is *caught* when the
suite fails. Prints one line per mutant and exits 1 if any survives.

    python benchmarks/mutation_check.py [--only SUBSTRING] [--workers 2] [--keep]

Each run uses the tracked and untracked-but-not-ignored files of this checkout (``git ls-files``), with
``$LRDECAY_CIFAR10`` pointing at the CIFAR-10 subset beside the repository when it is there.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from mutations import MUTATIONS  # noqa: E402

#: the default suite in two stages: the theory tests first (cheap, they fail fast), then the whole suite
STAGES = [["tests/theory"], ["tests"]]


def project_files() -> list[str]:
    out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "--cached", "--others", "--exclude-standard"],
                         capture_output=True, text=True, check=True).stdout.split()
    return [f for f in out if (ROOT / f).is_file()]


def check_mutations() -> None:
    """Every original text occurs exactly once in its file (else the list is out of date)."""
    for name, file, old, new in MUTATIONS:
        n = (ROOT / file).read_text(encoding="utf-8").count(old)
        if n != 1 or old == new:
            raise SystemExit(f"mutation {name!r}: the original text occurs {n} times in {file}; update the list")


def run_mutant(i: int, keep: bool = False) -> tuple[int, bool, float, str]:
    name, file, old, new = MUTATIONS[i]
    scratch = Path(tempfile.mkdtemp(prefix=f"mutant{i:02d}_"))
    repo = scratch / "repo"
    for f in project_files():
        dst = repo / f
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, dst)
    target = repo / file
    target.write_text(target.read_text(encoding="utf-8").replace(old, new, 1), encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(repo), OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    data = ROOT.parent / "shared" / "data" / "cifar10-subset"
    if data.is_dir():
        env.setdefault("LRDECAY_CIFAR10", str(data))
    t0 = time.perf_counter()
    for stage in STAGES:
        r = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *stage],
                           cwd=repo, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            break
    seconds = time.perf_counter() - t0
    failed = [ln for ln in r.stdout.splitlines() if ln.startswith("FAILED") or ln.startswith("ERROR")]
    if not keep:
        shutil.rmtree(scratch, ignore_errors=True)
    last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr.strip()[-200:]
    return i, r.returncode != 0, seconds, (failed[0] if failed else last)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", default=None, help="run only mutants whose name contains this text (default: all)")
    p.add_argument("--workers", type=int, default=2, help="mutants run at once (default: %(default)s)")
    p.add_argument("--keep", action="store_true", help="keep the scratch copies (default: removed)")
    a = p.parse_args(argv)
    check_mutations()
    todo = [i for i, m in enumerate(MUTATIONS) if a.only is None or a.only in m[0]]
    caught = {}
    with cf.ThreadPoolExecutor(max_workers=a.workers) as ex:
        for i, ok, sec, first in ex.map(lambda j: run_mutant(j, a.keep), todo):
            caught[i] = ok
            print(f"{'caught  ' if ok else 'SURVIVED'} {sec:6.1f} s  {MUTATIONS[i][0]}  [{first}]", flush=True)
    n_ok = sum(caught.values())
    print(f"\n{n_ok} of {len(caught)} planted bugs caught by the default suite")
    return 0 if n_ok == len(caught) else 1


if __name__ == "__main__":
    sys.exit(main())
