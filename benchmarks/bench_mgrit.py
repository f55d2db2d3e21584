"""MGRIT vs sequential time stepping on one process, side by side in one run.

The heat problem of the foundation issue (Heat1D defaults: nx = 1001, t in [0, 2]) with
nt in {65, 1025, 16385}, levels 2..max, cf 2 and 4, FCF relaxation, V-cycles, tol 1e-7.
For each configuration: iterations, best-of-k seconds per solve, propagator applications
(states stepped) vs batched propagator calls, and the ratio MGRIT time / sequential time
measured in the same run. Writes benchmarks/results/mgrit.json and the table mgrit.md
(``--quick``: mgrit_quick.*, ignored by git).

    python benchmarks/bench_mgrit.py [--quick] [--repeat 3]
"""
from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch
from _results import keep, result_path

from mgritlab.mgrit import MGRIT, max_levels_for, sequential_solve, uniform_grid
from mgritlab.problems import Heat1D


def best_of(fn, repeat: int):
    best, value = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


def run(nts, cfs, repeat: int, tol: float) -> list[dict]:
    prob = Heat1D(tf=2.0)
    rows = []
    for nt in nts:
        t = uniform_grid(0.0, 2.0, nt)
        reps = repeat if nt < 10_000 else 1
        seq_s, ref = best_of(lambda t=t: sequential_solve(prob, prob.u0, t), reps)
        for cf in cfs:
            for levels in range(2, max_levels_for(nt, cf) + 1):
                solver = MGRIT(prob, t, max_levels=levels, cf=cf, relax="FCF", tol=tol)
                secs, res = best_of(lambda s=solver: s.solve(prob.u0), reps)
                rows.append(dict(
                    nt=nt, cf=cf, levels=levels, iterations=res.iterations,
                    converged=res.converged, seconds=secs, sequential_seconds=seq_s,
                    ratio=secs / seq_s,
                    applications=sum(w["states"] for w in res.work),
                    batched_calls=sum(w["calls"] for w in res.work),
                    max_difference=float((res.u - ref).abs().max())))
                r = rows[-1]
                print(f"nt={nt:6d} cf={cf} L={levels:2d}: {r['iterations']:3d} it, "
                      f"{secs:8.4f} s, ratio {r['ratio']:6.2f}", flush=True)
    return rows


def table(rows: list[dict]) -> str:
    head = ("| nt | cf | levels | iterations | MGRIT s | sequential s | MGRIT/seq | "
            "applications | batched calls |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    lines = [head]
    for r in rows:
        lines.append(f"| {r['nt']} | {r['cf']} | {r['levels']} | {r['iterations']} | "
                     f"{r['seconds']:.4f} | {r['sequential_seconds']:.4f} | {r['ratio']:.2f} |"
                     f" {r['applications']} | {r['batched_calls']} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="nt 65 and 1025 only")
    ap.add_argument("--repeat", type=int, default=5, help="best of this many runs")
    ap.add_argument("--tol", type=float, default=1e-7)
    ap.add_argument("--out", type=Path, default=None,
                    help="JSON file (default results/mgrit.json; mgrit_quick.json with --quick)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    nts = [65, 1025] if args.quick else [65, 1025, 16385]
    rows = run(nts, [2, 4], args.repeat, args.tol)
    meta = dict(machine=platform.machine(), processor=platform.processor(),
                torch=torch.__version__, threads=torch.get_num_threads(), tol=args.tol,
                problem="Heat1D(nx=1001, t in [0, 2]), backward Euler, FCF, V-cycle")
    md = table(rows)
    keep(result_path("mgrit", quick=args.quick, out=args.out), dict(meta=meta, rows=rows), md,
         indent=2)
    print(md)
    target = [r for r in rows if r["nt"] == 65]
    best = min(target, key=lambda r: r["ratio"])
    print(f"\n65-point example: best MGRIT/sequential = {best['ratio']:.2f} "
          f"(levels={best['levels']}, cf={best['cf']}); target <= 10")


if __name__ == "__main__":
    main()
