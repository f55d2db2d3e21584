"""Grid transfers of MGRIT-FAS: injection, the FAS coarse right-hand side, ideal interpolation.

With R the injection at C-points and A_c the coarse all-at-once operator
(A_c(v))_j = v_j - Φ_c(v_{j-1}), the full approximation scheme solves on the coarse level

    A_c(v) = g_c,   g_c = R(g - A(u)) + A_c(R u)                (Falgout et al. 2017, eq. 2.4)

and corrects u_C ← u_C + (v - R u) at C-points; ideal interpolation then fills the F-points by
an F-relaxation (thesis Algorithm 1, steps 3-5).
"""
from __future__ import annotations

import torch

from .relaxation import LevelBlock, c_residual, f_relax, with_ghost


def restrict_inject(fine: LevelBlock) -> torch.Tensor:
    """R u: the values at the fine C-points, which are the coarse level's points."""
    return fine.u[:: fine.cf].clone()


def fas_restrict(fine: LevelBlock, coarse: LevelBlock, v: torch.Tensor,
                 ghost_fine: torch.Tensor | None, ghost_v: torch.Tensor | None) -> None:
    """Set the coarse level's v = R u, its initial guess u = v and g_c = R(r) + A_c(v) (FAS).

    ``v`` is :func:`restrict_inject` of ``fine``; ``ghost_fine`` / ``ghost_v`` are the fine and
    coarse points just before this block (None where the block starts at index 0).
    """
    _, r = c_residual(fine, ghost_fine)            # r_c = g_c + Φ(u_{c-1}) - u_c, c ≠ 0
    first = 0 if fine.lo > 0 else 1                # local coarse index of the first such c
    coarse.v, coarse.u = v, v.clone()
    g = torch.zeros_like(v)
    g[first:] = r + v[first:] - coarse_phi(coarse, v, ghost_v)  # + A_c(v)_j = v_j - Φ_c(v_{j-1})
    coarse.g = g


def coarse_phi(b: LevelBlock, v: torch.Tensor, ghost: torch.Tensor | None) -> torch.Tensor:
    """Φ_c(v_{j-1}) at every local point j ≠ 0 of a block (global 0 excluded), one call."""
    n = v.shape[0]
    prev, prev_phys = with_ghost(b, v[: n - 1], b.phys[: n - 1], ghost)
    if prev.shape[0] == 0:
        return v[:0]
    return b.step(prev, prev_phys)


def ideal_interpolate(fine: LevelBlock, coarse: LevelBlock) -> None:
    """u_C ← u_C + (v_c - R u) at C-points, then F-relaxation (ideal interpolation)."""
    fine.u[:: fine.cf] += coarse.u - coarse.v
    f_relax(fine)


