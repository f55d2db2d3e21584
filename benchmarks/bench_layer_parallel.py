"""Serial back-propagation vs layer-parallel training: one forward + backward of an ODE-net.

For depths 32/128/512 and widths 8/64 this times

* ``serial``: the N residual layers one after the other, autograd for the gradient;
* ``lp-2``, ``lp-3``: :class:`mgritlab.nn.LayerParallel` with 2 and 3 levels, cf 4,
  T₁ = 2 forward and T₂ = 1 backward MGRIT iterations (relaxation batched over layers),

and reports the best wall time of ``--repeat`` runs, the split forward/backward, and the
relative error of the layer-parallel gradient. Run under ``mpiexec -n 2`` the layer-parallel
rows use an MPIPartition over the ranks (the serial row is the same one-process network).

    python benchmarks/bench_layer_parallel.py [--quick]
    mpiexec -n 2 python benchmarks/bench_layer_parallel.py [--quick]

Results are merged into ``benchmarks/results/layer_parallel.json`` under the number of ranks
(``--quick`` runs go to ``layer_parallel_quick.json``, so a smoke test keeps the published table).
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from _results import keep, result_path
from torch import nn

from mgritlab.mgrit.world import world
from mgritlab.nn import ODENet

RESULTS, QUICK_RESULTS = (result_path("layer_parallel", quick=q) for q in (False, True))


def time_pass(model, params, x, y, comm, repeat):
    """Best wall time of forward, backward and both (between barriers), and the gradient."""
    best = {"forward": float("inf"), "backward": float("inf"), "total": float("inf")}
    grads = None
    for _ in range(repeat):
        for p in params:
            p.grad = None
        if comm is not None:
            comm.Barrier()
        t0 = time.perf_counter()
        loss = nn.functional.cross_entropy(model(x), y)
        t1 = time.perf_counter()
        loss.backward()
        if comm is not None:
            comm.Barrier()
        t2 = time.perf_counter()
        best["forward"] = min(best["forward"], t1 - t0)
        best["backward"] = min(best["backward"], t2 - t1)
        best["total"] = min(best["total"], t2 - t0)
        grads = torch.cat([p.grad.flatten() for p in params])
    return best, grads


def run(depths, widths, batch, repeat, levels_list, cf=4, fwd_iters=2, bwd_iters=1):
    comm, rank, size = world()
    part = None
    if size > 1:
        from mgritlab.mgrit.mpi import MPIPartition

        part = MPIPartition(comm)
    rows = []
    g = torch.Generator().manual_seed(0)
    for depth in depths:
        for width in widths:
            x = torch.randn(batch, 2, generator=g, dtype=torch.float64)
            y = torch.randint(0, 2, (batch,), generator=g)
            net = ODENet(2, width, 2, depth, seed=1, max_levels=2, cf=cf)
            params = list(net.parameters())
            serial = net.serial()
            time_pass(serial, params, x, y, comm, 1)       # warm-up
            t_ser, g_ser = time_pass(serial, params, x, y, comm, repeat)
            rows.append(dict(depth=depth, width=width, batch=batch, method="serial", levels=1,
                             ranks=1, **t_ser, grad_error=0.0, speedup=1.0))
            for levels in levels_list:
                lp_net = ODENet(2, width, 2, depth, seed=1, max_levels=levels, cf=cf,
                                fwd_iters=fwd_iters, bwd_iters=bwd_iters, partition=part,
                                warm_start=False)  # every timed call is a cold start
                lp_params = list(lp_net.parameters())
                time_pass(lp_net, lp_params, x, y, comm, 1)
                t_lp, g_lp = time_pass(lp_net, lp_params, x, y, comm, repeat)
                err = float((g_lp - g_ser).norm() / g_ser.norm())
                rows.append(dict(depth=depth, width=width, batch=batch, method=f"lp-{levels}",
                                 levels=levels, ranks=size, **t_lp, grad_error=err,
                                 speedup=t_ser["total"] / t_lp["total"]))
    return rows, rank, size


def table(rows) -> str:
    head = (f"{'depth':>5} {'width':>5} {'method':>7} {'ranks':>5} {'fwd ms':>9} {'bwd ms':>9} "
            f"{'total ms':>9} {'speedup':>8} {'grad err':>9}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['depth']:>5} {r['width']:>5} {r['method']:>7} {r['ranks']:>5} "
                     f"{1e3 * r['forward']:9.2f} {1e3 * r['backward']:9.2f} "
                     f"{1e3 * r['total']:9.2f} {r['speedup']:8.2f} {r['grad_error']:9.2e}")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="depths 32/128, width 8, one repeat")
    ap.add_argument("--depths", type=int, nargs="+", default=[32, 128, 512])
    ap.add_argument("--widths", type=int, nargs="+", default=[8, 64])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    ap.add_argument("--out", type=Path, default=None,
                    help=f"JSON file (default {RESULTS.name}; {QUICK_RESULTS.name} with --quick)")
    args = ap.parse_args(argv)
    if args.quick:
        args.depths, args.widths, args.repeat = [32, 128], [8], 1
    if args.out is None:
        args.out = QUICK_RESULTS if args.quick else RESULTS
    torch.set_num_threads(args.threads)
    rows, rank, size = run(args.depths, args.widths, args.batch, args.repeat, levels_list=[2, 3])
    if rank != 0:
        return
    print(f"layer-parallel benchmark: {size} rank(s), {args.threads} thread(s) each, "
          f"float64, cf 4, T1 = 2, T2 = 1, batch {args.batch}, best of {args.repeat}")
    print(table(rows))
    data = json.loads(args.out.read_text()) if args.out.exists() else {}
    data.setdefault("runs", {})[str(size)] = dict(
        ranks=size, threads=args.threads, quick=args.quick, repeat=args.repeat,
        torch=torch.__version__, python=platform.python_version(),
        machine=platform.machine(), date=time.strftime("%Y-%m-%d %H:%M:%S"), rows=rows)
    keep(args.out, data)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
