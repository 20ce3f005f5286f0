"""A griffe extension for the site's API reference: the Sphinx roles of the docstrings, written as Markdown.

The docstrings are numpydoc-style with Sphinx roles; mkdocstrings renders docstrings as Markdown. Before they are
parsed, this rewrites

* ``:math:`x``` to inline maths ``$x$`` and a ``.. math::`` directive to a display block ``$$ … $$`` (both
  typeset by pymdownx.arithmatex and KaTeX);
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

    text = DIRECTIVE.sub(directive, text if text.endswith("\n") else text + "\n").rstrip("\n")
    text = MATH.sub(lambda m: f"${m.group(1).strip()}$", text)
    return ROLE.sub(role, text)


class SphinxRoles(griffe.Extension):
    """Rewrites every docstring's Sphinx roles when its object is loaded."""

    def on_instance(self, *, node, obj, agent, **kwargs) -> None:
        if obj.docstring is not None:
            module = obj.module.path if hasattr(obj, "module") else obj.path
            obj.docstring.value = convert(obj.docstring.value, module)
