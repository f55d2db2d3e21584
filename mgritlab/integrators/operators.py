"""The operator L of ``u' = -L u + g(t, u)``, one class per form of L (thesis §2.1.2, eqs. 4.6–4.9).

Every operator acts on a batch of states u of shape (B, *state) and gives

    apply(u)                      L u
    solve_shifted(r, h)           (I + hL)^{-1} r                   backward Euler / IMEX
    solve_jacobian(F, h, d, tol)  (I + h(L - diag d))^{-1} F        Newton, g' = diag(d)
    as_dense(n, dtype, device)    L as an (n, n) matrix             Newton with a full jac

with h a python float (one step for the batch: a uniform grid) or a (B,) tensor (a step per
state: a non-uniform grid). :func:`make_operator` picks the class from the form of L:

    None -> ZeroOperator          scalar α -> ScalarOperator      tensor of the state's shape
    -> DiagonalOperator           (n, n) torch/numpy -> DenseOperator
    real tridiagonal scipy sparse -> TridiagonalOperator (LAPACK dpttrf / dgttrf)
    other scipy sparse -> SparseOperator (splu)     callable or method='cg' -> CGOperator

Properties of L (symmetry, tridiagonality) are detected once, at construction; L counts as
symmetric when ``max |L - Lᵀ| <= SYMMETRY_RTOL * max |L|``.

Batch independence (the rule of :mod:`mgritlab.mgrit.hierarchy`): the result for one state
depends on that state and its own h only, never on which other states share the batch, so
MGRIT gives the same bits on any number of processes, on uniform and non-uniform grids alike.
Hence the algorithm is fixed by the operator and the value of h (one cached factorisation of
I + hL per distinct step size, whether h comes as a float or inside a tensor), and the kernels
treat each state on its own: matrix products are elementwise products summed per row (a
BLAS matrix product rounds a row differently depending on how many rows come with it), and
LU/Cholesky/splu solves take one right-hand side at a time (their multi-column kernels round
a column differently depending on the number of columns). LAPACK's tridiagonal solves
``dpttrs``/``dgttrs`` run the same scalar recursion on every column, so they take all at once.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch

from ..linalg import TridiagonalFactor, batched_tridiagonal_solve, cg_solve

__all__ = ["SYMMETRY_RTOL", "Operator", "ZeroOperator", "ScalarOperator", "DiagonalOperator",
           "DenseOperator", "SparseOperator", "TridiagonalOperator", "CGOperator",
           "make_operator"]

SYMMETRY_RTOL = 1e-13
"""L is symmetric when max |L - Lᵀ| <= SYMMETRY_RTOL * max |L| (a few ulps of its entries)."""

_CACHE_BYTES = 1 << 28  # factorisations of I + hL kept per operator (256 MiB)
_ROW_CHUNK = 1 << 22  # entries of the (rows, n, n) temporary of a dense product


def _is_complex_dtype(dtype: torch.dtype) -> bool:
    return dtype in (torch.complex64, torch.complex128)


def broadcast_h(h, like: torch.Tensor):
    """h as a float, or (B,) step sizes reshaped to broadcast against (B, *state)."""
    if isinstance(h, float):
        return h
    return h.to(like.device).reshape((-1,) + (1,) * (like.dim() - 1))


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def dense_jacobian_solve(Lm: torch.Tensor, F: torch.Tensor, h, Jg: torch.Tensor):
    """(I + h(L - J_g))^{-1} F with dense (n, n) L and Jacobians J_g of shape (B, n, n).

    One LU per state (torch loops over the batch), so a state's result is its own.
    """
    B, n = F.shape[0], F[0].numel()
    hh = h.reshape(-1, 1, 1) if isinstance(h, torch.Tensor) else h
    J = torch.eye(n, dtype=F.dtype, device=F.device) + hh * (Lm - Jg)
    return torch.linalg.solve(J, F.reshape(B, n, 1)).reshape(F.shape)


class Operator:
    """L in one of its forms; subclasses implement ``apply``, ``solve_shifted``, ``as_dense``
    and, where L allows better than dense Jacobians, ``solve_jacobian``.

    Attributes: ``kind`` (a name for printing), ``method`` (the solver asked for),
    ``is_complex``, ``symmetric`` (detected once, see :data:`SYMMETRY_RTOL`) and ``uses_cg``.
    """

    kind: str = ""
    is_complex: bool = False
    uses_cg: bool = False
    symmetric: bool = False

    def __init__(self, method: str = "auto"):
        self.method = method

    def out_dtype(self, dtype: torch.dtype) -> torch.dtype:
        """The dtype of L u / (I + hL)^{-1} u for u of ``dtype`` (complex if L is complex)."""
        if self.is_complex and not _is_complex_dtype(dtype):
            return torch.complex64 if dtype == torch.float32 else torch.complex128
        return dtype

    def apply(self, u: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def solve_shifted(self, rhs: torch.Tensor, h) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def as_dense(self, n: int, dtype, device) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def solve_jacobian(self, F: torch.Tensor, h, d: torch.Tensor, tol: float) -> torch.Tensor:
        """Newton's update (I + h(L - diag d))^{-1} F, d = ∂g/∂u elementwise; dense here."""
        B, n = F.shape[0], F[0].numel()
        Lm = self.as_dense(n, F.dtype, F.device)
        return dense_jacobian_solve(Lm, F, h, torch.diag_embed(d.reshape(B, n)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(method={self.method!r})"


class ZeroOperator(Operator):
    """L = 0 (no implicit part): u' = g(t, u)."""

    kind = "none"
    symmetric = True

    def apply(self, u):
        return torch.zeros_like(u)

    def solve_shifted(self, rhs, h):
        return rhs

    def solve_jacobian(self, F, h, d, tol):
        return F / (1.0 + broadcast_h(h, F) * (0.0 - d))

    def as_dense(self, n, dtype, device):
        return torch.zeros(n, n, dtype=dtype, device=device)


class ScalarOperator(Operator):
    """L = α I: (I + hL)^{-1} r = r / (1 + hα), the shared-diagonal scaling of thesis eq. 4.17."""

    kind = "scalar"
    symmetric = True

    def __init__(self, alpha, method="auto"):
        super().__init__(method)
        self.alpha = alpha
        self.is_complex = isinstance(alpha, complex)

    def apply(self, u):
        return self.alpha * u

    def solve_shifted(self, rhs, h):
        return rhs / (1.0 + broadcast_h(h, rhs) * self.alpha)

    def solve_jacobian(self, F, h, d, tol):
        return F / (1.0 + broadcast_h(h, F) * (self.alpha - d))

    def as_dense(self, n, dtype, device):
        return self.alpha * torch.eye(n, dtype=dtype, device=device)


class DiagonalOperator(Operator):
    """L = diag(λ) with λ of the state's shape: every entry its own scalar equation."""

    kind = "diag"
    symmetric = True

    def __init__(self, diag: torch.Tensor, method="auto"):
        super().__init__(method)
        self.diag = diag
        self.is_complex = diag.is_complex()

    def _coef(self, like):
        return self.diag.to(device=like.device, dtype=self.out_dtype(like.dtype))

    def apply(self, u):
        return self._coef(u) * u

    def solve_shifted(self, rhs, h):
        return rhs / (1.0 + broadcast_h(h, rhs) * self._coef(rhs))

    def solve_jacobian(self, F, h, d, tol):
        return F / (1.0 + broadcast_h(h, F) * (self._coef(F) - d))

    def as_dense(self, n, dtype, device):
        return torch.diag(self.diag.reshape(-1).to(device=device, dtype=dtype))


class _FactorCache:
    """Least-recently-used factorisations of I + hL keyed by h, within a byte budget."""

    def __init__(self, max_bytes: int = _CACHE_BYTES):
        self.max_bytes = max_bytes
        self._items: OrderedDict = OrderedDict()
        self._bytes = 0

    def get(self, h: float, make: Callable[[float], tuple]):
        item = self._items.get(h)
        if item is not None:
            self._items.move_to_end(h)
            return item[0]
        factor, nbytes = make(h)
        self._items[h] = (factor, nbytes)
        self._bytes += nbytes
        while self._bytes > self.max_bytes and len(self._items) > 1:
            _, (_, old) = self._items.popitem(last=False)
            self._bytes -= old
        return factor

    def __len__(self) -> int:
        return len(self._items)


class _MatrixOperator(Operator):
    """An (n, n) matrix L solved directly: one factorisation of I + hL per step size."""

    n: int

    def __init__(self, method="auto"):
        super().__init__(method)
        self._factors = _FactorCache()

    def _check_n(self, n):
        if n != self.n:
            raise ValueError(f"L is {self.n}x{self.n} but the state has {n} entries; "
                             f"the state must have exactly {self.n} entries")

    def _factor(self, h: float) -> tuple:  # pragma: no cover - abstract
        """(factorisation of I + hL, its size in bytes)."""
        raise NotImplementedError

    def _solve(self, factor, flat: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        """(I + hL)^{-1} applied to each row of ``flat`` (B, n), each row on its own."""
        raise NotImplementedError

    def solve_shifted(self, rhs, h):
        """(I + hL)^{-1} rhs with the factorisation of each distinct step size."""
        B = rhs.shape[0]
        flat = rhs.reshape(B, -1)
        self._check_n(flat.shape[1])
        if B == 0:
            return rhs.to(self.out_dtype(rhs.dtype)).clone()
        if isinstance(h, float):
            out = self._solve(self._factors.get(h, self._factor), flat)
        else:
            hs, group = torch.unique(h, return_inverse=True)
            if hs.numel() == 1:
                out = self._solve(self._factors.get(float(hs[0]), self._factor), flat)
            else:
                out = torch.empty(flat.shape, dtype=self.out_dtype(rhs.dtype),
                                  device=rhs.device)
                members = torch.argsort(group, stable=True).split(
                    torch.bincount(group, minlength=hs.numel()).tolist())
                for hv, rows in zip(hs.tolist(), members):
                    out[rows] = self._solve(self._factors.get(hv, self._factor), flat[rows])
        return out.to(self.out_dtype(rhs.dtype)).reshape(rhs.shape)


def _dense_rows(D: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
    """y_b = D x_b for every row x_b of ``flat`` (B, n): elementwise products summed per row."""
    if D.dtype != flat.dtype:
        common = torch.promote_types(D.dtype, flat.dtype)
        D, flat = D.to(common), flat.to(common)
    B, n = flat.shape
    if B == 0:
        return flat.clone()
    rows = max(1, _ROW_CHUNK // max(n * n, 1))
    return torch.cat([(flat[i:i + rows, None, :] * D).sum(-1) for i in range(0, B, rows)])


class DenseOperator(_MatrixOperator):
    """A dense (n, n) L: I + hL by Cholesky (symmetric L, when I + hL is positive definite)
    or LU with partial pivoting (``method`` 'auto', 'cholesky' or 'lu')."""

    kind = "dense"

    def __init__(self, D: torch.Tensor, method="auto"):
        if method not in ("auto", "lu", "cholesky"):
            raise ValueError(f"dense L: method must be 'auto', 'lu', 'cholesky' or 'cg', "
                             f"got {method!r}")
        super().__init__(method)
        self.dense, self.n = D, D.shape[0]
        self.is_complex = D.is_complex()
        self.symmetric = not self.is_complex and _max_abs(D - D.T) <= \
            SYMMETRY_RTOL * _max_abs(D)

    def apply(self, u):
        B = u.shape[0]
        flat = u.reshape(B, -1)
        self._check_n(flat.shape[1])
        out = _dense_rows(self.dense.to(device=u.device), flat)
        return out.reshape(u.shape).to(self.out_dtype(u.dtype))

    def _factor(self, h):
        D = self.dense
        M = torch.eye(self.n, dtype=D.dtype, device=D.device) + h * D
        if self.method in ("auto", "cholesky") and self.symmetric:
            C, info = torch.linalg.cholesky_ex(M)
            if int(info) == 0:
                return ("chol", C), C.numel() * C.element_size()
        if self.method == "cholesky":
            raise ValueError(f"I + hL is not symmetric positive definite for h={h}; "
                             f"use method='lu'")
        LU, piv = torch.linalg.lu_factor(M)
        return ("lu", LU, piv), LU.numel() * LU.element_size()

    def _solve(self, factor, flat):
        common = torch.promote_types(factor[1].dtype, flat.dtype)
        chol = factor[0] == "chol"
        split = chol and flat.is_complex() and not factor[1].is_complex()
        F = factor[1].to(flat.real.dtype if split else common)

        def one(b):  # b: (n, 1), a fresh (aligned) copy: same bits wherever the row sat
            if chol:
                return torch.cholesky_solve(b, F)
            return torch.linalg.lu_solve(F, factor[2], b)

        cols = []
        for row in flat:
            if split:
                cols.append(torch.complex(one(row.real.reshape(-1, 1).clone()),
                                          one(row.imag.reshape(-1, 1).clone())))
            else:
                cols.append(one(row.to(common).reshape(-1, 1).clone()))
        return torch.cat(cols, 1).T

    def as_dense(self, n, dtype, device):
        return self.dense.to(device=device, dtype=dtype)


class _ScipyMatrix(_MatrixOperator):
    """A scipy sparse L: L u by CSR products, column by column in a fixed order."""

    def __init__(self, A: sp.csr_matrix, method="auto"):
        super().__init__(method)
        self.sparse, self.n = A, A.shape[0]
        self.is_complex = bool(np.iscomplexobj(A.data))
        self.symmetric = not self.is_complex and _sparse_symmetric(A)

    def apply(self, u):
        B = u.shape[0]
        flat = u.reshape(B, -1)
        self._check_n(flat.shape[1])
        y = self.sparse @ _to_numpy(flat).T
        out = torch.from_numpy(np.ascontiguousarray(y.T)).to(u.device).reshape(u.shape)
        return out.to(self.out_dtype(u.dtype))

    def as_dense(self, n, dtype, device):
        return torch.as_tensor(self.sparse.toarray(), device=device).to(dtype)


class SparseOperator(_ScipyMatrix):
    """A general scipy sparse L: I + hL by sparse LU (``scipy.sparse.linalg.splu``)."""

    kind = "sparse"

    def __init__(self, A, method="auto"):
        if method not in ("auto", "splu"):
            raise ValueError(f"sparse L: method must be 'auto', 'splu', 'pttrf' or 'cg', "
                             f"got {method!r}")
        super().__init__(A, method)

    def _factor(self, h):
        from scipy.sparse.linalg import splu

        A = self.sparse
        lu = splu((sp.identity(self.n, dtype=A.dtype, format="csc") + h * A.tocsc()).tocsc())
        return lu, lu.nnz * (np.dtype(A.dtype).itemsize + 4) + 16 * self.n

    def _solve(self, lu, flat):
        x = _to_numpy(flat)
        if np.iscomplexobj(x) and not self.is_complex:
            y = [lu.solve(np.ascontiguousarray(r.real)) + 1j * lu.solve(
                np.ascontiguousarray(r.imag)) for r in x]
        else:
            y = [lu.solve(np.ascontiguousarray(r)) for r in x]
        return torch.from_numpy(np.stack(y)).to(flat.device)

    def solve_jacobian(self, F, h, d, tol):
        B, n = F.shape[0], F[0].numel()
        if B * n * n > 5e7:
            raise ValueError("Newton with a large sparse L and a nonlinear g is not supported "
                             "here (it would form dense Jacobians); use scheme 'imex_euler'")
        return super().solve_jacobian(F, h, d, tol)


class TridiagonalOperator(_ScipyMatrix):
    """A real tridiagonal scipy sparse L (e.g. the 1-D Laplacian of the heat equation).

    I + hL by LAPACK: symmetric L as positive definite, L D Lᵀ (``dpttrf``), else, or when
    that fails, with partial pivoting (``dgttrf``); O(n) per step size. Newton's Jacobians
    I + h(L - diag d) stay tridiagonal: one batched Thomas solve for all states.
    """

    kind = "tridiagonal"

    def __init__(self, A, method="auto"):
        if method not in ("auto", "pttrf"):
            raise ValueError(f"sparse L: method must be 'auto', 'splu', 'pttrf' or 'cg', "
                             f"got {method!r}")
        super().__init__(A, method)
        if method == "pttrf" and not self.symmetric:
            raise ValueError("method='pttrf' needs a real symmetric tridiagonal L")
        self.diagonals = tuple(np.asarray(A.diagonal(k), dtype=np.float64) for k in (-1, 0, 1))

    def _factor(self, h):
        lo, di, up = self.diagonals
        try:
            f = TridiagonalFactor(h * lo, 1.0 + h * di, h * up, symmetric=self.symmetric,
                                  require_spd=self.method == "pttrf")
        except ValueError as err:
            hint = "; use method='splu'" if self.method == "pttrf" else ""
            raise ValueError(f"I + hL for h={h}: {err}{hint}") from None
        return f, f.nbytes

    def _solve(self, factor, flat):
        y = factor.solve(_to_numpy(flat).T)  # (n, B): the Fortran-ordered view, no copy
        return torch.from_numpy(np.ascontiguousarray(y.T)).to(flat.device)

    def solve_shifted(self, rhs, h):
        # the common case (one step size, float64 states on the CPU) without the generic
        # plumbing: the same LAPACK call on the same numbers, so the same bits
        if isinstance(h, float) and rhs.dtype == torch.float64 and rhs.device.type == "cpu" \
                and rhs.shape[0] > 0:
            x = rhs.detach().numpy().reshape(rhs.shape[0], -1)
            self._check_n(x.shape[1])
            return torch.from_numpy(self.solve_rows(x, h)).reshape(rhs.shape)
        return super().solve_shifted(rhs, h)

    def solve_rows(self, x: np.ndarray, h: float, overwrite: bool = False) -> np.ndarray:
        """(I + hL)^{-1} applied to every row of a real float64 array x (B, n), as (B, n);
        with ``overwrite`` a C-contiguous x is solved in place (a temporary of the caller)."""
        return self._factors.get(h, self._factor).solve_rows(x, overwrite)

    def solve_jacobian(self, F, h, d, tol):
        if F.is_complex():
            return super().solve_jacobian(F, h, d, tol)
        B, n = F.shape[0], F[0].numel()
        lo, di, up = (torch.as_tensor(x).to(device=F.device, dtype=F.dtype)
                      for x in self.diagonals)
        hh = h if isinstance(h, float) else h.reshape(-1, 1)
        main = 1.0 + hh * (di - d.reshape(B, n))
        return batched_tridiagonal_solve((hh * lo).expand(B, n - 1), main,
                                         (hh * up).expand(B, n - 1),
                                         F.reshape(B, n)).reshape(F.shape)


class CGOperator(Operator):
    """A symmetric positive semi-definite L solved by batched conjugate gradients.

    Either a callable ``L(v)`` on (B, *state) tensors (probed once for symmetry and
    positivity with two seeded random vectors), or a matrix operator with method='cg'
    (symmetry checked at construction). I + hL and Newton's I + h(L - diag d) are solved by
    :func:`mgritlab.linalg.cg_solve`, each state stopping on its own.
    """

    uses_cg = True
    symmetric = True

    def __init__(self, L, cg_tol: float, cg_maxiter: int | None, method="auto"):
        super().__init__(method)
        self.cg_tol, self.cg_maxiter = float(cg_tol), cg_maxiter
        self.matrix = L if isinstance(L, Operator) else None
        self.fn = L.apply if self.matrix is not None else L
        self.kind = "callable" if self.matrix is None else f"cg({self.matrix.kind})"
        self._spd_checked = self.matrix is not None
        if self.matrix is not None:
            if self.matrix.is_complex:
                raise ValueError("CG solves need a real symmetric L; complex L is not "
                                 "supported with a callable or method='cg' — pass a matrix "
                                 "instead")
            if not self.matrix.symmetric:
                raise ValueError("CG needs a symmetric positive semi-definite L, but L is not "
                                 f"symmetric (max |L - L^T| > {SYMMETRY_RTOL:g} max |L|); use "
                                 "method='auto' (direct LU) for a non-symmetric L")

    def apply(self, u):
        out = self.fn(u)
        if not isinstance(out, torch.Tensor) or out.shape != u.shape:
            raise ValueError(f"the callable L must map a (B, *state) tensor to one of the "
                             f"same shape {tuple(u.shape)}, got "
                             f"{getattr(out, 'shape', type(out))}")
        return out

    def solve_shifted(self, rhs, h):
        hb = broadcast_h(h, rhs)
        return cg_solve(lambda v: v + hb * self.apply(v), rhs, x0=rhs, tol=self.cg_tol,
                        maxiter=self.cg_maxiter, check=self._spd_probe)

    def solve_jacobian(self, F, h, d, tol):
        hb = broadcast_h(h, F)
        return cg_solve(lambda w: w + hb * (self.apply(w) - d * w), F, x0=F,
                        tol=min(self.cg_tol, tol), maxiter=self.cg_maxiter)

    def as_dense(self, n, dtype, device):
        if self.matrix is None:
            raise ValueError("a callable L has no matrix; Newton with a full Jacobian needs L "
                             "as a matrix (or give g an elementwise derivative dg instead of "
                             "jac)")
        return self.matrix.as_dense(n, dtype, device)

    def _spd_probe(self, apply_fn, like: torch.Tensor):
        """Cheap symmetry/positivity check of a callable L with two random probes (once)."""
        if self._spd_checked:
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


def _max_abs(T: torch.Tensor) -> float:
    return float(T.abs().max()) if T.numel() else 0.0


def _sparse_symmetric(A: sp.csr_matrix) -> bool:
    if A.nnz == 0:
        return True
    return abs(A - A.T).max() <= SYMMETRY_RTOL * abs(A).max()


def _is_tridiagonal(A: sp.csr_matrix) -> bool:
    coo = A.tocoo()
    return coo.nnz == 0 or int(np.abs(coo.row - coo.col).max()) <= 1


def _check_square(shape):
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"L must be a square matrix, got shape {tuple(shape)}")


def make_operator(L, state_shape=None, method: str = "auto", cg_tol: float = 1e-10,
                  cg_maxiter: int | None = None) -> Operator:
    """The operator class for L (see the module docstring), with ``method`` checked."""
    if isinstance(L, Operator):
        return L
    if L is None or (callable(L) and not isinstance(L, (torch.Tensor, np.ndarray))
                     and not sp.issparse(L)):
        if L is None and method == "cg":
            raise ValueError("method='cg' needs a matrix or a callable L")
        if L is None:
            return ZeroOperator(method)
        if method not in ("auto", "cg"):
            raise ValueError(f"a callable L can only be solved by CG, not method={method!r}")
        return CGOperator(L, cg_tol, cg_maxiter, method)
    if isinstance(L, (int, float, complex)) or (
            isinstance(L, (torch.Tensor, np.ndarray)) and np.ndim(L) == 0):
        val = complex(L) if np.iscomplexobj(np.asarray(L)) else float(L)
        if not np.isfinite(val):
            raise ValueError(f"L = {L!r} is not finite")
        if method == "cg":
            raise ValueError("method='cg' needs a matrix or a callable L")
        return ScalarOperator(val, method)
    if sp.issparse(L):
        A = sp.csr_matrix(L)
        _check_square(A.shape)
        if method not in ("auto", "splu", "pttrf", "cg"):
            raise ValueError(f"sparse L: method must be 'auto', 'splu', 'pttrf' or 'cg', "
                             f"got {method!r}")
        tridiagonal = not np.iscomplexobj(A.data) and A.shape[0] >= 2 and _is_tridiagonal(A)
        if method == "pttrf" and not tridiagonal:
            raise ValueError("method='pttrf' needs a real symmetric tridiagonal L")
        if tridiagonal and method != "splu":
            op = TridiagonalOperator(A, "pttrf" if method == "pttrf" else "auto")
        else:
            op = SparseOperator(A, "splu" if method == "splu" else "auto")
        return CGOperator(op, cg_tol, cg_maxiter, method) if method == "cg" else op
    T = torch.as_tensor(L)
    if not (T.is_floating_point() or T.is_complex()):
        T = T.to(torch.float64)
    if T.dim() == 2 and (state_shape is None or tuple(T.shape) != tuple(state_shape)):
        _check_square(T.shape)
        if method not in ("auto", "lu", "cholesky", "cg"):
            raise ValueError(f"dense L: method must be 'auto', 'lu', 'cholesky' or 'cg', "
                             f"got {method!r}")
        op = DenseOperator(T, "auto" if method == "cg" else method)
        return CGOperator(op, cg_tol, cg_maxiter, method) if method == "cg" else op
    if state_shape is not None and tuple(T.shape) != tuple(state_shape):
        raise ValueError(f"a diagonal L must have the state's shape {tuple(state_shape)}, got "
                         f"{tuple(T.shape)}; pass a (n, n) matrix for a full operator")
    if method == "cg":
        raise ValueError("method='cg' needs a matrix or a callable L")
    return DiagonalOperator(T, method)
