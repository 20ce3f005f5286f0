"""The ``lrdecay`` console script: one entry point, one subcommand per job.

Subcommands come from :mod:`lrdecay.theory_commands` (one per study of :mod:`lrdecay.studies_table`),
:mod:`lrdecay.empirics_commands` (the VGG-11 stages) and the report. Handlers import their studies
(and torch, sympy, dask) inside their functions so that ``lrdecay --help`` stays fast.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lrdecay import __version__
from lrdecay.theory.io import DirectoryLockedError
from lrdecay.theory.sweep import SweepError
from lrdecay.empirics_commands import register as register_empirics
from lrdecay.theory_commands import register as register_theory


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
    p.add_argument("--data", default=None,
                   help="CIFAR-10 directory for the VGG job, holding cifar-10-batches-py/ (default: $LRDECAY_CIFAR10, "
                        "else ../shared/data/cifar10-subset beside the repository)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--strict", action="store_true", help="exit with status 1 if any claim fails")
    p.set_defaults(func=cmd_report)


def cmd_report(a) -> int:
    from lrdecay.report.claims.base import FAIL
    from lrdecay.report.runner import run_report

    if a.data is not None and not Path(a.data).is_dir():
        raise FileNotFoundError(f"--data: {a.data} is not a directory")
    claims = run_report(a.out, size=a.size, use_cache=not a.no_cache, only=a.only, progress=not a.no_progress,
                        verdicts_only=a.verdicts_only, data=a.data)
    return 1 if a.strict and any(c.verdict == FAIL for c in claims) else 0


class Parser(argparse.ArgumentParser):
    """Usage errors in one line (``lrdecay CMD: error: ...``) and exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


#: failures a user can cause (bad input, files, the network, another process): one line, exit status 2
EXPECTED = (ValueError, FileNotFoundError, OSError, SweepError, DirectoryLockedError)


def one_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    return lines[0] if len(lines) == 1 else f"{lines[0]} {lines[1]}" + (f" (+{len(lines) - 2} more)" if len(lines) > 2 else "")


#: commands that keep finished work across an interruption: the sweep's task cache, the report's job cache and
#: the VGG run directories; every other command writes its files only at the end
RESUMABLE = ("sweep", "report", "empirics")


def interrupted_note(command: str) -> str:
    """What an interruption leaves behind, truthfully per command."""
    if command in RESUMABLE:
        return "finished work is saved; run the same command again to resume"
    return "nothing was saved; running the command again starts from the beginning"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="lrdecay",
        description="Check by computation why late learning-rate decay helps generalization.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    register_theory(sub)
    register_empirics(sub)
    register_report(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    name = " ".join(x for x in (args.command, getattr(args, "stage", None)) if x)
    try:
        status = args.func(args)
    except ModuleNotFoundError as exc:
        if exc.name not in ("torch", "torchvision"):
            raise
        print(f"lrdecay {name}: error: the VGG experiment needs PyTorch: pip install -e '.[empirics]'", file=sys.stderr)
        return 2
    except EXPECTED as exc:      # a failure the user can fix: say what, not a traceback
        print(f"lrdecay {name}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lrdecay {name}: interrupted ({interrupted_note(args.command)})", file=sys.stderr)
        return 130
    return int(status or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
