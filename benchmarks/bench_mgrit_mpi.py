"""Strong scaling of distributed MGRIT (MPI) on the 1-D heat equation, beside the model.

For each hierarchy (levels × cf) the same problem — ``Heat1D`` defaults (nx = 1001,
t ∈ [0, 2], backward Euler), nt = 16385 time points, FCF relaxation, V-cycles, tol 1e-7 — is
solved by ``python -m mgritlab heat`` under ``mpiexec -n P`` for P = 1, 2, 4 (each run launched
through :func:`mgritlab.cluster.run_mpi`, so a stuck run is killed after ``--timeout``). The
P = 1 run also times sequential time stepping (``--compare``; the best of all those runs is the
reference). Each (hierarchy, P) is run ``--repeat`` times and the fastest run is reported.
Every rank runs one thread (``OMP_NUM_THREADS=1``), so P ranks ask for P cores.

Reported per run: iterations, wall seconds, seconds per iteration, the measured speedup
against MGRIT on one rank and against sequential stepping, and the critical-path model
speedup (:func:`mgritlab.mgrit.speedup.model_speedup`, measured against sequential stepping)
together with the model's ratio S(P)/S(1) (comparable to the measured speedup against one rank).
The residual histories must be identical for every P; the script checks this.

    python benchmarks/bench_mgrit_mpi.py [--quick] [--ranks 1 2 4] [--repeat 2] [--timeout 900]

Results: ``benchmarks/results/mgrit_mpi.json`` and the table ``mgrit_mpi.md`` (with ``--quick``:
``mgrit_mpi_quick.json``, ignored by git, so a smoke test never overwrites the committed results).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from _results import keep, result_path

from mgritlab.cluster import mpiexec_path, run_mpi

CONFIGS = [(3, 4), (4, 4), (5, 4), (5, 2)]  # (levels, cf)


def run_one(nt: int, levels: int, cf: int, ranks: int, *, nx: int, timeout: float,
            compare: bool) -> dict:
    """One ``mpiexec -n ranks python -m mgritlab heat ...`` run; its JSON record."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run.json"
        cmd = [sys.executable, "-m", "mgritlab", "heat", "--nt", str(nt), "--nx", str(nx),
               "--levels", str(levels), "--cf", str(cf), "--json", str(out)]
        if compare:
            cmd.append("--compare")
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                   OPENBLAS_NUM_THREADS="1")
        start = time.perf_counter()
        proc = run_mpi(cmd, ranks, timeout=timeout, env=env)
        launch = time.perf_counter() - start
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"`mpiexec -n {ranks} {' '.join(cmd[1:])}` failed "
                               f"(exit {proc.returncode}):\n{proc.stdout}")
        rec = json.loads(out.read_text())
    if rec["ranks"] != ranks:
        raise RuntimeError(f"asked for {ranks} ranks but the solver ran on {rec['ranks']}")
    rec["launch_seconds"] = launch  # mpiexec + imports + set-up + solve
    rec["seconds_per_iteration"] = rec["wall_seconds"] / max(rec["iterations"], 1)
    return rec


def table(rows: list[dict]) -> str:
    head = ("| levels | cf | ranks | iters | total s | s / iter | speedup vs 1 rank "
            "| model S(P)/S(1) | speedup vs sequential | model S(P) |")
    lines = [head, "|" + "---:|" * 10]
    for r in rows:
        lines.append(
            f"| {r['levels']} | {r['cf']} | {r['ranks']} | {r['iterations']} "
            f"| {r['wall_seconds']:.2f} | {r['seconds_per_iteration']:.3f} "
            f"| {r['speedup_vs_1']:.2f} | {r['model_ratio']:.2f} "
            f"| {r['speedup_vs_sequential']:.3f} | {r['model_speedup']:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="nt = 1025, 3 and 4 levels (smoke test)")
    ap.add_argument("--nt", type=int, default=16385)
    ap.add_argument("--nx", type=int, default=1001)
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per mpiexec run")
    ap.add_argument("--repeat", type=int, default=2,
                    help="runs per configuration and rank count; the fastest is reported")
    ap.add_argument("--out", type=Path, default=None,
                    help="JSON file (default benchmarks/results/mgrit_mpi.json; "
                         "mgrit_mpi_quick.json with --quick)")
    args = ap.parse_args(argv)
    configs = CONFIGS
    if args.quick:
        args.nt, configs, args.repeat = 1025, [(3, 4), (4, 4)], 1
    args.out = result_path("mgrit_mpi", quick=args.quick, out=args.out)
    ranks = sorted(set(args.ranks) | {1})

    print(f"heat, nx={args.nx}, nt={args.nt}, FCF, V-cycles, tol 1e-7, ranks {ranks}, "
          f"1 thread per rank, {os.cpu_count()} cores, mpiexec {mpiexec_path()}", flush=True)
    best, sequential = {}, []
    for levels, cf in configs:
        ref = None
        for p in ranks:
            for _ in range(args.repeat):
                rec = run_one(args.nt, levels, cf, p, nx=args.nx, timeout=args.timeout,
                              compare=(p == 1))
                if ref is None:
                    ref = rec["residuals"]
                elif rec["residuals"] != ref:
                    raise AssertionError(f"levels={levels} cf={cf}: the residual history on "
                                         f"{p} ranks differs from the one on 1 rank")
                if "sequential_seconds" in rec:
                    sequential.append(rec["sequential_seconds"])
                if (levels, cf, p) not in best or \
                        rec["wall_seconds"] < best[levels, cf, p]["wall_seconds"]:
                    best[levels, cf, p] = rec
                print(f"  levels {levels} cf {cf} P={p}: {rec['iterations']} iterations, "
                      f"{rec['wall_seconds']:.2f} s, model S = {rec['model_speedup']:.3f}",
                      flush=True)
    t_seq = min(sequential)  # the same sequential stepping for every hierarchy: best of all
    rows = []
    for (levels, cf, p), rec in best.items():
        base = best[levels, cf, 1]
        rows.append(dict(levels=rec["levels"], cf=cf, ranks=p, iterations=rec["iterations"],
                         converged=rec["converged"], wall_seconds=rec["wall_seconds"],
                         seconds_per_iteration=rec["seconds_per_iteration"],
                         launch_seconds=rec["launch_seconds"],
                         phase_seconds_rank0=rec["phase_seconds"],
                         speedup_vs_1=base["wall_seconds"] / rec["wall_seconds"],
                         speedup_vs_sequential=t_seq / rec["wall_seconds"],
                         model_speedup=rec["model_speedup"],
                         model_ratio=rec["model_speedup"] / base["model_speedup"],
                         residuals=rec["residuals"]))
    md = table(rows)
    cores = os.cpu_count() or 1
    over = f"P > {cores} is oversubscribed; " if max(ranks) > cores else ""
    note = (f"Heat1D (nx = {args.nx}, t in [0, 2], backward Euler), nt = {args.nt}, FCF, "
            f"V-cycles, tol 1e-7; ranks by `mpiexec -n P` (MPICH), 1 thread each, on a "
            f"{cores}-core machine shared with other jobs ({over}"
            f"timings are noisy); each time is the best of {args.repeat} run(s). Sequential "
            f"stepping: {t_seq:.2f} s (best of {len(sequential)}). 'model' is the critical-path "
            f"model (no communication, batch size ignored); S(P) is against sequential "
            f"stepping, S(P)/S(1) against MGRIT on one rank. Residual histories are identical "
            f"for every P (checked). {time.strftime('%Y-%m-%d %H:%M')}.")
    print()
    print(md)
    print()
    print(note)
    data = dict(problem="heat", nx=args.nx, nt=args.nt, tf=2.0, relax="FCF", cycle="V",
                tol=1e-7, ranks=ranks, repeat=args.repeat, sequential_seconds=t_seq,
                sequential_runs=sequential, threads_per_rank=1, cores=os.cpu_count(),
                quick=args.quick, python=platform.python_version(),
                machine=platform.machine(), date=time.strftime("%Y-%m-%d %H:%M:%S"), rows=rows)
    keep(args.out, data, f"# MGRIT over MPI: strong scaling\n\n{md}\n\n{note}")
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
