"""Dahlquist's test equation y' = λ y (thesis §2.1.2)."""
from __future__ import annotations

import numpy as np
import torch

from ..integrators import SemilinearODE
from .base import Problem, as_times


class Dahlquist(Problem):
    """y' = λ y with y(t0) = y0; exact y0 · exp(λ (t − t0)).

    ``lam`` may be a number (state shape (1,)) or a 1-D array of m values (state shape (m,),
    m independent equations — handy for looking at many eigenvalues at once). Complex λ give
    a complex128 state. In the semilinear form u' = −L u this is the diagonal L = −λ.
    """

    def __init__(self, lam, y0=1.0, scheme: str = "backward_euler", *, t0: float = 0.0,
                 tf: float = 1.0, dtype: torch.dtype | None = None):
        lam_np = np.atleast_1d(np.asarray(lam))
        if lam_np.ndim != 1 or lam_np.size == 0:
            raise ValueError(f"lam must be a number or a 1-D array, got shape {lam_np.shape}")
        if not np.all(np.isfinite(lam_np)):
            raise ValueError(f"lam must be finite, got {lam!r}")
        is_c = np.iscomplexobj(lam_np) and bool(np.any(lam_np.imag != 0))
        y0_np = np.asarray(y0)
        is_c = is_c or (np.iscomplexobj(y0_np) and bool(np.any(y0_np.imag != 0)))
        if dtype is None:
            dtype = torch.complex128 if is_c else torch.float64
        elif is_c and not dtype.is_complex:
            raise ValueError(f"complex λ or y0 need a complex dtype, got dtype={dtype}")
        if tf <= t0:
            raise ValueError(f"need t0 < tf, got t0={t0}, tf={tf}")
        m = lam_np.size
        self.lam = torch.as_tensor(lam_np if is_c else lam_np.real).to(dtype)
        self.u0 = torch.as_tensor(np.broadcast_to(y0_np, (m,)).copy()).to(dtype)
        self.t0, self.tf = float(t0), float(tf)
        L = -self.lam if m > 1 else -self.lam[0].item()
        self.ode = SemilinearODE(L, None, state_shape=(m,))
        super().__init__(scheme)

    def exact(self, t) -> torch.Tensor:
        t = as_times(t).to(self.lam.dtype if self.lam.is_complex() else torch.float64)
        out = self.u0[None, :] * torch.exp(self.lam[None, :] * (t[:, None] - self.t0))
        return out.to(self.dtype)
