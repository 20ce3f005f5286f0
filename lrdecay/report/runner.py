"""``lrdecay report``: run the jobs, judge every claim from the result files, write the pages."""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

from lrdecay.theory.io import DirectoryLock, canonical_json, clean_temporary_files, load_json, prepare_output_dir

from .claims import evaluate
from .claims.base import Claim
from .jobs import JOBS, SIZES, STAMP, _digest, run_job
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
    files = result_inventory(out, verify=verdicts_only)
    claims = evaluate(out)
    seeds = {name: SIZES[size].get(name, {}).get("seed", 0) for name in JOBS}   # the checks and VGG jobs: 0
    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "seconds": time.perf_counter() - t0, "size": size,
            "jobs": jobs, "seeds": seeds, "files": files, "fingerprint": fingerprint(files)}
    if verdicts_only:
        unverified = unverified_files(computed, files)
        meta |= {"unverified_files": unverified}
        for line in unverified:
            log(f"[verdicts-only] {line}")
    if computed:
        # the page describes the run that computed the files: its jobs, size and (recorded) file inventory
        meta |= {"jobs": computed.get("jobs", []), "results_from": {k: v for k, v in computed.items() if k != "files"},
                 "size": computed.get("size", size), "files": computed.get("files", files),
                 "fingerprint": computed.get("fingerprint", meta["fingerprint"])}
    md, page = write_pages(out, claims, meta)
    width = max(len(c.id) for c in claims)
    log("")
    for c in claims:
        log(f"{c.verdict:>8}  {c.id:<{width}}  {c.measured[:110]}")
    log(f"\nwrote {page} and {md}")
    return claims


def _computing_run(out: Path) -> dict | None:
    """Date, commit, wall time, jobs, size, compute environment and file inventory (with its fingerprint) of
    the run that computed the result files in ``out`` (from its claims.json), which ``--verdicts-only`` keeps
    beside its own; None if there is none to read."""
    try:
        prev = load_json(out / "claims.json")["meta"]
        run = dict(prev.get("results_from") or {"date": prev["date"], "seconds": prev["seconds"],
                                                "git_commit": prev.get("provenance", {}).get("git_commit"),
                                                "jobs": prev.get("jobs", []), "size": prev.get("size"),
                                                "compute": prev.get("provenance", {}).get("compute", {})})
        run.setdefault("files", prev.get("files"))
        run.setdefault("fingerprint", prev.get("fingerprint"))
        return run
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def result_inventory(out: Path, verify: bool = False) -> dict:
    """``job -> {relative path: sha256}`` of the result files each job's stamp lists. ``verify``: the digests
    the files have now (``"missing"`` for a file that is gone), else the stamp's (a run that has just written or
    reused its jobs has checked them against their stamps)."""
    inv = {}
    for name in JOBS:
        d = out / name
        try:
            listed = load_json(d / STAMP)["files"]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        if verify:
            inv[name] = {rel: (_digest(d / rel) if (d / rel).is_file() else "missing") for rel in sorted(listed)}
        else:
            inv[name] = {rel: listed[rel][1] for rel in sorted(listed)}
    return inv


def fingerprint(files: dict) -> str:
    """A short digest of a run's file inventory: two pages with the same fingerprint judged the same files."""
    return hashlib.sha256(canonical_json(files).encode()).hexdigest()[:16]


def unverified_files(computed: dict | None, files: dict) -> list[str]:
    """The result files ``--verdicts-only`` finds that are not those the credited run wrote: changed or
    missing since, or written by a job that run did not record; every file when no run is on record."""
    if not computed or not computed.get("files"):
        return ["no record of the run that computed these files (its claims.json is missing or predates file "
                "fingerprints): every result file is unverified"] if files or not computed else []
    recorded = computed["files"]
    out = []
    for job in sorted(set(recorded) | set(files)):
        was, now = recorded.get(job, {}), files.get(job, {})
        for rel in sorted(set(was) | set(now)):
            if rel not in was:
                out.append(f"{job}/{rel} (not written by that run)")
            elif now.get(rel, "missing") == "missing":
                out.append(f"{job}/{rel} (missing)")
            elif now[rel] != was[rel]:
                out.append(f"{job}/{rel} (changed since that run)")
    return out
