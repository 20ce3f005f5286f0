"""The report's pages: ``report.md``, ``report.html`` and ``claims.json`` from the judged claims."""
from __future__ import annotations

import html
from dataclasses import asdict
from pathlib import Path

from theory.io import atomic_write_text, save_json

from .claims.base import FAIL, MISSING, PASS, Claim


def write_pages(out: Path, claims: list[Claim], meta: dict) -> tuple[Path, Path]:
    n_pass = sum(c.verdict == PASS for c in claims)
    n_fail = sum(c.verdict == FAIL for c in claims)
    n_miss = sum(c.verdict == MISSING for c in claims)
    head = (f"{n_pass} pass, {n_fail} fail, {n_miss} not run, "
            f"{len(claims) - n_pass - n_fail - n_miss} shown as figures; {len(claims)} claims")
    md = ["# Verification report: late learning-rate decay", "", head, "",
          f"Generated {meta['date']} in {meta['seconds']:.0f} s (size: {meta['size']}). "
          "[seed] = stated in the source documents, [derived] = worked out from them.", "",
          "| claim | statement | prediction | measured | tolerance | verdict | figure |",
          "|---|---|---|---|---|---|---|"]
    for c in claims:
        fig = f"[png]({c.figure})" if c.figure else ""
        md.append(f"| `{c.id}` {c.status} | {c.statement} | {c.prediction} | {c.measured} | {c.tolerance} | "
                  f"**{c.verdict}** | {fig} |")
    notes = [c for c in claims if c.note]
    if notes:
        md += ["", "## Notes", ""] + [f"* `{c.id}` ({c.verdict}): {c.note}" for c in notes]
    md += ["", "## Figures", ""]
    for f in sorted({c.figure for c in claims if c.figure} | set(meta.get("extra_figures", []))):
        if (out / f).exists():
            md += [f"### {f}", "", f"![{f}]({f})", ""]
    md_path = atomic_write_text(out / "report.md", "\n".join(md) + "\n")
    color = {PASS: "#1a7f37", FAIL: "#cf222e", MISSING: "#9a6700"}
    rows = "\n".join(
        f"<tr><td><code>{html.escape(c.id)}</code><br><small>{html.escape(c.section)} {html.escape(c.status)}</small></td>"
        f"<td>{html.escape(c.statement)}</td><td>{html.escape(c.prediction)}</td><td>{html.escape(c.measured)}</td>"
        f"<td>{html.escape(c.tolerance)}</td><td style='color:{color.get(c.verdict, '#555')};font-weight:bold'>"
        f"{html.escape(c.verdict)}</td><td>{f'<a href={html.escape(c.figure)}><img src={html.escape(c.figure)} width=220></a>' if c.figure else ''}</td></tr>"
        for c in claims)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>lrdecay verification report</title>
<style>body{{font-family:sans-serif;max-width:1400px;margin:auto}} td,th{{border:1px solid #ddd;padding:4px;vertical-align:top;font-size:13px}} table{{border-collapse:collapse}}</style></head>
<body><h1>Verification report: late learning-rate decay</h1><p><b>{html.escape(head)}</b></p>
<p>Generated {html.escape(meta['date'])} in {meta['seconds']:.0f} s (size: {html.escape(meta['size'])}).</p>
{"".join(f"<p><code>{html.escape(c.id)}</code> ({html.escape(c.verdict)}): {html.escape(c.note)}</p>" for c in claims if c.note)}
<table><tr><th>claim</th><th>statement</th><th>prediction</th><th>measured</th><th>tolerance</th><th>verdict</th><th>figure</th></tr>
{rows}</table></body></html>"""
    html_path = atomic_write_text(out / "report.html", page)
    save_json(out / "claims.json", {"meta": meta, "claims": [asdict(c) for c in claims]})
    return md_path, html_path
