"""Seconds per training epoch of PDE-GCN-D on CORA: SpMM (CSR) vs gather/scatter operators.

One epoch = forward + backward + Adam step on the full graph (training mode, frozen dropout
masks drawn per step). Depths 16/64/256, 64 channels, explicit layers (α = 0).

    python benchmarks/bench_pdegcn.py [--quick] [--threads 1] [--out benchmarks/results/pdegcn.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from mgritlab.graphs.pdegcn import PDEGCN
from mgritlab.graphs.train import load_graph


def seconds_per_epoch(model, data, reps: int, warmup: int = 1) -> float:
    opt = torch.optim.Adam(model.parameter_groups(9e-3, 2.4e-4, 2e-5))
    model.train()
    times = []
    for k in range(warmup + reps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        out = model(data.x)
        F.nll_loss(out[data.train_mask], data.y[data.train_mask]).backward()
        opt.step()
        if k >= warmup:
            times.append(time.perf_counter() - t0)
    return float(sorted(times)[len(times) // 2])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="depths 16 and 64, 2 repetitions")
    p.add_argument("--layers", type=int, nargs="+", default=None)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--reps", type=int, default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "pdegcn.json"))
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    layers = args.layers or ([16, 64] if args.quick else [16, 64, 256])
    reps = args.reps or (2 if args.quick else 3)
    data, ops = load_graph("Cora")
    gs = ops.gather_scatter()
    rows = []
    for L in layers:
        model = PDEGCN(ops, data.num_features, data.num_classes, channels=args.channels,
                       layers=L, h=0.8 * 64 / L, dropout=0.6, seed=0)
        torch.manual_seed(0)
        t_spmm = seconds_per_epoch(model, data, reps)
        model.ops = gs  # same weights, same masks: only the operator implementation differs
        torch.manual_seed(0)
        t_gs = seconds_per_epoch(model, data, reps)
        rows.append({"layers": L, "channels": args.channels, "spmm_s": t_spmm,
                     "gather_scatter_s": t_gs, "speedup": t_gs / t_spmm})
        print(f"L={L:>4}: spmm {t_spmm:.3f} s/epoch, gather/scatter {t_gs:.3f} s/epoch",
              flush=True)
    print(f"\n{'layers':>6} {'channels':>8} {'SpMM s/epoch':>13} {'gather/scatter':>15} "
          f"{'ratio':>6}")
    for r in rows:
        print(f"{r['layers']:>6} {r['channels']:>8} {r['spmm_s']:>13.3f} "
              f"{r['gather_scatter_s']:>15.3f} {r['speedup']:>6.2f}")
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "machine": platform.machine(),
            "load_average": os.getloadavg(), "reps": reps, "quick": args.quick,
            "dataset": "Cora", "note": "median over reps after one warm-up epoch; training mode"}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
