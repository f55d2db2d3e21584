"""The kept pdADMM-G comparison (issue 15): pdADMM-G, pdADMM-G-Q and Adam on one GA-MLP.

:func:`comparison` runs, for every data set, depth and seed, pdADMM-G and pdADMM-G-Q
(depths above 2 by staged training after the authors' 2 → 5 → 10, with identity layers inserted,
:func:`mgritlab.graphs.admm_train.deepen`) and the Adam baseline on the same architecture, one
JSON per run (resumable: finished runs are kept). :func:`summary` and :func:`format_summary`
make the table of ``results/admm/README.md``: test accuracy at best validation and at the
final iteration (mean ± std over seeds), seconds per iteration at the final depth and the
bytes sent between layers per iteration.
"""
from __future__ import annotations

import statistics
from pathlib import Path

from ..nn.runner import read_json
from . import gamlp
from .admm_train import METHODS, ADMMRun, train_adam_run, train_admm

DEPTHS = (2, 10)
DATASETS = ("Cora", "CiteSeer")


def run_config(dataset: str, layers: int, method: str, *, quick: bool = False) -> ADMMRun:
    """The kept configuration: 40 iterations at 2 layers; deeper nets staged 2 → 5 → L with
    20 iterations per earlier stage and 30 at the final depth (quick: 4 / 2 / 3)."""
    stages = tuple(d for d in (2, 5) if d < layers)
    if quick:
        return ADMMRun(dataset=dataset, layers=layers, method=method, stages=stages,
                       stage_iterations=2, iterations=4 if layers == 2 else 3)
    return ADMMRun(dataset=dataset, layers=layers, method=method, stages=stages,
                   stage_iterations=20, iterations=40 if layers == 2 else 30)


def comparison(*, datasets=DATASETS, depths=DEPTHS, seeds=(0, 1, 2), out: str | Path,
               resume: bool = True, quick: bool = False, progress: bool = True,
               adam_epochs: int = 200, unstaged: bool = False) -> list[dict]:
    """Every run of the comparison; returns the records (kept in ``out``).

    ``unstaged``: the deeper nets trained in one stage instead (identity hidden layers from
    the start, 70 iterations) — the contrast the README reports.
    """
    records = []
    for dataset in datasets:
        graph = gamlp.load_augmented(dataset, 5)
        for layers in depths:
            for seed in seeds:
                for method in METHODS:
                    cfg = run_config(dataset, layers, method, quick=quick)
                    if unstaged and layers > 2:
                        cfg = ADMMRun(dataset=dataset, layers=layers, method=method,
                                      iterations=cfg.total_iterations)
                    records.append(train_admm(cfg, seed, out_dir=out, resume=resume,
                                              progress=progress, graph=graph))
                if unstaged:
                    continue
                records.append(train_adam_run(dataset, layers, seed, out_dir=out,
                                              resume=resume, graph=graph,
                                              epochs=10 if quick else adam_epochs))
                if layers > 2:
                    records.append(train_adam_run(dataset, layers, seed, out_dir=out,
                                                  resume=resume, graph=graph,
                                                  epochs=10 if quick else adam_epochs,
                                                  identity_hidden=True))
    return records


def load_records(out: str | Path) -> list[dict]:
    """The finished records in ``out``."""
    recs = [read_json(p) for p in sorted(Path(out).glob("*_seed*.json"))]
    return [r for r in recs if r is not None and r.get("finished")]


def _mean_std(xs):
    xs = list(xs)
    return (statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0)


def summary(records: list[dict]) -> list[dict]:
    """One row per (data set, depth, method), over seeds."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        if r.get("method") == "adam":
            key = (r["dataset"], r["layers"],
                   "adam, identity hidden init" if r.get("identity_hidden") else "adam")
        else:
            c = r["config"]
            staged = (" staged " + "→".join(map(str, [*c["stages"], c["layers"]]))
                      if c["stages"] else " one stage" if c["layers"] > 2 else "")
            key = (c["dataset"], c["layers"], c["method"] + staged)
        groups.setdefault(key, []).append(r)
    rows = []
    for (dataset, layers, method), rs in sorted(groups.items()):
        row = {"dataset": dataset, "layers": layers, "method": method, "seeds": len(rs),
               "test_at_best_val": _mean_std(100 * r["best"]["test_acc"] for r in rs)}
        if method.startswith("adam"):
            row["test_final"] = _mean_std(100 * r["history"][-1]["test_acc"] for r in rs)
            row["seconds_per_iteration"] = statistics.fmean(r["seconds_per_epoch"] for r in rs)
            row["bytes_per_iteration"] = None
        else:
            row["test_final"] = _mean_std(100 * r["final"]["test_acc"] for r in rs)
            # the final depth's iterations only (a staged run's earlier stages are cheaper)
            row["seconds_per_iteration"] = statistics.fmean(
                x["seconds"] for r in rs for x in r["history"]
                if x["layers"] == r["config"]["layers"])
            row["bytes_per_iteration"] = rs[0]["interface_bytes_per_iteration"]
        rows.append(row)
    return rows


def format_summary(rows: list[dict]) -> str:
    """The rows as a Markdown table."""
    out = ["| data | layers | method | seeds | test at best val (%) | test final (%) | "
           "s / iteration | bytes between layers / iteration |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        b = r["bytes_per_iteration"]
        out.append(f"| {r['dataset']} | {r['layers']} | {r['method']} | {r['seeds']} | "
                   f"{r['test_at_best_val'][0]:.1f} ± {r['test_at_best_val'][1]:.1f} | "
                   f"{r['test_final'][0]:.1f} ± {r['test_final'][1]:.1f} | "
                   f"{r['seconds_per_iteration']:.3f} | {'—' if b is None else f'{b:,}'} |")
    return "\n".join(out)


def byte_savings(rows: list[dict]) -> list[dict]:
    """pdADMM-G-Q's bytes and accuracy against pdADMM-G's, per data set and depth."""
    by = {(r["dataset"], r["layers"], r["method"]): r for r in rows}
    out = []
    for (d, L, m), r in sorted(by.items()):
        qm = m.replace("pdadmm-g", "pdadmm-g-q", 1)
        if not m.startswith("pdadmm-g") or m.startswith("pdadmm-g-q") or (d, L, qm) not in by:
            continue
        q = by[(d, L, qm)]
        out.append({"dataset": d, "layers": L, "method": m,
                    "saving": 1 - q["bytes_per_iteration"] / r["bytes_per_iteration"],
                    "accuracy_change": q["test_at_best_val"][0] - r["test_at_best_val"][0]})
    return out


# ---- seconds per iteration: per-layer loop, batched, P ranks ------------------------------------
def iteration_seconds(*, layers: int = 10, hidden: int = 500, dataset: str = "Cora",
                      batched: bool = True, method: str = "pdadmm-g", repeat: int = 7,
                      partition=None, graph: gamlp.AugmentedGraph | None = None) -> dict:
    """The fastest of ``repeat`` pdADMM-G iterations (after one warm-up), timed between
    barriers, on the training rows of ``dataset``; with the bytes one iteration sends."""
    from ..mgrit.scaling import best_time
    from . import admm
    from .admm_train import ADMMRun

    cfg = ADMMRun(dataset=dataset, layers=layers, hidden=hidden, method=method).admm()
    if graph is None:
        graph = gamlp.load_augmented(dataset, 5)
    w = gamlp.init_weights(gamlp.widths(graph.num_features, hidden, graph.num_classes, layers),
                           0, identity_hidden=True)
    st = admm.init_state(graph.x[graph.train], graph.y[graph.train], w, cfg,
                         partition=partition, batched=batched)
    admm.iterate(st, cfg, partition)
    traffic = admm.Traffic()
    admm.iterate(st, cfg, partition, traffic)
    seconds, _ = best_time(lambda: admm.iterate(st, cfg, partition), partition, repeat)
    return {"layers": layers, "hidden": hidden, "dataset": dataset, "method": method,
            "batched": batched, "ranks": 1 if partition is None else partition.size,
            "seconds": seconds, **traffic.as_dict()}


def iteration_seconds_on_world(*, layers: int = 10, method: str = "pdadmm-g",
                               repeat: int = 7) -> dict:
    """:func:`iteration_seconds` with the layers split over MPI.COMM_WORLD (run on every rank,
    one torch thread each); rank 0's record also lists every rank's bytes sent across ranks."""
    import torch

    from ..mgrit.mpi import MPIPartition

    torch.set_num_threads(1)
    part = MPIPartition()
    rec = iteration_seconds(layers=layers, method=method, repeat=repeat, partition=part)
    recs = part.comm.gather(rec, root=0)
    if part.rank == 0:
        rec["rank_bytes"] = [r["rank_bytes"] for r in recs]
    return rec


def ranks_seconds(ranks: int, *, layers: int = 10, method: str = "pdadmm-g", repeat: int = 7,
                  timeout: float = 600) -> dict:
    """:func:`iteration_seconds` on ``ranks`` MPI ranks (launched with mpiexec, one torch
    thread each; killed whole after ``timeout``)."""
    from ..cluster import mpi_call

    return mpi_call("mgritlab.graphs.admm_experiments:iteration_seconds_on_world", ranks,
                    timeout=timeout, layers=layers, method=method, repeat=repeat)
