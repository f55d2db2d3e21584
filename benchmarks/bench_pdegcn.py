"""Seconds per training epoch of PDE-GCN-D on CORA: SpMM (CSR) vs gather/scatter operators.

One epoch = forward + backward + Adam step on the full graph (training mode, frozen dropout
masks drawn per step). Depths 16/64/256, 64 channels, explicit layers (α = 0).

    python benchmarks/bench_pdegcn.py [--quick] [--threads 1] [--out benchmarks/results/pdegcn.json]

Wall seconds depend on the machine's load; process CPU seconds are reported beside them.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import torch
from _results import keep, result_path

from mgritlab.graphs.pdegcn import PDEGCN
from mgritlab.graphs.train import load_graph, train_step


def epoch_timer(model, data):
    """One training epoch (the training loop's own step, graphs.train.train_step) as a
    closure returning (wall seconds, process CPU seconds)."""
    opt = torch.optim.Adam(model.parameter_groups(9e-3, 2.4e-4, 2e-5))
    model.train()

    def epoch():
        w, c = time.perf_counter(), time.process_time()
        train_step(model, opt, data)
        return time.perf_counter() - w, time.process_time() - c
    return epoch


def median(xs):
    return float(sorted(xs)[len(xs) // 2])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="depths 16 and 64, 2 repetitions")
    p.add_argument("--layers", type=int, nargs="+", default=None)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--reps", type=int, default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=None,
                   help="JSON file (default results/pdegcn.json; pdegcn_quick.json with --quick)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    layers = args.layers or ([16, 64] if args.quick else [16, 64, 256])
    reps = args.reps or (2 if args.quick else 3)
    data, ops = load_graph("Cora")
    gs = ops.gather_scatter()
    rows = []
    for L in layers:
        models = {}
        for impl, o in (("spmm", ops), ("gather_scatter", gs)):
            m = PDEGCN(ops, data.num_features, data.num_classes, channels=args.channels,
                       layers=L, h=0.8 * 64 / L, dropout=0.6, seed=0)
            m.ops = o  # same weights and masks: only the operator implementation differs
            models[impl] = epoch_timer(m, data)
        times = {impl: [] for impl in models}
        for k in range(reps + 1):  # alternate, so that both see the same machine load
            for impl, epoch in models.items():
                t = epoch()
                if k > 0:  # the first epoch is a warm-up
                    times[impl].append(t)
        row = {"layers": L, "channels": args.channels}
        for impl, ts in times.items():
            row[f"{impl}_s"] = median([t[0] for t in ts])
            row[f"{impl}_cpu_s"] = median([t[1] for t in ts])
        row["ratio_cpu"] = row["gather_scatter_cpu_s"] / row["spmm_cpu_s"]
        rows.append(row)
        print(f"L={L:>4}: spmm {row['spmm_s']:.3f} s ({row['spmm_cpu_s']:.3f} s CPU), "
              f"gather/scatter {row['gather_scatter_s']:.3f} s "
              f"({row['gather_scatter_cpu_s']:.3f} s CPU) per epoch", flush=True)
    print(f"\n{'layers':>6} {'channels':>8} {'SpMM s/epoch':>13} {'(CPU)':>7} "
          f"{'gather/scatter':>15} {'(CPU)':>7} {'CPU ratio':>9}")
    for r in rows:
        print(f"{r['layers']:>6} {r['channels']:>8} {r['spmm_s']:>13.3f} {r['spmm_cpu_s']:>7.3f} "
              f"{r['gather_scatter_s']:>15.3f} {r['gather_scatter_cpu_s']:>7.3f} "
              f"{r['ratio_cpu']:>9.2f}")
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "machine": platform.machine(),
            "load_average": os.getloadavg(), "reps": reps, "quick": args.quick,
            "dataset": "Cora",
            "note": "median over reps after one warm-up epoch, implementations alternated; "
                    "wall (s) and process CPU (cpu_s) seconds per training epoch"}
    out = keep(result_path("pdegcn", quick=args.quick, out=args.out), {"meta": meta, "rows": rows})
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
