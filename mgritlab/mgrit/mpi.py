"""MGRIT distributed over MPI ranks (mpi4py): the same solver, a different partition.

Each level is split in contiguous blocks of whole C-intervals (see
:mod:`mgritlab.mgrit.partition`); rank r owns a block on every level and no rank ever holds a
whole level. Per exchange a rank sends its last point to its right neighbour in solver order
(``ghost``); the coarsest level is swept sequentially in a pipeline (``recv_left``, sweep,
``send_right``) with the same one-state propagator calls as one process; residual norms are
summed exactly (``math.fsum``), so the residual history is *identical* for any number of
ranks, not just close. ``MPIPartition().reversed()`` is the mirrored split for the adjoint
(``direction=-1``): each rank's backward block lies next to its forward block.

Usage::

    from mgritlab.mgrit import MGRIT
    from mgritlab.mgrit.mpi import MPIPartition
    res = MGRIT(prop, t, max_levels=3, cf=4, partition=MPIPartition()).solve(u0)
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .mpi_abort import abort_on_uncaught_exception
from .partition import Partition

_GHOST, _PIPE, _FIRST = 7, 8, 9  # message tags: ghost exchange, coarsest pipeline, first points


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


def _buffer(t: torch.Tensor) -> np.ndarray:
    """A contiguous host copy of ``t`` to send."""
    return np.ascontiguousarray(t.detach().cpu().numpy())


class MPIPartition(Partition):
    """Time-parallel partition over the ranks of an MPI communicator (``reverse``: mirrored)."""

    def __init__(self, comm=None, reverse: bool = False):
        MPI = _mpi()
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.reverse = reverse
        if MPI.COMM_WORLD.Get_size() > 1:  # one rank's error must not leave the others waiting
            abort_on_uncaught_exception()

    def reversed(self) -> MPIPartition:
        """The mirrored partition on the same communicator (for the adjoint solve)."""
        return MPIPartition(self.comm, not self.reverse)

    def _peer(self, rank: int | None) -> int:
        return self.MPI.PROC_NULL if rank is None else rank

    def _exchange(self, send: np.ndarray, dest: int | None, source: int | None, tag: int,
                  device) -> torch.Tensor | None:
        """Send ``send`` to ``dest``, receive the same shape from ``source`` (None: nobody)."""
        recv = np.empty_like(send)
        self.comm.Sendrecv(send, dest=self._peer(dest), sendtag=tag, recvbuf=recv,
                           source=self._peer(source), recvtag=tag)
        return None if source is None else torch.from_numpy(recv).to(device)

    def ghost(self, local: torch.Tensor) -> torch.Tensor | None:
        """Send my last point right, receive my left neighbour's last point (solver order)."""
        return self._exchange(_buffer(local[-1]), self.right, self.left, _GHOST, local.device)

    def recv_left(self, like: torch.Tensor) -> torch.Tensor | None:
        """Wait for the left neighbour's last point (sent by its :meth:`send_right`); None
        where there is no left neighbour. ``like``: a state of the same shape, dtype, device."""
        if self.left is None:
            return None
        recv = torch.empty(like.shape, dtype=like.dtype).numpy()
        self.comm.Recv(recv, source=self.left, tag=_PIPE)
        return torch.from_numpy(recv).to(like.device)

    def send_right(self, t: torch.Tensor) -> None:
        """Pass ``t`` (my last point) to the right neighbour's :meth:`recv_left`."""
        if self.right is not None:
            self.comm.Send(_buffer(t), dest=self.right, tag=_PIPE)

    def recv_from_right_first(self, local: torch.Tensor) -> torch.Tensor | None:
        """Rank+1's first point of ``local`` (None on the last rank); I send mine to rank-1.

        Rank order, whatever ``reverse`` says: with ``local`` a forward fine block this is the
        forward state at the physical point just after my block — the end point of my block
        in the reversed (adjoint) partition, which an adjoint step there needs.
        """
        left = self.rank - 1 if self.rank > 0 else None
        right = self.rank + 1 if self.rank + 1 < self.size else None
        return self._exchange(_buffer(local[0]), left, right, _FIRST, local.device)

    def bcast_from_owner(self, t: torch.Tensor | None, owner: int, device=None
                         ) -> torch.Tensor:
        """``t``, passed by rank ``owner`` (the others pass None), on every rank.

        The owner gets ``t`` itself back, the others a copy on ``device`` (default: CPU).
        """
        if not 0 <= owner < self.size:
            raise ValueError(f"owner must be a rank in 0..{self.size - 1}, got {owner}")
        mine = self.rank == owner
        send = _buffer(t) if mine and t is not None else None
        meta = self.comm.bcast(None if send is None else (send.shape, send.dtype.str),
                               root=owner)
        if meta is None:
            raise ValueError(f"bcast_from_owner: the owner, rank {owner}, passed no tensor")
        buf = send if mine else np.empty(meta[0], dtype=np.dtype(meta[1]))
        self.comm.Bcast(buf, root=owner)
        return t if mine else torch.from_numpy(buf).to(device)

    def allgather(self, local: torch.Tensor | None) -> torch.Tensor | None:
        """Concatenate every rank's block in solver order, on every rank."""
        if local is None:
            return None
        send = _buffer(local)
        counts = self.comm.allgather(send.shape[0])
        item = int(np.prod(send.shape[1:], dtype=np.int64))
        displs, start = [0] * self.size, 0
        for r in self.solver_order:
            displs[r], start = start * item, start + counts[r]
        out = np.empty((start, *send.shape[1:]), dtype=send.dtype)
        self.comm.Allgatherv(send, [out, ([c * item for c in counts], displs)])
        return torch.from_numpy(out).to(local.device)

    def norm(self, sq: torch.Tensor) -> float:
        """sqrt(Σ_i ‖r_i‖²), exactly summed: each rank reduces its terms to a few exact
        partials, and math.fsum of every rank's partials is the correctly rounded total — the
        same float as one process's fsum over all terms, for any split."""
        parts = self.comm.allgather(exact_partials(sq.double().cpu().tolist()))
        return math.sqrt(math.fsum(x for p in parts for x in p))

    def fsum(self, values: list[float]) -> float:
        """The exactly rounded sum of every rank's ``values``: the same float for any split."""
        parts = self.comm.allgather(exact_partials([float(v) for v in values]))
        return math.fsum(x for p in parts for x in p)

    def barrier(self) -> None:
        self.comm.Barrier()
