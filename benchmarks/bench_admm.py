"""pdADMM-G on CORA (GA-MLP, 10 layers, 500 hidden, the 140 training rows): seconds per
iteration with the per-layer loop and with the batched update on one process, and on 2 MPI
ranks, plus the bytes one iteration sends between layers with and without quantisation; and
the loop against the batched update on a deep narrow net (32 layers of width 100), where the
per-layer call overhead is a larger share.

    python benchmarks/bench_admm.py [--quick]

One torch thread per process; the best of 7 iterations between barriers (``--quick``: 3, and
no 2-rank run). Target (issue 15): the batched iteration faster than the per-layer loop. Every
ratio compares runs made in this invocation. Results: ``benchmarks/results/admm.json``
(``admm_quick.json``) and the table ``admm.md``.
"""
from __future__ import annotations

import argparse
import platform

import torch
from _results import keep, result_path

from mgritlab.graphs import gamlp
from mgritlab.graphs.admm_experiments import iteration_seconds, ranks_seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 repeats, one process only")
    args = ap.parse_args()
    repeat = 3 if args.quick else 7
    torch.set_num_threads(1)
    graph = gamlp.load_augmented("Cora", 5)
    recs = {}
    for _ in range(2):  # interleaved, so that a noisy moment hits both
        for name, kw in (("loop", {"batched": False}), ("batched", {"batched": True}),
                         ("batched_q", {"batched": True, "method": "pdadmm-g-q"}),
                         ("loop_32x100", {"batched": False, "layers": 32, "hidden": 100}),
                         ("batched_32x100", {"batched": True, "layers": 32, "hidden": 100})):
            r = iteration_seconds(graph=graph, repeat=repeat, **kw)
            if name not in recs or r["seconds"] < recs[name]["seconds"]:
                recs[name] = r
    if not args.quick:
        recs["two_ranks"] = ranks_seconds(2, repeat=repeat)
    result = {"records": recs, "machine": platform.platform(), "torch": torch.__version__,
              "loop_vs_batched": recs["loop"]["seconds"] / recs["batched"]["seconds"],
              "loop_vs_batched_32x100": recs["loop_32x100"]["seconds"]
              / recs["batched_32x100"]["seconds"],
              "q_byte_saving": 1 - recs["batched_q"]["interface_bytes"]
              / recs["batched"]["interface_bytes"]}
    if "two_ranks" in recs:
        result["batched_vs_two_ranks"] = recs["batched"]["seconds"] / recs["two_ranks"]["seconds"]
    lines = ["| run | layers × width | ranks | s / iteration | bytes between layers (rank 0's "
             "layers) | bytes across ranks (per rank) |", "|---|---|---|---|---|---|"]
    for k, r in recs.items():
        lines.append(f"| {k} | {r['layers']} × {r['hidden']} | {r['ranks']} | "
                     f"{r['seconds']:.4f} | {r['interface_bytes']:,} | {r['rank_bytes']} |")
    md = "\n".join(lines)
    keep(result_path("admm", quick=args.quick), result, md)
    print(md)
    msg = (f"batched vs per-layer loop: {result['loop_vs_batched']:.2f}x faster at 10 x 500, "
           f"{result['loop_vs_batched_32x100']:.2f}x at 32 x 100 (target > 1)")
    if "batched_vs_two_ranks" in result:
        msg += f"; 2 ranks vs 1: {result['batched_vs_two_ranks']:.2f}x"
    print(msg + f"; pdADMM-G-Q sends {100 * result['q_byte_saving']:.0f} % fewer bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
