"""Every subcommand has a description, every option a help line that states its default, no markup."""
import argparse

from lrdecay.cli import build_parser

MARKUP = ("``", ":mod:", ":func:", ":class:", ":math:")


def _walk(parser, name, out):
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for n, sp in a.choices.items():
                out.append((f"{name} {n}", "description", sp.description or ""))
                _walk(sp, f"{name} {n}", out)
        elif not isinstance(a, (argparse._HelpAction, argparse._VersionAction)):
            out.append((name, a, a.help or ""))
    return out


def test_every_option_has_help_with_its_default_and_no_markup():
    problems = []
    for name, a, text in _walk(build_parser(), "lrdecay", []):
        if not text:
            problems.append(f"{name}: {getattr(a, 'option_strings', a)} has no help")
        if any(m in text for m in MARKUP):
            problems.append(f"{name}: markup in {text[:40]!r}")
        if not isinstance(a, str) and a.default not in (None, False, argparse.SUPPRESS) and not a.required \
                and "default" not in text:
            problems.append(f"{name}: {a.option_strings} does not state its default {a.default!r}")
    assert problems == []
