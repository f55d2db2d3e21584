"""The linear-algebra kernels of the package: batched CG, a differentiable shifted solve,
tridiagonal solves and batch-independent dot products.

A batch holds B independent linear systems, indexed along one axis of the tensor, ``batch_dim``;
every other axis belongs to one system's vector. The two layouts of the package are

    rows     b (B, *state)   batch_dim = 0     (integrators: one ODE state per row)
    columns  b (n, C)        batch_dim = -1    (PDE-GCN: one feature channel per column)

:func:`cg_solve` solves ``A x_j = b_j`` for every system j, A symmetric positive definite and
given as a callable on tensors of b's shape. :func:`shifted_solve` computes

    y_j = (I + s_j A)^{-1} r_j,        A symmetric positive semi-definite, s_j >= 0,

differentiably in r and s (PDE-GCN's IMEX factor, thesis eq. 4.23: M = (I + h k² GᵀG)^{-1}).
:func:`batched_tridiagonal_solve` solves B tridiagonal systems with their own coefficients
(Thomas algorithm; Newton's Jacobians of a tridiagonal L), :func:`batched_dot` gives ⟨x_j, y_j⟩.

Batch independence: a system's result never depends on which other systems share its batch.
Every system stops on its own (a converged system's x, r, p no longer change) and its dot
products are summed in an order fixed by its own size, so as long as A applies each system
independently (a row-wise map, an SpMM on columns), solving a system alone or inside any batch
gives the same bits on the CPU. (CUDA reductions choose their work split by shape: there the
agreement is to rounding.)
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.autograd.function import once_differentiable

__all__ = ["CGError", "cg_solve", "shifted_solve", "batched_dot", "batched_tridiagonal_solve",
           "TridiagonalFactor", "TOL_FLOOR_EPS"]

TOL_FLOOR_EPS = 8
"""The tolerance is raised to ``TOL_FLOOR_EPS * eps`` of the dtype (float32: 9.5e-7, float64:
1.8e-15), the level below which the true residual cannot be pushed; the same floor as Newton's
in :mod:`mgritlab.integrators`."""


class CGError(RuntimeError):
    """Conjugate gradients did not reach the requested tolerance, or A is not SPD."""


Operator = Callable[[torch.Tensor], torch.Tensor]


def _per_system(v: torch.Tensor, batch_dim: int, ndim: int) -> torch.Tensor:
    """(B,) values shaped to broadcast along ``batch_dim`` of an ndim-dimensional tensor."""
    shape = [1] * ndim
    shape[batch_dim] = -1
    return v.reshape(shape)


def batched_dot(x: torch.Tensor, y: torch.Tensor, batch_dim: int = 0) -> torch.Tensor:
    """⟨x_j, y_j⟩ = Σ_i x_j[i] y_j[i] for every system j along ``batch_dim``, shape (B,).

    Each system is summed as one contiguous row of a (B, m) tensor, which torch reduces in an
    order fixed by m. A lone row (B = 1) with many entries torch would split across threads, so
    it is summed as one of two (broadcast) rows instead.
    """
    v = (x * y).movedim(batch_dim, 0)
    v = v.reshape(v.shape[0], -1).contiguous()
    return v.expand(2, -1).sum(1)[:1] if v.shape[0] == 1 else v.sum(1)


def cg_solve(A: Operator, b: torch.Tensor, *, tol: float = 1e-10, maxiter: int | None = None,
             x0: torch.Tensor | None = None, batch_dim: int = 0,
             check: Callable[[Operator, torch.Tensor], None] | None = None) -> torch.Tensor:
    """Solve ``A x_j = b_j`` for every system j along ``batch_dim`` of b by conjugate gradients.

    A (symmetric positive definite) maps tensors of b's shape to b's shape, system by system.
    System j stops when its recursive residual satisfies ``||r_j|| <= tol ||b_j||``, with tol
    raised to ``TOL_FLOOR_EPS * eps`` of the dtype; ``b_j = 0`` gives ``x_j = 0``. The initial
    guess is ``x0`` (default zeros). ``check(A, b)``, if given, runs once before iterating (e.g.
    a symmetry probe). Raises :class:`CGError` when some system has not converged after
    ``maxiter`` (default 10 m for m entries per system) iterations, or when ``p^T A p <= 0``.
    """
    if b.is_complex():
        raise ValueError("cg_solve supports real tensors only; complex states need a matrix L "
                         "(solved directly)")
    if x0 is not None and x0.shape != b.shape:
        raise ValueError(f"x0 has shape {tuple(x0.shape)} but b has {tuple(b.shape)}")
    if check is not None:
        check(A, b)
    batch_dim = batch_dim % b.dim()
    n_sys = b.shape[batch_dim]
    maxiter = 10 * (b.numel() // max(n_sys, 1)) if maxiter is None else int(maxiter)
    tol = max(float(tol), TOL_FLOOR_EPS * torch.finfo(b.dtype).eps)

    def dot(u, v):
        return batched_dot(u, v, batch_dim)

    def per_system(v):
        return _per_system(v, batch_dim, b.dim())

    bnorm = dot(b, b).sqrt()
    nonzero = per_system(bnorm > 0)
    x = torch.zeros_like(b) if x0 is None else torch.where(nonzero, x0, 0.0)
    r = b if x0 is None else b - A(x)
    p = r
    rr = dot(r, r)
    threshold = tol * bnorm
    for _ in range(maxiter):
        active = ~(rr.sqrt() <= threshold)  # NaN counts as not converged
        if not bool(active.any()):
            return x
        Ap = A(p)
        pAp = dot(p, Ap)
        bad = active & ~(pAp > 0)
        if bool(bad.any()):
            value = float(pAp[bad][0])
            if value != value or abs(value) == float("inf"):
                raise CGError(f"CG met p^T A p = {value}: the operator or the right-hand side "
                              "is not finite")
            raise CGError(f"CG met a direction with p^T A p = {value:.3g} <= 0: the operator "
                          "is not symmetric positive definite (for I + hL: L must be symmetric "
                          "positive semi-definite)")
        alpha = per_system(rr / pAp)
        act = per_system(active)
        x = torch.where(act, x + alpha * p, x)
        r = torch.where(act, r - alpha * Ap, r)
        rr_new = dot(r, r)
        beta = per_system(rr_new / rr)
        p = torch.where(act, r + beta * p, p)
        rr = rr_new
    unconverged = ~(rr.sqrt() <= threshold)
    if bool(unconverged.any()):
        rel = float((rr.sqrt() / torch.where(bnorm > 0, bnorm, 1.0))[unconverged].max())
        raise CGError(f"CG did not converge in {maxiter} iterations: {int(unconverged.sum())} "
                      f"of {n_sys} systems at relative residual up to {rel:.3g} > tol {tol:g}; "
                      "raise cg_maxiter, loosen cg_tol, or use a smaller step h (I + hL is "
                      "better conditioned)")
    return x


class _ShiftedSolve(torch.autograd.Function):
    """y = (I + sA)^{-1} r; backward r̄ = λ = (I + sA)^{-1} ȳ (A = Aᵀ), s̄_j = −⟨λ_j, A y_j⟩."""

    @staticmethod
    def forward(ctx, r, s, apply_A, tol, maxiter, batch_dim):
        s_sys = _per_system(s, batch_dim, r.dim())
        y = cg_solve(lambda v: v + s_sys * apply_A(v), r, tol=tol, maxiter=maxiter,
                     batch_dim=batch_dim)
        ctx.save_for_backward(y, s)
        ctx.apply_A, ctx.tol, ctx.maxiter, ctx.batch_dim = apply_A, tol, maxiter, batch_dim
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, y_bar):
        y, s = ctx.saved_tensors
        apply_A, batch_dim = ctx.apply_A, ctx.batch_dim
        s_sys = _per_system(s, batch_dim, y.dim())
        # ȳ may be a broadcast (stride-0) tensor, which an SpMM in apply_A need not accept
        lam = cg_solve(lambda v: v + s_sys * apply_A(v), y_bar.contiguous(), tol=ctx.tol,
                       maxiter=ctx.maxiter, batch_dim=batch_dim)
        s_bar = -batched_dot(lam, apply_A(y), batch_dim) if ctx.needs_input_grad[1] else None
        return lam, s_bar, None, None, None, None


def shifted_solve(apply_A: Operator, r: torch.Tensor, s, *, tol: float = 1e-10,
                  maxiter: int | None = None, batch_dim: int = -1) -> torch.Tensor:
    """``y_j = (I + s_j A)^{-1} r_j`` for every system j along ``batch_dim`` of r, by CG.

    A is symmetric positive semi-definite, given as ``apply_A(v)`` on tensors of r's shape (any
    torch function, e.g. a sparse CSR SpMM), and constant: no gradient flows into it. s is a
    scalar or one shift per system (B or 1 entries, any shape), s_j >= 0. Differentiable in r and
    s; the backward pass is one more shifted solve, r̄ = λ = (I + sA)^{-1} ȳ and
    s̄_j = −⟨λ_j, A y_j⟩. tol, maxiter: as in :func:`cg_solve`.
    """
    batch_dim = batch_dim % r.dim()
    s = torch.as_tensor(s, dtype=r.dtype, device=r.device).reshape(-1).expand(r.shape[batch_dim])
    return _ShiftedSolve.apply(r, s, apply_A, tol, maxiter, batch_dim)


def batched_tridiagonal_solve(lower: torch.Tensor, main: torch.Tensor, upper: torch.Tensor,
                              rhs: torch.Tensor) -> torch.Tensor:
    """Solve B tridiagonal systems at once (Thomas algorithm, vectorised over the batch).

    ``main``/``rhs`` have shape (B, n), ``lower``/``upper`` (B, n-1): row i of system b reads
    lower[b, i-1] x[i-1] + main[b, i] x[i] + upper[b, i] x[i+1] = rhs[b, i]. No pivoting:
    meant for diagonally dominant matrices such as I + h(L - diag(g')) with small h. Only
    elementwise operations, so each system's result is independent of the others in the batch.
    """
    n = main.shape[1]
    c = torch.empty_like(upper)
    d = torch.empty_like(rhs)
    piv = main[:, 0]
    if n > 1:
        c[:, 0] = upper[:, 0] / piv
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


_TRS: dict = {}  # "pttrf" / "gttrf" -> the matching LAPACK solve, imported on first use


class TridiagonalFactor:
    """A LAPACK factorisation of a real tridiagonal matrix T, for ``T^{-1} x`` on columns.

    A symmetric T (lower = upper, the caller's judgement) is first tried as positive definite,
    T = L D Lᵀ (``dpttrf``); otherwise, or when that fails, T = P L U with partial pivoting
    (``dgttrf``). Each column of x is solved by the same scalar recursion whatever the
    number of columns (``dpttrs``/``dgttrs``), so a column's result never depends on the others.
    """

    def __init__(self, lower: np.ndarray, main: np.ndarray, upper: np.ndarray, *,
                 symmetric: bool, require_spd: bool = False):
        from scipy.linalg.lapack import dgttrf, dpttrf

        self.n = main.shape[0]
        if symmetric:
            d, e, info = dpttrf(main, upper)
            if info == 0:
                self.kind, self._f = "pttrf", (d, e)
                return
            if require_spd:
                raise ValueError(f"the tridiagonal matrix is not positive definite (dpttrf "
                                 f"info={info})")
        elif require_spd:
            raise ValueError("an SPD tridiagonal factorisation needs a symmetric matrix")
        dl, d, du, du2, ipiv, info = dgttrf(lower, main, upper)
        if info != 0:
            raise ValueError(f"the tridiagonal matrix is singular (dgttrf info={info})")
        self.kind, self._f = "gttrf", (dl, d, du, du2, ipiv)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._f)

    @property
    def _trs(self):
        """LAPACK's dpttrs or dgttrs (looked up, not stored: the factor stays picklable)."""
        trs = _TRS.get(self.kind)
        if trs is None:
            from scipy.linalg import lapack

            trs = _TRS[self.kind] = getattr(lapack, "d" + self.kind[:2] + "trs")
        return trs

    def solve(self, x: np.ndarray) -> np.ndarray:
        """T^{-1} x for x of shape (n, k), real or complex (real and imaginary parts apart)."""
        if np.iscomplexobj(x):
            return self._solve_real(x.real) + 1j * self._solve_real(x.imag)
        return self._solve_real(x)

    def solve_rows(self, x: np.ndarray, overwrite: bool = False) -> np.ndarray:
        """T^{-1} applied to every row of a real float64 x of shape (k, n), as (k, n).

        The same LAPACK call as :meth:`solve` on ``x.T`` (so the same bits); with
        ``overwrite`` a C-contiguous x is solved in place (its memory is the result).
        """
        y, info = self._trs(*self._f, x.T, overwrite_b=overwrite)
        if info != 0:
            raise RuntimeError(f"LAPACK {self.kind[:2]}trs failed (info={info})")
        return y.T

    def _solve_real(self, x: np.ndarray) -> np.ndarray:
        y, info = self._trs(*self._f, x)
        if info != 0:
            raise RuntimeError(f"LAPACK {self.kind[:2]}trs failed (info={info})")
        return y
