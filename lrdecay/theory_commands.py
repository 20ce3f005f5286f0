"""The theory subcommands of ``lrdecay``, one per row of :data:`lrdecay.studies_table.STUDIES` with a command:
demo, drift, convex, gamma-study, rate-law, cyclic, discrete-eta, diagonal, two-layer, sweep and drift-any.

Each subcommand's options come from its row: an option sets one field of the study's configuration, and its type,
number of values and default come from that field. One rule for a preset flag (``--smoke``, ``--quick``,
``--full``): it replaces the *defaults* by the preset's; an option given on the command line always wins over it.
The options' argparse defaults are therefore None and the values come from the configuration, which checks them;
its messages name the options that set the fields. Each handler runs the study, prints its table, saves its
result files and draws its figures (from the saved results) under ``--out``.
"""
from __future__ import annotations

import re
import sys
from contextlib import contextmanager
from dataclasses import fields

from lrdecay.studies_table import STUDIES, Study
from lrdecay.theory.io import DirectoryLock, prepare_output_dir
from lrdecay.theory.validation import integer


@contextmanager
def output_dir(path):
    """``--out`` checked for writing before any computation, and locked against a second writer."""
    out = prepare_output_dir(path, "--out")
    with DirectoryLock(out, "--out"):
        yield out


# --------------------------------------------------------------------------------------------------
# Options from the configuration's fields
# --------------------------------------------------------------------------------------------------

def _show(v) -> str:
    if isinstance(v, (tuple, list)):
        return " ".join(_show(x) for x in v)
    if v is None:
        return "none"
    return f"{v:g}" if isinstance(v, float) else str(v)


def default_help(study: Study, option, c, s) -> str:
    """``(default: X)`` or ``(default: X; with --smoke: Y)`` from the default configuration ``c`` and the preset's
    ``s`` (None without a preset)."""
    def shown(cfg):
        return option.shown(cfg) if option.shown else getattr(cfg, option.field)
    a = _show(shown(c))
    if s is None or shown(s) == shown(c):
        return f"(default: {a})"
    return f"(default: {a}; with {study.preset.flag}: {_show(shown(s))})"


def _kind(field, default):
    """The argparse type of a configuration field: its annotation, else (a tuple's) its default's."""
    text = str(field.type)
    for name, kind in (("float", float), ("int", int), ("str", str)):
        if re.search(rf"\b{name}\b", text):
            return kind
    values = default if isinstance(default, tuple) else (default,)
    return int if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values) else \
        (str if values and all(isinstance(v, str) for v in values) else float)


def add_options(p, study: Study) -> None:
    """Every option of ``study`` on the parser ``p``, its default ``None`` (the configuration's)."""
    cls = study.config_class()
    c = cls()
    s = getattr(c, study.preset.method)() if study.preset else None
    by_name = {f.name: f for f in fields(cls)}
    for o in study.options:
        f = by_name[o.field]
        many = ("tuple" in str(f.type)) if o.many is None else o.many
        choices = getattr(sys.modules[cls.__module__], o.choices) if o.choices else None
        p.add_argument(o.name, type=_kind(f, getattr(c, o.field)),
                       nargs="+" if many else None, default=None, dest=o.field, choices=choices,
                       metavar=None if choices else o.name.lstrip("-").upper().replace("-", "_"),
                       help=f"{o.help.format(c=c)} {default_help(study, o, c, s)}")


def config_from(args):
    """The configuration of the command ``args`` were parsed for: the defaults (the preset's with its flag) with
    every option given replaced; not validated."""
    study = _STUDY[args.study]
    given = {}
    for o in study.options:
        v = getattr(args, o.field, None)
        if v is None:
            continue
        if o.check:
            o.check(o.name, v)
        given[o.field] = o.convert(v) if o.convert else v
    return study.configure(getattr(args, "preset", False), given)


def option_names(msg: str, study: Study) -> str:
    """A study's message with the configuration field it starts with, and the fields its closing clause (after the
    last ``"; "``, e.g. ``lower tau_max or paths``) names, replaced by their options (``n_instances`` ->
    ``--instances``, ``tau_max`` -> ``--tau-max``). A message that starts with no field is left as it is."""
    names = study.field_names()
    flags = {o.field: o.name for o in study.options}

    def opt(field):
        return flags.get(field.removesuffix("[i]"), "--" + field.removesuffix("[i]").replace("_", "-"))
    field = msg.split(" ", 1)[0].rstrip(":")
    if field.removesuffix("[i]") not in names:
        return msg
    msg = opt(field) + msg[len(field):]
    head, sep, tail = msg.rpartition("; ")
    if sep and re.match(r"(lower|raise) ", tail):
        tail = re.sub(r"\b[a-z_0-9]+\b", lambda mt: opt(mt.group()) if mt.group() in names else mt.group(), tail)
        msg = head + sep + tail
    return msg


def validated(cfg, study: Study):
    """``cfg.validate()``, its message naming the options (:func:`option_names`)."""
    try:
        return cfg.validate()
    except ValueError as exc:
        raise ValueError(option_names(str(exc), study)) from None


# --------------------------------------------------------------------------------------------------
# The commands
# --------------------------------------------------------------------------------------------------

def _wrote(paths):
    print("wrote " + ", ".join(str(p) for p in paths))


def _diverged(command: str, detail: str, option: str) -> int:
    """A run whose paths diverged is a failed run: one line on stderr, exit status 1 (its files are kept)."""
    print(f"lrdecay {command}: error: {detail} diverged (their results are not measurements); lower {option}",
          file=sys.stderr)
    return 1


def run_command(args) -> int:
    """Run the study of ``args``: validate its configuration, run it in ``--out``, print, save and draw."""
    study = _STUDY[args.study]
    cfg = validated(config_from(args), study)
    if study.prepare:
        study.prepare(cfg)           # e.g. an entry point that cannot be imported fails here, in one line
    with output_dir(args.out) as out:
        try:
            res = study.execute(cfg, progress=not getattr(args, "no_progress", False))
        except ValueError as exc:
            raise ValueError(option_names(str(exc), study)) from None
        study.print_result(res, cfg)
        _wrote(study.save(res, out, figures=not getattr(args, "no_figure", False)))
    failed = study.failed(res, cfg) if study.failed else None
    return _diverged(study.command, *failed) if failed else 0


def _sweep_options(p) -> None:
    p.add_argument("--executor", default="processes",
                   help="processes | threads | serial | a Dask scheduler address tcp://HOST:PORT (default: %(default)s)")
    p.add_argument("--workers", type=int, default=None, help="local workers (default: all cores)")
    p.add_argument("--recompute", action="store_true", help="ignore cached task results")


def cmd_sweep(args) -> int:
    from lrdecay.theory.studies.grid import run_grid

    study = _STUDY[args.study]
    cfg = validated(config_from(args), study)
    if args.workers is not None:
        integer("--workers", args.workers, 1)
    with output_dir(args.out) as out:
        res = run_grid(cfg, out, executor=args.executor, workers=args.workers, progress=not args.no_progress,
                       recompute=args.recompute)
        print(res.table())
        path = res.save(out / study.result)
        csv_path = res.save_csv(out / "sweep_results.csv")
        print(f"\nwrote {path} and {csv_path.name} ({len(res.rows)} tasks, {res.n_diverged} diverged; "
              f"cache in {out / 'cache'})")
    return 0


_STUDY = {s.key: s for s in STUDIES}
#: the commands whose handler is not :func:`run_command`, with their options that set no configuration field
_SPECIAL = {"sweep": (cmd_sweep, _sweep_options)}


def register_study(sub, study: Study) -> None:
    """The subcommand of ``study``: ``--out``, its options, its preset flag, ``--no-figure``, ``--no-progress``."""
    c = study.config_class()()
    description = study.description(c) if callable(study.description) else study.description.format(c=c)
    p = sub.add_parser(study.command, help=study.help, description=description)
    p.add_argument("--out", default=study.default_out(), help="output directory (default: %(default)s)")
    add_options(p, study)
    handler, extra = _SPECIAL.get(study.key, (run_command, None))
    if extra:
        extra(p)
    if study.preset:
        s = getattr(c, study.preset.method)()
        p.add_argument(study.preset.flag, action="store_true", dest="preset", help=study.preset.help.format(c=c, s=s))
    if study.no_figure:
        p.add_argument("--no-figure", action="store_true", help="skip the figure")
    if study.progress:
        p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=handler, study=study.key)


def register(sub) -> None:
    """Every theory subcommand, in the table's order."""
    for study in STUDIES:
        if study.command:
            register_study(sub, study)
