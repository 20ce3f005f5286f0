"""``lrdecay report``: run the jobs, judge every claim from the result files, write the pages."""
from __future__ import annotations

import time
from pathlib import Path

from theory.io import DirectoryLock, clean_temporary_files, load_json, prepare_output_dir

from .claims import evaluate
from .claims.base import Claim
from .jobs import JOBS, SIZES, run_job
from .render import write_pages


def run_report(out="results/report", *, size="default", use_cache=True, only=None, progress=True,
               verdicts_only=False, data=None, log=print) -> list[Claim]:
    """Run the report's jobs (all, or ``only`` these) on ``size``, then judge and write the pages.
    ``data``: the CIFAR-10 directory for the VGG job (default: ``$LRDECAY_CIFAR10``, else the subset in
    ``../shared/data/cifar10-subset`` beside the repository)."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    unknown = sorted(set(only or ()) - set(JOBS))
    if unknown:
        raise ValueError(f"only: unknown jobs {unknown}; the jobs are {list(JOBS)}")
    out = prepare_output_dir(out, "--out")
    with DirectoryLock(out, "--out"):
        clean_temporary_files(out)
        return _run(out, size, use_cache, only, progress, verdicts_only, data, log)


def _run(out: Path, size, use_cache, only, progress, verdicts_only, data, log) -> list[Claim]:
    t0 = time.perf_counter()
    jobs = []
    if not verdicts_only:
        for name in JOBS:
            if only and name not in only:
                continue
            cfg = dict(SIZES[size].get(name, {}))
            cfg["progress"] = progress
            if name == "empirics" and data is not None:
                cfg["data"] = str(Path(data).resolve())
            jobs.append(run_job(name, out / name, cfg, use_cache, log))
    computed = _computing_run(out) if verdicts_only else None
    claims = evaluate(out)
    seeds = {name: SIZES[size].get(name, {}).get("seed", 0) for name in JOBS}   # every job's studies use seed 0
    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "seconds": time.perf_counter() - t0, "size": size,
            "jobs": jobs, "seeds": seeds}
    if computed:
        meta |= {"jobs": computed.get("jobs", []), "results_from": computed}
    md, page = write_pages(out, claims, meta)
    width = max(len(c.id) for c in claims)
    log("")
    for c in claims:
        log(f"{c.verdict:>8}  {c.id:<{width}}  {c.measured[:110]}")
    log(f"\nwrote {page} and {md}")
    return claims


def _computing_run(out: Path) -> dict | None:
    """Date, commit, wall time and jobs of the run that computed the result files in ``out`` (from its
    claims.json), which ``--verdicts-only`` keeps beside its own; None if there is none to read."""
    try:
        prev = load_json(out / "claims.json")["meta"]
        return prev.get("results_from") or {"date": prev["date"], "seconds": prev["seconds"],
                                            "git_commit": prev.get("provenance", {}).get("git_commit"),
                                            "jobs": prev.get("jobs", [])}
    except (OSError, ValueError, KeyError, TypeError):
        return None
