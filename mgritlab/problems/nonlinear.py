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


class ReactionDiffusion1D(Problem):
    """A stiff nonlinear PDE: u_t = a u_xx + r u (1 − u²) on (x0, x1), u = 0 at both ends.

    The Chafee–Infante / Allen–Cahn reaction pulls u towards ±1 while diffusion (stiff, with
    eigenvalues up to ≈ 4a/dx²) smooths it. Space: the nx−2 interior points, L the same
    (a/dx²) tridiag(−1, 2, −1) as :class:`~mgritlab.problems.Heat1D`; g(u) = r u (1 − u²).
    Backward Euler: Newton's method with a tridiagonal Jacobian I + h(L − diag(g'(u))),
    solved for the whole batch at once; IMEX Euler: diffusion implicit, reaction explicit
    (stable for any h as far as diffusion is concerned). Default u0 = 0.5 sin(πx/ℓ) +
    0.3 sin(3πx/ℓ) (ℓ = x1 − x0, x measured from x0). No exact solution.
    """

    def __init__(self, a: float = 0.01, r: float = 1.0, x0: float = 0.0, x1: float = 1.0,
                 nx: int = 101, t0: float = 0.0, tf: float = 5.0,
                 scheme: str = "backward_euler", *, u0=None, newton_tol: float = 1e-12,
                 newton_maxiter: int = 50, dtype: torch.dtype = torch.float64):
        import math

        from .heat import interval_grid, laplacian_1d

        xs = interval_grid(a, nx, x0, x1, t0, tf)
        self.a, self.r, self.nx = float(a), float(r), int(nx)
        self.t0, self.tf = float(t0), float(tf)
        self.x = xs[1:-1].to(dtype)
        self.dx = float(xs[1] - xs[0])
        self.L = laplacian_1d(self.nx - 2, self.dx) * self.a
        if u0 is None:
            s = (self.x - x0) / (x1 - x0) * math.pi
            self.u0 = 0.5 * torch.sin(s) + 0.3 * torch.sin(3 * s)
        else:
            self.u0 = torch.as_tensor(u0, dtype=dtype).reshape(-1)
            if self.u0.numel() != self.nx - 2:
                raise ValueError(f"u0 needs the {self.nx - 2} interior values, got "
                                 f"{self.u0.numel()}")
        rr = self.r
        self.ode = SemilinearODE(
            self.L, lambda t, u: rr * u * (1 - u * u), dg=lambda t, u: rr * (1 - 3 * u * u),
            state_shape=(self.nx - 2,), newton_tol=newton_tol, newton_maxiter=newton_maxiter)
        super().__init__(scheme)

    @property
    def cfl_limit(self) -> float:
        """Forward Euler's diffusion limit 2/λ_max(L) (the reaction adds a little more)."""
        import math

        n = self.nx - 2
        return 2.0 / (self.a / self.dx**2 * (2 - 2 * math.cos(math.pi * n / (n + 1))))
