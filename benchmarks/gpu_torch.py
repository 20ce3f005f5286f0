r"""The torch backend at large path counts on one device: a prepared script for a GPU machine.

Usage::

    python benchmarks/gpu_torch.py --out gpu_torch.json            # CUDA if available, else CPU
    python benchmarks/gpu_torch.py --device cpu --quick            # smoke test (sizes / 100)

Cases (label-noise SDE by Euler–Maruyama, gamma = 1, sigma = 1, eta = 1, dt = 2^-8, one record at
the end; ``simulate(..., backend="torch")``): 10^5 paths at d = 1000, n = 50, and 10^6 paths in
reduced coordinates (d = 50, n = 10 reduced to m = 11), each in float64 and float32. Per case: one
warm-up run, then the median of ``--repeats`` timed runs (CUDA synchronised by the copy of the
results to the host), path-steps per second, and the mean final train loss with its standard
error. For the float64 cases it also runs the same paths twice to check that the results repeat.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lrdecay.theory.engine import simulate  # noqa: E402
from lrdecay.theory.problem import Problem  # noqa: E402
from lrdecay.theory.reduction import Reduction  # noqa: E402


def main(argv=None):
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default=None, help="cuda (default where available) or cpu")
    ap.add_argument("--quick", action="store_true", help="path counts / 100 (a smoke test)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    scale = 100 if args.quick else 1
    info = dict(torch=torch.__version__, device=device, threads=torch.get_num_threads(),
                gpu=torch.cuda.get_device_name(0) if device.startswith("cuda") else None)
    print(json.dumps(info), flush=True)
    cases = [("d=1000 n=50", Problem.generate(d=1000, n=50, gamma=1.0, sigma=1.0, seed=0), 10**5 // scale),
             ("reduced m=11", Reduction.from_problem(Problem.generate(d=50, n=10, gamma=1.0, sigma=1.0, seed=0)).reduced,
              10**6 // scale)]
    out = dict(info=info, steps=args.steps, cases=[])
    for label, model, P in cases:
        for dtype in ("float64", "float32"):
            def run(seed=1):
                return simulate(model, n_paths=P, method="em", dt=2.0**-8, lr=1.0, steps=args.steps,
                                record_every=args.steps, seed=seed, backend="torch", device=device, dtype=dtype)
            r = run()
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                r2 = run()
                times.append(time.perf_counter() - t)
            med = statistics.median(times)
            L = r2.final("train_loss")
            row = dict(case=label, dtype=dtype, paths=P, median_s=med, times_s=times,
                       path_steps_per_s=P * args.steps / med, final_train_loss_mean=float(L.mean()),
                       final_train_loss_se=float(L.std() / np.sqrt(P)), repeatable=bool(np.array_equal(r.W_final, r2.W_final)),
                       message=r2.message)
            out["cases"].append(row)
            print(json.dumps(row), flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps(out, indent=2))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
