"""Layer-parallel GRU (implicit, 3 levels, c_f 4, T₁ = 2, T₂ = 1): one training step over a
long sequence on 1 and 2 MPI ranks, serial back-propagation and the critical-path model.

    python benchmarks/bench_gru.py [--quick]

The synthetic adding task at 4096 steps (``--quick``: 1024), batch 32, hidden 32, float32, one
torch thread per rank; the best of 7 training steps (forward, backward, Adam) between barriers.
Targets (issue 16): the measured 2-rank step ≥ 1.6× faster than the 1-rank step, and the
critical-path model on 64 ranks ≥ 5× faster than the measured serial step. Every ratio compares
runs made in this invocation. Results: ``benchmarks/results/gru.json`` (``gru_quick.json``)
and the markdown table ``gru.md``.
"""
from __future__ import annotations

import argparse
import platform
import tempfile

from _results import keep, result_path

from mgritlab.recurrent.scaling import format_scaling, scaling


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1024 steps")
    args = ap.parse_args()
    steps = 1024 if args.quick else 4096
    with tempfile.TemporaryDirectory() as tmp:
        recs = scaling((steps,), (1, 2), out=tmp, timeout=900, repeat=7)
    one, two = recs
    result = {"steps": steps, "records": recs, "machine": platform.platform(),
              "two_vs_one_rank": one["seconds"] / two["seconds"],
              "model64_vs_serial": one["model_speedup"].get("64"),
              "one_rank_vs_serial": one["serial_seconds"] / one["seconds"]}
    md = format_scaling(recs)
    keep(result_path("gru", quick=args.quick), result, md)
    print(md)
    print(f"2 ranks vs 1: {result['two_vs_one_rank']:.2f}x (target >= 1.6); model on 64 ranks "
          f"vs serial: {result['model64_vs_serial']:.1f}x (target >= 5)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
