"""benchmarks/gpu_authors.py: its whole code path on the CPU at tiny settings, its estimate, its errors."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("gpu_authors", REPO / "benchmarks" / "gpu_authors.py")
G = importlib.util.module_from_spec(spec)
spec.loader.exec_module(G)


def test_check_run_end_to_end_on_cpu(tmp_path, capsys):
    from lrdecay.empirics import data as D

    if not (D.default_data_dir() / D.LAYOUT_DIR / "data_batch_1").is_file():
        pytest.skip("real subset absent")
    assert G.main(["--out", str(tmp_path), "--device", "cpu", "--check", "--no-progress"]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[2].startswith("measured:") and text[3].startswith("estimated wall time:")   # before the run
    r = json.loads((tmp_path / "gpu_authors.json").read_text())
    assert set(r["estimate_s"]) == {"main", "subpaths", "curvature", "landscape", "total"}
    assert r["bf16"] is False and r["compile"] is False            # neither on a CPU
    assert (tmp_path / "figures" / "vgg_late_decay_map.png").exists()


def test_scaled_schedule_stays_on_checkpoints():
    from lrdecay.empirics import profiles as P

    p = P.get_profile("authors")
    tr, cu = G.scaled_overrides(p, 0.1)
    assert tr["decay_epochs"] == tuple(range(200, 300, 10)) and tr["epochs"] == 300
    P.resolve("authors", tr, None, cu).train.validate(5000)
    with pytest.raises(ValueError, match="scale"):
        G.scaled_overrides(p, 2.0)


def test_absent_device_is_one_line_and_exit_2(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device exists here")
    assert G.main(["--out", str(tmp_path), "--device", "cuda:3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gpu_authors: device: 'cuda:3' requested but")
