"""The ``lrdecay`` console script: one entry point, one subcommand per job.

Subcommands come from :mod:`lrdecay.theory_commands` (demo, convex, drift, gamma-study, sweep),
:mod:`lrdecay.empirics_commands` (the VGG-11 stages) and the report. Handlers import their studies
(and torch, sympy, dask) inside their functions so that ``lrdecay --help`` stays fast.
"""
from __future__ import annotations

import argparse
import sys

from lrdecay import __version__
from lrdecay.empirics_commands import register as register_empirics
from lrdecay.theory_commands import REGISTER as THEORY_COMMANDS


def register_report(sub) -> None:
    from lrdecay.report.jobs import JOBS, SIZES

    p = sub.add_parser(
        "report", help="the verification report: every check, result file and figure (main job)",
        description="Runs every check on its defaults, writes result files, draws every figure and writes one page "
                    "(report.md, report.html, claims.json) with, for each claim of the science: the prediction, the "
                    "measured value, the tolerance, the verdict computed from the result files, and the figure. A "
                    "finished job is reused on a re-run while its stamp and its files agree.")
    p.add_argument("--out", default="results/report", help="output directory (default: %(default)s)")
    p.add_argument("--size", default="default", choices=sorted(SIZES),
                   help="default (the report), or smoke for a tiny run (default: %(default)s)")
    p.add_argument("--no-cache", action="store_true", help="recompute every job")
    p.add_argument("--only", nargs="+", choices=list(JOBS),
                   help="run only these jobs (claims of the others read the files already there)")
    p.add_argument("--verdicts-only", action="store_true", help="recompute verdicts and pages from existing files")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--strict", action="store_true", help="exit with status 1 if any claim fails")
    p.set_defaults(func=cmd_report)


def cmd_report(a) -> int:
    from lrdecay.report.claims.base import FAIL
    from lrdecay.report.runner import run_report

    claims = run_report(a.out, size=a.size, use_cache=not a.no_cache, only=a.only, progress=not a.no_progress,
                        verdicts_only=a.verdicts_only)
    return 1 if a.strict and any(c.verdict == FAIL for c in claims) else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lrdecay",
        description="Check by computation why late learning-rate decay helps generalization.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for register in THEORY_COMMANDS:
        register(sub)
    register_empirics(sub)
    register_report(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.func(args)
    except (ValueError, FileNotFoundError) as exc:  # bad input: say what, not a traceback
        print(f"lrdecay {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return int(status or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
