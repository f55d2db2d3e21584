"""``python -m mgritlab heat|dahlquist|nonlinear``: solve a model problem with MGRIT.

Under ``mpiexec -n P`` the time grid is split over the P ranks (same answer, same residual
history); rank 0 prints the hierarchy, the residual history, the wall time per phase and the
critical-path model speedup.
"""
from __future__ import annotations

import argparse
import json
import sys


def _common(p: argparse.ArgumentParser, nt: int, tf: float) -> None:
    p.add_argument("--nt", type=int, default=nt, help="time points on the fine grid")
    p.add_argument("--t0", type=float, default=0.0)
    p.add_argument("--tf", type=float, default=tf)
    p.add_argument("--levels", type=int, default=3, help="max number of MGRIT levels")
    p.add_argument("--cf", type=int, nargs="+", default=[2], help="coarsening factor(s)")
    p.add_argument("--relax", default="FCF", help="F, FC, FCF or (FC)^nF")
    p.add_argument("--cycle", default="V", choices=["V", "F", "v", "f"])
    p.add_argument("--tol", type=float, default=1e-7, help="absolute residual tolerance")
    p.add_argument("--max-iter", type=int, default=100)
    p.add_argument("--nested", action="store_true", help="nested iteration initial guess")
    p.add_argument("--scheme", default="backward_euler",
                   help="time stepper on the fine level (forward_euler, backward_euler, ...)")
    p.add_argument("--coarse-scheme", default=None, help="time stepper on the coarse levels")
    p.add_argument("--mpi", choices=["auto", "on", "off"], default="auto",
                   help="split time over MPI ranks (auto: when started by mpiexec)")
    p.add_argument("--compare", action="store_true",
                   help="also step sequentially on rank 0: time ratio and max difference")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads per process (1: small batched solves gain nothing "
                        "from threads, and under mpiexec ranks would compete for cores)")


def register(sub) -> None:
    heat = sub.add_parser("heat", help="1-D heat equation u_t = a u_xx + b with MGRIT")
    _common(heat, nt=1025, tf=2.0)
    heat.add_argument("--nx", type=int, default=1001, help="grid points in space (nx-2 unknowns)")
    heat.add_argument("--a", type=float, default=1.0, help="diffusion coefficient")
    heat.set_defaults(func=run, problem="heat")

    dq = sub.add_parser("dahlquist", help="the test equation y' = λy with MGRIT")
    _common(dq, nt=1025, tf=5.0)
    dq.add_argument("--lam", type=complex, default=complex(-1.0),
                    help="λ (complex allowed, e.g. -1+2j)")
    dq.set_defaults(func=run, problem="dahlquist")

    nl = sub.add_parser("nonlinear", help="y' = -y^3 (FAS on a nonlinear problem)")
    _common(nl, nt=1025, tf=5.0)
    nl.add_argument("--y0", type=float, default=1.0)
    nl.set_defaults(func=run, problem="nonlinear")


def make_problem(name: str, *, t0: float = 0.0, tf: float | None = None,
                 scheme: str = "backward_euler", nx: int = 1001, a: float = 1.0,
                 lam: complex = -1.0, y0: float = 1.0):
    """The model problem of a command: 'heat', 'dahlquist' or 'nonlinear'."""
    from ..problems import CubicDecay, Dahlquist, Heat1D

    if name == "heat":
        return Heat1D(a=a, nx=nx, t0=t0, tf=2.0 if tf is None else tf, scheme=scheme)
    tf = 5.0 if tf is None else tf
    if name == "dahlquist":
        lam = complex(lam)
        return Dahlquist(lam.real if lam.imag == 0 else lam, scheme=scheme, t0=t0, tf=tf)
    if name == "nonlinear":
        return CubicDecay(y0, scheme=scheme, t0=t0, tf=tf)
    raise ValueError(f"unknown problem {name!r}: use 'heat', 'dahlquist' or 'nonlinear'")


def _problem_from_args(args):
    extra = {k: getattr(args, k) for k in ("nx", "a", "lam", "y0") if hasattr(args, k)}
    return make_problem(args.problem, t0=args.t0, tf=args.tf, scheme=args.scheme, **extra)


def _partition(mode: str):
    from .tasks import launcher_env

    use = mode == "on" or (mode == "auto" and launcher_env() is not None)
    if not use:
        return None
    from .mpi import MPIPartition

    part = MPIPartition()
    return part if part.size > 1 or mode == "on" else None


def run(args) -> int:
    import time

    import torch

    from .hierarchy import uniform_grid
    from .sequential import sequential_solve
    from .solver import MGRIT
    from .speedup import model_speedup

    torch.set_num_threads(max(args.threads, 1))
    prob = _problem_from_args(args)
    part = _partition(args.mpi)
    rank = 0 if part is None else part.rank
    size = 1 if part is None else part.size
    t = uniform_grid(args.t0, args.tf, args.nt)
    coarse = None if args.coarse_scheme is None else prob.with_scheme(args.coarse_scheme)
    cf = args.cf if len(args.cf) > 1 else args.cf[0]
    try:
        solver = MGRIT(prob, t, max_levels=args.levels, cf=cf, relax=args.relax,
                       cycle=args.cycle, tol=args.tol, max_iter=args.max_iter,
                       nested=args.nested, coarse_propagator=coarse, partition=part)
    except ValueError as err:
        if rank == 0:
            print(f"error: {err}", file=sys.stderr)
        return 2
    if part is not None:
        part.barrier()
    wall = time.perf_counter()
    res = solver.solve(prob.u0, gather=args.compare)
    if part is not None:
        part.barrier()
    wall = time.perf_counter() - wall
    if rank != 0:
        return 0
    print(f"{args.problem}: nt={args.nt}, ranks={size}, cycle={args.cycle.upper()}")
    print(solver.hierarchy.summary())
    print(res.table())
    print(f"{'converged' if res.converged else 'NOT converged'} in {res.iterations} "
          f"iteration(s); wall {wall:.4f} s (setup {res.setup_seconds:.4f} s)")
    print("time per phase (rank 0): " + ", ".join(
        f"{k} {v:.4f} s" for k, v in sorted(res.phase_seconds.items())))
    speedup = model_speedup(solver.hierarchy, max(res.iterations, 1), size, args.cycle)
    print(f"model speedup on {size} rank(s): {speedup:.3f}")
    out = dict(problem=args.problem, nt=args.nt, ranks=size, levels=len(solver.hierarchy),
               cf=args.cf, relax=args.relax, cycle=args.cycle.upper(),
               iterations=res.iterations, converged=res.converged, residuals=res.residuals,
               wall_seconds=wall, phase_seconds=res.phase_seconds, model_speedup=speedup)
    if args.compare:
        seq = time.perf_counter()
        ref = sequential_solve(prob, prob.u0, t)
        seq = time.perf_counter() - seq
        diff = float((res.u - ref).abs().max())
        print(f"sequential stepping {seq:.4f} s; MGRIT/sequential = {wall / seq:.2f}; "
              f"max |MGRIT - sequential| = {diff:.3e}")
        out.update(sequential_seconds=seq, max_difference=diff)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return 0 if res.converged else 1
