"""Where this process runs: the one MPI detection of the package (launcher environment,
MPI.COMM_WORLD, the partition over it) and the reductions training runs agree by."""
from __future__ import annotations

import os


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
