"""Seconds of a layer-parallel GRU training step against sequence length, measured on 1, 2, …
MPI ranks, beside the critical-path model (:mod:`mgritlab.nn.cost_model`).

``step_run`` is what every rank executes (under ``mpiexec``; serial in one process): the
synthetic task at ``steps`` steps, one implicit-GRU classifier, the best of ``repeat``
training steps (forward T₁ + adjoint T₂ + design gradient + Adam) between barriers; on one
process also the serial step (back-propagation through the recurrence) and the per-step costs
that the model turns into the time on 64 (or any) ranks. ``scaling`` launches it for each
(length, rank count) (:func:`mgritlab.cluster.mpi_call`) and keeps rank 0's records as JSON.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..nn.runner import write_json_atomic


def step_run(*, steps: int = 4096, batch: int = 32, hidden: int = 32, levels: int = 3,
             cf: int = 4, fwd_iters: int = 2, bwd_iters: int = 1, repeat: int = 3,
             model_ranks=(2, 64), threads: int | None = 1, seed: int = 0) -> dict:
    """One training step's seconds on all ranks of MPI.COMM_WORLD (this rank's record)."""
    import torch
    from torch import nn

    from ..mgrit.scaling import best_time, machine
    from ..mgrit.world import world_partition
    from ..nn.cost_model import epoch_model, layer_costs
    from .datasets import synthetic_sequences
    from .gru import StepInputs
    from .model import GRUClassifier

    if threads:
        torch.set_num_threads(threads)
    part, rank, size = world_partition()
    data = synthetic_sequences(batch, steps, task="adding", seed=seed)
    x, y = data.x_train[:batch], data.y_train[:batch]
    lp_opts = dict(max_levels=levels, cf=cf, fwd_iters=fwd_iters, bwd_iters=bwd_iters)
    if part is not None:
        lp_opts["partition"] = part
    model = GRUClassifier(data.channels, hidden, data.num_classes, steps, parallel=True,
                          seed=seed, dtype=torch.float32, **lp_opts)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def train_step(m):
        opt.zero_grad()
        nn.functional.cross_entropy(m(x), y).backward()
        opt.step()

    train_step(model)                      # warm-up: allocator, caches
    rec = dict(rank=rank, size=size, steps=steps, batch=batch, hidden=hidden, levels=levels,
               cf=cf, fwd_iters=fwd_iters, bwd_iters=bwd_iters,
               seconds=best_time(lambda: train_step(model), part, repeat)[0],
               cores=machine()["cores"], threads=torch.get_num_threads())
    lp = model.layer_parallel()
    rec["fwd_residuals"] = lp.stats["forward"].residuals
    if size == 1:
        serial = model.serial()
        train_step(serial)
        rec["serial_seconds"] = best_time(lambda: train_step(serial), None, repeat)[0]
        h = torch.zeros(batch, model.gru.state_size)
        costs = layer_costs(model.gru, h, StepInputs(x.transpose(0, 1)), batch=1, reps=5)
        rec["layer_costs"] = costs
        # the rest of a step (classifier, loss, Adam) from the one-level run's time
        one = epoch_model(costs, steps, 1, levels=levels, cf=cf, fwd_iters=fwd_iters,
                          bwd_iters=bwd_iters)
        other = max(rec["seconds"] - one["total"], 0.0)
        rec["model_seconds"] = {
            str(P): epoch_model(costs, steps, P, levels=levels, cf=cf, fwd_iters=fwd_iters,
                                bwd_iters=bwd_iters, other=other)["total"]
            for P in (1, *model_ranks) if P <= steps}   # at most one rank per step
        rec["model_speedup"] = {P: rec["serial_seconds"] / s
                                for P, s in rec["model_seconds"].items()}
    return rec


def scaling(lengths=(128, 256, 512, 1024, 2048, 4096), ranks=(1, 2), *, out: str | Path,
            timeout: float = 600, resume: bool = False, **options) -> list[dict]:
    """``step_run(steps=N, **options)`` under ``mpiexec -n P`` for each N and P; rank 0's
    records, each kept as ``out/step_N{N}_P{P}.json``; a RuntimeError if a run fails."""
    from ..cluster import mpi_call

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for n in lengths:
        for p in ranks:
            path = out / f"step_N{n}_P{p}.json"
            if not (resume and path.exists()):
                write_json_atomic(mpi_call("mgritlab.recurrent.scaling:step_run", p,
                                           timeout=timeout, **{**options, "steps": n}),
                                  path, indent=1)
            records.append(json.loads(path.read_text()))
    return records


def format_scaling(records: list[dict]) -> str:
    """Measured seconds per training step on 1 and 2 ranks, serial back-propagation, and the
    model's speedups, one row per length (Markdown)."""
    by = {(r["steps"], r["size"]): r for r in records}
    lines = ["| steps | serial (s) | LP 1 rank (s) | LP 2 ranks (s) | measured 2 vs 1 rank | "
             "model 64 ranks vs serial |", "|---|---|---|---|---|---|"]
    for n in sorted({r["steps"] for r in records}):
        one, two = by.get((n, 1)), by.get((n, 2))
        if one is None:
            continue
        ratio = f"{one['seconds'] / two['seconds']:.2f}×" if two else "—"
        lines.append(f"| {n} | {one['serial_seconds']:.3f} | {one['seconds']:.3f} | "
                     f"{two['seconds'] if two else float('nan'):.3f} | {ratio} | "
                     f"{one['model_speedup'].get('64', float('nan')):.1f}× |")
    return "\n".join(lines)
