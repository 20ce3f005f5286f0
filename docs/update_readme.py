"""Regenerate the generated parts of README.md from result files (run after ``lrdecay report``):

    python docs/update_readme.py [--claims results/report/claims.json] [--bench benchmarks/results/engine_speed.md]

The claims table (between the markers ``<!-- claims:start -->`` and ``<!-- claims:end -->``) is made from
claims.json by :func:`lrdecay.report.render.claims_table`; the summary line and the provenance under it
from the same file; the benchmark table (``<!-- bench:start -->`` … ``<!-- bench:end -->``) is copied
from the file written by ``benchmarks/compare_peers.py`` when it exists.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from lrdecay.report.render import claims_table, summary_line  # noqa: E402


def splice(text: str, name: str, body: str) -> str:
    pat = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
    if not pat.search(text):
        raise SystemExit(f"README.md has no <!-- {name}:start --> … <!-- {name}:end --> markers")
    return pat.sub(lambda m: m.group(1) + body + m.group(2), text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--claims", default=str(ROOT / "results" / "report" / "claims.json"),
                   help="claims.json of a default report (default: %(default)s)")
    p.add_argument("--bench", default=str(ROOT / "benchmarks" / "results" / "engine_speed.md"),
                   help="benchmark table written by compare_peers.py (default: %(default)s)")
    a = p.parse_args(argv)
    data = json.loads(Path(a.claims).read_text(encoding="utf-8"))
    from types import SimpleNamespace

    claims = data["claims"]
    meta = data["meta"]
    prov = meta.get("provenance", {})
    run = meta.get("results_from") or {"seconds": meta.get("seconds", 0), "git_commit": prov.get("git_commit", "?"),
                                       "date": meta.get("date", "?")}
    head = (f"**{summary_line([SimpleNamespace(**c) for c in claims])}** — `lrdecay report` ({meta.get('size')} size) "
            f"in {run['seconds'] or 0:.0f} s on {prov.get('machine', '?')}, commit "
            f"`{str(run['git_commit'])[:12]}`, {run['date']}")
    if meta.get("results_from"):
        head += f"; verdicts re-judged at commit `{str(prov.get('git_commit', '?'))[:12]}`"
    head += ".\n\n"
    readme = ROOT / "README.md"
    text = splice(readme.read_text(encoding="utf-8"), "claims", head + claims_table(claims))
    bench = Path(a.bench)
    if bench.exists():
        text = splice(text, "bench", bench.read_text(encoding="utf-8"))
    readme.write_text(text, encoding="utf-8")
    print(f"updated {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
