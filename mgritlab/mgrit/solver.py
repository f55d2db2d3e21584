"""MGRIT-FAS: V- and F-cycles on a hierarchy of time grids (thesis Algorithm 1).

Conventions follow PyMGRIT, so numbers compare with other MGRIT codes:

* initial guess u(t_0) = u0, every other point zero (or a user's guess: warm start);
* one iteration on level l: F-relaxation (on level 0 only in the first iteration, since every
  iteration ends with one), then ν CF-sweeps, FAS restriction, the coarse cycle, correction
  at C-points and ideal interpolation (an F-relaxation); an F-cycle then runs a V-cycle on
  every level l > 0 once more;
* the residual after iteration k is r_i = Φ(u_{i-1}) - u_i at the fine C-points i ≠ 0, and
  the reported norm is sqrt(Σ_i ‖r_i‖²) with plain Euclidean norms, computed after the
  iteration's last F-relaxation (so the F-point residuals are zero).
"""
from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from numbers import Integral, Real

import torch

from . import divergence
from .divergence import MGRITDivergenceError
from .hierarchy import Hierarchy, Propagator, build_hierarchy, relax_sweeps
from .partition import SerialPartition
from .relaxation import LevelBlock, c_relax, c_residual, f_relax, sequential_sweep
from .transfer import fas_restrict, ideal_interpolate, restrict_inject


def check_options(*, tol, max_iter, relax, rtol=0.0) -> None:
    """ValueError naming the option when ``tol``/``rtol`` is not a finite number >= 0,
    ``max_iter`` not a whole number >= 0, or ``relax`` not a relaxation string ('F', 'FC',
    'FCF', '(FC)^nF') or a sequence of them (one per level)."""
    for name, value in (("tol", tol), ("rtol", rtol)):
        if (isinstance(value, bool) or not isinstance(value, Real)
                or not (math.isfinite(value) and value >= 0)):
            raise ValueError(f"{name}={value!r}: give a finite number >= 0 (the "
                             f"{'absolute' if name == 'tol' else 'relative'} residual "
                             "tolerance)")
    if isinstance(max_iter, bool) or not isinstance(max_iter, Integral) or max_iter < 0:
        raise ValueError(f"max_iter={max_iter!r}: give a whole number >= 0")
    for r in [relax] if isinstance(relax, str) else (
            list(relax) if isinstance(relax, (list, tuple)) else [relax]):
        if not isinstance(r, str):
            raise ValueError(f"relax={relax!r}: give a relaxation string, 'F', 'FC', 'FCF' "
                             "or '(FC)^nF' (or one per level)")
        relax_sweeps(r)


@dataclass
class MGRITResult:
    """What a solve returns: the solution, the residual history and where the time went.

    ``u`` is ``(N+1, *state)`` in physical time order (``None`` when not gathered);
    ``u_local`` is this process's fine block ``(hi - lo, *state)`` in solver order and
    ``bounds`` its (lo, hi) — pass ``u_local`` back as ``u_init_local`` to warm-start a solve
    with the same hierarchy and partition. ``residuals[k]`` is the norm after iteration k+1.
    """

    u: torch.Tensor | None
    residuals: list[float]
    converged: bool
    iterations: int
    setup_seconds: float
    iteration_seconds: list[float]
    phase_seconds: dict[str, float]
    work: list[dict]
    hierarchy: Hierarchy = field(repr=False)
    u_local: torch.Tensor | None = field(default=None, repr=False)
    bounds: tuple[int, int] | None = None
    stop_reason: str = ""

    @property
    def conv_factors(self) -> list[float]:
        """ρ_k = ‖r_k‖ / ‖r_{k-1}‖ (nan where the previous residual is zero)."""
        r = self.residuals
        return [r[k] / r[k - 1] if r[k - 1] > 0 else math.nan for k in range(1, len(r))]

    @property
    def solve_seconds(self) -> float:
        return sum(self.iteration_seconds)

    def table(self) -> str:
        """Residual history as a PyMGRIT-like table."""
        lines = [f"{'iter':>4}  {'residual':>12}  {'conv. factor':>12}  {'seconds':>9}"]
        for k, (r, s) in enumerate(zip(self.residuals, self.iteration_seconds)):
            rho = "" if k == 0 else f"{self.conv_factors[k - 1]:12.4e}"
            lines.append(f"{k + 1:>4}  {r:12.4e}  {rho:>12}  {s:9.4f}")
        return "\n".join(lines)

    def __str__(self) -> str:
        state = "converged" if self.converged else f"not converged ({self.stop_reason})"
        return (f"MGRIT {state} in {self.iterations} iteration(s), "
                f"{self.solve_seconds:.4g} s\n{self.hierarchy.summary()}\n{self.table()}")


class MGRIT:
    """Multigrid reduction in time with FAS for any propagator.

    Parameters
    ----------
    propagator : an object with ``step(u, i, level)``, or one per level.
    t : the finest time grid (increasing).
    max_levels, cf, relax, min_coarse : the hierarchy (see :func:`build_hierarchy`).
    coarse_propagator : the propagator of the coarse levels (one for all, or one per coarse
        level); default: ``propagator`` re-discretised with each level's step.
    cycle : 'V' or 'F'.
    tol, rtol : stop when ‖r_k‖ <= max(tol, rtol·‖r_1‖).
    max_iter : iteration limit (the result says whether it converged).
    nested : nested iteration for the initial guess (solve the coarsest level, inject, one
        V-cycle per level on the way up).
    direction : +1 forward (state), -1 backward (adjoint: starts at t_N and runs to t_0).
    partition : None (one process) or a :class:`mgritlab.mgrit.mpi.MPIPartition`.
    divergence_factor : raise :class:`MGRITDivergenceError` when a residual exceeds this
        multiple of the smallest residual so far, or is NaN/inf (the guard:
        :func:`mgritlab.mgrit.divergence.check`).
    check_growth : also raise when one iteration *increases* the residual and a coarse level
        is diagnosed unstable — for solves of a few iterations (layer-parallel training,
        T₁ = 2), which end long before a residual could grow by ``divergence_factor``.
    guard : False: no divergence or stagnation stop at all (only a non-finite residual
        raises), for convergence studies that want every iterate, growing or not.
    """

    def __init__(self, propagator: Propagator | Sequence[Propagator], t, *, max_levels: int = 2,
                 cf: int | Sequence[int] = 2, relax: str | Sequence[str] = "FCF",
                 coarse_propagator=None, cycle: str = "V", tol: float = 1e-7,
                 rtol: float = 0.0, max_iter: int = 100, nested: bool = False,
                 min_coarse: int = 2, direction: int = 1, partition=None,
                 divergence_factor: float = 1e4, check_growth: bool = False,
                 guard: bool = True, device=None):
        if coarse_propagator is not None:
            if isinstance(propagator, (list, tuple)):
                raise ValueError("give either one propagator per level or coarse_propagator")
            coarse = (list(coarse_propagator) if isinstance(coarse_propagator, (list, tuple))
                      else [coarse_propagator] * (max_levels - 1))
            if len(coarse) < max_levels - 1:
                raise ValueError(f"coarse_propagator needs {max_levels - 1} entries, "
                                 f"got {len(coarse)}")
            propagator = [propagator, *coarse[: max_levels - 1]]
        cycle = str(cycle).upper()
        if cycle not in ("V", "F"):
            raise ValueError(f"cycle must be 'V' or 'F', got {cycle!r}")
        check_options(tol=tol, rtol=rtol, max_iter=max_iter, relax=relax)
        self.hierarchy = build_hierarchy(t, propagator, max_levels=max_levels, cf=cf,
                                         relax=relax, min_coarse=min_coarse,
                                         direction=direction, device=device)
        self.cycle, self.tol, self.rtol, self.max_iter = cycle, tol, rtol, max_iter
        self.nested, self.divergence_factor = nested, divergence_factor
        self.check_growth, self.guard = check_growth, guard
        self.partition = partition if partition is not None else SerialPartition()
        self.bounds = self.partition.bounds(self.hierarchy)
        self._sweeps = [relax_sweeps(lv.relax) for lv in self.hierarchy.levels]

    # -- set-up --------------------------------------------------------------------------
    def _blocks(self, u0: torch.Tensor, u_init: torch.Tensor | None,
                u_init_local: torch.Tensor | None = None) -> list[LevelBlock]:
        blocks = []
        for lv, prop, (lo, hi) in zip(self.hierarchy.levels, self.hierarchy.propagators,
                                      self.bounds):
            u = u0.new_zeros((hi - lo, *u0.shape))
            blocks.append(LevelBlock(lv, prop, lo, hi, u))
        fine = blocks[0]
        if u_init is not None:
            u_init = torch.as_tensor(u_init, dtype=u0.dtype, device=u0.device)
            if u_init.shape != (fine.level.N + 1, *u0.shape):
                raise ValueError(f"u_init must have shape {(fine.level.N + 1, *u0.shape)} "
                                 f"(N+1 points x state), got {tuple(u_init.shape)}")
            fine.u.copy_(u_init[fine.phys])
        if u_init_local is not None:
            u_init_local = torch.as_tensor(u_init_local, dtype=u0.dtype, device=u0.device)
            if u_init_local.shape != fine.u.shape:
                raise ValueError(
                    f"u_init_local must have shape {tuple(fine.u.shape)} (this process's fine "
                    f"block [{fine.lo}, {fine.hi}) in solver order x state), got "
                    f"{tuple(u_init_local.shape)}: pass result.u_local of a solve with the "
                    f"same hierarchy and partition")
            fine.u.copy_(u_init_local)
        for b in blocks:
            if b.lo == 0:
                b.u[0] = u0
        return blocks

    # -- one cycle -----------------------------------------------------------------------
    def _cycle(self, blocks, lvl: int, kind: str, first_f: bool, clock) -> None:
        b = blocks[lvl]
        part = self.partition
        if lvl == len(blocks) - 1:
            with clock("coarse solve"):
                self._coarsest_solve(b)
            return
        with clock("relax"):
            if first_f:
                f_relax(b)
            nu = self._sweeps[lvl]
            for _ in range(max(nu, 0)):
                c_relax(b, part.ghost(b.u))
                f_relax(b)
            if nu < 0:  # FC
                c_relax(b, part.ghost(b.u))
        with clock("restrict"):
            v = restrict_inject(b)
            fas_restrict(b, blocks[lvl + 1], v, part.ghost(b.u), part.ghost(v))
        self._cycle(blocks, lvl + 1, kind, True, clock)
        with clock("interpolate"):
            ideal_interpolate(b, blocks[lvl + 1])
        if lvl != 0 and kind == "F":
            self._cycle(blocks, lvl, "V", False, clock)

    def _coarsest_solve(self, b: LevelBlock) -> None:
        """Sweep the coarsest level sequentially, pipelined over the processes: wait for the
        left neighbour's final last point, sweep this block, pass its last point on. Every
        point comes from the same one-state call as in one process: the same floats."""
        part = self.partition
        sequential_sweep(b, part.recv_left(b.u[0]))
        part.send_right(b.u[-1])

    def _nested_iteration(self, blocks, clock) -> None:
        """Solve on the coarsest grid, inject upwards, one V-cycle per intermediate level."""
        self._coarsest_solve(blocks[-1])
        for lvl in range(len(blocks) - 2, -1, -1):
            blocks[lvl].u[:: blocks[lvl].cf] = blocks[lvl + 1].u
            if lvl > 0:
                self._cycle(blocks, lvl, "V", True, clock)

    def residual_norm(self, blocks) -> float:
        """sqrt(Σ ‖r_i‖²) over the fine C-points i ≠ 0 (PyMGRIT's convergence norm)."""
        b = blocks[0]
        _, r = c_residual(b, self.partition.ghost(b.u))
        sq = r.reshape(r.shape[0], -1).abs().pow(2).sum(dim=1)
        return self.partition.norm(sq)

    # -- the solve -----------------------------------------------------------------------
    def solve(self, u0, u_init=None, *, u_init_local=None, gather: bool = True,
              progress: bool = False, callback=None) -> MGRITResult:
        """Iterate from ``u0`` (the state where the evolution starts) to the tolerance.

        ``u_init``: an initial guess ``(N+1, *state)`` in physical order (warm start).
        ``u_init_local``: instead, only this process's fine block of the guess, in solver
        order (``result.u_local`` of an earlier solve), so no process needs all N+1 points.
        ``gather=False``: leave ``result.u`` None; nothing then collects the fine level.
        ``callback(k, u_local)``: called after iteration k with this process's fine block
        (solver order), e.g. to record errors per iteration.
        """
        t_start = time.perf_counter()
        fine_t = self.hierarchy.levels[0].t
        u0 = torch.as_tensor(u0)
        if not u0.is_floating_point() and not u0.is_complex():
            u0 = u0.to(torch.float64)
        u0 = u0.to(fine_t.device)
        phases: dict[str, float] = defaultdict(float)

        class _Clock:
            def __init__(self, name):
                self.name = name

            def __enter__(self):
                self.t = time.perf_counter()

            def __exit__(self, *exc):
                phases[self.name] += time.perf_counter() - self.t

        if u_init is not None and u_init_local is not None:
            raise ValueError("give either u_init (the whole guess) or u_init_local (this "
                             "process's block of it), not both")
        if not bool(torch.isfinite(u0).all()):
            raise ValueError(f"u0 has non-finite entries (NaN or inf) at "
                             f"{(~torch.isfinite(u0)).nonzero().tolist()[:5]}: MGRIT needs a "
                             f"finite initial state")
        blocks = self._blocks(u0, u_init, u_init_local)
        if self.nested:
            self._nested_iteration(blocks, _Clock)
        setup = time.perf_counter() - t_start

        residuals, seconds, converged, message = [], [], False, None
        bar = None
        if progress and self.partition.rank == 0:
            from tqdm.auto import tqdm
            bar = tqdm(total=self.max_iter, desc="MGRIT", unit="it")
        if len(blocks) == 1:  # one level: MGRIT is sequential time stepping
            t0 = time.perf_counter()
            with _Clock("coarse solve"):
                self._coarsest_solve(blocks[0])
            with _Clock("residual"):
                residuals.append(self.residual_norm(blocks))
            seconds.append(time.perf_counter() - t0)
            if not math.isfinite(residuals[-1]):
                raise MGRITDivergenceError(
                    f"sequential stepping (one level) gave residual {residuals[-1]}. "
                    + divergence.nonfinite_origin(blocks))
            converged = True
        for k in range(self.max_iter if len(blocks) > 1 else 0):
            t0 = time.perf_counter()
            self._cycle(blocks, 0, self.cycle, first_f=(k == 0), clock=_Clock)
            with _Clock("residual"):
                res = self.residual_norm(blocks)
            seconds.append(time.perf_counter() - t0)
            residuals.append(res)
            if callback is not None:
                callback(k + 1, blocks[0].u)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(residual=f"{res:.3e}")
            if res <= max(self.tol, self.rtol * residuals[0]):
                converged = True
                break
            stop = divergence.check(residuals, blocks, u0, self.partition,
                                    divergence_factor=self.divergence_factor,
                                    check_growth=self.check_growth, tol=self.tol,
                                    guard=self.guard)
            if stop:
                message = stop
                break
        if bar is not None:
            bar.close()

        fine = blocks[0]
        u_full = None
        if gather:
            u_full = self.partition.allgather(fine.u)
            if fine.level.direction < 0:
                u_full = u_full.flip(0)
        work = [dict(level=b.level.index, **b.counter) for b in blocks]
        if message is None:
            message = "converged" if converged else f"max_iter={self.max_iter} reached"
        return MGRITResult(u_full, residuals, converged, len(residuals), setup, seconds,
                           dict(phases), work, self.hierarchy, fine.u, (fine.lo, fine.hi),
                           message)


def solve(propagator, u0, t, **options) -> MGRITResult:
    """One-call MGRIT: ``MGRIT(propagator, t, **options).solve(u0)``."""
    solve_opts = {k: options.pop(k) for k in ("u_init", "u_init_local", "gather", "progress",
                                              "callback") if k in options}
    u_init = solve_opts.pop("u_init", None)
    return MGRIT(propagator, t, **options).solve(u0, u_init, **solve_opts)
