"""The distributions a release would upload: a wheel and an sdist build from this tree, ``twine check`` passes on
both, and the wheel's metadata carries what the index shows (the SPDX license, the classifiers, the links, the
README as the long description, the extras). Needs the ``docs`` extra (build, twine)."""
from __future__ import annotations

import email
import importlib.util
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("build") is None or importlib.util.find_spec("twine") is None,
    reason="build and twine are not installed (pip install -e '.[docs]')")


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel", "--outdir", str(out),
                           str(ROOT)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"python -m build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "SetuptoolsDeprecationWarning" not in proc.stdout + proc.stderr, \
        "the build warns of a deprecation: " + "\n".join(
            ln for ln in (proc.stdout + proc.stderr).splitlines() if "Deprecat" in ln)[:2000]
    wheels, sdists = sorted(out.glob("*.whl")), sorted(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in out.iterdir())
    return wheels[0], sdists[0]


def test_twine_check_passes(dists):
    proc = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, dists)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("PASSED") == 2, proc.stdout


def test_the_wheel_metadata(dists):
    wheel, _ = dists
    with zipfile.ZipFile(wheel) as z:
        meta_name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        meta = email.message_from_bytes(z.read(meta_name))
        names = z.namelist()
    assert meta["Name"] == "lrdecay" and meta["License-Expression"] == "MIT"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    classifiers = meta.get_all("Classifier")
    assert "Intended Audience :: Science/Research" in classifiers
    assert not [c for c in classifiers if c.startswith("License ::")], "a license classifier beside an SPDX license"
    urls = meta.get_all("Project-URL")
    assert urls and all(len(u.split(",")[0]) <= 32 for u in urls), urls
    assert "arxiv.org/abs/2401.11600" in " ".join(urls)
    assert meta["Description-Content-Type"] == "text/markdown"
    assert {"empirics", "docs", "all"} <= set(meta.get_all("Provides-Extra"))
    # the library installs inside lrdecay/ (one namespace), with nothing at the top level but lrdecay
    assert "lrdecay/theory/__init__.py" in names and "lrdecay/empirics/__init__.py" in names
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {"lrdecay"}


def test_the_changelog_starts_at_the_package_version():
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(encoding="utf-8"), re.M)[1]
    releases = re.findall(r"^## \[([^\]]+)\]", text, re.M)
    assert releases and releases[-1] == "0.1.0" and version in releases, releases


def test_the_citation_file_cites_the_toolkit_and_the_papers():
    yaml = pytest.importorskip("yaml")
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(encoding="utf-8"), re.M)[1]
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software" and str(cff["version"]) == version
    assert cff["license"] == "MIT" and cff["title"] and cff["authors"] and cff["message"]
    arxiv = {ident["value"] for ref in cff["references"] for ident in ref.get("identifiers", [])}
    assert {"arXiv:2401.11600", "arXiv:2005.07360", "arXiv:2106.06530"} <= arxiv
    for ref in cff["references"]:
        assert ref["type"] and ref["title"] and ref["authors"] and ref["year"], ref
