"""Sequential time stepping: the reference every MGRIT solve must reproduce."""
from __future__ import annotations

import torch

from .hierarchy import Level, Propagator, build_hierarchy


def sequential_solve(propagator: Propagator, u0: torch.Tensor, t, *, direction: int = 1,
                     level: Level | None = None) -> torch.Tensor:
    """u_{k+1} = Φ(u_k), k = 0..N-1, one step at a time (thesis eq. 3.2).

    Returns ``(N+1, *state)`` in physical order: for ``direction=-1`` the evolution starts
    from ``u0`` at the last time point and runs to the first.
    """
    if level is None:
        level = build_hierarchy(t, propagator, max_levels=1, direction=direction).levels[0]
    u0 = torch.as_tensor(u0)
    u = u0.new_zeros((level.N + 1, *u0.shape))
    k0 = level.to_physical(0)
    u[k0] = u0
    idx = torch.arange(level.N + 1, device=level.t.device)
    for k in range(level.N):
        p = level.to_physical(k)
        u[p + direction] = propagator.step(u[p : p + 1], idx[p : p + 1], level)[0]
    return u
