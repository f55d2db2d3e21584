"""MGRIT runs as plain functions, importable on ipyparallel MPI engines (lesson 05) and
callable in one process: the same call gives the same numbers either way."""
from __future__ import annotations

import os
import time


def world():
    """(communicator, rank, size): MPI.COMM_WORLD when mpi4py is there, else one process."""
    try:
        from mpi4py import MPI
    except ImportError:
        return None, 0, 1
    comm = MPI.COMM_WORLD
    return comm, comm.Get_rank(), comm.Get_size()


# what MPI launchers (MPICH/Hydra, Open MPI, PMIx) put into each rank's environment
_LAUNCHER_SIZE = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS")
_LAUNCHER_RANK = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")


def launcher_env() -> tuple[int, int] | None:
    """(rank, size) as an MPI launcher's environment gives them, or None when no launcher
    started this process — read without importing mpi4py, so that a command can decide before
    its heavy imports (size 1 where the launcher gives a rank but no size)."""
    if not any(v in os.environ for v in _LAUNCHER_SIZE + _LAUNCHER_RANK):
        return None

    def first(names, default):
        return next((int(os.environ[v]) for v in names if os.environ.get(v, "").isdigit()),
                    default)

    return first(_LAUNCHER_RANK, 0), first(_LAUNCHER_SIZE, 1)


def world_partition():
    """(partition, rank, size): an MPIPartition over MPI.COMM_WORLD on several ranks, None on
    one process — the one place that turns "started under mpiexec" into a partition."""
    comm, rank, size = world()
    if size == 1:
        return None, rank, size
    from .mpi import MPIPartition

    return MPIPartition(comm), rank, size


def any_rank(partition, flag: bool) -> bool:
    """``flag`` or-ed over the ranks of ``partition`` (None or one rank: ``flag``), e.g. so
    that a training run interrupted on one rank stops after the same epoch on all."""
    if partition is None or partition.size == 1:
        return bool(flag)
    return bool(partition.comm.allreduce(int(flag), op=partition.MPI.MAX))


def check_solver_options(*, tol, max_iter, relax) -> None:
    """The MGRIT constructor's own option check (:func:`mgritlab.mgrit.solver.check_options`),
    run before a problem is built."""
    from .solver import check_options

    check_options(tol=tol, max_iter=max_iter, relax=relax)


def mgrit_run(problem: str = "heat", *, nt: int = 257, levels: int = 3, cf=2,
              relax: str = "FCF", cycle: str = "V", tol: float = 1e-7, max_iter: int = 100,
              repeat: int = 1, gather: bool = False, threads: int | None = 1,
              **problem_options) -> dict:
    """Solve a model problem with MGRIT on all ranks of MPI.COMM_WORLD (serial on one).

    Returns this rank's record: rank, size, iterations, residual history, the best wall time
    of ``repeat`` solves (measured between barriers; the other fields are of that run), time
    per phase, the critical-path model
    speedup, and the solution when ``gather``. ``threads`` sets torch's threads in this
    process (1 by default: ranks share the cores; None leaves it as it is).
    """
    import torch

    from ..problems import make_problem
    from .hierarchy import uniform_grid
    from .solver import MGRIT
    from .speedup import model_speedup

    check_solver_options(tol=tol, max_iter=max_iter, relax=relax)
    if threads:
        torch.set_num_threads(threads)
    part, rank, size = world_partition()
    prob = make_problem(problem, **problem_options)
    t = uniform_grid(prob.t0, prob.tf, nt)
    solver = MGRIT(prob, t, max_levels=levels, cf=cf, relax=relax, cycle=cycle, tol=tol,
                   max_iter=max_iter, partition=part)
    best, res = float("inf"), None
    for _ in range(max(repeat, 1)):
        if part is not None:
            part.barrier()
        start = time.perf_counter()
        run = solver.solve(prob.u0, gather=gather)
        if part is not None:
            part.barrier()
        seconds = time.perf_counter() - start
        if part is not None:  # every rank keeps the same run: rank 0's fastest
            seconds = part.comm.bcast(seconds, root=0)
        if seconds < best:
            best, res = seconds, run
    return dict(rank=rank, size=size, problem=problem, nt=nt, levels=len(solver.hierarchy),
                cf=cf, relax=relax, cycle=cycle, iterations=res.iterations,
                converged=res.converged, residuals=res.residuals, seconds=best,
                phase_seconds=res.phase_seconds,
                model_speedup=model_speedup(solver.hierarchy, res.iterations, size, cycle),
                u=None if res.u is None else res.u.numpy())
