"""MGRIT distributed over MPI ranks (mpi4py): the same solver, a different partition.

Each level is split in contiguous blocks of whole C-intervals (see
:mod:`mgritlab.mgrit.partition`); rank r owns a block on every level. Per exchange a rank
sends its last point to rank r+1 (``ghost``); the coarsest level is gathered and solved
sequentially on every rank (it is small, and gathering keeps the answer identical to one
process); residual norms are summed exactly (``math.fsum``) in global index order, so the
residual history is *identical* for any number of ranks, not just close.

Usage::

    from mgritlab.mgrit import MGRIT
    from mgritlab.mgrit.mpi import MPIPartition
    res = MGRIT(prop, t, max_levels=3, cf=4, partition=MPIPartition()).solve(u0)
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .hierarchy import Hierarchy
from .partition import block_bounds


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as err:  # pragma: no cover - depends on the installation
        raise ImportError(
            "MPI support needs mpi4py and an MPI library: pip install mpi4py mpich "
            "(or `make setup`, which installs both)") from err
    return MPI


def exact_partials(values: list[float]) -> list[float]:
    """Non-overlapping floats whose exact sum is the exact sum of ``values`` (Shewchuk 1997,
    the partials behind math.fsum); usually a handful, however many values. Non-finite input
    (or an intermediate overflow) returns the values themselves, so fsum treats them as usual."""
    partials: list[float] = []
    for x in values:
        i = 0
        for y in partials:
            if abs(x) < abs(y):
                x, y = y, x
            hi = x + y
            lo = y - (hi - x)  # the rounding error of hi, exactly (two-sum, |x| >= |y|)
            if lo:
                partials[i] = lo
                i += 1
            x = hi
        if not math.isfinite(x):
            return list(values)
        partials[i:] = [x]
    return partials


class MPIPartition:
    """Time-parallel partition over the ranks of an MPI communicator."""

    def __init__(self, comm=None):
        MPI = _mpi()
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()

    def bounds(self, hierarchy: Hierarchy) -> list[tuple[int, int]]:
        return block_bounds(hierarchy, self.rank, self.size)

    def ghost(self, local: torch.Tensor) -> torch.Tensor | None:
        """Send my last point right, receive my left neighbour's last point."""
        MPI = self.MPI
        send = np.ascontiguousarray(local[-1].detach().cpu().numpy())
        recv = np.empty_like(send)
        dest = self.rank + 1 if self.rank + 1 < self.size else MPI.PROC_NULL
        source = self.rank - 1 if self.rank > 0 else MPI.PROC_NULL
        self.comm.Sendrecv(send, dest=dest, sendtag=7, recvbuf=recv, source=source, recvtag=7)
        if self.rank == 0:
            return None
        return torch.from_numpy(recv).to(local.device)

    def allgather(self, local: torch.Tensor | None) -> torch.Tensor | None:
        """Concatenate every rank's block in rank order, on every rank."""
        if local is None:
            return None
        send = np.ascontiguousarray(local.detach().cpu().numpy())
        counts = self.comm.allgather(send.shape[0])
        item = int(np.prod(send.shape[1:], dtype=np.int64))
        out = np.empty((sum(counts), *send.shape[1:]), dtype=send.dtype)
        self.comm.Allgatherv(send, [out, [c * item for c in counts]])
        return torch.from_numpy(out).to(local.device)

    def norm(self, sq: torch.Tensor) -> float:
        """sqrt(Σ_i ‖r_i‖²), exactly summed: each rank reduces its terms to a few exact
        partials, and math.fsum of every rank's partials is the correctly rounded total — the
        same float as one process's fsum over all terms, for any split."""
        parts = self.comm.allgather(exact_partials(sq.double().cpu().tolist()))
        return math.sqrt(math.fsum(x for p in parts for x in p))

    def barrier(self) -> None:
        self.comm.Barrier()
