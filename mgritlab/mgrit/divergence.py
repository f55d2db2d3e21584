"""The divergence guard of MGRIT: is a residual history going wrong, and why.

Pure functions of what they are given — the residual history, the level blocks, the start
state u0 and the partition — so the solver keeps no state for them and a test can call them
directly. Every process takes the same decision: decisions depend only on global residuals,
on u0 (which every process has) and on reductions over the partition.

Why a guard at all: MGRIT converges only when every coarse propagator is stable; an
unstable coarse step amplifies the error instead of damping it, and the residual grows
(Dobrev, Kolev, Petersson, Schroder 2017; thesis §3.3). The guard then names the level whose
propagator amplifies perturbations most per unit time, by a power iteration on the
linearised step (:func:`diagnose`).

A propagator may add advice of its own: an optional method ``instability_hint(level) -> str``
(see :mod:`mgritlab.mgrit.hierarchy`) returns what would stabilise ``level`` ('' for the
default advice).
"""
from __future__ import annotations

import math
from itertools import pairwise

import torch

from .hierarchy import Level
from .relaxation import LevelBlock

#: a batch-independence probe flags a step whose batched and one-by-one results differ by
#: more than this relative amount (round-off of batched BLAS kernels stays far below).
MIXING_TOL = 1e-8

DEFAULT_HINT = ("Use an implicit (backward Euler) or IMEX step on the coarse levels "
                "(coarse_propagator=...), a smaller cf, or fewer levels.")


class MGRITDivergenceError(RuntimeError):
    """The residual grew without bound, turned NaN/inf or stagnated for a reason the guard
    can name (an unstable coarse step, non-finite values, a step that mixes batch members)."""


def initial_scale(u0: torch.Tensor, fine: Level) -> float:
    """max|u0|·sqrt(N_c): the size a residual of states no larger than u0 can have."""
    n_c = max(fine.N // (fine.cf or 1), 1)
    return max(float(u0.abs().max()), 1e-300) * math.sqrt(n_c)


def forced_scale(fine: LevelBlock, u0: torch.Tensor, partition=None) -> float:
    """max(|u0|, |Φ_0(u0)|)·sqrt(N_c): as :func:`initial_scale`, with the first fine step.

    A state that starts at zero (a recurrent network's h_0 = 0) is sized by its forcing (the
    inputs x_t), which u0 alone does not show. The process that owns the first step takes
    it; a reduction gives every process the same value (a collective: every process calls
    it when one does, as the residual that triggers it is global)."""
    size = 0.0
    if fine.lo == 0 and fine.hi > 1:
        with torch.no_grad():
            first = fine.propagator.step(u0.unsqueeze(0), fine.phys[:1], fine.level)
        size = float(first.abs().max()) if bool(torch.isfinite(first).all()) else 0.0
    if partition is not None:
        size = partition.norm(torch.tensor([size * size], dtype=torch.float64))
    n_c = max(fine.level.N // (fine.level.cf or 1), 1)
    return max(initial_scale(u0, fine.level), size * math.sqrt(n_c))


def first_growth(residuals: list[float], floor: float = 0.0) -> bool:
    """Whether the last iteration raised the residual above ``floor`` for the first time in
    this solve (the growth check runs once per solve: its diagnosis costs a few steps). A rise
    that ends at or below ``floor`` (round-off, :func:`roundoff_floor`) does not count, so it
    cannot use up the one check."""
    r = residuals
    if len(r) < 2 or not r[-1] > r[-2] or not r[-1] > floor or not math.isfinite(r[-1]):
        return False
    return not any(b > a and b > floor for a, b in pairwise(r[:-1]))


def check(residuals: list[float], blocks: list[LevelBlock], u0: torch.Tensor, partition, *,
          divergence_factor: float, check_growth: bool, tol: float,
          guard: bool = True) -> str | None:
    """The guard after each iteration: raise :class:`MGRITDivergenceError` or return a reason
    to stop quietly ("stalled at round-off"), or None to go on.

    It raises on

    * a non-finite residual (naming where the first non-finite value came from);
    * a residual beyond ``divergence_factor²`` times :func:`forced_scale` (blown up from the
      first iteration) when a coarse level is unstable, or beyond ``divergence_factor`` times
      the smallest residual so far;
    * with ``check_growth``: the first iteration that raises the residual, when a coarse level
      is unstable — for solves of a few iterations (layer-parallel training, T₁ = 2) that end
      long before a residual could grow by ``divergence_factor``;
    * neither of the last two below :func:`roundoff_floor`: once converged, an iteration only
      moves round-off, which may round upwards (no divergence);
    * stagnation (five iterations with ρ > 0.98) above round-off when a coarse level is
      unstable, or when the step mixes batch members (:func:`batch_mixing`).

    With ``guard=False`` only the first (a non-finite residual) applies.
    """
    res, k = residuals[-1], len(residuals)
    smallest = min(residuals)
    if not math.isfinite(res):
        raise MGRITDivergenceError(
            f"MGRIT diverged: residual {res} after iteration {k}. {nonfinite_origin(blocks)}\n"
            + diagnose(blocks, u0)[1])
    if not guard:
        return None
    if (res > divergence_factor**2 * initial_scale(u0, blocks[0].level)
            and res > divergence_factor**2 * forced_scale(blocks[0], u0, partition)):
        unstable, message = diagnose(blocks, u0)
        if unstable:
            raise MGRITDivergenceError(
                f"MGRIT diverged: residual {res:.3e} after iteration {k}, far beyond the size "
                f"of the initial state.\n" + message)
    rose = check_growth and k > 1 and res > residuals[-2]  # the floor is a collective: only then
    if rose and first_growth(residuals, roundoff_floor(blocks[0], partition)):
        unstable, message = diagnose(blocks, u0)
        if unstable:
            raise MGRITDivergenceError(
                f"MGRIT diverges: iteration {k} raised the residual from {residuals[-2]:.3e} "
                f"to {res:.3e}.\n" + message)
    if (smallest > 0 and res > divergence_factor * smallest
            and res > roundoff_floor(blocks[0], partition)):
        raise MGRITDivergenceError(
            f"MGRIT diverged: residual {res:.3e} after iteration {k} (smallest so far "
            f"{smallest:.3e}).\n" + diagnose(blocks, u0)[1])
    last = residuals[-6:]
    if len(last) == 6 and all(b > 0.98 * a for a, b in pairwise(last)):
        if res <= roundoff_floor(blocks[0], partition):
            return "stalled at round-off"
        mixing = batch_mixing(blocks[0], partition)
        if mixing > MIXING_TOL:
            raise MGRITDivergenceError(
                f"MGRIT stagnated at residual {res:.3e} (tol {tol:.1e}) after iteration {k} "
                f"because the propagator's step mixes the states of a batch: stepping states "
                f"together and one at a time differs by {mixing:.3g} (relative) on level 0. "
                f"step(u, i, level) must advance each state u[b] on its own — no batch-wide "
                f"sums, norms, means or stopping tests (the batch-independence rule of "
                f"mgritlab.mgrit.hierarchy); MGRIT's relaxation and residual batch different "
                f"states, so a mixing step has no fixed point to converge to.")
        unstable, message = diagnose(blocks, u0)
        if unstable:
            raise MGRITDivergenceError(
                f"MGRIT stagnated at residual {res:.3e} (tol {tol:.1e}) after iteration {k}.\n"
                + message)
    return None


def roundoff_floor(fine: LevelBlock, partition) -> float:
    """1000 ε ‖u_C‖: below this the residual is round-off, whatever the tolerance says."""
    uc = fine.u[:: fine.cf]
    sq = uc.reshape(uc.shape[0], -1).abs().pow(2).sum(dim=1)
    eps = torch.finfo(uc.real.dtype if uc.is_complex() else uc.dtype).eps
    return 1e3 * eps * partition.norm(sq)


def batch_mixing(b: LevelBlock, partition) -> float:
    """max_b ‖Φ(U)_b − Φ(u_b)‖ / ‖Φ(u_b)‖ over a few states of this block stepped together
    (Φ(U)) and one at a time (Φ(u_b)); the largest over all processes. Zero for a step that
    keeps the batch-independence rule. A handful of steps: run it only on suspicion."""
    n = min(4, b.u.shape[0] - 1)  # the block's last point may be t_N: no step from there
    x, i = b.u[:n], b.phys[:n]
    if n < 2:  # a two-point block: pair its first state with a different one
        x = torch.stack([b.u[0], 0.5 * b.u[0] + 1])
        i = b.phys[:1].repeat(2)
    with torch.no_grad():
        together = b.propagator.step(x, i, b.level)
        apart = torch.cat([b.propagator.step(x[j : j + 1], i[j : j + 1], b.level)
                           for j in range(x.shape[0])])
    diff = (together - apart).reshape(x.shape[0], -1).norm(dim=1)
    size = apart.reshape(x.shape[0], -1).norm(dim=1).clamp_min(1e-300)
    worst = float((diff / size).max())
    sq = torch.tensor([worst if math.isfinite(worst) else 0.0]) ** 2
    return partition.norm(sq) if partition is not None else math.sqrt(float(sq))


def nonfinite_origin(blocks: list[LevelBlock]) -> str:
    """Where this process first sees non-finite values: the level, the time point and step."""
    for b in blocks:
        bad = ~torch.isfinite(b.u.reshape(b.u.shape[0], -1)).all(dim=1)
        if bool(bad.any()):
            k = int(bad.nonzero()[0])
            p = int(b.phys[k])
            lv = b.level
            frm = lv.to_physical(b.lo + k - 1) if b.lo + k > 0 else None
            step = "" if frm is None else (
                f", made by the step from point {frm} (t={float(lv.t[frm]):.4g})")
            return (f"Non-finite values (NaN/inf) came from the propagator "
                    f"{type(b.propagator).__name__}: first on level {lv.index} at point {p} "
                    f"(t={float(lv.t[p]):.4g}){step}. Check the step for overflow or an "
                    f"invalid operation there (a too large step, a state outside its domain).")
    return "Non-finite values (NaN/inf) came from the propagator's steps."


def hint_for(propagator, level: Level) -> str:
    """The propagator's own advice for an unstable ``level`` (its optional
    ``instability_hint(level)``), else :data:`DEFAULT_HINT`."""
    hint = getattr(propagator, "instability_hint", None)
    text = hint(level) if callable(hint) else ""
    return text or DEFAULT_HINT


def diagnose(blocks: list[LevelBlock], u0: torch.Tensor) -> tuple[bool, str]:
    """Name the level whose propagator amplifies perturbations the most per unit time.

    A power iteration (8 steps, seeded: the same on every process) on the step linearised at
    u0 gives each level's amplification per step; a coarse level is unstable when it grows
    where the fine level decays, or grows much faster per unit time than the fine level.
    Returns (whether a coarse level is unstable, a message for the user).
    """
    lines, worst, growing, fine_rate = [], None, [], 0.0
    gen = torch.Generator().manual_seed(0)
    for b in blocks:
        lv = b.level
        x = u0.unsqueeze(0).clone()
        start = torch.as_tensor([lv.to_physical(0)], device=x.device)
        d = torch.randn(x.shape, generator=gen, dtype=torch.float64).to(x)
        amp = 0.0
        with torch.no_grad():
            base = b.propagator.step(x, start, lv)
            for _ in range(8):
                d = d / d.norm()
                eps = 1e-6 * max(1.0, float(x.abs().max()))
                d = (b.propagator.step(x + eps * d, start, lv) - base) / eps
                amp = float(d.norm())
        h = lv.dt or float(lv.h(start)[0])
        lines.append(f"  level {lv.index}: step {h:.4g}, amplification per step {amp:.4g}")
        rate = math.log(amp) / h if amp > 0 else -math.inf
        if lv.index == 0:
            fine_rate = max(rate, 0.0)
        elif amp > 1.0 + 1e-12 and rate > 2.0 * fine_rate + 1e-12:
            growing.append(lv.index)
            if worst is None or rate > worst[1]:
                worst = (lv.index, rate, h, amp, b)
    if worst is not None:
        head = (f"Level {worst[0]} looks unstable: its propagator amplifies perturbations "
                f"by {worst[3]:.3g} per step of size {worst[2]:.3g} (amplification > 1 on "
                f"level(s) {', '.join(map(str, growing))}). ")
        hint = hint_for(worst[4].propagator, worst[4].level)
    elif fine_rate > 0:
        head = ("No coarse level grows much faster than the fine level, but the fine "
                "propagator itself amplifies perturbations (see level 0 below): unless the "
                "exact solution grows, the fine step is unstable — use a smaller step or "
                "an implicit scheme there. ")
        hint = hint_for(blocks[0].propagator, blocks[0].level)
    else:
        head = "No coarse level is clearly unstable. "
        hint = hint_for(blocks[0].propagator, blocks[0].level)
    return worst is not None, head + hint + "\n" + "\n".join(lines)
