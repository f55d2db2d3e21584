"""Strong scaling of MGRIT on one machine: the measurements and figures of lesson 05.

The critical-path model (:mod:`.speedup`) counts propagator applications: it predicts wall
times only when every application costs the same, whatever the batch it is part of, and
communication is negligible. :func:`heat2d` is a propagator for which that holds — the 2-D
heat equation with one sparse LU solve per state and step (the solves are done column by
column, so a batch of B states costs B solves) — and :func:`heat2d_run` is the MPI task that
solves it with MGRIT on every rank of ``MPI.COMM_WORLD`` (on ipyparallel engines,
:mod:`mgritlab.cluster`). The other functions time sequential stepping and batched steps, run
a set of configurations on engines, tabulate measured against model speedups, and draw the
block split, the time per phase and the what-if speedup tables.
"""
from __future__ import annotations

import math
import os
import time

import numpy as np
import scipy.sparse as sp

from .hierarchy import build_hierarchy, uniform_grid
from .partition import block_bounds
from .sequential import sequential_solve
from .speedup import costs_for, model_speedup

PHASES = ("relax", "restrict", "interpolate", "coarse solve", "residual")


# -- the heavy propagator --------------------------------------------------------------------
def laplacian_2d(n: int) -> sp.csr_matrix:
    """The 5-point Laplacian −Δ on the n×n interior points of the unit square (Dirichlet
    boundary, spacing 1/(n+1)): kron(I, T) + kron(T, I) with T = (n+1)² tridiag(−1, 2, −1)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    e = np.ones(n)
    T = sp.diags([-e[:-1], 2 * e, -e[:-1]], [-1, 0, 1]) * float((n + 1) ** 2)
    eye = sp.identity(n)
    return (sp.kron(eye, T) + sp.kron(T, eye)).tocsr()


def heat2d(n: int = 48, tf: float = 0.5, kappa: float = 1.0, scheme: str = "backward_euler"):
    """u_t = κΔu on the unit square, u = 0 on the boundary, u(x, y, 0) = sin(πx) sin(πy):
    a :class:`~mgritlab.problems.GraphHeat` on :func:`laplacian_2d` (n² unknowns).

    Backward Euler solves (I + hκL) u_{i+1} = u_i with one sparse LU factorisation (``splu``)
    per step size and one triangular solve pair per state: the cost of a step grows with the
    batch linearly, unlike the tridiagonal 1-D problem, where the per-call overhead dominates.
    """
    from ..problems import GraphHeat

    xs = np.arange(1, n + 1) / (n + 1)
    u0 = np.outer(np.sin(np.pi * xs), np.sin(np.pi * xs)).ravel()
    return GraphHeat(laplacian_2d(n), u0, kappa=kappa, scheme=scheme, tf=tf)


def best_time(fn, part=None, repeat: int = 1):
    """(seconds, result) of the fastest of ``repeat`` calls ``fn()``.

    Each call is timed between barriers of the partition ``part`` (None: one process), and
    every rank keeps the same run — rank 0's fastest — so the records agree across ranks.
    """
    best, res = float("inf"), None
    for _ in range(max(repeat, 1)):
        if part is not None:
            part.barrier()
        start = time.perf_counter()
        run = fn()
        if part is not None:
            part.barrier()
        seconds = time.perf_counter() - start
        if part is not None:
            seconds = part.comm.bcast(seconds, root=0)
        if seconds < best:
            best, res = seconds, run
    return best, res


def best_solve(solver, u0, part=None, repeat: int = 1, **solve_options):
    """(seconds, result) of the fastest of ``repeat`` ``solver.solve(u0, **solve_options)``
    (:func:`best_time`)."""
    return best_time(lambda: solver.solve(u0, **solve_options), part, repeat)


def heat2d_run(*, n: int = 48, nt: int = 257, levels: int = 3, cf: int = 4, tf: float = 0.5,
               tol: float = 1e-7, max_iter: int = 50, repeat: int = 1,
               threads: int | None = 1) -> dict:
    """Solve :func:`heat2d` with MGRIT (FCF, V-cycles) on all ranks of MPI.COMM_WORLD (serial
    in one process); the task lesson 05 runs on its engines.

    Returns this rank's record, with the fields of :func:`mgritlab.tasks.mgrit_run`: rank,
    size, levels, cf, iterations, residuals, seconds (the best wall time of ``repeat``
    solves, between barriers, rank 0's clock), phase_seconds, model_speedup (the
    critical-path model at this size), and the host's cores.
    """
    import torch

    from .solver import MGRIT
    from .world import world_partition

    if threads:
        torch.set_num_threads(threads)
    part, rank, size = world_partition()
    prob = heat2d(n, tf=tf)
    solver = MGRIT(prob, uniform_grid(prob.t0, prob.tf, nt), max_levels=levels, cf=cf,
                   relax="FCF", cycle="V", tol=tol, max_iter=max_iter, partition=part)
    best, res = best_solve(solver, prob.u0, part, repeat)
    return dict(rank=rank, size=size, n=n, nt=nt, levels=len(solver.hierarchy), cf=cf,
                iterations=res.iterations, converged=res.converged, residuals=res.residuals,
                seconds=best, phase_seconds=res.phase_seconds,
                model_speedup=model_speedup(solver.hierarchy, res.iterations, size),
                cores=machine()["cores"])


# -- measurements ----------------------------------------------------------------------------
def machine() -> dict:
    """The cores this process may use (``os.sched_getaffinity`` where the OS has it, else
    ``os.cpu_count()``), the machine's ``cpu_count`` and its 1-minute load average (the number
    of processes that were running or waiting for a core: > cores means a shared, busy
    machine)."""
    count = os.cpu_count() or 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = count
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = float("nan")
    return dict(cores=cores, cpu_count=count, load=load)


def sequential_seconds(problem, t, repeat: int = 2) -> float:
    """The best wall time of ``repeat`` sequential solves of ``problem`` on the grid ``t``
    (best of several: on a shared machine the slowest runs measure the other jobs)."""
    best = float("inf")
    for _ in range(max(repeat, 1)):
        start = time.perf_counter()
        sequential_solve(problem, problem.u0, t)
        best = min(best, time.perf_counter() - start)
    return best


def per_state_seconds(problem, t, batches, calls: int = 256) -> list[float]:
    """Seconds per state of one fine-level step ``problem.step`` taken on batches of the
    sizes ``batches`` (each timed over about ``calls`` states, at least 3 calls): what one
    propagator application costs inside a batch of B states."""
    import torch

    level0 = build_hierarchy(t, problem, max_levels=1).levels[0]
    out = []
    for B in batches:
        u = problem.u0.expand(B, -1).clone()
        idx = torch.arange(B)
        problem.step(u, idx, level0)                  # factorisation and warm-up
        reps = max(3, calls // B)
        start = time.perf_counter()
        for _ in range(reps):
            problem.step(u, idx, level0)
        out.append((time.perf_counter() - start) / (reps * B))
    return out


def solve_on(engines, configs, *, timeout: float = 300.0, task=heat2d_run, **options) -> dict:
    """Run ``task(levels=, cf=, **options)`` on every engine for each (levels, cf) of
    ``configs``; every call has ``timeout`` seconds. Returns {(levels, cf, size): records in
    rank order}, keyed by the size the records report (1 on a serial fallback)."""
    runs = {}
    for levels, cf in configs:
        recs = engines.run(task, levels=levels, cf=cf, timeout=timeout, **options)
        runs[levels, cf, recs[0]["size"]] = recs
    return runs


def scaling_rows(runs: dict, seq_seconds: float) -> list[dict]:
    """One row per run of ``runs`` ({(levels, cf, P): records}, with P = 1 for every
    (levels, cf)): the measured time T, its speedup against one rank (vs1) and against
    sequential stepping (vs_seq), next to the model's S(P)/S(1) (model_vs1) and S(P)."""
    rows = []
    for (levels, cf, p), recs in sorted(runs.items()):
        r, r1 = recs[0], runs[levels, cf, 1][0]
        rows.append(dict(levels=levels, cf=cf, P=p, iters=r["iterations"], T=r["seconds"],
                         vs1=r1["seconds"] / r["seconds"],
                         model_vs1=r["model_speedup"] / r1["model_speedup"],
                         vs_seq=seq_seconds / r["seconds"], model=r["model_speedup"]))
    return rows


def print_scaling_table(rows: list[dict], cores: int) -> None:
    """Print :func:`scaling_rows` as a table; runs with more ranks than ``cores`` are marked
    'oversubscribed'."""
    print(f"{'levels':>6} {'cf':>3} {'P':>3} {'iters':>5} {'seconds':>8} {'vs 1 rank':>10} "
          f"{'model':>6} {'vs sequential':>14} {'model S':>8}")
    for w in rows:
        note = "  oversubscribed" if w["P"] > cores else ""
        print(f"{w['levels']:>6} {w['cf']:>3} {w['P']:>3} {w['iters']:>5} {w['T']:>8.2f} "
              f"{w['vs1']:>10.2f} {w['model_vs1']:>6.2f} {w['vs_seq']:>14.3f} "
              f"{w['model']:>8.3f}{note}")


def big_speedup(n_steps: int, levels: int, cf: int, ranks: int, iterations: int) -> float:
    """The model speedup of ``levels`` levels with coarsening ``cf`` for ``n_steps`` fine steps
    on ``ranks`` processes, or nan when the hierarchy does not fit the grid or has fewer
    coarsest intervals than ranks (this package's split needs one per rank)."""
    try:
        costs = costs_for(n_steps + 1, cf, levels)
    except ValueError:
        return float("nan")
    if costs[-1].steps < ranks:
        return float("nan")
    return model_speedup(costs, iterations, ranks)


# -- figures ---------------------------------------------------------------------------------
_COLORS = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]


def plot_blocks(ax, hierarchy, ranks: int) -> list:
    """Draw the split of ``hierarchy`` over ``ranks`` processes (:func:`block_bounds`): one
    row per level, filled markers C-points, hollow F-points, one colour per process, arrows
    for the ghost state each process receives from its left neighbour. Returns the bounds."""
    bounds = [block_bounds(hierarchy, p, ranks) for p in range(ranks)]
    n_lv = len(hierarchy)
    for lvl, lv in enumerate(hierarchy.levels):
        y = n_lv - 1 - lvl
        for p in range(ranks):
            lo, hi = bounds[p][lvl]
            col = _COLORS[p % len(_COLORS)]
            for i in range(lo, hi):
                c_point = lv.cf is None or i % lv.cf == 0
                ax.plot(i * lv.stride, y, "o", ms=10 if c_point else 6, color=col,
                        mfc=col if c_point else "white", mew=1.5)
        if lvl < n_lv - 1:
            for p in range(1, ranks):
                lo = bounds[p][lvl][0]
                ax.annotate("", xy=(lo * lv.stride - 0.3, y + 0.3),
                            xytext=((lo - 1) * lv.stride, y + 0.3),
                            arrowprops=dict(arrowstyle="->", color="k", lw=1.2))
    for p in range(1, ranks):
        ax.axvline(bounds[p][0][0] - 0.5, color="gray", ls=":", lw=1)
    n_fine = hierarchy.levels[0].N
    ax.text(n_fine + 0.8, 0, "gathered on every process,\nsolved sequentially", va="center",
            fontsize=9)
    ax.set_yticks(range(n_lv))
    ax.set_yticklabels([f"level {lvl}  (N = {hierarchy.levels[lvl].N})"
                        for lvl in reversed(range(n_lv))])
    ax.set_xlabel("fine time index i")
    ax.set_xlim(-1, n_fine * 1.25)
    ax.set_ylim(-0.6, n_lv - 0.3)
    for p in range(ranks):
        ax.plot([], [], "o", color=_COLORS[p % len(_COLORS)], label=f"process {p}")
    ax.legend(loc="upper right", ncol=3, fontsize=8)
    return bounds


def plot_phases(ax, runs: dict, levels: int, cf: int) -> None:
    """Stacked bars of rank 0's seconds per phase (:data:`PHASES`) for each P of ``runs``."""
    sizes = sorted(p for (lv, c, p) in runs if (lv, c) == (levels, cf))
    bottom = np.zeros(len(sizes))
    for ph in PHASES:
        vals = np.array([runs[levels, cf, p][0]["phase_seconds"].get(ph, 0.0) for p in sizes])
        ax.bar([str(p) for p in sizes], vals, bottom=bottom, label=ph)
        bottom += vals
    ax.set_xlabel("MPI ranks P")
    ax.set_ylabel("seconds on rank 0")
    ax.set_title(f"time per phase, {levels} levels, cf {cf}")
    ax.legend(fontsize=8)


def plot_speedup_grid(ax, S: np.ndarray, levels: list[int], cfs: list[int], title: str):
    """A heat map of model speedups S[levels, cf] with the values written in (— for nan).
    Returns the image (for a colour bar)."""
    im = ax.imshow(S, cmap="viridis", origin="lower", aspect="auto")
    top = np.nanmax(S) if np.isfinite(S).any() else 1.0
    for a in range(len(levels)):
        for b in range(len(cfs)):
            v = S[a, b]
            ax.text(b, a, "—" if math.isnan(v) else f"{v:.1f}", ha="center", va="center",
                    color="gray" if math.isnan(v) else "w" if v < top / 2 else "k")
    ax.set_xticks(range(len(cfs)))
    ax.set_xticklabels(cfs)
    ax.set_yticks(range(len(levels)))
    ax.set_yticklabels(levels)
    ax.set_xlabel("coarsening factor cf")
    ax.set_ylabel("levels")
    ax.set_title(title)
    return im


def plot_strong_scaling(axes, rows: list[dict], seq_seconds: float, cores: int) -> None:
    """Two panels from :func:`scaling_rows`: the measured wall time against the model's
    T(1)·S(1)/S(P) (left), and the speedup against sequential stepping, measured and model
    S(P) (right), one colour per (levels, cf); ranks beyond ``cores`` are shaded."""
    configs = sorted({(w["levels"], w["cf"]) for w in rows})
    ranks = sorted({w["P"] for w in rows})
    for j, (levels, cf) in enumerate(configs):
        mine = [w for w in rows if (w["levels"], w["cf"]) == (levels, cf)]
        ps = np.array([w["P"] for w in mine])
        T = np.array([w["T"] for w in mine])
        col, lab = _COLORS[j % len(_COLORS)], f"{levels} levels, cf {cf}"
        axes[0].plot(ps, T, "o-", color=col, label=f"measured, {lab}")
        axes[0].plot(ps, T[0] / np.array([w["model_vs1"] for w in mine]), "s--", color=col,
                     mfc="white", label="model T(1)·S(1)/S(P)")
        axes[1].plot(ps, [w["vs_seq"] for w in mine], "o-", color=col, label=f"measured, {lab}")
        axes[1].plot(ps, [w["model"] for w in mine], "s--", color=col, mfc="white",
                     label="model S(P)")
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xticks(ranks)
        ax.set_xticklabels(ranks)
        ax.set_xlabel("MPI ranks P")
        if max(ranks) > cores:
            ax.axvspan(cores * 1.4, max(ranks) * 1.1, color="gray", alpha=0.15, lw=0)
            ax.text(cores * 1.45, 0.03, f"> {cores} cores:\noversubscribed", va="bottom",
                    fontsize=8, transform=ax.get_xaxis_transform())
    axes[0].set_ylim(bottom=0)
    axes[0].set_ylabel("wall time of the solve [s]")
    axes[0].set_title("strong scaling: measured and model")
    axes[1].axhline(1, color="k", lw=0.8)
    axes[1].set_yscale("log")
    axes[1].set_ylabel("speedup against sequential stepping")
    axes[1].set_title(f"sequential stepping: {seq_seconds:.2f} s")
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=8)
