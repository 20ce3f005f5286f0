"""Copy the report's figures into docs/figures/ for the documentation site, at most 1000 pixels wide.

    lrdecay report                      # results/report/<job>/figures/*.png
    python docs/update_figures.py       # docs/figures/<name>.png (small enough to commit)

Each figure is reduced by averaging blocks of k x k pixels (the smallest k that brings it to 1000 pixels or
fewer) and written as RGB PNG with matplotlib alone; results/ itself is not committed.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "results" / "report"
OUT = ROOT / "docs" / "figures"
MAX_WIDTH = 1000
#: (job folder, figure name): the figures the site shows
FIGURES = [("demo", "three_phases"), ("demo", "demo_decay"), ("drift", "drift_vs_sgd"), ("gamma", "gamma_convergence"),
           ("rate_law", "rate_law"), ("cyclic", "cyclic_schedules"), ("discrete_eta", "discrete_eta"),
           ("diagonal", "diagonal"), ("two_layer", "two_layer"), ("convex", "nakkiran_fig1"),
           ("landscape", "nonlinear_landscape"), ("empirics", "vgg_learning_curves"), ("empirics", "vgg_decay"),
           ("vgg_long", "vgg_decay"), ("vgg_long", "vgg_landscape")]


def shrink(img: np.ndarray, max_width: int = MAX_WIDTH) -> np.ndarray:
    """``img`` (H, W, C) floats in [0, 1], block-averaged by the smallest integer factor giving width <= max_width,
    composited onto white (RGB)."""
    if img.shape[-1] == 4:
        rgb, alpha = img[..., :3], img[..., 3:]
        img = rgb * alpha + (1.0 - alpha)
    k = max(1, -(-img.shape[1] // max_width))
    h, w = img.shape[0] // k * k, img.shape[1] // k * k
    return img[:h, :w].reshape(h // k, k, w // k, k, 3).mean(axis=(1, 3))


def main() -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    OUT.mkdir(parents=True, exist_ok=True)
    missing = []
    for job, name in FIGURES:
        src = REPORT / job / "figures" / f"{name}.png"
        if not src.exists():
            missing.append(str(src.relative_to(ROOT)))
            continue
        dest = OUT / (f"{name}.png" if job not in ("vgg_long",) else f"{name}_long.png")
        plt.imsave(dest, np.clip(shrink(plt.imread(src)), 0, 1))
        print(f"{dest.relative_to(ROOT)}  {dest.stat().st_size / 1024:.0f} KB")
    meta = json.loads((REPORT / "claims.json").read_text())["meta"] if (REPORT / "claims.json").exists() else {}
    (OUT / "SOURCE.txt").write_text(f"Figures of `lrdecay report` (results/report), commit "
                                    f"{meta.get('provenance', {}).get('git_commit', '?')[:12]}, {meta.get('date', '?')}; "
                                    "reduced by docs/update_figures.py.\n")
    if missing:
        print("missing (run lrdecay report first):", *missing, sep="\n  ", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
