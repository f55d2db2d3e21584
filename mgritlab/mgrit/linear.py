"""MGRIT on a diagonal linear problem: u_{n+1} = φ_ℓ ⊙ u_n, one factor per mode and level.

The linear model of a network whose layers share eigenvectors: mode ω advances by φ_ℓ,ω per
step of level ℓ, each level with its own scheme (e.g. explicit fine steps and IMEX coarse
ones, thesis fig. 5.10). :func:`diagonal_errors` runs the package's own MGRIT on all modes at
once and returns the error after each iteration — the quantity the two-level bound of
:func:`mgritlab.stability.two_level_bounds` bounds for one iteration, here for k iterations
and any number of levels, without the bound's slack.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .solver import MGRIT

__all__ = ["DiagonalStep", "diagonal_errors"]


class DiagonalStep:
    """The propagator u ↦ φ ⊙ u of one level (φ: one factor per mode, the state's shape)."""

    def __init__(self, factors: torch.Tensor):
        self.factors = factors

    def step(self, u: torch.Tensor, i: torch.Tensor, level) -> torch.Tensor:
        return u * self.factors


def diagonal_errors(factors: Sequence, cf: int, steps: int, iterations: int, *,
                    relax: Sequence[str] | None = None, u0=None) -> list[float]:
    """e_k = ‖u_N^(k) − Φ^N u_0‖ / ‖Φ^N u_0‖ for k = 1 … ``iterations``: the relative error
    of the last point after k MGRIT V-cycles from a zero guess (u_0 at t_0), for the diagonal
    problem whose level ℓ steps by ``factors[ℓ]`` (one array of factors per level, level 0
    the fine one, all of one length: the modes). ``steps``: N fine steps, coarsened by ``cf``
    into ``len(factors)`` levels. ``relax``: per level, default 'F' on the fine level and
    'FCF' on the coarse ones (as :class:`mgritlab.nn.LayerParallel`). ``u0``: the initial
    state per mode (default ones: every mode weighted alike).

    With F-relaxation on the fine level, e_k = 0 for k ≥ N/cf (the exact front moves one
    coarse interval per iteration; Falgout et al. 2014); where every coarse factor is the
    fine factor to the power of the level's stride, e_1 = 0."""
    levels = len(factors)
    phi = [np.atleast_1d(np.asarray(f)) for f in factors]
    if levels < 2:
        raise ValueError(f"need factors for at least 2 levels (fine, coarse), got {levels}")
    if any(p.ndim != 1 or p.shape != phi[0].shape or p.size == 0 for p in phi):
        raise ValueError("factors: one 1-D array per level, all of the same length (one "
                         f"factor per mode), got shapes {[p.shape for p in phi]}")
    if not all(np.all(np.isfinite(p)) for p in phi):
        raise ValueError("factors must be finite")
    if int(cf) != cf or cf < 2 or int(steps) != steps or steps % cf ** (levels - 1):
        raise ValueError(f"need an integer cf >= 2 and steps divisible by cf^(levels-1) = "
                         f"{int(cf) ** (levels - 1)}, got cf={cf}, steps={steps}")
    if int(iterations) != iterations or iterations < 1:
        raise ValueError(f"iterations must be a positive integer, got {iterations}")
    complex_ = any(np.iscomplexobj(p) and np.any(p.imag != 0) for p in phi)
    dtype = torch.complex128 if complex_ else torch.float64
    props = [DiagonalStep(torch.as_tensor(p if complex_ else p.real, dtype=dtype)) for p in phi]
    u0 = torch.ones(phi[0].size, dtype=dtype) if u0 is None else torch.as_tensor(u0, dtype=dtype)
    if u0.shape != (phi[0].size,):
        raise ValueError(f"u0 needs one value per mode ({phi[0].size}), got {tuple(u0.shape)}")
    exact = u0 * props[0].factors ** int(steps)
    scale = torch.linalg.vector_norm(exact)
    if scale == 0:
        raise ValueError("Φ^N u0 is zero: the relative error is undefined")
    t = torch.arange(int(steps) + 1, dtype=torch.float64)
    relax = list(relax) if relax is not None else ["F"] + ["FCF"] * (levels - 1)
    out = []
    for k in range(1, int(iterations) + 1):
        solver = MGRIT(props, t, max_levels=levels, cf=int(cf), relax=relax, tol=0.0,
                       max_iter=k, guard=False, min_coarse=1)
        if len(solver.hierarchy.levels) != levels:
            raise ValueError(f"the grid of {steps} steps holds only "
                             f"{len(solver.hierarchy.levels)} levels at cf {cf}")
        u = solver.solve(u0).u
        out.append(float(torch.linalg.vector_norm(u[-1] - exact) / scale))
    return out
