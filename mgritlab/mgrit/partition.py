"""How a level's time points are split across processes, and the little they exchange.

Every level is split in contiguous blocks of whole C-intervals: the finest grid is cut at
multiples of the coarsest level's spacing (one *unit* = one coarsest interval), so on every
level a block starts at a C-point and restriction, correction and interpolation stay local.
A process needs from its left neighbour (in solver order) only one state per exchange: the
point just before its block. The coarsest level is solved by a pipelined sequential sweep:
each process waits for its left neighbour's last point, sweeps its own block and passes its
last point on — no process ever holds a whole level.

A *reversed* partition is for the adjoint (``direction=-1``): rank r owns the mirror image of
the units it owns forward, so in physical time its backward block (u_lo·unit, u_hi·unit]
lies right next to its forward block [u_lo·unit, u_hi·unit), and in solver order its left
neighbour is rank r+1 and its right neighbour rank r-1.

``SerialPartition`` is the one-process case (nothing to exchange); the MPI version in
:mod:`mgritlab.mgrit.mpi` has the same methods, so the solver has one code path.
"""
from __future__ import annotations

import math

import torch

from .hierarchy import Hierarchy


def block_bounds(hierarchy: Hierarchy, rank: int, size: int,
                 reverse: bool = False) -> list[tuple[int, int]]:
    """[lo, hi) in solver order on each level for process ``rank`` of ``size``.

    Forward, rank r owns the coarsest units [u_lo, u_hi) = [U·r//size, U·(r+1)//size);
    with ``reverse`` it owns their mirror image [U - u_hi, U - u_lo). The block that ends at
    unit U also holds the points after the last coarsest point, up to N. Raises a ValueError
    that says how many processes fit when there are more processes than coarsest intervals.
    """
    levels = hierarchy.levels
    coarsest = levels[-1]
    units, unit = coarsest.N, coarsest.stride
    if size > units:
        raise ValueError(
            f"{size} processes but the coarsest level has only {units} interval(s): at most "
            f"{units} processes fit this hierarchy (one coarsest interval each); use fewer "
            f"processes, fewer levels or a smaller cf")
    if not 0 <= rank < size:
        raise ValueError(f"rank must be in 0..{size - 1}, got {rank}")
    u_lo, u_hi = units * rank // size, units * (rank + 1) // size
    if reverse:
        u_lo, u_hi = units - u_hi, units - u_lo
    return [(u_lo * unit // lv.stride,
             lv.N + 1 if u_hi == units else u_hi * unit // lv.stride) for lv in levels]


class Partition:
    """What every partition shares: the block split and the neighbours in solver order.

    Subclasses set ``rank``, ``size`` and ``reverse`` and implement the exchanges.
    """

    rank: int
    size: int
    reverse: bool

    def bounds(self, hierarchy: Hierarchy) -> list[tuple[int, int]]:
        """This process's [lo, hi) on each level (see :func:`block_bounds`)."""
        return block_bounds(hierarchy, self.rank, self.size, self.reverse)

    def _neighbour(self, step: int) -> int | None:
        r = self.rank - step if self.reverse else self.rank + step
        return r if 0 <= r < self.size else None

    @property
    def left(self) -> int | None:
        """The rank whose block comes just before mine in solver order (None: I am first)."""
        return self._neighbour(-1)

    @property
    def right(self) -> int | None:
        """The rank whose block comes just after mine in solver order (None: I am last)."""
        return self._neighbour(1)

    @property
    def solver_order(self) -> list[int]:
        """The ranks in the order their blocks appear in solver order."""
        return list(range(self.size))[:: -1 if self.reverse else 1]

    def owner_of(self, hierarchy: Hierarchy, physical_index: int) -> int:
        """The rank that holds the fine point with this physical index."""
        fine = hierarchy.levels[0]
        if not 0 <= physical_index <= fine.N:
            raise ValueError(f"physical_index must be in 0..{fine.N} (the fine grid's points), "
                             f"got {physical_index}")
        k = fine.to_physical(physical_index)  # the solver index: to_physical is an involution
        fine_blocks = (block_bounds(hierarchy, r, self.size, self.reverse)[0]
                       for r in range(self.size))
        return next(r for r, (lo, hi) in enumerate(fine_blocks) if lo <= k < hi)


class SerialPartition(Partition):
    """One process owns every point; exchanges are no-ops."""

    rank, size = 0, 1

    def __init__(self, reverse: bool = False):
        self.reverse = reverse

    def reversed(self) -> SerialPartition:
        """The mirrored partition (for the adjoint solve)."""
        return SerialPartition(not self.reverse)

    def ghost(self, local: torch.Tensor) -> torch.Tensor | None:
        """The left neighbour's last point (None: there is no left neighbour)."""
        return None

    def recv_left(self, like: torch.Tensor) -> torch.Tensor | None:
        """The left neighbour's last point once it is final (None: there is no neighbour)."""
        return None

    def send_right(self, t: torch.Tensor) -> None:
        """Pass my last point to the right neighbour (there is none)."""

    def recv_from_right_first(self, local: torch.Tensor) -> torch.Tensor | None:
        """Rank+1's first fine point (None: there is no rank+1)."""
        return None

    def bcast_from_owner(self, t: torch.Tensor | None, owner: int, device=None
                         ) -> torch.Tensor:
        """``t`` from rank ``owner`` on every rank: here the only rank, 0, gets ``t`` back."""
        if owner != 0 or t is None:
            raise ValueError(f"one process: the owner is rank 0 and passes the tensor, got "
                             f"owner={owner}, tensor {'None' if t is None else 'given'}")
        return t

    def allgather(self, local: torch.Tensor) -> torch.Tensor:
        """The whole level, concatenated in solver order."""
        return local

    def norm(self, sq: torch.Tensor) -> float:
        """sqrt of the sum of per-point squared norms, summed in global index order.

        math.fsum makes the sum exactly rounded, hence independent of how points are split.
        """
        return math.sqrt(math.fsum(sq.double().cpu().tolist()))

    def fsum(self, values: list[float]) -> float:
        """The exactly rounded sum of every rank's ``values`` (here: one rank's)."""
        return math.fsum(values)

    def barrier(self) -> None:
        pass
