"""F- and C-relaxation, batched over all C-intervals of a level (thesis §3.1, Algorithm 1).

A level's local block holds the points [lo, hi) of its grid, in solver order (solver index 0 is
where the evolution starts), as one tensor ``u`` of shape ``(hi - lo, *state)``; ``lo`` is a
C-point, so the local C-points are the offsets 0, cf, 2cf, ...  The equations relaxed are the
rows of the all-at-once system A(u) = g (thesis eq. 3.3):

    u_0 = g_0,    u_i - Φ(u_{i-1}) = g_i   (i = 1..N).

One F-sweep is cf-1 batched propagator calls (offset k of every interval at once), one C-sweep
is one batched call; a loop over time points is never needed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .hierarchy import Level, Propagator


@dataclass(eq=False)
class LevelBlock:
    """The points [lo, hi) of one level that this process owns, and their work arrays."""

    level: Level
    propagator: Propagator
    lo: int
    hi: int
    u: torch.Tensor                      # current approximation, (hi - lo, *state)
    g: torch.Tensor | None = None        # FAS right-hand side (None on the finest level: g = 0)
    v: torch.Tensor | None = None        # restricted fine approximation (coarse levels)
    phys: torch.Tensor = field(default=None, repr=False)  # physical index of each local point
    counter: dict = field(default_factory=lambda: {"calls": 0, "states": 0})
    checked: bool = False                # has a step's output been checked (once per block)

    def __post_init__(self):
        if self.phys is None:
            k = torch.arange(self.lo, self.hi, device=self.level.t.device)
            self.phys = self.level.to_physical(k)

    @property
    def cf(self) -> int:
        return self.level.cf or 1

    def step(self, u: torch.Tensor, phys: torch.Tensor) -> torch.Tensor:
        """Φ applied to a batch (one propagator call), counted for the work statistics."""
        self.counter["calls"] += 1
        self.counter["states"] += u.shape[0]
        out = self.propagator.step(u, phys, self.level)
        if not self.checked:
            check_step_output(self.propagator, self.level, u, out)
            self.checked = True
        return out


def check_step_output(propagator, level: Level, u: torch.Tensor, out) -> None:
    """Raise a clear error when ``step`` returned something other than the next states in
    u's shape and dtype: broadcasting or casting it into the solution would be silent."""
    name = f"{type(propagator).__name__}.step on level {level.index}"
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"{name} returned {type(out).__name__}, not a tensor: step(u, i, "
                        f"level) must return the next states as a tensor shaped like u")
    if out.is_complex() and not u.is_complex():
        raise TypeError(
            f"{name} returned complex values ({out.dtype}) for real states ({u.dtype}): the "
            f"imaginary parts would be dropped. This is a complex problem: pass u0 as a "
            f"complex tensor, e.g. u0.to({str(out.dtype)!r})")
    if out.shape != u.shape or out.dtype != u.dtype:
        raise ValueError(
            f"{name} returned shape {tuple(out.shape)}, dtype {out.dtype} for states of shape "
            f"{tuple(u.shape)}, dtype {u.dtype}: step(u, i, level) must return one next state "
            f"per input state, in u's shape and dtype (B = {u.shape[0]} states here); pass u0 "
            f"in the propagator's dtype")


def f_relax(b: LevelBlock) -> None:
    """F-relaxation: u_i ← Φ(u_{i-1}) + g_i at every F-point, interval by interval in offset.

    Offset k of all intervals is advanced in one batched call, so a sweep is cf-1 calls.
    """
    cf, u, g = b.cf, b.u, b.g
    for k in range(1, cf):
        n = u[k::cf].shape[0]
        if n == 0:
            break
        new = b.step(u[k - 1 :: cf][:n], b.phys[k - 1 :: cf][:n])
        if g is not None:
            new = new + g[k::cf]
        u[k::cf] = new


def with_ghost(b: LevelBlock, prev: torch.Tensor, prev_phys: torch.Tensor,
               ghost: torch.Tensor | None):
    """Put the left neighbour's point (global index lo-1) in front of a batch of predecessors.

    Where the block starts at index 0 there is no neighbour and the batch is returned as is.
    """
    if b.lo == 0:
        return prev, prev_phys
    if ghost is None:
        raise RuntimeError("a step across a block boundary needs the neighbour's point")
    ghost_phys = b.phys.new_tensor([b.level.to_physical(b.lo - 1)])
    return torch.cat([ghost.unsqueeze(0), prev]), torch.cat([ghost_phys, prev_phys])


def c_point_update(b: LevelBlock, ghost: torch.Tensor | None):
    """Φ(u_{c-1}) + g_c at this block's C-points c (the global C-point 0 excluded).

    ``ghost`` is u at global index lo-1 (owned by the previous process); None when lo = 0.
    Returns (the slice of local C-points, values) — slices, not index tensors: strided views
    cost nothing, gathers and scatters do.
    """
    cf, u = b.cf, b.u
    sl = slice(0 if b.lo > 0 else cf, None, cf)
    n = u[sl].shape[0]
    if n == 0:
        return sl, u[:0]
    k = n - (1 if b.lo > 0 else 0)  # predecessors inside the block
    prev, prev_phys = with_ghost(b, u[cf - 1 :: cf][:k], b.phys[cf - 1 :: cf][:k], ghost)
    new = b.step(prev, prev_phys)
    if b.g is not None:
        new = new + b.g[sl]
    return sl, new


def c_relax(b: LevelBlock, ghost: torch.Tensor | None) -> None:
    """C-relaxation: u_c ← Φ(u_{c-1}) + g_c at every C-point (one batched call)."""
    sl, new = c_point_update(b, ghost)
    b.u[sl] = new


def c_residual(b: LevelBlock, ghost: torch.Tensor | None):
    """Residual r_c = g_c + Φ(u_{c-1}) - u_c at this block's C-points (c ≠ 0).

    After an F-relaxation the F-point residuals vanish, so these are the whole residual.
    Returns (the slice of local C-points, r).
    """
    sl, new = c_point_update(b, ghost)
    return sl, new - b.u[sl]


def sequential_sweep(b: LevelBlock, ghost: torch.Tensor | None = None) -> None:
    """Solve the block exactly: u_i = Φ(u_{i-1}) + g_i for i = lo..hi-1 (i ≠ 0), one point at
    a time; ``ghost`` is u at global index lo-1 (the left neighbour's final last point, None
    when lo = 0). Each point is one call on a batch of one, so blocks swept one after another
    give the same floats as one sweep over the whole level."""
    u, g = b.u, b.g
    for k in range(0 if b.lo > 0 else 1, u.shape[0]):
        prev, prev_phys = ((u[k - 1 : k], b.phys[k - 1 : k]) if k > 0
                           else with_ghost(b, u[:0], b.phys[:0], ghost))
        new = b.step(prev, prev_phys)[0]
        u[k] = new if g is None else new + g[k]
