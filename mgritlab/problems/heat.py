"""Heat equations: on an interval (finite differences) and on a graph (graph Laplacian)."""
from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import torch

from ..integrators import SemilinearODE
from .base import Problem, as_times


def laplacian_1d(n: int, dx: float) -> sp.csr_matrix:
    """(1/dx²) tridiag(−1, 2, −1) of size n (Dirichlet boundary), as scipy CSR."""
    main = np.full(n, 2.0)
    off = np.full(n - 1, -1.0)
    return sp.diags([off, main, off], [-1, 0, 1], format="csr") / dx**2


def interval_grid(a: float, nx: int, x0: float, x1: float, t0: float, tf: float
                  ) -> torch.Tensor:
    """Check a 1-D diffusion set-up (a > 0, nx >= 3, x0 < x1, t0 < tf); linspace(x0, x1, nx)."""
    if not (a > 0 and math.isfinite(a)):
        raise ValueError(f"the diffusion coefficient a must be positive, got a={a}")
    if int(nx) != nx or nx < 3:
        raise ValueError(f"nx must be an integer >= 3 (nx-2 interior points), got {nx}")
    if not x1 > x0:
        raise ValueError(f"need x0 < x1, got x0={x0}, x1={x1}")
    if not tf > t0:
        raise ValueError(f"need t0 < tf, got t0={t0}, tf={tf}")
    return torch.linspace(x0, x1, int(nx), dtype=torch.float64)


class Heat1D(Problem):
    """u_t = a u_xx + b(x, t) on (x0, x1), u = 0 at both ends (thesis §5.1's test problem).

    Space: the nx−2 interior points of ``linspace(x0, x1, nx)``; L = (a/dx²) tridiag(−1, 2, −1).
    Default data u(x, 0) = sin(πx), b = −sin(πx)(sin t − aπ² cos t), exact u = sin(πx) cos t
    (exact for integer x0, x1, where sin(πx) vanishes on the boundary). ``u0`` (array of the
    interior values) and ``forcing`` (callable b(x, t) with x (n,), t (B, 1) → (B, n), or None
    for b = 0) replace the defaults; ``exact`` then is not available.
    Backward Euler: (I + dt L) u_{i+1} = u_i + dt b(x, t_{i+1}), one tridiagonal LAPACK
    factorisation per step size. Forward Euler is stable only for dt ≤ dx²/(2a).
    """

    _DEFAULT = object()

    def __init__(self, a: float = 1.0, x0: float = 0.0, x1: float = 1.0, nx: int = 1001,
                 t0: float = 0.0, tf: float = 2.0, scheme: str = "backward_euler", *,
                 u0=None, forcing=_DEFAULT, dtype: torch.dtype = torch.float64):
        xs = interval_grid(a, nx, x0, x1, t0, tf)
        self.a, self.nx = float(a), int(nx)
        self.t0, self.tf = float(t0), float(tf)
        self.x_full = xs
        self.x = xs[1:-1].to(dtype)
        self.dx = float(xs[1] - xs[0])
        self.L = laplacian_1d(self.nx - 2, self.dx) * self.a
        self._default_data = u0 is None and forcing is Heat1D._DEFAULT
        self._integer_domain = float(x0).is_integer() and float(x1).is_integer()
        if u0 is None:
            self.u0 = torch.sin(math.pi * self.x)
        else:
            self.u0 = torch.as_tensor(u0, dtype=dtype).reshape(-1)
            if self.u0.numel() != self.nx - 2:
                raise ValueError(f"u0 needs the {self.nx - 2} interior values, got "
                                 f"{self.u0.numel()}")
        if forcing is Heat1D._DEFAULT:
            x, aa = self.x, self.a
            sx = torch.sin(math.pi * x)

            def forcing(x_, t):
                return -sx * (torch.sin(t) - aa * math.pi**2 * torch.cos(t))

        self._forcing = forcing
        self._build_ode()
        super().__init__(scheme)

    def _build_ode(self) -> None:
        # u' = -L u + b(x, t); no g at all for b = 0 (the stepper then skips it)
        b = self._forcing
        g = None if b is None else (lambda t, u: b(self.x, t[:, None]))
        self.ode = SemilinearODE(self.L, g, state_shape=(self.nx - 2,), g_depends_on_u=False)

    @property
    def forcing(self):
        """b(x, t): a callable with x (n,), t (B, 1) → (B, n), or None."""
        return self._forcing

    @forcing.setter
    def forcing(self, b) -> None:
        if b is not None and not callable(b):
            raise TypeError(f"forcing must be a callable b(x, t) or None (b = 0), not "
                            f"{type(b).__name__}")
        self._forcing = b
        self._default_data = False  # the exact solution is that of the default forcing only
        self._build_ode()  # a forcing set after construction (or removed) takes effect
        self.forget_grids()  # step tabulates b per level

    @property
    def cfl_limit(self) -> float:
        """The largest stable forward Euler step, 2/λ_max(L) (≈ dx²/(2a))."""
        n = self.nx - 2
        lam_max = self.a / self.dx**2 * (2 - 2 * math.cos(math.pi * n / (n + 1)))
        return 2.0 / lam_max

    def eigenvalues(self) -> np.ndarray:
        """The eigenvalues of L: (4a/dx²) sin²(kπ / (2(n+1))), k = 1..n."""
        n = self.nx - 2
        k = np.arange(1, n + 1)
        return 4 * self.a / self.dx**2 * np.sin(k * np.pi / (2 * (n + 1))) ** 2

    def exact(self, t) -> torch.Tensor:
        if not (self._default_data and self._integer_domain):
            raise NotImplementedError("the exact solution sin(πx)cos t is known only for the "
                                      "default u0 and forcing on an integer domain")
        t = as_times(t)
        return (torch.cos(t)[:, None] * torch.sin(math.pi * self.x)[None, :]).to(self.dtype)


def _to_sparse(lap) -> sp.csr_matrix:
    if isinstance(lap, torch.Tensor):
        lap = lap.detach().cpu().numpy()
    return sp.csr_matrix(lap, dtype=np.float64)


class GraphHeat(Problem):
    """u' = −κ L u with L a graph Laplacian (scipy sparse or dense); exact via eigenvectors.

    Backward Euler / IMEX solve (I + hκL) u_{n+1} = u_n with one sparse LU (``splu``) per
    step size; forward Euler is stable for h ≤ 2/(κ λ_max(L)).
    """

    def __init__(self, laplacian, u0, kappa: float = 1.0, scheme: str = "backward_euler", *,
                 t0: float = 0.0, tf: float = 1.0, dtype: torch.dtype = torch.float64):
        L = _to_sparse(laplacian)
        if L.shape[0] != L.shape[1]:
            raise ValueError(f"the Laplacian must be square, got shape {L.shape}")
        if not kappa > 0:
            raise ValueError(f"kappa must be positive, got {kappa}")
        if not tf > t0:
            raise ValueError(f"need t0 < tf, got t0={t0}, tf={tf}")
        self.laplacian = L
        self.kappa = float(kappa)
        self.u0 = torch.as_tensor(np.asarray(u0, dtype=np.float64)).to(dtype).reshape(-1)
        if self.u0.numel() != L.shape[0]:
            raise ValueError(f"u0 has {self.u0.numel()} entries but the graph has "
                             f"{L.shape[0]} nodes")
        self.t0, self.tf = float(t0), float(tf)
        method = "splu" if not _tridiag_like(L) else "auto"
        self.ode = SemilinearODE(self.kappa * L, None, state_shape=(L.shape[0],), method=method)
        self._eig = None
        super().__init__(scheme)

    def _eigh(self):
        if self._eig is None:
            n = self.laplacian.shape[0]
            if n > 4000:
                raise NotImplementedError(f"exact solution by dense eigendecomposition is "
                                          f"limited to 4000 nodes, the graph has {n}")
            w, V = np.linalg.eigh(self.laplacian.toarray())
            self._eig = (w, V)
        return self._eig

    def eigenvalues(self) -> np.ndarray:
        return self._eigh()[0]

    def exact(self, t) -> torch.Tensor:
        w, V = self._eigh()
        t = as_times(t).numpy() - self.t0
        c = V.T @ self.u0.cpu().numpy()
        out = (np.exp(-self.kappa * np.outer(t, w)) * c[None, :]) @ V.T
        return torch.as_tensor(out).to(self.dtype)


def _tridiag_like(L) -> bool:
    coo = L.tocoo()
    return coo.nnz == 0 or np.abs(coo.row - coo.col).max() <= 1
