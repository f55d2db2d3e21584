"""Time grids of an MGRIT hierarchy and the propagator interface.

Level 0 is the given grid t_0 < t_1 < ... < t_N. Level l+1 keeps every cf_l-th point of
level l (thesis §3.1, Falgout et al. 2014 §2): its C-points are the indices 0, cf, 2cf, ...;
points after the last C-point are F-points of the last interval.

A propagator is any object with

    step(u, i, level) -> u_next        # u: (B, *state), i: (B,) physical time indices

that advances a batch of states by one step of ``level``'s grid: from t_i to t_{i+1} for a
forward level, from t_i to t_{i-1} for a backward (adjoint) level. ``level.h(i)`` gives the
step sizes, ``level.fine_index(i)`` the index on the finest grid (for per-layer parameters).

A propagator may also have

    instability_hint(level) -> str     # optional: what would stabilise this level's step

which the divergence guard (:mod:`mgritlab.mgrit.divergence`) appends when it finds ``level``
unstable ('' keeps the default advice: an implicit coarse step, a smaller cf, fewer levels).

``step`` must return a tensor of the shape and dtype of ``u`` (checked once per level and
solve: a ``(B, 1)`` result for a ``(B, 4)`` state would otherwise broadcast silently).

One rule makes serial and distributed runs agree to the last bit: the result for one state
of the batch must not depend on the other states in it (no batch-wide stopping tests in
inner solvers — stop each state on its own, as the Newton solver of
:mod:`mgritlab.integrators` does).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Propagator(Protocol):
    """Φ on one level: advances a batch of states by one step of that level's grid."""

    def step(self, u: torch.Tensor, i: torch.Tensor, level: Level) -> torch.Tensor:
        """u_next (same shape and dtype as u): one step of ``level`` from each point i."""
        ...


@dataclass(frozen=True, eq=False)
class Level:
    """One time grid of the hierarchy.

    ``t`` holds the physical times (increasing) of this level's points; ``stride`` is the number
    of finest-grid steps per step of this level (the product of the coarser cf's);
    ``direction`` is +1 for a forward (state) and -1 for a backward (adjoint) evolution.
    """

    index: int
    t: torch.Tensor
    stride: int = 1
    cf: int | None = None
    direction: int = 1
    relax: str = "F"

    @property
    def N(self) -> int:
        """Number of time steps (the level has N+1 points)."""
        return self.t.numel() - 1

    @cached_property
    def dt(self) -> float | None:
        """The constant step size of a uniform grid, else None."""
        d = torch.diff(self.t)
        if d.numel() == 0:
            return None
        h = float(d[0])
        return h if torch.allclose(d, d[0], rtol=1e-12, atol=0.0) else None

    def h(self, i: torch.Tensor) -> torch.Tensor:
        """Step sizes (positive) of the steps that start at physical indices ``i``."""
        i = torch.as_tensor(i, device=self.t.device)
        return (self.t[i + self.direction] - self.t[i]).abs()

    def t_next(self, i: torch.Tensor) -> torch.Tensor:
        """Times at which the steps starting at ``i`` arrive."""
        i = torch.as_tensor(i, device=self.t.device)
        return self.t[i + self.direction]

    def fine_index(self, i: torch.Tensor) -> torch.Tensor:
        """Index on the finest grid of this level's point ``i``."""
        return i * self.stride

    def to_physical(self, k: torch.Tensor | int):
        """Map a solver index k (0 = where the evolution starts) to a physical index."""
        return k if self.direction > 0 else self.N - k


@dataclass(frozen=True, eq=False)
class Hierarchy:
    """The levels, finest first, and the propagator of each level."""

    levels: tuple[Level, ...]
    propagators: tuple[Propagator, ...] = field(repr=False)

    def __len__(self) -> int:
        return len(self.levels)

    def summary(self) -> str:
        """A printable table: points, step, cf and relaxation per level."""
        rows = [f"{'level':>5} {'points':>8} {'stride':>7} {'cf':>4} {'relax':>6}  propagator"]
        for lv, prop in zip(self.levels, self.propagators):
            cf = "-" if lv.cf is None else str(lv.cf)
            relax = "solve" if lv.cf is None else lv.relax
            rows.append(
                f"{lv.index:>5} {lv.N + 1:>8} {lv.stride:>7} {cf:>4} {relax:>6}  "
                f"{type(prop).__name__}"
            )
        return "\n".join(rows)

    def __str__(self) -> str:
        return self.summary()


def _as_list(x, n: int, name: str) -> list:
    if isinstance(x, (list, tuple)):
        if len(x) < n:
            raise ValueError(f"{name} has {len(x)} entries but {n} are needed (one per level)")
        return list(x[:n])
    return [x] * n


def max_levels_for(nt: int, cf: int | Sequence[int], min_coarse: int = 2) -> int:
    """How many levels a grid of ``nt`` points allows with coarsening factors ``cf``."""
    n, levels = nt - 1, 1
    cfs = list(cf) if isinstance(cf, (list, tuple)) else None
    while True:
        c = cfs[levels - 1] if cfs is not None and levels - 1 < len(cfs) else (
            cfs[-1] if cfs else cf)
        if n // c + 1 < min_coarse or n // c < 1:
            return levels
        n //= c
        levels += 1


def build_hierarchy(
    t: torch.Tensor | Sequence[float],
    propagator: Propagator | Sequence[Propagator],
    *,
    max_levels: int = 2,
    cf: int | Sequence[int] = 2,
    relax: str | Sequence[str] | None = None,
    min_coarse: int = 2,
    direction: int = 1,
    device: torch.device | str | None = None,
) -> Hierarchy:
    """Build the time grids: level l+1 keeps every cf_l-th point of level l.

    ``propagator`` is one object used on every level (coarse levels re-discretise with their
    own step) or a sequence with one propagator per level. ``relax`` per level: 'F', 'FC',
    'FCF' or '(FC)^nF'; default 'FCF' on every level (PyMGRIT's default).
    Coarsening stops at ``max_levels`` — which must be reachable with at least
    ``min_coarse`` points on the coarsest level, else a ValueError says how many fit.
    """
    t = torch.as_tensor(t, dtype=torch.float64, device=device).flatten()
    if t.numel() < 2:
        raise ValueError(f"the time grid needs at least 2 points, got {t.numel()}")
    if not bool((torch.diff(t) > 0).all()):
        raise ValueError("the time grid must be strictly increasing (t_0 < t_1 < ...)")
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 (forward) or -1 (backward), got {direction}")
    if not isinstance(max_levels, int) or max_levels < 1:
        raise ValueError(f"max_levels must be a positive integer, got {max_levels!r}")
    cfs = _as_list(cf, max(max_levels - 1, 1), "cf")
    for c in cfs:
        if not isinstance(c, int) or c < 2:
            raise ValueError(f"coarsening factors must be integers >= 2, got cf={c!r}")
    relaxes = _as_list(relax if relax is not None else "FCF", max_levels, "relax")
    for r in relaxes:
        relax_sweeps(r)  # validates
    props = _as_list(propagator, max_levels, "propagator")
    for p in props:
        if not callable(getattr(p, "step", None)):
            raise TypeError(
                f"{type(p).__name__} is not a propagator: it needs a method step(u, i, level)")

    levels, stride, tl = [], 1, t
    for lvl in range(max_levels):
        last = lvl == max_levels - 1
        c = None if last else cfs[lvl]
        levels.append(Level(lvl, tl, stride, c, direction, relaxes[lvl]))
        if last:
            break
        n_coarse = (tl.numel() - 1) // c + 1
        if n_coarse < max(min_coarse, 2):
            fit = max_levels_for(t.numel(), cfs, min_coarse)
            raise ValueError(
                f"level {lvl + 1} would have {n_coarse} point(s): a grid of {t.numel()} points "
                f"with cf={cfs[:max_levels - 1]} allows at most {fit} level(s) with "
                f"{min_coarse}+ points on the coarsest; pass max_levels <= {fit} or more points")
        tl = tl[::c]
        stride *= c
    return Hierarchy(tuple(levels), tuple(props[: len(levels)]))


def relax_sweeps(relax: str) -> int:
    """Number of CF sweeps after the first F-sweep: 'F' -> 0, 'FCF' -> 1, '(FC)^2F' -> 2.

    'FC' (an F-sweep then a C-sweep, no trailing F) is returned as -1.
    """
    r = relax.replace(" ", "").upper()
    if r == "F":
        return 0
    if r == "FC":
        return -1
    if r == "FCF":
        return 1
    if r.startswith("(FC)^") and r.endswith("F"):
        try:
            nu = int(r[5:-1])
        except ValueError:
            nu = -2
        if nu >= 1:
            return nu
    raise ValueError(f"unknown relaxation {relax!r}: use 'F', 'FC', 'FCF' or '(FC)^nF' (n >= 1)")


def uniform_grid(t0: float, tf: float, nt: int) -> torch.Tensor:
    """``linspace(t0, tf, nt)`` in float64 with a clear error for bad input."""
    if nt < 2 or int(nt) != nt:
        raise ValueError(f"nt must be an integer >= 2, got {nt!r}")
    if not (math.isfinite(t0) and math.isfinite(tf)) or tf <= t0:
        raise ValueError(f"need finite t0 < tf, got t0={t0}, tf={tf}")
    return torch.linspace(t0, tf, int(nt), dtype=torch.float64)
