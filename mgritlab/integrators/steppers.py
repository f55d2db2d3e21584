"""One-step integrators of order 1 for ``u' = -L u + g(t, u)`` (thesis §2.1.2, eq. 4.8).

A stepper advances a *batch* of states:

    stepper.step(ode, u, t, h) -> u_next      # u: (B, *state), t: (B,) float64 start times
                                              # h: python float (uniform grid) or (B,) tensor

* ``forward_euler``   u_{n+1} = u_n + h (-L u_n + g(t_n, u_n))                 (thesis §2.1.2)
* ``backward_euler``  (I + hL) u_{n+1} - h g(t_{n+1}, u_{n+1}) = u_n            (thesis §2.1.2)
  a single linear solve when g does not depend on u, Newton's method otherwise.
* ``imex_euler``      u_{n+1} = (I + hL)^{-1} (u_n + h g(t_n, u_n))              (thesis eq. 4.8)
  L implicit, g explicit; for a scalar L = α this is the shared-diagonal scaling
  u_{n+1} = (u_n + h g) / (1 + hα), i.e. the step h/(1 + hα) of thesis eq. 4.17.

The linear algebra is the operator's (:mod:`mgritlab.integrators.operators`); every state of a
batch is computed on its own, Newton's stopping test included.
"""
from __future__ import annotations

import math

import torch

from ..linalg import batched_dot
from .ode import SemilinearODE, check_step_inputs
from .operators import broadcast_h, dense_jacobian_solve

__all__ = ["NewtonError", "Stepper", "ForwardEuler", "BackwardEuler", "IMEXEuler", "STEPPERS",
           "get_stepper"]


class NewtonError(RuntimeError):
    """Newton's method inside an implicit step did not converge."""


class Stepper:
    """Base class: ``step(ode, u, t, h)`` advances a batch by one step."""

    name: str = ""
    order: int = 0
    implicit: bool = False

    def step(self, ode: SemilinearODE, u: torch.Tensor, t: torch.Tensor, h) -> torch.Tensor:
        u, t, h = check_step_inputs(ode, u, t, h)
        return self._step(ode, u, t, h)

    def _step(self, ode, u, t, h):  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r}, order={self.order})"


class ForwardEuler(Stepper):
    """u_{n+1} = u_n + h (-L u_n + g(t_n, u_n)); stable for |1 + hλ| <= 1 (thesis §2.1.2)."""

    name, order = "forward_euler", 1

    def _step(self, ode, u, t, h):
        return u + broadcast_h(h, u) * ode.rhs(t, u)


class IMEXEuler(Stepper):
    """u_{n+1} = (I + hL)^{-1}(u_n + h g(t_n, u_n)) (thesis eq. 4.8)."""

    name, order, implicit = "imex_euler", 1, True

    def _step(self, ode, u, t, h):
        rhs = u if ode.g is None else u + broadcast_h(h, u) * ode._g(t, u)
        return ode.op.solve_shifted(rhs, h)


class BackwardEuler(Stepper):
    """(I + hL) u_{n+1} - h g(t_{n+1}, u_{n+1}) = u_n (thesis §2.1.2).

    A linear solve when g does not depend on u; Newton's method otherwise (elementwise
    derivative ``dg`` or full Jacobian ``jac`` of g; tolerance ``ode.newton_tol`` on the
    relative update, at most ``ode.newton_maxiter`` iterations, else :class:`NewtonError`).
    """

    name, order, implicit = "backward_euler", 1, True

    def _step(self, ode, u, t, h):
        t1 = t + h
        if not ode.g_depends_on_u:
            rhs = u if ode.g is None else u + broadcast_h(h, u) * ode._g(t1, u)
            return ode.op.solve_shifted(rhs, h)
        return self._newton(ode, u, t1, h)

    def _newton(self, ode, u, t1, h):
        if ode.dg is None and ode.jac is None:
            raise ValueError("backward Euler with a g that depends on u needs its derivative: "
                             "pass dg=(elementwise ∂g/∂u) or jac=(full Jacobian) to "
                             "SemilinearODE, or use scheme 'imex_euler' (g explicit)")
        hb = broadcast_h(h, u)
        op = ode.op
        v = u.clone()
        B, n = u.shape[0], u[0].numel()
        step_norm = float("inf")
        # a tolerance below the dtype's resolution cannot be met (float32: ~1e-6)
        tol = max(ode.newton_tol, 8 * torch.finfo(u.dtype).eps)
        active = torch.ones(B, dtype=torch.bool, device=u.device)
        shape = (B,) + (1,) * (u.dim() - 1)
        for _ in range(ode.newton_maxiter):
            F = v + hb * (op.apply(v) - ode._g(t1, v)) - u
            if ode.jac is None:
                delta = op.solve_jacobian(F, h, ode.dg(t1, v), 1e-2 * ode.newton_tol)
            else:
                Jg = ode.jac(t1, v)
                if tuple(Jg.shape) != (B, n, n):
                    raise ValueError(f"jac(t, u) must return (B, n, n) = ({B}, {n}, {n}), "
                                     f"got {tuple(Jg.shape)}")
                delta = dense_jacobian_solve(op.as_dense(n, v.dtype, v.device), F, h, Jg)
            # Each state stops at its own convergence, so a state's result never depends on
            # which other states share its batch (MGRIT on 1 or P processes: same numbers).
            v = torch.where(active.reshape(shape), v - delta, v)
            rel = _norms(delta) / (1.0 + _norms(v))
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


def _norms(x: torch.Tensor) -> torch.Tensor:
    """||x_b|| of every state, each summed on its own (also a lone state of many entries)."""
    a = x.abs() if x.is_complex() else x
    return batched_dot(a, a).sqrt()


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
