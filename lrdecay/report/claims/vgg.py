"""Claims on the VGG-11 experiment (the ``empirics`` job)."""
from __future__ import annotations

from theory.io import load_json

from .base import FIGURE, Judgement, caption, claim, verdict


def _summary(d):
    if (d / "error.json").exists():
        return {"error": load_json(d / "error.json")["error"]}
    if not (d / "summary.json").exists():
        return None
    return load_json(d / "summary.json")


@claim("vgg.late_decay", section="§4 VGG-11", source="[seed]",
       statement="VGG-11 on CIFAR-10: subpaths decayed later end with a lower test loss",
       prediction="final test loss decreases with the decay epoch",
       tolerance="Spearman ρ(final test loss, decay epoch) < 0 and last < first", job="empirics",
       figure=caption("empirics/figures/vgg_decay.png",
                      "Final test loss and accuracy of VGG-11 against the epoch of the decay, and the learning curves."),
       flips="Spearman ρ = +1 (later decay ends higher)")
def late_decay(d):
    s = _summary(d)
    if s is None:
        return None
    if "error" in s:
        return Judgement("not run", s["error"])
    tr = s.get("trend", {})
    measured = ("; ".join(f"epoch {e}: {v:.5f}" for e, v in zip(s["decay_epochs"], s["final_test_loss"]))
                + f"; ρ = {tr.get('spearman_rho_loss_vs_decay_epoch', float('nan')):.2f}; "
                + f"test accuracy {min(s['final_test_acc']):.3f} … {max(s['final_test_acc']):.3f}")
    if not tr:
        return Judgement("not run", measured)
    rho = tr["spearman_rho_loss_vs_decay_epoch"]
    return Judgement(verdict(rho < 0 and tr["last_minus_first_test_loss"] < 0), measured,
                     {"spearman_rho": rho, "last_minus_first": tr["last_minus_first_test_loss"]})


@claim("vgg.landscape", section="§4 VGG-11", source="[seed]",
       statement="In the PCA plane of the checkpoints, the main path travels along a valley of low train loss; the "
                 "test loss has an isolated minimum near its far end",
       prediction="figure", tolerance="—", job="empirics", figure=caption("empirics/figures/vgg_landscape.png",
                      "Train and test loss in the plane of the first two principal components of the checkpoints, "
                      "with the main path and the decayed subpaths."))
def landscape(d):
    s = _summary(d)
    if s is None:
        return None
    if "error" in s:
        return Judgement("not run", s["error"])
    ls = s.get("landscape")
    if not ls:
        return None
    ev = ls.get("explained_variance_ratio") or ls.get("explained_variance")
    return Judgement(FIGURE, f"PCA explained variance {', '.join(f'{v:.3f}' for v in ev[:3])}" if ev
                     else "landscape computed")
