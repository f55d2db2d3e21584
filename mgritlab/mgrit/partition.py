"""How a level's time points are split across processes, and the little they exchange.

Every level is split in contiguous blocks of whole C-intervals: the finest grid is cut at
multiples of the coarsest level's spacing (one *unit* = one coarsest interval), so on every
level a block starts at a C-point and restriction, correction and interpolation stay local.
A process needs from its left neighbour only one state per exchange (the point just before its
block); the coarsest level is gathered and solved sequentially on every process.

``SerialPartition`` is the one-process case (nothing to exchange); the MPI version in
:mod:`mgritlab.mgrit.mpi` has the same methods, so the solver has one code path.
"""
from __future__ import annotations

import math

import torch

from .hierarchy import Hierarchy


def block_bounds(hierarchy: Hierarchy, rank: int, size: int) -> list[tuple[int, int]]:
    """[lo, hi) on each level for process ``rank`` of ``size``.

    Raises a ValueError that says how many processes fit when there are more processes than
    coarsest intervals.
    """
    levels = hierarchy.levels
    coarsest = levels[-1]
    units, unit = coarsest.N, coarsest.stride
    if size > units:
        raise ValueError(
            f"{size} processes but the coarsest level has only {units} interval(s): at most "
            f"{units} processes fit this hierarchy (one coarsest interval each); use fewer "
            f"processes, fewer levels or a smaller cf")
    u_lo, u_hi = units * rank // size, units * (rank + 1) // size
    lo0 = u_lo * unit
    bounds = []
    for lv in levels:
        lo = lo0 // lv.stride
        hi = lv.N + 1 if rank == size - 1 else (u_hi * unit) // lv.stride
        bounds.append((lo, hi))
    return bounds


class SerialPartition:
    """One process owns every point; exchanges are no-ops."""

    rank, size = 0, 1

    def bounds(self, hierarchy: Hierarchy) -> list[tuple[int, int]]:
        return block_bounds(hierarchy, 0, 1)

    def ghost(self, local: torch.Tensor) -> torch.Tensor | None:
        """The left neighbour's last point (None: there is no left neighbour)."""
        return None

    def allgather(self, local: torch.Tensor) -> torch.Tensor:
        """The whole level, concatenated in rank order."""
        return local

    def norm(self, sq: torch.Tensor) -> float:
        """sqrt of the sum of per-point squared norms, summed in global index order.

        math.fsum makes the sum exactly rounded, hence independent of how points are split.
        """
        return math.sqrt(math.fsum(sq.double().cpu().tolist()))

    def barrier(self) -> None:
        pass
