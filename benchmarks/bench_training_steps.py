"""MGRIT over training steps (Schroder 2022): the cost of one MGRIT iteration over N₀ XOR
training steps, and what batching the training step buys.

    python benchmarks/bench_training_steps.py [--quick]

1. **iteration** — one F-cycle and one V-cycle iteration (FCF, m = 2, every level down to
   ≤ 10 steps) of Solver 1 (η_b = 1, η_max = 8) over N₀ = 25,600 XOR steps on one process,
   one torch thread: seconds per iteration (best of 3 iterations after the first), beside
   N₀ serial training steps. Target: well under a second per iteration;
2. **batched step** — ``TrainingSteps.step`` on B states in one call against B single-state
   calls (the same states; both are bitwise equal, tested), for the XOR network (full batch
   and one example per step) and the four-layer binary-addition network (one example).

Every ratio compares runs made side by side in this invocation. Results go to
``benchmarks/results/training_steps.json`` (``--quick``: ``training_steps_quick.json``) and
the markdown table ``training_steps.md``.
"""
from __future__ import annotations

import argparse
import math
import platform
import time

import torch
from _results import keep, result_path

from mgritlab.problems.networks import binary_addition_problem, xor_problem
from mgritlab.problems.training import FINEST_LEVEL, TrainingSteps, doubling
from mgritlab.training_runs.solvers import make_mgrit


def iteration_seconds(steps: int, cycle: str, iterations: int = 4) -> dict:
    data = xor_problem()
    prop = TrainingSteps(data, doubling(1.0, 8.0), "all")
    mgrit = make_mgrit(prop, steps, cycle, tol=0.0, max_iter=iterations)
    res = mgrit.solve(data.w0, gather=False)
    start = time.perf_counter()
    prop.serial(steps)
    serial = time.perf_counter() - start
    return dict(steps=steps, cycle=cycle, levels=len(mgrit.hierarchy),
                first_iteration=res.iteration_seconds[0],
                iteration=min(res.iteration_seconds[1:]), serial_training=serial)


def step_seconds(name: str, prop: TrainingSteps, batch: int, repeat: int = 3) -> dict:
    g = torch.Generator().manual_seed(0)
    u = prop.w0 + 0.1 * torch.randn(batch, prop.size, dtype=torch.float64, generator=g)
    i = torch.arange(batch)
    best_batched = best_loop = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        prop.step(u, i, FINEST_LEVEL)
        best_batched = min(best_batched, time.perf_counter() - start)
        start = time.perf_counter()
        for k in range(batch):
            prop.step(u[k : k + 1], i[k : k + 1], FINEST_LEVEL)
        best_loop = min(best_loop, time.perf_counter() - start)
    return dict(network=name, batch=batch, batched=best_batched, loop=best_loop,
                ratio=best_loop / best_batched)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="N0 = 1600, small batches")
    args = ap.parse_args()
    torch.set_num_threads(1)
    steps = 1600 if args.quick else 25_600
    iters = [iteration_seconds(steps, c) for c in ("F", "V")]
    batch = 256 if args.quick else 4096
    xor, add = xor_problem(), binary_addition_problem()
    steps_rows = [
        step_seconds("xor, all 4 examples", TrainingSteps(xor, 1.0, "all"), batch),
        step_seconds("xor, one example", TrainingSteps(xor, 1.0, "serial"), batch),
        step_seconds("24-128-64-12, one example", TrainingSteps(add, 0.025, "serial"),
                     batch // 4),
    ]
    result = dict(machine=platform.machine(), torch=torch.__version__, threads=1,
                  iterations=iters, steps=steps_rows)
    md = ["| N0 | cycle | levels | s / iteration | first iteration s | serial training s |",
          "|---:|:---:|---:|---:|---:|---:|"]
    md += [f"| {r['steps']} | {r['cycle']} | {r['levels']} | {r['iteration']:.3f} | "
           f"{r['first_iteration']:.3f} | {r['serial_training']:.2f} |" for r in iters]
    md += ["", "| network, examples per step | B | batched s | B single calls s | ratio |",
           "|:---|---:|---:|---:|---:|"]
    md += [f"| {r['network']} | {r['batch']} | {r['batched']:.4f} | {r['loop']:.3f} | "
           f"{r['ratio']:.0f}x |" for r in steps_rows]
    keep(result_path("training_steps", quick=args.quick), result, "\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
