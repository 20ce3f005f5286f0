"""The claim registry: each claim of the science, keyed by id, with the function that judges it.

A claim is declared once with :func:`claim` (its statement, prediction and tolerance text, the job
whose result files it reads and its figure) on a *judge* function ``judge(job_dir) -> Judgement``
that reads result files only (through each result's ``load``) and returns the measured value, the
numbers behind it and the verdict. A judge returns ``None`` when its files are missing ("not run").
The tolerance text is built from the same constant the judge compares against.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

PASS, FAIL, MISSING, FIGURE, NOT_APPLICABLE = "pass", "FAIL", "not run", "figure", "n/a"
NOT_TESTABLE = "not testable"      # the sample at this size cannot refute the claim (stated why in the note)
SECTIONS = ("§1 model", "§1 Phase I", "§1 dynamics", "§1 Phase II", "§1 Phase III", "§2 convex", "§4 VGG-11", "§4 VGG-11 long run")


@dataclass
class Judgement:
    """What a judge measured: the verdict, the measured value as text, its numbers, an optional note
    (a finding explained on the page) and an optional prediction text that depends on the data."""

    verdict: str
    measured: str
    values: dict = field(default_factory=dict)
    note: str = ""
    prediction: str | None = None


@dataclass(frozen=True)
class ClaimSpec:
    id: str
    section: str
    statement: str
    source: str            # "[seed]" (stated in the sources), "[derived]" (worked out from them)
    prediction: str
    tolerance: str
    job: str               # the report job whose directory the judge reads
    judge: Callable[[Path], Judgement | None]
    figure: str | None = None
    caveat: str = ""
    flips: str = ""        # a doctored input that turns the verdict (tests/lrdecay/test_report.py applies it)


@dataclass
class Claim:
    """One judged claim, as shown on the page and written to claims.json: its declaration and the judgement of
    its result files (None: not run, or ``unreadable`` says why they could not be read)."""

    spec: ClaimSpec
    judgement: Judgement | None = None
    unreadable: str = ""

    #: the fields of a claim in claims.json, in order
    FIELDS = ("id", "section", "statement", "status", "prediction", "measured", "tolerance", "verdict", "figure",
              "note", "values", "caveat", "flips")

    id = property(lambda self: self.spec.id)
    section = property(lambda self: self.spec.section)
    statement = property(lambda self: self.spec.statement)
    status = property(lambda self: self.spec.source)
    tolerance = property(lambda self: self.spec.tolerance)
    figure = property(lambda self: self.spec.figure)
    caveat = property(lambda self: self.spec.caveat)
    flips = property(lambda self: self.spec.flips)

    @property
    def prediction(self) -> str:
        """The declared prediction, or the judge's where it depends on the data."""
        j = self.judgement
        return j.prediction if j is not None and j.prediction is not None else self.spec.prediction

    @property
    def measured(self) -> str:
        if self.judgement is not None:
            return self.judgement.measured
        return f"unreadable result files: {self.unreadable}" if self.unreadable else ""

    @property
    def verdict(self) -> str:
        return self.judgement.verdict if self.judgement is not None else MISSING

    @property
    def note(self) -> str:
        return self.judgement.note if self.judgement is not None else ""

    @property
    def values(self) -> dict:
        return dict(self.judgement.values) if self.judgement is not None else {}

    def as_dict(self) -> dict:
        """The claim as claims.json holds it."""
        return {name: getattr(self, name) for name in self.FIELDS}


REGISTRY: dict[str, ClaimSpec] = {}
#: figure path (relative to the report directory) -> caption: what to look at, what the claims need
CAPTIONS: dict[str, str] = {}


def caption(figure: str, text: str) -> str:
    """Register the caption of a figure; returns the figure's path."""
    CAPTIONS[figure] = text
    return figure


def claim(id: str, *, section: str, statement: str, source: str, prediction: str, tolerance: str, job: str,
          figure: str | None = None, caveat: str = "", flips: str = ""):
    """Register the decorated judge under ``id`` (ids are unique). ``flips``: a doctored input that must
    turn the verdict (what the measurement would look like if the science were wrong)."""
    def deco(fn):
        if id in REGISTRY:
            raise ValueError(f"claim id {id!r} registered twice")
        REGISTRY[id] = ClaimSpec(id, section, statement, source, prediction, tolerance, job, fn, figure, caveat,
                                 flips)
        return fn
    return deco


def verdict(ok) -> str:
    return PASS if bool(ok) else FAIL


#: the one rule that words a judgement from an interval (a 95 % interval of a measured quantity against the region
#: its prediction allows): the interval entirely inside the predicted region -> SUPPORTED; entirely outside it ->
#: REFUTED; meeting both -> NOT_ESTABLISHED (this sample cannot tell)
SUPPORTED, REFUTED, NOT_ESTABLISHED = "supported", "refuted", "not established"


def interval_word(lo: float, hi: float, region: tuple[float, float]) -> str:
    """:data:`SUPPORTED`, :data:`REFUTED` or :data:`NOT_ESTABLISHED` for the interval ``[lo, hi]`` against the
    predicted ``region = (a, b)`` (``-inf`` / ``inf`` for a one-sided prediction such as a negative slope)."""
    a, b = region
    if a <= lo and hi <= b:
        return SUPPORTED
    if hi < a or lo > b:
        return REFUTED
    return NOT_ESTABLISHED


def fmt(x, p=4) -> str:
    return f"{x:.{p}g}"


@functools.lru_cache(maxsize=64)
def _load_cached(cls, path: str, mtime: float):
    return cls.load(path)


def load(cls, path: Path):
    """``cls.load(path)`` (cached while the file is unchanged), or ``None`` if the file is missing."""
    path = Path(path)
    if not path.exists():
        return None
    return _load_cached(cls, str(path), path.stat().st_mtime)


def judge_one(spec: ClaimSpec, out: Path) -> Claim:
    """Judge one claim from the files under ``out``; a damaged or incomplete file makes it "not run"
    with the file named, instead of failing the page."""
    from lrdecay.theory.io import ResultFileError

    try:
        return Claim(spec, spec.judge(Path(out) / spec.job))
    except (ResultFileError, FileNotFoundError, KeyError) as exc:
        return Claim(spec, unreadable=str(exc))
