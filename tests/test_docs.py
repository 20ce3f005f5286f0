"""The project's own account of the science (docs/science.md) and the links to it: nothing points outside the
repository, every relative link in the README and docs/ resolves (anchors included), and every claim of the
report is explained under a heading that its section label names."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCIENCE = ROOT / "docs" / "science.md"
#: docs/empirics.md and the empirics layer are kept by their own maintainers' edits; everything else is checked
DOCS = [ROOT / "README.md"] + sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "empirics.md")
CODE = sorted([*(ROOT / "theory").rglob("*.py"), *(ROOT / "lrdecay").rglob("*.py")])
OUTSIDE = ("THEORY.md", "shared/seeds", "../shared/THEORY")


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def headings(path: Path) -> list[str]:
    return [m.group(2).strip() for m in re.finditer(r"^(#+)\s+(.*)$", path.read_text(encoding="utf-8"), re.M)]


def test_slug_follows_githubs_rule():
    assert slug("§1 Phase II") == "1-phase-ii" and slug("What each report claim tests") == "what-each-report-claim-tests"


@pytest.mark.parametrize("path", DOCS + CODE, ids=lambda p: str(p.relative_to(ROOT)))
def test_nothing_points_outside_the_repository(path):
    text = path.read_text(encoding="utf-8")
    found = [s for s in OUTSIDE if s in text]
    assert not found, f"{path.relative_to(ROOT)} mentions {found}; point to docs/science.md instead"


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path):
    """Every [text](target) that is not a URL names an existing file, and its #anchor a heading there."""
    for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+://|mailto:", target):
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        assert dest.exists(), f"{path.relative_to(ROOT)}: link to {target} (no such file)"
        if anchor:
            assert anchor in {slug(h) for h in headings(dest)}, f"{path.relative_to(ROOT)}: no heading for #{anchor}"


def test_the_sources_are_cited_by_title_and_arxiv_number():
    text = SCIENCE.read_text(encoding="utf-8")
    for title, number in [("Understanding the Generalization Benefits of Late Learning Rate Decay", "2401.11600"),
                          ("Learning Rate Annealing Can Provably Help Generalization, Even for Convex Problems",
                           "2005.07360"),
                          ("Label Noise SGD Provably Prefers Flat Global", "2106.06530")]:
        assert title in text.replace("\n  ", " ") and f"arXiv:{number}" in text


def test_every_claim_is_explained_under_its_section():
    """Each registered claim's id is in the table of docs/science.md (the long VGG run's repeat the short run's),
    and its section label is a heading there (``other models`` under ``§1 other models``, ``§4 VGG-11 long run``
    under ``§4 VGG-11``)."""
    from lrdecay.report.claims import REGISTRY

    text, heads = SCIENCE.read_text(encoding="utf-8"), headings(SCIENCE)
    for spec in REGISTRY.values():
        cid = re.sub(r"^vgg\.long\.", "vgg.", spec.id)
        assert f"`{cid}`" in text, f"claim {spec.id} is not in docs/science.md"
        label = spec.section
        assert any(label == h or f"§1 {label}" == h or label.startswith(h + " ") for h in heads), \
            f"claim {spec.id}: no heading for its section {label!r}"


def test_the_readme_documents_every_option_of_the_report():
    """Every option of ``lrdecay report`` (read from its parser) and every job ``--only`` accepts is in the README."""
    from lrdecay.cli import build_parser
    from lrdecay.report.jobs import JOBS

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices["report"]
    options = [s for a in sub._actions for s in a.option_strings if s.startswith("--") and s != "--help"]
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(options) >= 8
    missing = [o for o in options if f"`{o}" not in text] + [j for j in JOBS if f"`{j}`" not in text]
    assert not missing, f"README.md does not mention {missing}"
