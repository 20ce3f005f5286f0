"""The documentation site builds in strict mode (``mkdocs build --strict``: any warning — a broken link or anchor, an
unknown cross-reference, a page missing from the navigation, a README section a page quotes that is gone — fails
it), and holds the pages it promises: the API reference of ``simulate``, the examples, the quoted README sections
and the maths. Skipped, with the reason, where the ``docs`` extra is not installed. About 15-40 s."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("mkdocs", "material", "mkdocstrings_handlers", "jupytext")),
    reason="the site needs the docs extra (pip install -e '.[docs]')")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return out


def test_the_config_is_strict():
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert re.search(r"^strict: true$", text, re.M)
    assert re.search(r"^  links:\n(    \w+: warn\n)+", text, re.M), "link validation must warn (and so fail)"


def test_the_api_reference_documents_simulate(site):
    """``lrdecay.theory.engine.simulate`` has an anchor (the function's, or the module's of that name when the engine
    is a package with a ``simulate`` module), and its page documents the function with its parameters."""
    ident = 'id="lrdecay.theory.engine.simulate'
    pages = [p for p in (site / "api").glob("lrdecay.theory.engine*.html") if ident in p.read_text(encoding="utf-8")]
    assert pages, "no API page holds lrdecay.theory.engine.simulate"
    page = pages[0].read_text(encoding="utf-8")
    assert "Simulate" in page and "Parameters" in page and "label-noise level" in page
    assert "&lt;autoref" not in page, "a Sphinx role was left as escaped markup"
    pages = {p.stem for p in (site / "api").glob("*.html")}
    for module in ("lrdecay.theory", "lrdecay.theory.models", "lrdecay.theory.studies", "lrdecay.empirics",
                   "lrdecay.cli", "lrdecay.theory.studies.drift", "lrdecay.empirics.analysis"):
        assert module in pages, f"no API page for {module}"
    cli = (site / "api" / "lrdecay.cli.html").read_text(encoding="utf-8")
    assert "lrdecay report" in cli and "--verdicts-only" in cli


def test_the_examples_are_pages(site):
    for path in sorted((ROOT / "examples").glob("[!_]*.py")):
        page = site / "examples" / f"{path.stem}.html"
        assert page.exists(), f"no page for {path.name}"
        assert "Run time" in page.read_text(encoding="utf-8")


def test_the_pages_quote_the_readme_and_render_maths(site):
    verdicts = (site / "verdicts.html").read_text(encoding="utf-8")
    assert "gamma.rate_law" in verdicts and "Reading the numbers" in verdicts
    home = (site / "index.html").read_text(encoding="utf-8")
    assert 'class="arithmatex"' in home and "assets/katex/katex.min.js" in home
    assert (site / "assets" / "katex" / "fonts").is_dir()
    # a link from a page to an example's source becomes a link to the example's page
    assert 'href="examples/01_your_own_problem.html"' in home
    assert (site / "figures" / "three_phases.png").exists()
