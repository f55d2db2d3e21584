"""MGRIT over training steps: the solvers of Schroder (2022) §3 and the runs behind its
Tables 1–20 (full reference in REFERENCES.md).

A *solver* fixes Φ_i^(ℓ) (eq. 12): the learning rate per level, the examples of each step
and the coarsening factor m = 2 —

    Naive     α^(ℓ) = α_b (eq. 10), all examples every step (eq. 11)
    Solver 1  α^(ℓ) = min(2^ℓ α_b, α_max) (eq. 14), all examples
    Solver 2  eq. (14), example mod(i, K) in step i (eq. 15)
    Solver 3  eq. (14), example mod(⌊i/2⌋, K) (eq. 16)

and a run solves the all-at-once system (5) for N₀ steps with MGRIT-FAS as the paper's §3.2
states: FCF-relaxation, m = 2, coarsest level at most 10 steps (two-level runs: one coarse
level), halting tolerance 10⁻⁹·√N₀ on the Euclidean norm of r = g − A(w), at most 50
iterations, ρ = (‖r_k‖/‖r₀‖)^{1/k}. "Two-level" is a V-cycle on two levels (the coarse level
solved exactly); "V" and "F" use every level down to ≤ 10 steps.

Conventions the paper leaves open, and the readings taken here (README of
``results/training_runs`` has the numbers that decided them):

* N₀ counts training steps: the grid has N₀ + 1 weight vectors w_0 … w_{N₀} (eq. 5).
* ‖r₀‖ is the residual of the initial guess (w_0 given, every other w_i = 0, §2.3.2) after
  the first F-relaxation, at the C-points — where XBraid first measures it; the residual
  before any relaxation is recorded too (``r0_unrelaxed``).
* α_b: the tables' captions say 0.1 for the three-layer runs; the text says Table 1 uses
  α_b = 1.0 "from [11]", and "α^(ℓ) is allowed to increase up to level 3" with α_max = 8
  holds only for α_b = 1. α_b = 1 reproduces Tables 1–2 and 5; 0.1 does not (the record
  keeps α_b, so both can be run).
* which example a coarse point uses: see :mod:`mgritlab.problems.training`
  (``coarse_examples``).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from ..mgrit.divergence import MGRITDivergenceError
from ..mgrit.solver import MGRIT
from ..mgrit.speedup import model_speedup
from ..problems.networks import TrainingData, binary_addition_problem, xor_problem
from ..problems.training import FINEST_LEVEL, TrainingSteps, constant, doubling

SOLVERS = ("naive", "solver1", "solver2", "solver3")
CYCLES = ("two-level", "V", "F")
PROBLEMS = {"xor": xor_problem, "binary_addition": binary_addition_problem}


@dataclass(frozen=True)
class Solver:
    """One of the paper's solvers with its learning rates: Φ_i^(ℓ) of eq. (12)."""

    name: str
    alpha_b: float
    alpha_max: float | None = None
    coarse_examples: str = "level"

    def __post_init__(self):
        if self.name not in SOLVERS:
            raise ValueError(f"solver {self.name!r}: use one of {', '.join(SOLVERS)}")
        if self.name != "naive" and self.alpha_max is None:
            raise ValueError(f"{self.name} grows the learning rate by eq. (14): give "
                             "alpha_max (e.g. 8.0 for the three-layer problem)")

    @property
    def examples(self) -> str:
        return {"naive": "all", "solver1": "all", "solver2": "serial",
                "solver3": "repeat"}[self.name]

    def learning_rate(self):
        if self.name == "naive":
            return constant(self.alpha_b)
        return doubling(self.alpha_b, self.alpha_max)

    def propagator(self, data: TrainingData) -> TrainingSteps:
        """Φ_i^(ℓ) on ``data``."""
        return TrainingSteps(data, self.learning_rate(), self.examples,
                             coarse_examples=self.coarse_examples)


def levels_for(steps: int, cycle: str, cf: int = 2, coarsest: int = 10) -> int:
    """Levels of a run: 2 for 'two-level'; otherwise coarsen by ``cf`` until a level has at
    most ``coarsest`` steps."""
    if cycle not in CYCLES:
        raise ValueError(f"cycle {cycle!r}: use one of {', '.join(CYCLES)}")
    if cycle == "two-level":
        return 2
    levels, n = 1, steps
    while n > coarsest:
        n //= cf
        levels += 1
    return levels


def initial_residuals(prop: TrainingSteps, steps: int, cf: int = 2) -> tuple[float, float]:
    """(‖r₀‖ after the first F-relaxation at the C-points, ‖r₀‖ before any relaxation) of
    the initial guess w_0, 0, 0, … on level 0 (module docstring)."""
    level = FINEST_LEVEL
    w = torch.zeros((steps + 1, prop.size), dtype=prop.w0.dtype)
    w[0] = prop.w0
    r = prop.step(w[:-1], torch.arange(steps), level) - w[1:]
    # the first step's residual, then the rest: the order the kept records were summed in
    unrelaxed = math.sqrt(float((r[:1] ** 2).sum() + (r[1:] ** 2).sum()))
    # F-relaxation: the k-th F-point of every interval from the point before it, all
    # intervals in one call (as mgrit.relaxation.f_relax); the C-points stay zero
    c = torch.arange(0, steps + 1, cf)
    for k in range(1, cf):
        f = c[c + k <= steps] + k
        w[f] = prop.step(w[f - 1], f - 1, level)
    c = c[1:]
    r = prop.step(w[c - 1], c - 1, level) - w[c]
    return math.sqrt(float((r**2).sum())), unrelaxed


def mgrit_cycle(cycle: str) -> str:
    """The MGRIT cycle of a table's cycle: 'F' for 'F', 'V' for 'V' and 'two-level'."""
    return "F" if cycle == "F" else "V"


def make_mgrit(prop: TrainingSteps, steps: int, cycle: str, *, cf: int = 2,
               coarsest: int = 10, tol: float, max_iter: int = 50, partition=None,
               divergence_factor: float = math.inf) -> MGRIT:
    """MGRIT over ``steps`` training steps as §3.2 sets it up: FCF, coarsening by ``cf``
    down to at most ``coarsest`` steps (two levels for 'two-level'), halting at ``tol``."""
    return MGRIT(prop, torch.arange(steps + 1, dtype=torch.float64),
                 max_levels=levels_for(steps, cycle, cf, coarsest), cf=cf, relax="FCF",
                 cycle=mgrit_cycle(cycle), tol=tol, max_iter=max_iter,
                 divergence_factor=divergence_factor, partition=partition)


def run(problem: str | TrainingData, solver: Solver, steps: int, cycle: str, *,
        cf: int = 2, coarsest: int = 10, tol_factor: float = 1e-9, scale_tol: bool = True,
        max_iter: int = 50, check_serial: bool = False, partition=None) -> dict:
    """One entry of the paper's tables: MGRIT on ``steps`` training steps of ``problem``
    ('xor', 'binary_addition' or a :class:`TrainingData`) with ``solver`` and ``cycle``
    ('two-level', 'V', 'F'). Returns a record: iterations, converged, residuals, ρ, seconds,
    and with ``check_serial`` the largest difference from serial training's weights.
    ``scale_tol=False`` halts at ``tol_factor`` instead of ``tol_factor``·√N₀ (a reading
    tried against the tables)."""
    data = PROBLEMS[problem]() if isinstance(problem, str) else problem
    prop = solver.propagator(data)
    levels = levels_for(steps, cycle, cf, coarsest)
    tol = tol_factor * (math.sqrt(steps) if scale_tol else 1.0)
    mgrit = make_mgrit(prop, steps, cycle, cf=cf, coarsest=coarsest, tol=tol,
                       max_iter=max_iter, partition=partition)
    r0, r0_unrelaxed = initial_residuals(prop, steps, cf)
    start = time.perf_counter()
    stop = ""
    try:
        res = mgrit.solve(prop.w0, gather=check_serial)
        residuals, converged, stop = res.residuals, res.converged, res.stop_reason
        seconds = res.iteration_seconds
    except MGRITDivergenceError as err:  # not converged within the limit: "50+"
        residuals, converged, stop, res, seconds = [], False, str(err).splitlines()[0], None, []
    elapsed = time.perf_counter() - start
    k = len(residuals)
    rho = (residuals[-1] / r0) ** (1 / k) if converged and k and r0 > 0 else math.nan
    rho_from_first = (residuals[-1] / residuals[0]) ** (1 / (k - 1)) if (
        converged and k > 1 and residuals[0] > 0) else math.nan
    record = dict(
        problem=data.name, solver=solver.name, cycle=cycle, steps=steps, levels=levels, cf=cf,
        alpha_b=solver.alpha_b, alpha_max=solver.alpha_max,
        coarse_examples=solver.coarse_examples, examples=solver.examples, tol=tol,
        scale_tol=scale_tol,
        iterations=k, converged=bool(converged), stop_reason=stop, r0=r0,
        r0_unrelaxed=r0_unrelaxed, residuals=list(residuals), rho=rho,
        rho_from_first=rho_from_first, seconds=elapsed,
        iteration_seconds=list(seconds))
    if converged and k:
        ranks = max(steps // cf, 1)  # the paper's strong-scaling limit (Remark 3)
        record["model_speedup"] = model_speedup(mgrit.hierarchy, k, ranks, mgrit_cycle(cycle),
                                                "per_level")
        record["paper_speedup"] = steps / paper_sigma(levels, k, cycle)
    if check_serial and res is not None:
        serial = prop.serial(steps)
        record["serial_difference"] = float((res.u - serial).abs().max())
    return record


def paper_sigma(levels: int, iterations: int, cycle: str) -> float:
    """The paper's count of sequential Φ applications (§3.4.4): eq. (18),
    σ_V(L) = niter (17 + 8 (L − 2)); an F-cycle as the concatenation of V-cycles starting on
    ever finer levels that eq. (19) describes, σ_F(L) = niter Σ_{L'=2}^{L} (17 + 8 (L' − 2))
    (niter once: eq. 19 as printed multiplies σ_V, which already holds it, by niter again).
    A two-level run is σ_V(2)."""
    if cycle == "F":
        return iterations * sum(17 + 8 * (lv - 2) for lv in range(2, levels + 1))
    return iterations * (17 + 8 * (levels - 2))
