"""A nonlinear model problem: cubic decay y' = −y³ (backward Euler by Newton)."""
from __future__ import annotations

import numpy as np
import torch

from ..integrators import SemilinearODE
from .base import Problem, as_times


class CubicDecay(Problem):
    """y' = −y³ entrywise, y(t0) = y0 (state shape (m,)); exact y0 / sqrt(1 + 2 y0² (t − t0)).

    Backward Euler solves v + h v³ = y_n for every entry at once by Newton's method (the
    derivative −3v² is elementwise, so each Newton step is a division).
    """

    def __init__(self, y0=1.0, scheme: str = "backward_euler", *, t0: float = 0.0,
                 tf: float = 10.0, newton_tol: float = 1e-12, newton_maxiter: int = 50,
                 dtype: torch.dtype = torch.float64):
        y0 = np.atleast_1d(np.asarray(y0, dtype=np.float64))
        if y0.ndim != 1:
            raise ValueError(f"y0 must be a number or a 1-D array, got shape {y0.shape}")
        if not tf > t0:
            raise ValueError(f"need t0 < tf, got t0={t0}, tf={tf}")
        self.u0 = torch.as_tensor(y0).to(dtype)
        self.t0, self.tf = float(t0), float(tf)
        self.ode = SemilinearODE(
            None, lambda t, u: -u**3, dg=lambda t, u: -3 * u**2, state_shape=(y0.size,),
            newton_tol=newton_tol, newton_maxiter=newton_maxiter)
        super().__init__(scheme)

    def exact(self, t) -> torch.Tensor:
        t = as_times(t) - self.t0
        y0 = self.u0.to(torch.float64)
        return (y0[None, :] / torch.sqrt(1 + 2 * y0[None, :] ** 2 * t[:, None])).to(self.dtype)
