"""One-step integrators of order 1 for ``u' = -L u + g(t, u)`` (thesis §2.1.2, eqs. 4.6–4.9).

A stepper advances a *batch* of states:

    stepper.step(ode, u, t, h) -> u_next      # u: (B, *state), t: (B,) float64 start times
                                              # h: python float (uniform grid) or (B,) tensor

* ``forward_euler``   u_{n+1} = u_n + h (-L u_n + g(t_n, u_n))                 (thesis §2.1.2)
* ``backward_euler``  (I + hL) u_{n+1} - h g(t_{n+1}, u_{n+1}) = u_n            (thesis §2.1.2)
  a single linear solve when g does not depend on u, Newton's method otherwise.
* ``imex_euler``      u_{n+1} = (I + hL)^{-1} (u_n + h g(t_n, u_n))  (thesis eq. 4.7, g = f + Lu)
  L implicit, g explicit; for a scalar L = α this is the shared-diagonal scaling
  u_{n+1} = (u_n + h g) / (1 + hα), i.e. the step h/(1 + hα) of thesis eq. 4.17.

The linear algebra is the operator's (:mod:`mgritlab.integrators.operators`); every state of a
batch is computed on its own, Newton's stopping test included.
"""
from __future__ import annotations

import math

import torch

from ..linalg import batched_dot
from .ode import SemilinearODE, check_state, check_step_inputs, check_step_size, check_step_sizes
from .operators import TridiagonalOperator, broadcast_h, dense_jacobian_solve

__all__ = ["NewtonError", "Stepper", "ForwardEuler", "BackwardEuler", "IMEXEuler", "STEPPERS",
           "get_stepper", "GridStepper"]

_TABLE_BYTES = 1 << 26
"""Largest forcing table a :class:`GridStepper` keeps (64 MiB); larger grids evaluate g per call."""


class NewtonError(RuntimeError):
    """Newton's method inside an implicit step did not converge."""


class Stepper:
    """Base class: ``step(ode, u, t, h)`` advances a batch by one step.

    For a pure forcing g(t) (``ode.g`` given, ``g_depends_on_u`` False) a scheme's explicit
    term depends on t and h only: :meth:`forcing` computes it, and ``_step(..., forcing=...)``
    takes it precomputed (a :class:`GridStepper` tabulates it once per grid).
    """

    name: str = ""
    order: int = 0
    implicit: bool = False

    def step(self, ode: SemilinearODE, u: torch.Tensor, t: torch.Tensor, h) -> torch.Tensor:
        u, t, h = check_step_inputs(ode, u, t, h)
        return self._step(ode, u, t, h)

    def on_grid(self, ode: SemilinearODE, t, dt: float | None = None,
                h: torch.Tensor | None = None) -> GridStepper:
        """This scheme for ``ode`` on the time grid t (see :class:`GridStepper`)."""
        return GridStepper(self, ode, t, dt=dt, h=h)

    def forcing(self, ode: SemilinearODE, t: torch.Tensor, h, like: torch.Tensor):
        """The scheme's forcing term for the steps from t with sizes h, for states like
        ``like`` (only called for a pure forcing g(t))."""
        raise NotImplementedError  # pragma: no cover - abstract

    def _step(self, ode, u, t, h, forcing=None):  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r}, order={self.order})"


class ForwardEuler(Stepper):
    """u_{n+1} = u_n + h (-L u_n + g(t_n, u_n)); stable for |1 + hλ| <= 1 (thesis §2.1.2)."""

    name, order = "forward_euler", 1

    def forcing(self, ode, t, h, like):
        return ode._g(t, like)  # g(t_n)

    def _step(self, ode, u, t, h, forcing=None):
        f = ode.rhs(t, u) if forcing is None else -ode.op.apply(u) + forcing
        return u + broadcast_h(h, u) * f


class IMEXEuler(Stepper):
    """u_{n+1} = (I + hL)^{-1}(u_n + h g(t_n, u_n)) (thesis eq. 4.7, g = f + L u; eq. 4.8 as
    printed drops the h L u_n of g — lessons/THESIS_NOTES.md)."""

    name, order, implicit = "imex_euler", 1, True

    def forcing(self, ode, t, h, like):
        return broadcast_h(h, like) * ode._g(t, like)  # h g(t_n)

    def _step(self, ode, u, t, h, forcing=None):
        if forcing is not None:
            rhs = u + forcing
        else:
            rhs = u if ode.g is None else u + broadcast_h(h, u) * ode._g(t, u)
        return ode.op.solve_shifted(rhs, h)


class BackwardEuler(Stepper):
    """(I + hL) u_{n+1} - h g(t_{n+1}, u_{n+1}) = u_n (thesis §2.1.2).

    A linear solve when g does not depend on u; Newton's method otherwise (elementwise
    derivative ``dg`` or full Jacobian ``jac`` of g; tolerance ``ode.newton_tol`` on the
    relative update, at most ``ode.newton_maxiter`` iterations, else :class:`NewtonError`).
    """

    name, order, implicit = "backward_euler", 1, True

    def forcing(self, ode, t, h, like):
        return broadcast_h(h, like) * ode._g(t + h, like)  # h g(t_{n+1})

    def _step(self, ode, u, t, h, forcing=None):
        if forcing is not None:
            return ode.op.solve_shifted(u + forcing, h)
        if not ode.g_depends_on_u:
            rhs = u if ode.g is None else u + broadcast_h(h, u) * ode._g(t + h, u)
            return ode.op.solve_shifted(rhs, h)
        return self._newton(ode, u, t + h, h)

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


_MISSING = object()


class GridStepper:
    """A scheme bound to an ODE and a time grid t_0 < t_1 < ... < t_N:

        grid = get_stepper("backward_euler").on_grid(ode, t, dt=...)
        u_next = grid.step(u, i)            # i: (B,) indices, steps from t_i to t_{i+1}

    gives the same numbers as ``stepper.step(ode, u, t[i], h_i)``, with the work that does not
    depend on u done once instead of on every call: the step sizes (``dt`` for a uniform grid,
    else ``h`` or the grid's differences) and their checks and, for a pure forcing g(t), the
    scheme's forcing term (:meth:`Stepper.forcing`) at every step, tabulated per dtype when
    the table takes at most 64 MiB (else g is evaluated per call). g is then evaluated for all
    steps in one batch, which gives the same bits as any smaller batch for a g that keeps the
    batch-independence rule. Real float64 states on the CPU with a tridiagonal L, a uniform
    grid and an implicit Euler scheme go straight from the numpy view of u to LAPACK.
    """

    def __init__(self, stepper: Stepper, ode: SemilinearODE, t, *, dt: float | None = None,
                 h: torch.Tensor | None = None):
        self.stepper, self.ode = stepper, ode
        self.t = torch.as_tensor(t, dtype=torch.float64).reshape(-1)
        self.N = self.t.numel() - 1
        if dt is not None:
            self.dt, self.h = check_step_size(dt), None
            rows = self.N + 1  # a uniform grid steps from any of its points
        else:
            h = (self.t[1:] - self.t[:-1]).abs() if h is None else \
                torch.as_tensor(h, dtype=torch.float64).reshape(-1)
            if h.shape != (self.N,):
                raise ValueError(f"h must hold the grid's {self.N} step sizes, got shape "
                                 f"{tuple(h.shape)}")
            self.dt, self.h = None, h
            self._h_ok = bool(torch.isfinite(h).all() & (h > 0).all())
            rows = self.N
        self._rows = rows
        self._tabulate = ode.g is not None and not ode.g_depends_on_u
        self._tables: dict = {}
        self._np_tables: dict = {}  # float64 CPU tables as (rows, n) numpy views
        self._lapack = (self.dt is not None and isinstance(ode.op, TridiagonalOperator)
                        and type(stepper) in (BackwardEuler, IMEXEuler)
                        and not ode.g_depends_on_u)

    def _table(self, u: torch.Tensor):
        """The forcing term at every step for states like u, or None (too large)."""
        key = (u.dtype, u.device)
        tab = self._tables.get(key, _MISSING)
        if tab is _MISSING:
            tab = None
            nbytes = self._rows * u[0].numel() * u.element_size()
            if 0 < self._rows and nbytes <= _TABLE_BYTES:
                like = u.new_zeros((self._rows, *u.shape[1:]))
                t = self.t[: self._rows].to(u.device)
                h = self.dt if self.h is None else self.h.to(u.device)
                tab = self.stepper.forcing(self.ode, t, h, like).contiguous()
                if tab.shape != like.shape:
                    raise ValueError(f"the forcing term has shape {tuple(tab.shape)} for "
                                     f"states of shape {tuple(like.shape)}")
                if tab.dtype == torch.float64 and tab.device.type == "cpu":
                    self._np_tables[u.dtype] = tab.detach().numpy().reshape(self._rows, -1)
            self._tables[key] = tab
        return tab

    def step(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        """One step from t_i to t_{i+1} for every state of the batch u (B, *state)."""
        ode = self.ode
        check_state(ode, u)
        if not isinstance(i, torch.Tensor):
            i = torch.as_tensor(i, device=self.t.device)
        h = self.dt
        if h is None:
            h = self.h[i].to(u.device)
            if not self._h_ok:
                check_step_sizes(h)
        tab = self._table(u) if self._tabulate else None
        if self._lapack and u.dtype == torch.float64 and u.device.type == "cpu" \
                and u.shape[0] > 0 and (ode.g is None or self._np_tables.get(u.dtype) is not None):
            # the same arithmetic as the generic path below (rhs = u + forcing, then the
            # tridiagonal LAPACK solve) on numpy views, without torch's per-operation overhead
            B = u.shape[0]
            x = (u.detach() if u.requires_grad else u).numpy()
            if x.ndim != 2:
                x = x.reshape(B, -1)
            ode.op._check_n(x.shape[1])
            if ode.g is not None:  # the forcing rows (a fresh array) plus u, in place
                rhs = self._np_tables[u.dtype][i.numpy()]
                rhs += x
                x = rhs
            y = torch.from_numpy(ode.op.solve_rows(x, h, overwrite=ode.g is not None))
            return y if u.dim() == 2 else y.reshape(u.shape)
        t = self.t[i].to(u.device)
        forcing = None if tab is None else tab[i.to(u.device)]
        return self.stepper._step(ode, u, t, h, forcing)

    def __repr__(self) -> str:
        grid = f"dt={self.dt:g}" if self.dt is not None else "non-uniform"
        return f"GridStepper({self.stepper.name!r}, N={self.N}, {grid})"
