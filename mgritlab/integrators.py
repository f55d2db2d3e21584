"""One-step time integrators for semilinear ODEs ``u' = -L u + g(t, u)`` (thesis §2.1.2, §4.2).

The ODE is described by :class:`SemilinearODE`; a stepper advances a *batch* of states:

    stepper.step(ode, u, t, h) -> u_next      # u: (B, *state), t: (B,) float64 start times
                                              # h: python float (uniform grid) or (B,) tensor

Schemes (all of order 1), looked up by name with :func:`get_stepper`:

* ``forward_euler``   u_{n+1} = u_n + h (-L u_n + g(t_n, u_n))                 (thesis §2.1.2)
* ``backward_euler``  (I + hL) u_{n+1} - h g(t_{n+1}, u_{n+1}) = u_n            (thesis §2.1.2)
  a single linear solve when g does not depend on u, Newton's method otherwise.
* ``imex_euler``      u_{n+1} = (I + hL)^{-1} (u_n + h g(t_n, u_n))              (thesis eq. 4.8)
  L implicit, g explicit; for a scalar L = α this is the shared-diagonal scaling
  u_{n+1} = (u_n + h g) / (1 + hα), i.e. the step h/(1 + hα) of thesis eq. 4.17.

L may be a scalar α, a diagonal (tensor of the state's shape), a matrix (dense torch/numpy or
scipy sparse), or a symmetric positive semi-definite operator given as a callable
``L(v) -> L v`` on ``(B, *state)`` tensors (solved by batched conjugate gradients,
:func:`mgritlab.linalg.cg_solve`).
Factorisations of ``I + hL`` are cached per step size: SPD tridiagonal matrices use LAPACK's
``dpttrf/dpttrs``, other sparse matrices ``scipy.sparse.linalg.splu``, dense matrices a
Cholesky or LU factorisation in torch; all B right-hand sides are solved at once.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Callable

import numpy as np
import scipy.sparse as sp
import torch

from .linalg import CGError, cg_solve

__all__ = [
    "SemilinearODE", "Stepper", "ForwardEuler", "BackwardEuler", "IMEXEuler", "STEPPERS",
    "get_stepper", "NewtonError", "CGError", "cg_solve", "batched_tridiagonal_solve",
]


class NewtonError(RuntimeError):
    """Newton's method inside an implicit step did not converge."""


_CACHE_SIZE = 32
_MANY_STEPS = 8  # more distinct step sizes in one batch: solve via an eigendecomposition


def _is_complex_dtype(dtype: torch.dtype) -> bool:
    return dtype in (torch.complex64, torch.complex128)


# --------------------------------------------------------------------------------------------
# Operators L
# --------------------------------------------------------------------------------------------
class _Operator:
    """L in one of its forms, with ``apply`` and the shifted solve ``(I + hL)^{-1}``."""

    def __init__(self, L, state_shape, method: str, cg_tol: float, cg_maxiter: int | None):
        self.state_shape = state_shape
        self.cg_tol, self.cg_maxiter = float(cg_tol), cg_maxiter
        self._cache: OrderedDict = OrderedDict()
        self._spd_checked = False
        self.method = method
        if L is None:
            self.kind = "none"
        elif callable(L) and not isinstance(L, (torch.Tensor, np.ndarray)) and not sp.issparse(L):
            self.kind, self.fn = "callable", L
            if method not in ("auto", "cg"):
                raise ValueError(f"a callable L can only be solved by CG, not method={method!r}")
        elif isinstance(L, (int, float, complex)) or (
                isinstance(L, (torch.Tensor, np.ndarray)) and np.ndim(L) == 0):
            val = complex(L) if np.iscomplexobj(np.asarray(L)) else float(L)
            if not (np.isfinite(val)):
                raise ValueError(f"L = {L!r} is not finite")
            self.kind, self.alpha = "scalar", val
        elif sp.issparse(L):
            L = sp.csr_matrix(L)
            self._check_square(L.shape)
            self.kind, self.sparse = "sparse", L
            self.n = L.shape[0]
        else:
            T = torch.as_tensor(L)
            if not (T.is_floating_point() or T.is_complex()):
                T = T.to(torch.float64)
            if T.dim() == 2 and (state_shape is None or tuple(T.shape) != tuple(state_shape)):
                self._check_square(T.shape)
                self.kind, self.dense, self.n = "dense", T, T.shape[0]
            else:
                if state_shape is not None and tuple(T.shape) != tuple(state_shape):
                    raise ValueError(
                        f"a diagonal L must have the state's shape {tuple(state_shape)}, got "
                        f"{tuple(T.shape)}; pass a (n, n) matrix for a full operator")
                self.kind, self.diag = "diag", T
        if self.kind in ("scalar", "diag", "none") and method == "cg":
            raise ValueError("method='cg' needs a matrix or a callable L")
        if self.kind == "sparse" and method not in ("auto", "splu", "pttrf", "cg"):
            raise ValueError(f"sparse L: method must be 'auto', 'splu', 'pttrf' or 'cg', "
                             f"got {method!r}")
        if self.kind == "dense" and method not in ("auto", "lu", "cholesky", "cg"):
            raise ValueError(f"dense L: method must be 'auto', 'lu', 'cholesky' or 'cg', "
                             f"got {method!r}")
        self.uses_cg = self.kind == "callable" or method == "cg"
        self.tridiag = None  # (lower, main, upper) diagonals of a real tridiagonal sparse L
        if self.kind == "sparse" and not np.iscomplexobj(self.sparse.data) and self.n >= 2:
            coo = self.sparse.tocoo()
            if coo.nnz == 0 or np.abs(coo.row - coo.col).max() <= 1:
                A = self.sparse
                self.tridiag = tuple(torch.as_tensor(A.diagonal(k).astype(np.float64))
                                     for k in (-1, 0, 1))
        self.is_complex = (
            (self.kind == "scalar" and isinstance(self.alpha, complex))
            or (self.kind == "diag" and self.diag.is_complex())
            or (self.kind == "dense" and self.dense.is_complex())
            or (self.kind == "sparse" and np.iscomplexobj(self.sparse.data)))
        if self.uses_cg and self.is_complex:
            raise ValueError("CG solves need a real symmetric L; complex L is not supported "
                             "with a callable or method='cg' — pass a matrix instead")
        if self.kind in ("sparse", "dense") and self.uses_cg:
            self._check_symmetric_matrix()

    def out_dtype(self, dtype: torch.dtype) -> torch.dtype:
        """The dtype of L u / (I + hL)^{-1} u for u of ``dtype`` (complex if L is complex)."""
        if self.is_complex and not _is_complex_dtype(dtype):
            return torch.complex64 if dtype == torch.float32 else torch.complex128
        return dtype

    @staticmethod
    def _check_square(shape):
        if len(shape) != 2 or shape[0] != shape[1]:
            raise ValueError(f"L must be a square matrix, got shape {tuple(shape)}")

    def _check_symmetric_matrix(self):
        if self.kind == "sparse":
            asym = abs(self.sparse - self.sparse.T).max() if self.sparse.nnz else 0.0
            scale = abs(self.sparse).max() if self.sparse.nnz else 1.0
        else:
            asym = float((self.dense - self.dense.T).abs().max())
            scale = float(self.dense.abs().max()) or 1.0
        if asym > 1e-12 * scale:
            raise ValueError(f"CG needs a symmetric positive semi-definite L, but L is not "
                             f"symmetric (max |L - L^T| = {asym:.3g}); use method='auto' "
                             f"(direct LU) for a non-symmetric L")

    # ---- application ------------------------------------------------------------------
    def apply(self, u: torch.Tensor) -> torch.Tensor:
        """L u for u of shape (B, *state)."""
        k = self.kind
        if k == "none":
            return torch.zeros_like(u)
        if k == "scalar":
            return self.alpha * u
        if k == "diag":
            return self.diag.to(device=u.device, dtype=self.out_dtype(u.dtype)) * u
        if k == "callable":
            out = self.fn(u)
            if not isinstance(out, torch.Tensor) or out.shape != u.shape:
                raise ValueError(f"the callable L must map a (B, *state) tensor to one of the "
                                 f"same shape {tuple(u.shape)}, got "
                                 f"{getattr(out, 'shape', type(out))}")
            return out
        B = u.shape[0]
        flat = u.reshape(B, -1)
        self._check_n(flat.shape[1])
        if k == "dense":
            D = self.dense.to(device=u.device)
            if D.dtype != flat.dtype:
                common = torch.promote_types(D.dtype, flat.dtype)
                D, flat = D.to(common), flat.to(common)
            return (flat @ D.T).reshape(u.shape).to(self.out_dtype(u.dtype))
        # sparse
        x = _to_numpy(flat).T
        y = self.sparse @ x
        out = torch.from_numpy(np.ascontiguousarray(y.T)).to(u.device).reshape(u.shape)
        return out.to(self.out_dtype(u.dtype))

    def _check_n(self, n):
        if n != self.n:
            raise ValueError(f"L is {self.n}x{self.n} but the state has {n} entries; "
                             f"the state must have exactly {self.n} entries")

    # ---- shifted solve (I + hL)^{-1} ------------------------------------------------------
    def solve_shifted(self, rhs: torch.Tensor, h) -> torch.Tensor:
        """(I + h L)^{-1} rhs; rhs (B, *state), h float or (B,) tensor."""
        k = self.kind
        if k == "none":
            return rhs
        if k in ("scalar", "diag"):
            hb = h if isinstance(h, float) else _bcast(h, rhs)
            coef = self.alpha if k == "scalar" else self.diag.to(
                device=rhs.device, dtype=self.out_dtype(rhs.dtype))
            return rhs / (1.0 + hb * coef)
        if self.uses_cg:
            return cg_solve(lambda v: v + _bcast_h(h, v) * self.apply(v), rhs, x0=rhs,
                            tol=self.cg_tol, maxiter=self.cg_maxiter, check=self._spd_probe)
        if isinstance(h, float):
            return self._direct(rhs, h)
        hs = torch.unique(h)
        if hs.numel() == 1:
            return self._direct(rhs, float(hs[0]))
        if hs.numel() > _MANY_STEPS and self._eigh() is not None:
            # many distinct steps (a non-uniform grid): one eigendecomposition L = Q diag(μ) Q^T
            # serves every h at once, (I + hL)^{-1} b = Q diag(1/(1 + hμ)) Q^T b
            Q, mu = self._eigh()
            B = rhs.shape[0]
            flat = rhs.reshape(B, -1)
            Q, mu = Q.to(device=rhs.device), mu.to(device=rhs.device)
            c = (flat.to(Q.dtype) @ Q) / (1.0 + h.to(Q.dtype)[:, None] * mu[None, :])
            return (c @ Q.T).to(self.out_dtype(rhs.dtype)).reshape(rhs.shape)
        out = torch.empty_like(rhs)
        for hv in hs.tolist():  # one factorisation per distinct step size, not per batch row
            m = h == hv
            out[m] = self._direct(rhs[m], hv)
        return out

    def _eigh(self):
        """(Q, μ) of a real symmetric matrix L with n <= 3000 (cached), else None."""
        if not hasattr(self, "_eig"):
            self._eig = None
            if self.kind in ("sparse", "dense") and not self.is_complex and self.n <= 3000:
                M = (torch.as_tensor(self.sparse.toarray()) if self.kind == "sparse"
                     else self.dense.to(torch.float64))
                if bool(torch.allclose(M, M.T, rtol=0, atol=1e-13 * float(M.abs().max() or 1))):
                    mu, Q = torch.linalg.eigh(M)
                    if float(mu.min()) >= -1e-12 * float(mu.abs().max() or 1):
                        self._eig = (Q, mu)
        return self._eig

    def _spd_probe(self, apply_fn, like: torch.Tensor):
        """Cheap symmetry/positivity check of a callable L with two random probes (once)."""
        if self._spd_checked or self.kind != "callable":
            return
        g = torch.Generator(device="cpu").manual_seed(12345)
        x = torch.randn((2, *like.shape[1:]), generator=g, dtype=like.dtype).to(like.device)
        Lx = self.apply(x)
        a = float((x[0] * Lx[1]).sum())
        b = float((Lx[0] * x[1]).sum())
        scale = float(x.norm() * Lx.norm()) or 1.0
        if abs(a - b) > 1e-8 * scale:
            raise ValueError(f"the callable L is not symmetric (<x, Ly> = {a:.6g} but "
                             f"<Lx, y> = {b:.6g} for random x, y): CG needs a symmetric positive "
                             f"semi-definite L; pass a matrix to use a direct solver instead")
        q = (x * Lx).flatten(1).sum(1)
        if bool((q < -1e-10 * scale).any()):
            raise ValueError(f"the callable L is not positive semi-definite (<x, Lx> = "
                             f"{q.min().item():.6g} < 0 for a random x): CG needs a symmetric "
                             f"positive semi-definite L (the ODE is u' = -L u + g)")
        self._spd_checked = True

    def _factor(self, h: float):
        key = h
        f = self._cache.get(key)
        if f is not None:
            self._cache.move_to_end(key)
            return f
        if self.kind == "sparse":
            f = self._factor_sparse(h)
        else:
            f = self._factor_dense(h)
        self._cache[key] = f
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return f

    def _factor_sparse(self, h: float):
        from scipy.linalg.lapack import dpttrf
        from scipy.sparse.linalg import splu

        A = self.sparse
        if self.method in ("auto", "pttrf") and not self.is_complex and _is_sym_tridiag(A):
            d = 1.0 + h * A.diagonal(0)
            e = h * A.diagonal(1)
            df, ef, info = dpttrf(d, e)
            if info == 0:
                return ("pttrf", df, ef)
            if self.method == "pttrf":
                raise ValueError(f"I + hL is not positive definite for h={h} (dpttrf info="
                                 f"{info}); use method='splu'")
        elif self.method == "pttrf":
            raise ValueError("method='pttrf' needs a real symmetric tridiagonal L")
        M = (sp.identity(self.n, dtype=A.dtype, format="csc") + h * A.tocsc()).tocsc()
        return ("splu", splu(M))

    def _factor_dense(self, h: float):
        D = self.dense
        M = torch.eye(self.n, dtype=D.dtype, device=D.device) + h * D
        if self.method in ("auto", "cholesky") and not D.is_complex() and \
                bool(torch.allclose(D, D.T, rtol=0, atol=1e-13 * float(D.abs().max() or 1))):
            C, info = torch.linalg.cholesky_ex(M)
            if int(info) == 0:
                return ("chol", C)
        if self.method == "cholesky":
            raise ValueError(f"I + hL is not symmetric positive definite for h={h}; "
                             f"use method='lu'")
        LU, piv = torch.linalg.lu_factor(M)
        return ("lu", LU, piv)

    def _direct(self, rhs: torch.Tensor, h: float) -> torch.Tensor:
        from scipy.linalg.lapack import dpttrs

        B = rhs.shape[0]
        flat = rhs.reshape(B, -1)
        self._check_n(flat.shape[1])
        f = self._factor(h)
        if f[0] in ("pttrf", "splu"):
            x = _to_numpy(flat).T  # (n, B), Fortran-ordered view
            if f[0] == "pttrf":
                if np.iscomplexobj(x):
                    y = np.asarray(_pttrs(dpttrs, f, x.real) + 1j * _pttrs(dpttrs, f, x.imag))
                else:
                    y = _pttrs(dpttrs, f, x)
            else:
                lu = f[1]
                if np.iscomplexobj(x) and not np.iscomplexobj(self.sparse.data):
                    y = lu.solve(np.ascontiguousarray(x.real)) + 1j * lu.solve(
                        np.ascontiguousarray(x.imag))
                else:
                    y = lu.solve(np.ascontiguousarray(x))
            out = torch.from_numpy(np.ascontiguousarray(y.T)).to(rhs.device)
            return out.to(self.out_dtype(rhs.dtype)).reshape(rhs.shape)
        F = f[1]
        b = flat.T
        common = torch.promote_types(F.dtype, b.dtype)
        if f[0] == "chol":
            if b.is_complex() and not F.is_complex():
                y = torch.complex(torch.cholesky_solve(b.real.contiguous(), F),
                                  torch.cholesky_solve(b.imag.contiguous(), F))
            else:
                y = torch.cholesky_solve(b.to(common), F.to(common))
        else:
            y = torch.linalg.lu_solve(f[1].to(common), f[2], b.to(common))
        return y.T.reshape(rhs.shape).to(self.out_dtype(rhs.dtype))

    def dense_matrix(self, n: int, dtype, device) -> torch.Tensor:
        """L as a dense (n, n) matrix (used by Newton with full Jacobians)."""
        k = self.kind
        if k == "none":
            return torch.zeros(n, n, dtype=dtype, device=device)
        if k == "scalar":
            return self.alpha * torch.eye(n, dtype=dtype, device=device)
        if k == "diag":
            return torch.diag(self.diag.reshape(-1).to(device=device, dtype=dtype))
        if k == "dense":
            return self.dense.to(device=device, dtype=dtype)
        if k == "sparse":
            return torch.as_tensor(self.sparse.toarray(), device=device).to(dtype)
        raise ValueError("a callable L has no matrix; Newton with a full Jacobian needs L as "
                         "a matrix (or give g an elementwise derivative dg instead of jac)")


def _pttrs(dpttrs, f, x):
    y, info = dpttrs(f[1], f[2], x)
    if info != 0:
        raise RuntimeError(f"LAPACK dpttrs failed (info={info})")
    return y


def batched_tridiagonal_solve(lower: torch.Tensor, main: torch.Tensor, upper: torch.Tensor,
                              rhs: torch.Tensor) -> torch.Tensor:
    """Solve B tridiagonal systems at once (Thomas algorithm, vectorised over the batch).

    ``main``/``rhs`` have shape (B, n), ``lower``/``upper`` (B, n-1): row i of system b reads
    lower[b, i-1] x[i-1] + main[b, i] x[i] + upper[b, i] x[i+1] = rhs[b, i]. No pivoting:
    meant for diagonally dominant matrices such as I + h(L - diag(g')) with small h.
    """
    n = main.shape[1]
    c = torch.empty_like(upper)
    d = torch.empty_like(rhs)
    piv = main[:, 0]
    c[:, 0:1] = (upper[:, 0] / piv)[:, None] if n > 1 else c[:, 0:1]
    d[:, 0] = rhs[:, 0] / piv
    for i in range(1, n):
        piv = main[:, i] - lower[:, i - 1] * c[:, i - 1]
        if i < n - 1:
            c[:, i] = upper[:, i] / piv
        d[:, i] = (rhs[:, i] - lower[:, i - 1] * d[:, i - 1]) / piv
    x = torch.empty_like(rhs)
    x[:, n - 1] = d[:, n - 1]
    for i in range(n - 2, -1, -1):
        x[:, i] = d[:, i] - c[:, i] * x[:, i + 1]
    return x


def _is_sym_tridiag(A) -> bool:
    if np.iscomplexobj(A.data) or A.shape[0] < 2:
        return False
    coo = A.tocoo()
    if coo.nnz and np.abs(coo.row - coo.col).max() > 1:
        return False
    return np.array_equal(A.diagonal(1), A.diagonal(-1))


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _bcast(h: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) step sizes reshaped to broadcast against (B, *state)."""
    return h.to(like.device).reshape((-1,) + (1,) * (like.dim() - 1))


def _bcast_h(h, like):
    return h if isinstance(h, float) else _bcast(h, like)


# --------------------------------------------------------------------------------------------
# The ODE
# --------------------------------------------------------------------------------------------
class SemilinearODE:
    """``u' = -L u + g(t, u)`` on states of shape ``state_shape``.

    Parameters
    ----------
    L : None, scalar α, diagonal tensor (the state's shape), (n, n) matrix (torch, numpy or
        scipy sparse), or a callable ``L(v)`` on (B, *state) tensors (symmetric positive
        semi-definite; solved by batched CG).
    g : callable ``g(t, u) -> (B, *state)`` with t of shape (B,) (float64) and u (B, *state),
        or None (g = 0).
    g_depends_on_u : False if g is a pure forcing g(t) (then backward Euler is one linear
        solve); default True when g is given.
    dg : elementwise derivative ``dg(t, u) = ∂g_j/∂u_j`` (for g acting entrywise), used by
        Newton; or ``jac(t, u) -> (B, n, n)`` the full Jacobian of g.
    method : 'auto' (default), or force 'splu' / 'pttrf' (sparse), 'lu' / 'cholesky' (dense),
        'cg' (matrix or callable).
    """

    def __init__(self, L=None, g: Callable | None = None, *, state_shape=None,
                 g_depends_on_u: bool | None = None, dg: Callable | None = None,
                 jac: Callable | None = None, method: str = "auto", cg_tol: float = 1e-10,
                 cg_maxiter: int | None = None, newton_tol: float = 1e-10,
                 newton_maxiter: int = 50):
        if g is not None and not callable(g):
            raise TypeError(f"g must be a callable g(t, u) or None, got {type(g).__name__}")
        if method not in ("auto", "splu", "pttrf", "lu", "cholesky", "cg"):
            raise ValueError(f"unknown method {method!r}: use 'auto', 'splu', 'pttrf', 'lu', "
                             f"'cholesky' or 'cg'")
        if newton_tol <= 0 or cg_tol <= 0:
            raise ValueError("newton_tol and cg_tol must be positive")
        if int(newton_maxiter) < 1:
            raise ValueError(f"newton_maxiter must be >= 1, got {newton_maxiter}")
        self.state_shape = None if state_shape is None else tuple(int(s) for s in state_shape)
        self.op = _Operator(L, self.state_shape, method, cg_tol, cg_maxiter)
        self.L = L
        self.g = g
        self.g_depends_on_u = (g is not None) if g_depends_on_u is None else bool(g_depends_on_u)
        if g is None:
            self.g_depends_on_u = False
        self.dg, self.jac = dg, jac
        self.newton_tol, self.newton_maxiter = float(newton_tol), int(newton_maxiter)

    def rhs(self, t: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """f(t, u) = -L u + g(t, u)."""
        f = -self.op.apply(u)
        if self.g is not None:
            f = f + self._g(t, u)
        return f

    def _g(self, t, u):
        out = self.g(t, u)
        if not isinstance(out, torch.Tensor):
            out = torch.as_tensor(out, dtype=u.dtype, device=u.device)
        if out.dtype != u.dtype and not (out.is_complex() and not u.is_complex()):
            out = out.to(u.dtype)  # e.g. float64 times t in a float32 problem
        if out.shape != u.shape:
            try:
                out = out.expand(u.shape)
            except RuntimeError:
                raise ValueError(f"g(t, u) returned shape {tuple(out.shape)}; it must return "
                                 f"the shape of u, {tuple(u.shape)}") from None
        return out

    def __repr__(self):
        return (f"SemilinearODE(L={self.op.kind}, g={'None' if self.g is None else 'given'}, "
                f"g_depends_on_u={self.g_depends_on_u})")


def _check_inputs(ode: SemilinearODE, u, t, h):
    if not isinstance(u, torch.Tensor):
        raise TypeError(f"u must be a torch.Tensor of shape (B, *state), got {type(u).__name__}")
    if u.dim() < 1:
        raise ValueError("u must have a leading batch dimension: shape (B, *state)")
    if ode.state_shape is not None and tuple(u.shape[1:]) != ode.state_shape:
        raise ValueError(f"u has shape {tuple(u.shape)} but the ODE's state has shape "
                         f"{ode.state_shape}; pass u as (B, *state) = (B, "
                         f"{', '.join(map(str, ode.state_shape))})")
    t = torch.as_tensor(t, dtype=torch.float64, device=u.device)
    if t.dim() == 0:
        t = t.expand(u.shape[0])
    if t.shape != (u.shape[0],):
        raise ValueError(f"t must have shape (B,) = ({u.shape[0]},), got {tuple(t.shape)}")
    if isinstance(h, (int, float)) and not isinstance(h, bool):
        h = float(h)
        if not (math.isfinite(h) and h > 0):
            raise ValueError(f"the step size must be positive and finite, got h={h}; "
                             f"a backward-in-time step is not supported here")
    elif isinstance(h, torch.Tensor):
        if h.dim() == 0:
            return _check_inputs(ode, u, t, float(h))
        if h.shape != (u.shape[0],):
            raise ValueError(f"h must be a float or a (B,) tensor with B={u.shape[0]}, "
                             f"got shape {tuple(h.shape)}")
        h = h.to(dtype=torch.float64, device=u.device)
        if not bool(torch.isfinite(h).all() & (h > 0).all()):
            raise ValueError(f"step sizes must be positive and finite, got min h="
                             f"{float(h.min()):.3g}")
    else:
        raise TypeError(f"h must be a python float or a (B,) tensor, got {type(h).__name__}")
    if u.is_complex() and ode.op.uses_cg:
        raise ValueError("complex states are not supported with CG; pass L as a matrix")
    return u, t, h


def _tnext(t, h):
    return t + h


class Stepper:
    """Base class: ``step(ode, u, t, h)`` advances a batch by one step."""

    name: str = ""
    order: int = 0
    implicit: bool = False

    def step(self, ode: SemilinearODE, u: torch.Tensor, t: torch.Tensor, h) -> torch.Tensor:
        u, t, h = _check_inputs(ode, u, t, h)
        return self._step(ode, u, t, h)

    def _step(self, ode, u, t, h):  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r}, order={self.order})"


class ForwardEuler(Stepper):
    """u_{n+1} = u_n + h (-L u_n + g(t_n, u_n)); stable for |1 + hλ| <= 1 (thesis §2.1.2)."""

    name, order = "forward_euler", 1

    def _step(self, ode, u, t, h):
        return u + _bcast_h(h, u) * ode.rhs(t, u)


class IMEXEuler(Stepper):
    """u_{n+1} = (I + hL)^{-1}(u_n + h g(t_n, u_n)) (thesis eq. 4.8)."""

    name, order, implicit = "imex_euler", 1, True

    def _step(self, ode, u, t, h):
        rhs = u if ode.g is None else u + _bcast_h(h, u) * ode._g(t, u)
        return ode.op.solve_shifted(rhs, h)


class BackwardEuler(Stepper):
    """(I + hL) u_{n+1} - h g(t_{n+1}, u_{n+1}) = u_n (thesis §2.1.2).

    A linear solve when g does not depend on u; Newton's method otherwise (elementwise
    derivative ``dg`` or full Jacobian ``jac`` of g; tolerance ``ode.newton_tol`` on the
    relative update, at most ``ode.newton_maxiter`` iterations, else :class:`NewtonError`).
    """

    name, order, implicit = "backward_euler", 1, True

    def _step(self, ode, u, t, h):
        t1 = _tnext(t, h)
        if not ode.g_depends_on_u:
            rhs = u if ode.g is None else u + _bcast_h(h, u) * ode._g(t1, u)
            return ode.op.solve_shifted(rhs, h)
        return self._newton(ode, u, t1, h)

    def _newton(self, ode, u, t1, h):
        if ode.dg is None and ode.jac is None:
            raise ValueError("backward Euler with a g that depends on u needs its derivative: "
                             "pass dg=(elementwise ∂g/∂u) or jac=(full Jacobian) to "
                             "SemilinearODE, or use scheme 'imex_euler' (g explicit)")
        hb = _bcast_h(h, u)
        op = ode.op
        v = u.clone()
        B = u.shape[0]
        n = u[0].numel()
        if op.kind == "sparse" and op.tridiag is None and ode.jac is None and B * n * n > 5e7:
            raise ValueError("Newton with a large sparse L and a nonlinear g is not supported "
                             "here (it would form dense Jacobians); use scheme 'imex_euler'")
        step_norm = float("inf")
        # a tolerance below the dtype's resolution cannot be met (float32: ~1e-6)
        tol = max(ode.newton_tol, 8 * torch.finfo(u.dtype).eps)
        active = torch.ones(B, dtype=torch.bool, device=u.device)
        shape = (B,) + (1,) * (u.dim() - 1)
        for _ in range(ode.newton_maxiter):
            F = v + hb * (op.apply(v) - ode._g(t1, v)) - u
            if ode.jac is None and op.kind in ("none", "scalar", "diag"):
                Jd = 1.0 + hb * ((op.alpha if op.kind == "scalar" else
                                  (op.diag.to(device=v.device, dtype=op.out_dtype(v.dtype))
                                   if op.kind == "diag" else 0.0)) - ode.dg(t1, v))
                delta = F / Jd
            elif ode.jac is None and op.tridiag is not None and not v.is_complex():
                # J = I + h(L - diag(dg)) is tridiagonal in every row of the batch
                lo, di, up = (x.to(device=v.device, dtype=v.dtype) for x in op.tridiag)
                hh = hb if isinstance(hb, float) else hb.reshape(-1, 1)
                main = 1.0 + hh * (di - ode.dg(t1, v).reshape(B, n))
                delta = batched_tridiagonal_solve((hh * lo).expand(B, n - 1), main,
                                                  (hh * up).expand(B, n - 1),
                                                  F.reshape(B, n)).reshape(u.shape)
            elif ode.jac is None and op.kind == "callable":
                d = ode.dg(t1, v)
                delta = cg_solve(lambda w, d=d: w + hb * (op.apply(w) - d * w), F, x0=F,
                                 tol=min(op.cg_tol, 1e-2 * ode.newton_tol),
                                 maxiter=op.cg_maxiter)
            else:
                Lm = op.dense_matrix(n, v.dtype, v.device)
                if ode.jac is not None:
                    Jg = ode.jac(t1, v)
                    if tuple(Jg.shape) != (B, n, n):
                        raise ValueError(f"jac(t, u) must return (B, n, n) = ({B}, {n}, {n}), "
                                         f"got {tuple(Jg.shape)}")
                else:
                    Jg = torch.diag_embed(ode.dg(t1, v).reshape(B, n))
                hh = hb.reshape(-1, 1, 1) if isinstance(hb, torch.Tensor) else hb
                J = torch.eye(n, dtype=v.dtype, device=v.device) + hh * (Lm - Jg)
                delta = torch.linalg.solve(J, F.reshape(B, n, 1)).reshape(u.shape)
            # Each state stops at its own convergence, so a state's result never depends on
            # which other states share its batch (MGRIT on 1 or P processes: same numbers).
            v = torch.where(active.reshape(shape), v - delta, v)
            rel = (delta.reshape(B, -1).norm(dim=1) / (1.0 + v.reshape(B, -1).norm(dim=1)))
            rel = torch.where(active, rel, torch.zeros_like(rel))
            step_norm = float(rel.max())
            if not math.isfinite(step_norm):
                break
            active = active & (rel > tol)
            if not bool(active.any()):
                return v
        hmax = h if isinstance(h, float) else float(h.max())
        raise NewtonError(
            f"backward Euler: Newton did not converge in {ode.newton_maxiter} iterations "
            f"(last relative update {step_norm:.3g} > tol {tol:g}) with step "
            f"h={hmax:.4g} at t={float(t1.min()):.4g}..{float(t1.max()):.4g}. Use a smaller "
            f"step (more time points / smaller cf), raise newton_maxiter, or loosen newton_tol")


STEPPERS: dict[str, type[Stepper]] = {
    ForwardEuler.name: ForwardEuler,
    BackwardEuler.name: BackwardEuler,
    IMEXEuler.name: IMEXEuler,
}


def get_stepper(name: str | Stepper) -> Stepper:
    """The stepper registered under ``name`` (a Stepper instance is returned unchanged)."""
    if isinstance(name, Stepper):
        return name
    try:
        return STEPPERS[name]()
    except (KeyError, TypeError):
        raise ValueError(f"unknown scheme {name!r}: valid names are "
                         f"{', '.join(sorted(STEPPERS))}") from None
