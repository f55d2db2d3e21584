"""The semilinear ODE ``u' = -L u + g(t, u)`` that the steppers advance (thesis §2.1.2, §4.2)."""
from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .operators import make_operator

__all__ = ["SemilinearODE", "check_step_inputs", "check_state", "check_step_size",
           "check_step_sizes"]

_METHODS = ("auto", "splu", "pttrf", "lu", "cholesky", "cg")


class SemilinearODE:
    """``u' = -L u + g(t, u)`` on states of shape ``state_shape``.

    Parameters
    ----------
    L : None, scalar α, diagonal tensor (the state's shape), (n, n) matrix (torch, numpy or
        scipy sparse), a callable ``L(v)`` on (B, *state) tensors (symmetric positive
        semi-definite; solved by batched CG), or an :class:`~mgritlab.integrators.Operator`.
        ``ode.op`` is the operator class chosen for it (:func:`make_operator`).
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
        if method not in _METHODS:
            raise ValueError(f"unknown method {method!r}: use 'auto', 'splu', 'pttrf', 'lu', "
                             f"'cholesky' or 'cg'")
        if newton_tol <= 0 or cg_tol <= 0:
            raise ValueError("newton_tol and cg_tol must be positive")
        if int(newton_maxiter) < 1:
            raise ValueError(f"newton_maxiter must be >= 1, got {newton_maxiter}")
        self.state_shape = None if state_shape is None else tuple(int(s) for s in state_shape)
        self.op = make_operator(L, self.state_shape, method, cg_tol, cg_maxiter)
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


def check_state(ode: SemilinearODE, u) -> None:
    """Check that u is a (B, *state) tensor for ``ode`` (the checks of every step)."""
    if not isinstance(u, torch.Tensor):
        raise TypeError(f"u must be a torch.Tensor of shape (B, *state), got {type(u).__name__}")
    if u.dim() < 1:
        raise ValueError("u must have a leading batch dimension: shape (B, *state)")
    if ode.state_shape is not None and u.shape[1:] != ode.state_shape:
        raise ValueError(f"u has shape {tuple(u.shape)} but the ODE's state has shape "
                         f"{ode.state_shape}; pass u as (B, *state) = (B, "
                         f"{', '.join(map(str, ode.state_shape))})")
    if ode.op.uses_cg and u.is_complex():
        raise ValueError("complex states are not supported with CG; pass L as a matrix")


def check_step_size(h: float) -> float:
    """A python step size h, checked positive and finite."""
    h = float(h)
    if not (math.isfinite(h) and h > 0):
        raise ValueError(f"the step size must be positive and finite, got h={h}; "
                         f"a backward-in-time step is not supported here")
    return h


def check_step_sizes(h: torch.Tensor) -> None:
    """Check that a tensor of step sizes is positive and finite."""
    if not bool(torch.isfinite(h).all() & (h > 0).all()):
        raise ValueError(f"step sizes must be positive and finite, got min h="
                         f"{float(h.min()):.3g}")


def check_step_inputs(ode: SemilinearODE, u, t, h):
    """Validate a step's (u, t, h); returns t as (B,) float64 and h as a float or (B,) float64."""
    check_state(ode, u)
    if not (isinstance(t, torch.Tensor) and t.dtype == torch.float64 and t.device == u.device):
        t = torch.as_tensor(t, dtype=torch.float64, device=u.device)
    if t.dim() == 0:
        t = t.expand(u.shape[0])
    if t.shape != (u.shape[0],):
        raise ValueError(f"t must have shape (B,) = ({u.shape[0]},), got {tuple(t.shape)}")
    if isinstance(h, (int, float)) and not isinstance(h, bool):
        h = check_step_size(h)
    elif isinstance(h, torch.Tensor):
        if h.dim() == 0:
            return check_step_inputs(ode, u, t, float(h))
        if h.shape != (u.shape[0],):
            raise ValueError(f"h must be a float or a (B,) tensor with B={u.shape[0]}, "
                             f"got shape {tuple(h.shape)}")
        h = h.to(dtype=torch.float64, device=u.device)
        check_step_sizes(h)
    else:
        raise TypeError(f"h must be a python float or a (B,) tensor, got {type(h).__name__}")
    return u, t, h
