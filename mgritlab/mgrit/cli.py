"""``python -m mgritlab heat|dahlquist|nonlinear``: solve a model problem with MGRIT.

Under ``mpiexec -n P`` the time grid is split over the P ranks (same answer, same residual
history); rank 0 prints the hierarchy, the residual history, the wall time per phase and the
critical-path model speedup.
"""
from __future__ import annotations

import argparse
import json
import math
import sys


# ---- argparse types: a bad value is an `error:` line and exit status 2, not a traceback ----
def _number(kind, test, what: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not test(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value

    parse.__name__ = what  # argparse names the type in its messages
    return parse


positive_int = _number(int, lambda v: v >= 1, "a whole number >= 1")
nonnegative_int = _number(int, lambda v: v >= 0, "a whole number >= 0")
positive_float = _number(float, lambda v: math.isfinite(v) and v > 0, "a finite number > 0")
nonnegative_float = _number(float, lambda v: math.isfinite(v) and v >= 0,
                            "a finite number >= 0")
finite_float = _number(float, math.isfinite, "a finite number")
probability = _number(float, lambda v: 0 <= v < 1, "a probability in [0, 1)")


def int_at_least(low: int):
    return _number(int, lambda v: v >= low, f"a whole number >= {low}")


def relax_scheme(text: str) -> str:
    """F, FC, FCF or (FC)^nF (checked by the hierarchy's own parser)."""
    from .hierarchy import relax_sweeps

    try:
        relax_sweeps(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def usage_error(message, *, show: bool = True) -> int:
    """Print ``error: message`` (what was wrong and what to change; ``show=False`` on the MPI
    ranks other than 0) and return exit status 2, as argparse does for its own errors."""
    if show:
        print(f"error: {message}", file=sys.stderr)
    return 2


class UsageError(SystemExit):
    """A command line that cannot run: exit status 2, the message as the exception's text
    (printed by :func:`usage_error` before it is raised)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.code = 2


def _common(p: argparse.ArgumentParser, nt: int, tf: float) -> None:
    p.add_argument("--nt", type=int_at_least(2), default=nt, help="time points on the fine grid")
    p.add_argument("--t0", type=finite_float, default=0.0)
    p.add_argument("--tf", type=finite_float, default=tf)
    p.add_argument("--levels", type=positive_int, default=3, help="max number of MGRIT levels")
    p.add_argument("--cf", type=int_at_least(2), nargs="+", default=[2],
                   help="coarsening factor(s)")
    p.add_argument("--relax", type=relax_scheme, default="FCF", help="F, FC, FCF or (FC)^nF")
    p.add_argument("--cycle", default="V", choices=["V", "F", "v", "f"])
    p.add_argument("--tol", type=nonnegative_float, default=1e-7,
                   help="absolute residual tolerance")
    p.add_argument("--max-iter", type=nonnegative_int, default=100)
    p.add_argument("--nested", action="store_true", help="nested iteration initial guess")
    p.add_argument("--scheme", default="backward_euler",
                   help="time stepper on the fine level (forward_euler, backward_euler, ...)")
    p.add_argument("--coarse-scheme", default=None, help="time stepper on the coarse levels")
    p.add_argument("--mpi", choices=["auto", "on", "off"], default="auto",
                   help="split time over MPI ranks (auto: when started by mpiexec)")
    p.add_argument("--compare", action="store_true",
                   help="also step sequentially on rank 0: time ratio and max difference")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="torch threads per process (1: small batched solves gain nothing "
                        "from threads, and under mpiexec ranks would compete for cores)")


def _complex(text: str) -> complex:
    try:
        value = complex(text.replace(" ", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a complex number (e.g. -1+2j)"
                                         ) from None
    if not (math.isfinite(value.real) and math.isfinite(value.imag)):
        raise argparse.ArgumentTypeError(f"{text!r} is not finite")
    return value


# the problem-specific options of the registry's problems, as command-line flags
_OPTION_ARGS = {
    "nx": dict(type=int_at_least(3), help="grid points in space (nx-2 unknowns)"),
    "a": dict(type=positive_float, help="diffusion coefficient"),
    # a value that starts with '-' must follow '=': argparse reads '-1+2j' as an option
    "lam": dict(type=_complex, help="λ (complex allowed), e.g. --lam -1+2j"),
    "y0": dict(type=finite_float, help="initial value"),
}


def register(sub) -> None:
    from ..problems import PROBLEMS

    for name, entry in PROBLEMS.items():
        p = sub.add_parser(name, help=entry.help)
        _common(p, nt=1025, tf=entry.tf)
        for opt, default in entry.options.items():
            p.add_argument(f"--{opt}", default=default, **_OPTION_ARGS[opt])
        p.set_defaults(func=run, problem=name)


def _problem_from_args(args):
    from ..problems import make_problem, problem_entry

    extra = {k: getattr(args, k) for k in problem_entry(args.problem).options}
    return make_problem(args.problem, t0=args.t0, tf=args.tf, scheme=args.scheme, **extra)


def _partition(mode: str):
    from .world import launcher_env

    use = mode == "on" or (mode == "auto" and launcher_env() is not None)
    if not use:
        return None
    from .mpi import MPIPartition

    part = MPIPartition()
    return part if part.size > 1 or mode == "on" else None


def run(args) -> int:
    import time

    import torch

    from ..integrators import CGError, NewtonError
    from .hierarchy import uniform_grid
    from .sequential import sequential_solve
    from .solver import MGRIT, MGRITDivergenceError
    from .speedup import model_speedup

    torch.set_num_threads(args.threads)
    part = _partition(args.mpi)
    rank = 0 if part is None else part.rank
    size = 1 if part is None else part.size
    cf = args.cf if len(args.cf) > 1 else args.cf[0]
    try:  # a bad combination of valid values: the library's message says what to change
        prob = _problem_from_args(args)
        t = uniform_grid(args.t0, args.tf, args.nt)
        coarse = None if args.coarse_scheme is None else prob.with_scheme(args.coarse_scheme)
        solver = MGRIT(prob, t, max_levels=args.levels, cf=cf, relax=args.relax,
                       cycle=args.cycle, tol=args.tol, max_iter=args.max_iter,
                       nested=args.nested, coarse_propagator=coarse, partition=part)
    except ValueError as err:
        code = usage_error(err, show=rank == 0)
        if part is not None:  # every rank fails here alike: let rank 0's message out before
            sys.stderr.flush()  # a rank's exit status 2 aborts the job (__main__)
            part.barrier()
        return code
    if part is not None:
        part.barrier()
    wall = time.perf_counter()
    try:
        res = solver.solve(prob.u0, gather=args.compare)
    except (ValueError, ArithmeticError, NewtonError, CGError, MGRITDivergenceError) as err:
        # the parameters make this solve fail (e.g. an unstable coarse level, a Newton step
        # that overflows): say so on the rank that saw it; under mpiexec the exit status 2
        # ends the other ranks (__main__)
        return usage_error(err if size == 1 else f"rank {rank}: {err}")
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
