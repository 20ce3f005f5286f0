"""The ``lrdecay`` console script: one entry point, one subcommand per job.

Each job module exposes ``register(subparsers)`` which adds its subparser and sets ``func`` (called
with the parsed arguments; its return value is the exit status). Modules keep heavy imports (torch,
sympy, dask) inside their functions so that ``lrdecay --help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# Modules contributing subcommands, in the order shown by --help.
COMMAND_MODULES = [
    "theory.demo",
    "theory.convex",
    "theory.drift_study",
    "theory.gamma_study",
    "theory.decay_grid",
    "empirics.cli",
    "paper_figures.report",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lrdecay",
        description="Check by computation why late learning-rate decay helps generalization.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
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
