"""The problem base class: an ODE ``u' = -L u + g(t, u)``, an initial value and a scheme,
exposed as an MGRIT propagator ``step(u, i, level)`` (see :mod:`mgritlab.mgrit.hierarchy`)."""
from __future__ import annotations

import contextlib
import copy
import math
import weakref

import torch

from ..integrators import SemilinearODE, Stepper, get_stepper
from ..integrators.steppers import GridStepper


class Problem:
    """Base class of the model problems; each one is a propagator for forward levels.

    Attributes: ``u0`` (tensor of shape ``state_shape``), ``t0``, ``tf`` (default interval),
    ``ode`` (:class:`~mgritlab.integrators.SemilinearODE`), ``scheme`` (registry name) and
    ``stepper``. Subclasses set these in ``__init__`` and may override :meth:`exact`.
    """

    u0: torch.Tensor
    t0: float = 0.0
    tf: float = 1.0
    ode: SemilinearODE

    def __init__(self, scheme: str = "backward_euler"):
        self.scheme = scheme

    @property
    def scheme(self) -> str:
        return self._stepper.name

    @scheme.setter
    def scheme(self, name: str) -> None:
        self._stepper: Stepper = get_stepper(name)
        # the scheme on each level's grid (GridStepper: step sizes, checks and the forcing
        # table worked out once per level), dropped with the level
        self._grids: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def __getstate__(self) -> dict:  # the per-level cache is neither copied nor pickled
        state = self.__dict__.copy()
        state.pop("_grids", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._grids = weakref.WeakKeyDictionary()

    def forget_grids(self) -> None:
        """Drop the per-level step data :meth:`step` keeps (call after changing the problem's
        data in place, e.g. a forcing)."""
        self._grids = weakref.WeakKeyDictionary()

    @property
    def stepper(self) -> Stepper:
        return self._stepper

    @property
    def state_shape(self) -> tuple[int, ...]:
        return tuple(self.u0.shape)

    @property
    def dtype(self) -> torch.dtype:
        return self.u0.dtype

    def with_scheme(self, name: str) -> Problem:
        """A shallow copy of this problem that uses scheme ``name`` (factorisations shared)."""
        other = copy.copy(self)
        other.scheme = name
        return other

    # ---- the propagator protocol ------------------------------------------------------------
    def step(self, u: torch.Tensor, i: torch.Tensor, level) -> torch.Tensor:
        """One step of ``level``'s grid from t_i to t_{i+1} for a batch ``u`` (B, *state)."""
        try:
            grid = self._grids.get(level)
        except TypeError:  # a level that cannot be referenced weakly: no cache
            grid = None
        if grid is None or grid.ode is not self.ode or grid.stepper is not self._stepper:
            grid = self.on_level(level)
        return grid.step(u, i)

    def on_level(self, level) -> GridStepper:
        """The scheme on ``level``'s grid (:class:`~mgritlab.integrators.GridStepper`), kept
        while the level lives: what :meth:`step` uses."""
        if getattr(level, "direction", 1) != 1:
            raise ValueError(
                f"{type(self).__name__}.step advances forward in time only, but the level has "
                f"direction={level.direction}; build the hierarchy with direction=+1 (an adjoint "
                f"needs its own backward propagator)")
        dt = level.dt
        h = None
        if dt is None:
            h = level.h(torch.arange(level.t.numel() - 1, device=level.t.device))
        grid = self._stepper.on_grid(self.ode, level.t, dt=dt, h=h)
        with contextlib.suppress(TypeError):  # a level that cannot be referenced weakly
            self._grids[level] = grid
        return grid

    def rhs(self, t, u: torch.Tensor) -> torch.Tensor:
        """f(t, u) = -L u + g(t, u) for a batch u (B, *state)."""
        t = torch.as_tensor(t, dtype=torch.float64).expand(u.shape[0])
        return self.ode.rhs(t, u)

    def exact(self, t) -> torch.Tensor:
        """The exact solution at times ``t``: shape (len(t), *state)."""
        raise NotImplementedError(f"{type(self).__name__} has no exact solution")

    def has_exact(self) -> bool:
        try:
            self.exact(torch.tensor([self.t0], dtype=torch.float64))
        except NotImplementedError:
            return False
        return True

    # ---- conveniences for lessons -------------------------------------------------------------
    # (written here rather than borrowed from mgrit: problems sit below mgrit, DESIGN.md)
    def grid(self, nt: int, t0: float | None = None, tf: float | None = None) -> torch.Tensor:
        """``nt`` uniform time points on [t0, tf] (defaults: the problem's interval)."""
        t0 = self.t0 if t0 is None else t0
        tf = self.tf if tf is None else tf
        if isinstance(nt, bool) or int(nt) != nt or nt < 2:
            raise ValueError(f"nt must be an integer >= 2, got {nt!r}")
        if not (math.isfinite(t0) and math.isfinite(tf)) or tf <= t0:
            raise ValueError(f"need finite t0 < tf, got t0={t0}, tf={tf}")
        return torch.linspace(t0, tf, int(nt), dtype=torch.float64)

    def solve(self, t) -> torch.Tensor:
        """Sequential time stepping on grid ``t`` (an int means ``grid(t)``): (N+1, *state),
        the same steps as :func:`mgritlab.mgrit.sequential_solve`."""
        if isinstance(t, int):
            t = self.grid(t)
        t = as_times(t)
        d = torch.diff(t)
        if d.numel() == 0 or not bool((d > 0).all()):
            raise ValueError("the grid must have at least two increasing time points")
        # a uniform grid steps with one float h, as an MGRIT level does (Level.dt)
        dt = float(d[0]) if torch.allclose(d, d[0], rtol=1e-12, atol=0.0) else None
        grid = self._stepper.on_grid(self.ode, t, dt=dt, h=None if dt is not None else d)
        u = self.u0.new_zeros((t.numel(), *self.u0.shape))
        u[0] = self.u0
        idx = torch.arange(t.numel())
        for k in range(t.numel() - 1):
            u[k + 1] = grid.step(u[k : k + 1], idx[k : k + 1])[0]
        return u

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(state={self.state_shape}, dtype={self.dtype}, "
                f"scheme={self.scheme!r}, t=[{self.t0}, {self.tf}])")


def as_times(t) -> torch.Tensor:
    """Times as a 1-D float64 tensor."""
    return torch.as_tensor(t, dtype=torch.float64).reshape(-1)
