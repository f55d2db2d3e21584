"""A critical-path model of MGRIT's parallel speedup.

Count the propagator applications that lie on the critical path of one cycle when level l's
N_l steps are split over P processes in blocks of whole C-intervals (the largest block holds
n_l = ⌈N_{L-1}/P⌉·cf_{l+1}···cf_{L-2} intervals, worked on one after another), as in the
work model of the seed paper ("Parallelizing over artificial neural network training runs
with multigrid", §3.4.4) and Falgout et al. (2014), §4:

    F-relaxation       (cf_l − 1)·n_l        C-relaxation        n_l
    FAS restriction    2·n_l   (Φ at the fine C-points, Φ_c at the coarse points)
    interpolation      (cf_l − 1)·n_l        coarsest level      N_{L−1}   (sequential)

σ_V sums these over the levels of a V-cycle (F-relaxation first on every level, ν CF-sweeps,
restriction, the coarse cycle, interpolation); σ_F follows the F-cycle recursion, which
repeats a V-cycle below every level l > 0. Each iteration also evaluates the fine residual
(n_0 applications). Sequential stepping costs N_0 applications, so the model speedup is

    S = N_0 / (iterations · σ).

Communication and the cost of different batch sizes are ignored: S is a ratio of counts. It
is a ratio of wall times only if every application costs the same (one state stepped alone as
one inside a batch) and communication and waiting are free, so it is *not* an upper bound in
general — a batched state that is cheaper than a single step puts measurements above it
(lesson 05). σ_F follows the F-cycle recursion; it does not take the seed paper's eq. (19)
literally, which multiplies by the iteration count although its σ_V (eq. 18) already has it.

``distribution='coarsest'`` (default) is this package's split (:func:`~.partition.block_bounds`:
whole coarsest intervals per process, so at most N_{L−1} processes). ``'per_level'`` is the
split of XBraid/TorchBraid, which the thesis's runs used: every level's C-intervals are
dealt out over all P processes, n_l = ⌈(N_l/cf_l)/P⌉, so P may exceed the coarsest level's
size (processes without coarse points idle there); the coarsest level stays sequential.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .hierarchy import Hierarchy, relax_sweeps


@dataclass(frozen=True)
class LevelCost:
    steps: int        # N_l
    cf: int | None    # None on the coarsest level
    sweeps: int       # ν (CF sweeps after the first F); -1 for 'FC'


def level_costs(hierarchy: Hierarchy) -> list[LevelCost]:
    return [LevelCost(lv.N, lv.cf, relax_sweeps(lv.relax)) for lv in hierarchy.levels]


def _intervals(costs: list[LevelCost], lvl: int, ranks: int,
               distribution: str = "coarsest") -> int:
    """C-intervals of level ``lvl`` in the largest block, split as :func:`block_bounds` does:
    ⌈U/P⌉ coarsest intervals, each holding cf_{l+1}···cf_{L-2} intervals of level l; or
    ⌈(N_l/cf_l)/P⌉ with ``distribution='per_level'``."""
    if ranks == 1 or distribution == "per_level":
        return math.ceil(math.ceil(costs[lvl].steps / costs[lvl].cf) / ranks)
    units = math.ceil(costs[-1].steps / ranks)
    return units * math.prod(c.cf for c in costs[lvl + 1 : -1])


def _cycle(costs: list[LevelCost], lvl: int, ranks: int, kind: str, first_f: bool,
           distribution: str = "coarsest") -> float:
    c = costs[lvl]
    if c.cf is None:
        return float(c.steps)
    n = _intervals(costs, lvl, ranks, distribution)
    f_sweep, c_sweep = (c.cf - 1) * n, n
    cost = f_sweep if first_f else 0
    cost += max(c.sweeps, 0) * (c_sweep + f_sweep) + (c_sweep if c.sweeps < 0 else 0)
    cost += 2 * n                                           # FAS restriction
    cost += _cycle(costs, lvl + 1, ranks, kind, True, distribution)
    cost += f_sweep                                         # ideal interpolation
    if lvl != 0 and kind == "F":
        cost += _cycle(costs, lvl, ranks, "V", False, distribution)
    return cost


def critical_path(hierarchy: Hierarchy | list[LevelCost], ranks: int = 1, cycle: str = "V",
                  first_iteration: bool = False, distribution: str = "coarsest") -> float:
    """σ: propagator applications on the critical path of one iteration on ``ranks`` processes.

    Later iterations skip the first F-relaxation on level 0 (every iteration ends with one);
    pass ``first_iteration=True`` for the first. ``distribution``: 'coarsest' or
    'per_level' (see the module docstring).
    """
    costs = level_costs(hierarchy) if isinstance(hierarchy, Hierarchy) else hierarchy
    if ranks < 1:
        raise ValueError(f"ranks must be >= 1, got {ranks}")
    if distribution not in ("coarsest", "per_level"):
        raise ValueError(f"distribution must be 'coarsest' or 'per_level', got {distribution!r}")
    if distribution == "coarsest" and ranks > costs[-1].steps:
        raise ValueError(f"{ranks} ranks do not fit: the coarsest level has {costs[-1].steps} "
                         f"interval(s), at most one rank per coarsest interval (or model "
                         f"XBraid's split with distribution='per_level')")
    if ranks > costs[0].steps:
        raise ValueError(f"{ranks} ranks for {costs[0].steps} fine steps: at most one rank per "
                         f"step")
    cycle = cycle.upper()
    if len(costs) == 1:
        return float(costs[0].steps)
    residual = _intervals(costs, 0, ranks, distribution)
    return _cycle(costs, 0, ranks, cycle, first_iteration, distribution) + residual


def model_speedup(hierarchy: Hierarchy | list[LevelCost], iterations: int, ranks: int,
                  cycle: str = "V", distribution: str = "coarsest") -> float:
    """S = N / (iterations · σ) (the first iteration counted with its extra F-relaxation)."""
    costs = level_costs(hierarchy) if isinstance(hierarchy, Hierarchy) else hierarchy
    if iterations < 1:
        raise ValueError("iterations must be >= 1")
    work = critical_path(costs, ranks, cycle, first_iteration=True, distribution=distribution)
    work += (iterations - 1) * critical_path(costs, ranks, cycle, distribution=distribution)
    return costs[0].steps / work


def costs_for(nt: int, cf: int | list[int], levels: int, relax: str | list[str] = "FCF"
              ) -> list[LevelCost]:
    """Level costs without building a hierarchy (for what-if tables: 1024 ranks, N = 2^14)."""
    cfs = cf if isinstance(cf, list) else [cf] * (levels - 1)
    relaxes = relax if isinstance(relax, list) else [relax] * levels
    n, out = nt - 1, []
    for lvl in range(levels):
        last = lvl == levels - 1
        out.append(LevelCost(n, None if last else cfs[lvl], relax_sweeps(relaxes[lvl])))
        if not last:
            n //= cfs[lvl]
            if n < 1:
                raise ValueError(f"{levels} levels with cf={cfs} do not fit {nt} points")
    return out
