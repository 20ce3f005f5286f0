"""The report's pages: ``report.html`` (self-contained: figures embedded), ``report.md`` and
``claims.json`` from the judged claims, grouped in reading order, with a legend and a provenance block."""
from __future__ import annotations

import base64
import html
import platform
import sys
from pathlib import Path

from lrdecay.theory.io import atomic_write_text, provenance, save_json

from .claims.base import CAPTIONS, FAIL, FIGURE, MISSING, NOT_APPLICABLE, NOT_TESTABLE, PASS, Claim

#: reading order of the page: (group, heading, claim-id prefixes)
GROUPS = [
    ("model", "The nonlinear model f(w; x) = ‖w‖^γ wᵀx", ("model.", "sde.")),
    ("phase1", "Phase I: the fall onto the minima manifold", ("phase1.",)),
    ("phase2", "Phase II: the drift along the manifold", ("phase2.",)),
    ("phase3", "Phase III: the decay, and why later is better", ("phase3.", "schedules.")),
    ("gamma", "Convergence to the minimum-norm solution against γ", ("gamma.",)),
    ("models", "Other overparameterized models", ("models.",)),
    ("convex", "Nakkiran's convex example (2020)", ("convex.",)),
    ("vgg", "VGG-11 on CIFAR-10", ("vgg.",)),
    ("symbolic", "The derivations, checked with sympy", ("symbolic.",)),
]
VERDICT_HELP = {
    PASS: "the measurement agrees with the prediction within the stated tolerance",
    FAIL: "it does not: a finding, explained in the claim's note",
    NOT_APPLICABLE: "the run is outside the regime the claim needs (or the case does not occur); no verdict",
    NOT_TESTABLE: "the sample at this size cannot refute the claim; no verdict",
    MISSING: "its result files are missing or unreadable",
    FIGURE: "shown for inspection, with no measured verdict",
}
#: how the page words an interval (lrdecay.report.claims.base.interval_word)
INTERVAL_HELP = ("the word after a 95 % interval: supported — the interval lies entirely in the region the "
                 "prediction allows; refuted — entirely outside it; not established — it meets both")
TAG_HELP = {"[seed]": "stated in the source papers",
            "[derived]": "worked out from them (docs/science.md, whose headings are the section labels)",
            "[seed]/[derived]": "stated in the sources and worked out here"}
COLOR = {PASS: "#1a7f37", FAIL: "#cf222e", MISSING: "#9a6700", NOT_APPLICABLE: "#57606a", NOT_TESTABLE: "#57606a",
         FIGURE: "#0969da"}


def group_of(claim_id: str) -> str:
    for key, _, prefixes in GROUPS:
        if claim_id.startswith(prefixes):
            return key
    return GROUPS[-1][0]


def grouped(claims: list[Claim]) -> list[tuple[str, str, list[Claim]]]:
    out = []
    for key, heading, _ in GROUPS:
        members = [c for c in claims if group_of(c.id) == key]
        if members:
            out.append((key, heading, members))
    return out


def summary_line(claims: list[Claim]) -> str:
    counts = {v: sum(c.verdict == v for c in claims) for v in (PASS, FAIL, NOT_APPLICABLE, NOT_TESTABLE, MISSING, FIGURE)}
    words = {PASS: "pass", FAIL: "fail", NOT_APPLICABLE: "n/a", NOT_TESTABLE: "not testable", MISSING: "not run",
             FIGURE: "shown as figures"}
    return ", ".join(f"{n} {words[v]}" for v, n in counts.items() if n) + f" — {len(claims)} claims"


def page_provenance(meta: dict) -> dict:
    """Versions, commit, machine and its compute environment (CPU model and flags, BLAS builds, torch's CPU
    build when torch is installed), date, wall time per job and the seeds, for the page's last block."""
    try:                 # the page records torch's CPU build whenever torch is installed (the VGG job uses it)
        import torch  # noqa: F401
    except ImportError:
        pass
    p = provenance(meta.get("seconds"))
    try:
        import scipy
        p["scipy"] = scipy.__version__
    except ImportError:  # pragma: no cover
        pass
    if "torch" in sys.modules:
        p["torch"] = sys.modules["torch"].__version__
    p["platform"] = platform.platform()
    p["size"] = meta.get("size")
    p["jobs"] = meta.get("jobs", [])
    p["seeds"] = meta.get("seeds", {})
    if meta.get("results_from"):
        p["results_from"] = meta["results_from"]
    if meta.get("unverified_files"):
        p["unverified_files"] = meta["unverified_files"]
    if meta.get("fingerprint"):
        p["fingerprint"] = meta["fingerprint"]
    return p


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def claims_table(claims) -> str:
    """The claims as one Markdown table in reading order (for the README): claim, what is compared with
    what, the tolerance, the measured value and the verdict. ``claims``: Claim objects or claims.json dicts."""
    rows = ["| claim | prediction | tolerance | measured | verdict |", "|---|---|---|---|---|"]
    items = [c if isinstance(c, dict) else c.as_dict() for c in claims]
    order = {key: i for i, (key, _, _) in enumerate(GROUPS)}
    for c in sorted(items, key=lambda c: order[group_of(c["id"])]):
        rows.append(f"| `{c['id']}` {c['status']} | {_md_escape(c['prediction'])} | {_md_escape(c['tolerance'])} | "
                    f"{_md_escape(c['measured'])} | **{c['verdict']}** |")
    return "\n".join(rows) + "\n"


def write_pages(out: Path, claims: list[Claim], meta: dict) -> tuple[Path, Path]:
    out = Path(out)
    prov = page_provenance(meta)
    meta = {**meta, "provenance": prov}
    atomic_write_text(out / "claims_table.md", claims_table(claims))
    md_path = atomic_write_text(out / "report.md", _markdown(out, claims, meta))
    html_path = atomic_write_text(out / "report.html", _html(out, claims, meta))
    save_json(out / "claims.json", {"meta": meta, "claims": [c.as_dict() for c in claims]})
    return md_path, html_path


# --------------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------------

def _md_escape(s: str) -> str:
    return s.replace("|", "\\|")


def _markdown(out: Path, claims: list[Claim], meta: dict) -> str:
    md = ["# Verification report: late learning-rate decay", "", f"**{summary_line(claims)}**", "",
          "Each claim of the science is a measurement compared with a stated prediction at a tolerance fixed in "
          "advance; the verdicts are computed from the result files beside this page.", "",
          "Verdicts: " + "; ".join(f"**{v}** — {t}" for v, t in VERDICT_HELP.items()) + ".", "",
          "Tags: " + "; ".join(f"{k} — {t}" for k, t in TAG_HELP.items()) + ".", "",
          f"Intervals: {INTERVAL_HELP}.", "",
          f"Size: **{meta['provenance'].get('size')}**", ""]
    md += [f"**Warning.** {line}" for line in unverified_lines(meta["provenance"])] + [""]
    findings = [c for c in claims if c.verdict == FAIL]
    if findings:
        md += ["## Findings (claims that fail)", ""] + [f"* `{c.id}`: {c.note or c.measured}" for c in findings] + [""]
    shown = set()
    for _, heading, members in grouped(claims):
        md += [f"## {heading}", "", "| claim | prediction | measured | tolerance | verdict |", "|---|---|---|---|---|"]
        for c in members:
            md.append(f"| `{c.id}` {c.status}: {_md_escape(c.statement)} | {_md_escape(c.prediction)} | "
                      f"{_md_escape(c.measured)} | {_md_escape(c.tolerance)} | **{c.verdict}** |")
        md.append("")
        for c in members:
            if c.note or c.caveat:
                md.append(f"* `{c.id}`: " + " ".join(x for x in (c.note, c.caveat and f"Caveat: {c.caveat}") if x))
        figs = [c.figure for c in members if c.figure and c.figure not in shown and (out / c.figure).exists()]
        for f in dict.fromkeys(figs):
            shown.add(f)
            md += ["", f"[![{f}]({f})]({f})", "", f"*{CAPTIONS.get(f, f)}*"]
        md.append("")
    md += ["## Provenance", "", "```", *_provenance_lines(meta["provenance"]), "```", ""]
    return "\n".join(md)


def compute_lines(c: dict) -> list[str]:
    """The compute environment (:func:`lrdecay.theory.io.compute_environment`) as lines: CPU model and SIMD flags,
    numpy's BLAS, the thread pools, torch's CPU build."""
    if not c:
        return []
    cpu = c.get("cpu", {})
    ident = f" (family/model/stepping {cpu['family/model/stepping']})" if cpu.get("family/model/stepping") else ""
    lines = [f"cpu: {cpu.get('model', '?')}{ident}; SIMD flags: {' '.join(cpu.get('flags', [])) or 'none listed'}",
             f"numpy BLAS: {c.get('numpy_blas', 'unknown')}"]
    for pool in c.get("threadpools", []):
        lines.append(f"thread pool: {pool}")
    if c.get("torch_build"):
        lines.append(f"torch build: {c['torch_build']}")
    return lines


def unverified_lines(p: dict) -> list[str]:
    """Result files judged by ``--verdicts-only`` that the run credited on the page did not write (or that
    changed since), named, or a note that nothing could be checked."""
    bad = p.get("unverified_files")
    if not bad:
        return []
    return ["result files not as the credited run wrote them (their verdicts may describe another run): "
            + "; ".join(bad)]


def _provenance_lines(p: dict) -> list[str]:
    lines = [f"{k}: {p[k]}" for k in ("package_version", "git_commit", "python", "numpy", "scipy", "torch", "machine",
                                       "platform", "created", "size", "fingerprint") if k in p]
    lines += compute_lines(p.get("compute", {}))
    if p.get("wall_time") is not None:
        lines.append(f"wall time: {p['wall_time']:.0f} s")
    r = p.get("results_from")
    if r:
        lines.append(f"verdicts re-judged (--verdicts-only) from result files computed {r.get('date')} at commit "
                     f"{r.get('git_commit')} in {r.get('seconds') or 0:.0f} s (size {r.get('size', '?')}, "
                     f"fingerprint {r.get('fingerprint', '?')})")
        lines += ["computing run's " + ln for ln in compute_lines(r.get("compute", {}))]
    lines += unverified_lines(p)
    for j in p.get("jobs", []):
        lines.append(f"job {j['name']}: {j['seconds']:.1f} s" + (" (reused)" if j.get("cached") else "")
                     + (" (not run)" if j.get("error") else ""))
    for k, v in p.get("seeds", {}).items():
        lines.append(f"seed of {k}: {v}")
    return lines


# --------------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:0 auto;padding:0 16px;
     line-height:1.45;color:#1f2328}
h1{font-size:1.6em} h2{margin-top:2em;border-bottom:1px solid #d0d7de;padding-bottom:.2em}
.claim{border:1px solid #d0d7de;border-radius:6px;padding:10px 14px;margin:12px 0}
.claim h3{font-size:1em;margin:0 0 6px 0} .claim code{font-size:.95em}
.claim dl{display:grid;grid-template-columns:8.5em 1fr;gap:3px 12px;margin:6px 0}
.claim dt{color:#57606a} .claim dd{margin:0;overflow-wrap:anywhere}
.verdict{font-weight:bold;padding:1px 8px;border-radius:10px;color:#fff;white-space:nowrap}
.note{background:#fff8c5;padding:6px 10px;border-radius:4px;margin-top:6px}
.caveat{background:#ddf4ff;padding:6px 10px;border-radius:4px;margin-top:6px}
figure{margin:18px 0} figure img{width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.92em;color:#57606a;margin-top:4px}
table.legend td{padding:2px 10px 2px 0;vertical-align:top}
pre{background:#f6f8fa;padding:10px;overflow-x:auto;font-size:.85em}
@media (max-width:700px){.claim dl{grid-template-columns:1fr}}
"""


def _badge(verdict: str) -> str:
    return f"<span class='verdict' style='background:{COLOR.get(verdict, '#57606a')}'>{html.escape(verdict)}</span>"


def _html(out: Path, claims: list[Claim], meta: dict) -> str:
    e = html.escape
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
             f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
             f"<title>lrdecay verification report</title><style>{CSS}</style></head><body>",
             "<h1>Verification report: late learning-rate decay</h1>",
             f"<p><b>{e(summary_line(claims))}</b></p>",
             "<p>Each claim of the science is a measurement compared with a stated prediction at a tolerance fixed "
             "in advance; the verdicts are computed from the result files beside this page "
             "(<code>lrdecay report --verdicts-only</code> recomputes them).</p>",
             "<table class='legend'>" + "".join(f"<tr><td>{_badge(v)}</td><td>{e(t)}</td></tr>"
                                                for v, t in VERDICT_HELP.items())
             + "".join(f"<tr><td><code>{e(k)}</code></td><td>{e(t)}</td></tr>" for k, t in TAG_HELP.items())
             + f"<tr><td>intervals</td><td>{e(INTERVAL_HELP)}</td></tr></table>"]
    for line in unverified_lines(meta["provenance"]):
        parts.append(f"<p class='note'><b>Warning.</b> {e(line)}</p>")
    parts.append(f"<p>Size: <b>{e(str(meta['provenance'].get('size')))}</b>"
                 + (" (a tiny run for tests: its numbers are not the report's)" if meta["provenance"].get("size") == "smoke"
                    else "") + "</p>")
    findings = [c for c in claims if c.verdict == FAIL]
    if findings:
        parts.append("<h2>Findings: claims that fail</h2><ul>" + "".join(
            f"<li><a href='#{e(c.id)}'><code>{e(c.id)}</code></a>: {e(c.note or c.measured)}</li>" for c in findings)
            + "</ul>")
    parts.append("<p>Sections: " + " · ".join(f"<a href='#{k}'>{e(h)}</a>" for k, h, _ in grouped(claims)) + "</p>")
    shown, n_fig = set(), 0
    for key, heading, members in grouped(claims):
        parts.append(f"<h2 id='{key}'>{e(heading)}</h2>")
        for c in members:
            parts.append(
                f"<div class='claim' id='{e(c.id)}'><h3>{_badge(c.verdict)} <code>{e(c.id)}</code> "
                f"<small>{e(c.status)} {e(c.section)}</small></h3><div>{e(c.statement)}</div><dl>"
                f"<dt>prediction</dt><dd>{e(c.prediction)}</dd><dt>measured</dt><dd>{e(c.measured or '—')}</dd>"
                f"<dt>tolerance</dt><dd>{e(c.tolerance)}</dd>"
                + (f"<dt>would fail on</dt><dd>{e(c.flips)}</dd>" if c.flips else "") + "</dl>"
                + (f"<div class='note'><b>Note.</b> {e(c.note)}</div>" if c.note else "")
                + (f"<div class='caveat'><b>Caveat.</b> {e(c.caveat)}</div>" if c.caveat else "") + "</div>")
        for f in dict.fromkeys(c.figure for c in members if c.figure):
            if f in shown or not (out / f).exists():
                continue
            shown.add(f)
            n_fig += 1
            parts.append(f"<figure id='fig{n_fig}'><a href='{e(f)}' title='open at full size'>"
                         f"<img alt='{e(f)}' src='{_data_uri(out / f)}'></a>"
                         f"<figcaption><b>Figure {n_fig}</b> (<a href='{e(f)}'>{e(f)}</a>, full size). "
                         f"{e(CAPTIONS.get(f, ''))}</figcaption></figure>")
    parts.append("<h2 id='provenance'>Provenance</h2><pre>" + e("\n".join(_provenance_lines(meta["provenance"])))
                 + "</pre></body></html>")
    return "\n".join(parts)
