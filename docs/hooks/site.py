"""MkDocs hooks of the documentation site (``mkdocs.yml``: ``hooks: [docs/hooks/site.py]``).

Three kinds of page are made at build time, so that nothing is written twice:

* **The API reference**: one page per public module of ``lrdecay.theory`` (with ``models``, ``studies`` and
  ``symbolic``), ``lrdecay.empirics`` and the command line, each a ``::: module`` directive that mkdocstrings fills
  from the docstrings. The source tree keeps the library in the top-level folders ``theory/``, ``empirics/`` and
  ``paper_figures/``; ``build/docs_api/lrdecay/`` links them into the layout a wheel installs (``lrdecay/theory``,
  …) for griffe, which reads the source without importing it.
* **The examples**: ``examples/*.py`` (Jupytext percent format) become pages of Markdown and code cells.
* **Quoted README sections**: a line ``<!-- readme-section: TITLE -->`` in a page is replaced by the README's
  section under that heading, ``<!-- readme-paragraph: LEAD -->`` by its paragraph that starts with ``**LEAD``,
  and ``<!-- claims: PREFIX[, PREFIX…] -->`` by the rows of the README's claims table whose claim id starts with
  one of the prefixes. A marker that finds nothing stops the build with a message naming it.

Links from pages to ``../examples/NAME.py`` (which resolve on GitHub) are pointed at the rendered example.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]
STAGE = ROOT / "build" / "docs_api"
#: (nav title, dotted package, folder): the packages whose modules get an API page
API_PACKAGES = [
    ("lrdecay.theory", "lrdecay.theory", ROOT / "theory"),
    ("lrdecay.empirics", "lrdecay.empirics", ROOT / "empirics"),
]
MARKER = re.compile(r"^<!--\s*(readme-section|readme-paragraph|claims):\s*(.*?)\s*-->\s*$", re.M)


# ---------------------------------------------------------------------------------------------- modules

def public_modules(dotted: str, folder: Path) -> list[str]:
    """Dotted names of the package ``folder`` and every module below it whose path has no ``_``-prefixed part."""
    out = []
    for path in sorted(folder.rglob("*.py")):
        rel = path.relative_to(folder).with_suffix("").parts
        if rel[-1] == "__init__":
            rel = rel[:-1]
        if any(p.startswith("_") for p in rel) or "__pycache__" in path.parts:
            continue
        out.append(".".join((dotted, *rel)))
    return sorted(set(out), key=lambda m: (m.count("."), m) if m == dotted else (1, m))


def stage_sources() -> None:
    """``build/docs_api/lrdecay``: links to ``lrdecay/``'s files and to the library folders, as a wheel lays them."""
    pkg = STAGE / "lrdecay"
    if STAGE.exists():
        shutil.rmtree(STAGE)
    pkg.mkdir(parents=True)
    for entry in (ROOT / "lrdecay").iterdir():
        if entry.name == "__init__.py":      # a copy: griffe looks for submodules beside the file it resolves to
            shutil.copy2(entry, pkg / entry.name)
        elif entry.name != "__pycache__":
            os.symlink(entry, pkg / entry.name)
    for name in ("theory", "empirics", "paper_figures"):
        os.symlink(ROOT / name, pkg / name)


def api_page(module: str) -> str:
    return f"api/{module}.md"


def api_nav() -> list:
    """The "API reference" section: per package its own page, its modules, then each subpackage as a group."""
    nav = []
    for title, dotted, folder in API_PACKAGES:
        top, groups = [], {}
        for mod in public_modules(dotted, folder):
            parts = mod[len(dotted):].lstrip(".").split(".") if mod != dotted else []
            is_subpackage = len(parts) >= 1 and (folder / parts[0] / "__init__.py").is_file()
            if is_subpackage:
                groups.setdefault(f"{dotted}.{parts[0]}", []).append({mod: api_page(mod)})
            else:
                top.append({mod: api_page(mod)})
        nav.append({title: top + [{name: entries} for name, entries in groups.items()]})
    nav.append({"Command line (lrdecay.cli)": "api/lrdecay.cli.md"})
    return nav


def cli_page() -> str:
    """The command line's reference: ``lrdecay --help`` and each subcommand's help, then lrdecay.cli's docstrings."""
    sys.path.insert(0, str(ROOT))
    try:
        from lrdecay.cli import build_parser
    finally:
        sys.path.remove(str(ROOT))
    parser = build_parser()
    parts = ["# Command line\n", "The `lrdecay` command. Each subcommand's options with their defaults, as "
             "`lrdecay COMMAND --help` prints them.\n", "```text", parser.format_help().rstrip(), "```\n"]
    subs = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    for name, sub in (subs[0].choices.items() if subs else []):
        parts += [f"## `lrdecay {name}`\n", "```text", sub.format_help().rstrip(), "```\n"]
    parts += ["## The module\n", "::: lrdecay.cli\n    options:\n      heading_level: 3\n      show_root_heading: false"]
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------- examples

def example_files() -> list[Path]:
    return sorted(p for p in (ROOT / "examples").glob("*.py") if not p.name.startswith("_"))


def example_title(path: Path) -> str:
    """The notebook's title up to its first colon or comma (the navigation's label)."""
    m = re.search(r"^# # (.+)$", path.read_text(encoding="utf-8"), re.M)
    return re.split(r"[:,]", m.group(1))[0].strip() if m else path.stem.replace("_", " ")


def example_outputs(path: Path) -> dict | None:
    """The outputs ``docs/update_examples.py`` recorded for ``path``, if they belong to its present code cells."""
    import importlib.util
    import json

    rec = ROOT / "docs" / "examples_output" / f"{path.stem}.json"
    if not rec.exists():
        return None
    spec = importlib.util.spec_from_file_location("update_examples", ROOT / "docs" / "update_examples.py")
    updater = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(updater)
    data = json.loads(rec.read_text(encoding="utf-8"))
    return data if data.get("code_sha256") == updater.code_digest(path) else None


def example_markdown(path: Path) -> str:
    """Markdown and code cells of a Jupytext percent-format file, in order, each code cell followed by its recorded
    output (text and figures) where ``docs/update_examples.py`` recorded it for this very source."""
    import jupytext

    nb = jupytext.read(path, fmt="py:percent")
    outputs = example_outputs(path)
    note = (f"Outputs below: a run at the {outputs['size']} size ({outputs['seconds']:.0f} s), recorded by "
            f"`python docs/update_examples.py`." if outputs else
            "Outputs are not shown: run `python docs/update_examples.py` to record them for this version.")
    out = []
    for i, cell in enumerate(nb.cells):
        src = cell.source.strip("\n")
        if not src:
            continue
        if cell.cell_type == "markdown":
            out.append(src)
            if i == 0:
                out.append(f"*Source: `examples/{path.name}` (Jupytext percent format: `jupytext --to ipynb "
                           f"examples/{path.name}` makes a notebook; `python examples/{path.name}` runs it as a "
                           f"script). {note}*")
            continue
        out.append(f"```python\n{src}\n```")
        cell_out = (outputs or {}).get("cells", {}).get(str(i))
        if cell_out and cell_out["stdout"].strip():
            out.append(f"```text\n{cell_out['stdout'].rstrip()}\n```")
        for fig in (cell_out or {}).get("figures", []):
            out.append(f"![output of the cell above](../examples_output/{fig})")
    return "\n\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------- README quotes

def _readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def readme_section(title: str) -> str:
    """The body of the README's section headed ``title`` (any level), up to the next heading of its level or above."""
    lines = _readme().splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^(#+)\s+(.*)$", line)
        if m and m.group(2).strip() == title:
            level, body = len(m.group(1)), []
            for nxt in lines[i + 1:]:
                h = re.match(r"^(#+)\s", nxt)
                if h and len(h.group(1)) <= level:
                    break
                body.append(nxt)
            return "\n".join(body).strip("\n")
    raise PluginError(f"README.md has no heading {title!r} (asked for by a readme-section marker)")


def readme_paragraph(lead: str) -> str:
    """The README paragraph (lines up to the next blank line) that starts with ``**lead``."""
    for para in re.split(r"\n\s*\n", _readme()):
        if para.startswith(f"**{lead}"):
            return para.strip("\n")
    raise PluginError(f"README.md has no paragraph starting with **{lead} (asked for by a readme-paragraph marker)")


def claims_rows(prefixes: list[str]) -> str:
    """The README claims table's header and the rows whose claim id starts with one of ``prefixes``."""
    text = _readme()
    table = text[text.index("<!-- claims:start -->"):text.index("<!-- claims:end -->")]
    lines = [ln for ln in table.splitlines() if ln.startswith("|")]
    rows = [ln for ln in lines[2:] if any(re.match(rf"\|\s*`{re.escape(p)}", ln) for p in prefixes)]
    if not rows:
        raise PluginError(f"the README's claims table has no claim starting with {prefixes}")
    return "\n".join(lines[:2] + rows)


def _fix_readme_links(text: str) -> str:
    return text.replace("](docs/", "](")


def expand_markers(markdown: str) -> str:
    def repl(m: re.Match) -> str:
        kind, arg = m.group(1), m.group(2)
        if kind == "readme-section":
            return _fix_readme_links(readme_section(arg))
        if kind == "readme-paragraph":
            return _fix_readme_links(readme_paragraph(arg))
        return claims_rows([p.strip() for p in arg.split(",") if p.strip()])
    return MARKER.sub(repl, markdown)


# ---------------------------------------------------------------------------------------------- hooks

def on_startup(command, dirty, **kwargs):
    stage_sources()           # before any plugin's on_config: mkdocstrings drops search paths that do not exist


def on_config(config, **kwargs):
    examples = [{example_title(p): f"examples/{p.stem}.md"} for p in example_files()]
    config["nav"] = list(config["nav"] or []) + [{"Examples": examples}, {"API reference": api_nav()}]
    return config


def on_files(files, config, **kwargs):
    for _, dotted, folder in API_PACKAGES:
        for mod in public_modules(dotted, folder):
            files.append(File.generated(config, api_page(mod), content=f"::: {mod}\n"))
    files.append(File.generated(config, "api/lrdecay.cli.md", content=cli_page()))
    for p in example_files():
        files.append(File.generated(config, f"examples/{p.stem}.md", content=example_markdown(p)))
    return files


def on_page_markdown(markdown, page, config, files, **kwargs):
    markdown = expand_markers(markdown)
    # links to an example's source become links to its page
    return re.sub(r"\]\((?:\.\./)+examples/([\w-]+)\.py\)", r"](examples/\1.md)", markdown)
