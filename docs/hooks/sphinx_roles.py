"""A griffe extension for the site's API reference: the Sphinx roles of the docstrings, written as Markdown.

The docstrings are numpydoc-style with Sphinx roles; mkdocstrings renders docstrings as Markdown. Before they are
parsed, this rewrites

* ``:math:`x``` to inline maths ``$x$`` and a ``.. math::`` directive to a display block ``$$ … $$`` (both
  typeset by pymdownx.arithmatex and KaTeX);
* a parameter line ``name : words that describe it`` (this project's docstrings often describe a parameter on its
  ``name :`` line) to ``name`` with the words as the first line of its description; a line whose text reads as a
  type (``float``, ``int | None``, ``np.ndarray``, ``str or None``) stays a type;
* ``:func:`~a.b.c```, ``:class:``, ``:mod:``, ``:meth:``, ``:attr:``, ``:data:``, ``:exc:`` and ``:obj:`` to an
  *optional* cross-reference: a link where the target is on the site, plain code where it is not (an outside
  library, a private helper), so that a reference never fails the strict build. A name without dots is looked
  up in the documented object's module.
"""
from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(?:py:)?(func|class|mod|meth|attr|data|exc|obj):`(~?)([^`<>]+?)`")
MATH = re.compile(r":math:`([^`]+)`")
DIRECTIVE = re.compile(r"^(?P<indent>[ \t]*)\.\. math::[ \t]*(?P<first>.*)\n(?P<rest>(?:(?P=indent)[ \t]+\S.*\n|[ \t]*\n)*)",
                       re.M)


SECTION = re.compile(r"^(?P<indent>[ \t]*)(?P<title>[A-Z][A-Za-z ]+)\n(?P=indent)-{3,}[ \t]*$", re.M)
PARAM_SECTIONS = {"Parameters", "Other Parameters", "Attributes", "Keyword Arguments"}
PARAM_LINE = re.compile(r"^(?P<indent>[ \t]*)(?P<names>\*{0,2}[A-Za-z_][\w, /*]*?)\s+:\s+(?P<text>\S.*)$")
TYPE_TOKEN = re.compile(r"^(?:[A-Za-z_][\w.]*(?:\[[\w., |]+\])?|optional|None)$")


def reads_as_type(text: str) -> bool:
    """``float``, ``int | None``, ``np.ndarray``, ``str or None``, ``list[int], optional``: a type, not prose."""
    tokens = [t for t in re.split(r"\s*(?:\||,|\bor\b)\s*", text.strip()) if t]
    return bool(tokens) and all(TYPE_TOKEN.match(t) for t in tokens)


def split_param_lines(text: str) -> str:
    """In parameter-like sections, ``name : prose`` becomes ``name`` with the prose as its description."""
    lines, out, section, indent = text.split("\n"), [], None, ""
    for i, line in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if re.match(r"^[ \t]*-{3,}[ \t]*$", nxt) and line.strip():
            section, indent = line.strip(), line[:len(line) - len(line.lstrip())]
        elif section in PARAM_SECTIONS and (m := PARAM_LINE.match(line)) and m["indent"] == indent \
                and not reads_as_type(m["text"]):
            out += [f"{indent}{m['names']}", f"{indent}    {m['text']}"]
            continue
        out.append(line)
    return "\n".join(out)


def convert(text: str, module: str) -> str:
    """``text`` with its Sphinx roles and math directives rewritten (``module``: where bare names are looked up)."""
    def directive(m: re.Match) -> str:
        body = " ".join([m["first"].strip(), *(ln.strip() for ln in m["rest"].splitlines())]).strip()
        return f"{m['indent']}\n{m['indent']}$$\n{m['indent']}{body}\n{m['indent']}$$\n\n"

    def role(m: re.Match) -> str:
        short, target = m.group(2) == "~", m.group(3).strip().lstrip(".")
        ident = target if "." in target else f"{module}.{target}"
        title = target.rsplit(".", 1)[-1] if short else target
        return f'<autoref identifier="{ident}" optional><code>{title}</code></autoref>'

    text = split_param_lines(text)
    text = DIRECTIVE.sub(directive, text if text.endswith("\n") else text + "\n").rstrip("\n")
    text = MATH.sub(lambda m: f"${m.group(1).strip()}$", text)
    return ROLE.sub(role, text)


class SphinxRoles(griffe.Extension):
    """Rewrites every docstring's Sphinx roles when its object is loaded."""

    def on_instance(self, *, node, obj, agent, **kwargs) -> None:
        if obj.docstring is not None:
            module = obj.module.path if hasattr(obj, "module") else obj.path
            obj.docstring.value = convert(obj.docstring.value, module)
