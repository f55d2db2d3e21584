"""A measured strong-scaling run of MGRIT over training steps: the same solve on 1, 2, …
MPI ranks (``MPIPartition``, the split of whole coarsest intervals), identical residual
histories, wall time per rank count.

``scaling_run`` is what every rank executes (under ``mpiexec``; serial in one process);
``strong_scaling`` launches it for each rank count (:func:`mgritlab.cluster.mpi_call`) and
keeps rank 0's record as JSON.
"""
from __future__ import annotations

from pathlib import Path

from ..nn.runner import write_json_atomic
from .solvers import Solver


def scaling_run(*, problem: str = "binary_addition", solver: str = "solver3",
                alpha_b: float = 0.025, alpha_max: float | None = 0.2,
                coarse_examples: str = "fine", steps: int = 1600, cycle: str = "F",
                repeat: int = 2, threads: int | None = 1) -> dict:
    """Solve on all ranks of MPI.COMM_WORLD; this rank's record (rank, size, iterations,
    residuals, seconds: the best of ``repeat`` solves between barriers, model speedup)."""
    import math

    import torch

    from ..mgrit.scaling import best_solve, machine
    from ..mgrit.speedup import model_speedup
    from ..mgrit.world import world_partition
    from .solvers import PROBLEMS, make_mgrit, mgrit_cycle

    if threads:
        torch.set_num_threads(threads)
    part, rank, size = world_partition()
    prop = Solver(solver, alpha_b, alpha_max, coarse_examples).propagator(PROBLEMS[problem]())
    mgrit = make_mgrit(prop, steps, cycle, tol=1e-9 * math.sqrt(steps), partition=part,
                       divergence_factor=1e4)
    seconds, res = best_solve(mgrit, prop.w0, part, repeat, gather=False)
    return dict(rank=rank, size=size, problem=problem, solver=solver, alpha_b=alpha_b,
                alpha_max=alpha_max, coarse_examples=coarse_examples, steps=steps,
                cycle=cycle, levels=len(mgrit.hierarchy), iterations=res.iterations,
                converged=res.converged, residuals=res.residuals, seconds=seconds,
                phase_seconds=res.phase_seconds,
                model_speedup=model_speedup(mgrit.hierarchy, res.iterations, size,
                                            mgrit_cycle(cycle)),
                cores=machine()["cores"])


def strong_scaling(ranks=(1, 2), *, out: str | Path, timeout: float = 600, **options
                   ) -> list[dict]:
    """``scaling_run(**options)`` under ``mpiexec -n P`` for each P in ``ranks``; rank 0's
    records, each kept as ``out/scaling_P{P}.json``; a RuntimeError if a run fails."""
    from ..cluster import mpi_call

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for p in ranks:
        rec = mpi_call("mgritlab.training_runs.scaling:scaling_run", p, timeout=timeout,
                       **options)
        write_json_atomic(rec, out / f"scaling_P{p}.json", indent=1)
        records.append(rec)
    return records
