"""Plot and probe helpers for lesson 13 (MGRIT over training steps, Schroder 2022): sweeps of
:func:`~mgritlab.training_runs.solvers.run` over N₀, the potential speedup of §3.4.4 from
measured, kept or printed iteration counts, the loss Hessian's eigenvalues along a training
run (the stability of a learning rate), and the example each point of a level trains on.

Nothing here changes the method; the functions only call :mod:`.solvers`, :mod:`.paper`,
:mod:`.tables` and the propagator. Axes are matplotlib axes; matplotlib is imported lazily.

The paper writes α for the learning rate; the lessons write η (α is the IMEX shift there).
Arguments keep the package's names (``alpha_b``, ``alpha_max``).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import torch

from ..results import results_dir
from .paper import table
from .solvers import Solver, levels_for, paper_sigma, run

KEPT = "training_runs"
HOW_TO_PRODUCE = ("python -m mgritlab experiment training-runs --out results/training_runs "
                  "--resume")

__all__ = ["KEPT", "HOW_TO_PRODUCE", "sweep", "potential_speedup", "paper_speedups",
           "record_speedups", "default_reading", "kept_records", "plot_iterations", "plot_speedup",
           "hessian_eigenvalues", "example_indices"]


def sweep(problem, solver: Solver, steps: Iterable[int], cycle: str,
          progress: Callable[[dict], None] | None = None, **kwargs) -> list[dict]:
    """One :func:`run` record per N₀ in ``steps`` (same problem, solver and cycle);
    ``kwargs`` go to :func:`run` (e.g. ``check_serial=True``)."""
    out = []
    for n in steps:
        rec = run(problem, solver, int(n), cycle, **kwargs)
        out.append(rec)
        if progress is not None:
            progress(rec)
    return out


def potential_speedup(steps: int, iterations: int, cycle: str, cf: int = 2,
                      coarsest: int = 10) -> float:
    """N₀ / σ: the paper's potential speedup (§3.4.4) for ``iterations`` MGRIT iterations on
    N₀ = ``steps`` training steps, σ from eq. (18) for 'V' and 'two-level', the F-cycle
    count eq. (19) describes for 'F' (niter once; :func:`~.solvers.paper_sigma`). The levels
    are those of a run: coarsen by ``cf`` down to at most ``coarsest`` steps. It assumes
    N₀/m processors (Remark 3)."""
    if iterations < 1:
        raise ValueError(f"iterations={iterations!r}: a converged run has at least one")
    return steps / paper_sigma(levels_for(steps, cycle, cf, coarsest), iterations, cycle)


def paper_speedups(number: int) -> tuple[list[int], list[float]]:
    """(N₀, N₀/σ) from the iteration counts the paper prints in Table ``number`` (entries
    "50+" left out)."""
    t = table(number)
    pairs = [(n, potential_speedup(n, it, t["cycle"]))
             for n, it in zip(t["steps"], t["iterations"]) if it is not None]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def record_speedups(records: Sequence[dict]) -> tuple[list[int], list[float]]:
    """(N₀, N₀/σ) of the converged records (as :func:`run` gives them), sorted by N₀."""
    rows = sorted((r for r in records if r["converged"]), key=lambda r: r["steps"])
    return ([r["steps"] for r in rows],
            [potential_speedup(r["steps"], r["iterations"], r["cycle"], r.get("cf", 2))
             for r in rows])


def default_reading(rec: dict) -> bool:
    """Whether a kept table record is the run :func:`~.tables.run_table` makes by default:
    the solver of :func:`~.tables.table_solver` (its α_b and coarse-example reading) and the
    paper's halting tolerance 10⁻⁹·√N₀ — the folder also keeps runs of other readings."""
    from .tables import table_solver

    solver = table_solver(rec["table"])
    tol = 1e-9 * math.sqrt(rec["steps"])
    return (math.isclose(rec.get("alpha_b", math.nan), solver.alpha_b)
            and rec.get("coarse_examples") == solver.coarse_examples
            and math.isclose(rec.get("tol", math.nan), tol, rel_tol=1e-6))


def kept_records(numbers: Iterable[int] | None = None, folder=None) -> list[dict] | None:
    """The kept records of tables ``numbers`` (all when None) in ``folder`` (default
    ``results/training_runs``) that are the default reading (:func:`default_reading`), one
    per (table, N₀), sorted; None when the folder is missing or holds none of them (produce
    them with :data:`HOW_TO_PRODUCE`)."""
    from .tables import load

    folder = results_dir(KEPT) if folder is None else folder
    if folder is None:
        return None
    wanted = None if numbers is None else set(numbers)
    rows = {}
    for r in load(folder):
        if "table" in r and (wanted is None or r["table"] in wanted) and default_reading(r):
            rows[r["table"], r["steps"]] = r
    return [rows[k] for k in sorted(rows)] or None


def _label_failed(ax, xs, top):
    if xs:
        ax.plot(xs, [top] * len(xs), "kx", ms=8, label="not converged (50+)")


def plot_iterations(ax, series: dict[str, Sequence[dict]], paper: dict[str, int] | None = None,
                    max_iter: int = 50):
    """MGRIT iterations against N₀ (log₂ axis) for each ``label → records``; runs that did
    not converge are drawn as crosses at ``max_iter``. ``paper`` maps a label to a table
    number whose printed iterations are drawn dashed, over the same N₀ range."""
    failed, hi = [], 0
    for label, recs in series.items():
        rows = sorted(recs, key=lambda r: r["steps"])
        ok = [r for r in rows if r["converged"]]
        line, = ax.plot([r["steps"] for r in ok], [r["iterations"] for r in ok], "o-",
                        label=label)
        failed += [r["steps"] for r in rows if not r["converged"]]
        hi = max([hi] + [r["steps"] for r in rows])
        if paper and label in paper:
            t = table(paper[label])
            pts = [(n, it) for n, it in zip(t["steps"], t["iterations"])
                   if it is not None and n <= hi]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "--", color=line.get_color(),
                    alpha=0.7, label=f"{label}: paper, Table {paper[label]}")
    _label_failed(ax, failed, max_iter)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("$N_0$ (training steps)")
    ax.set_ylabel("MGRIT iterations")
    ax.legend(fontsize=8)
    return ax


def plot_speedup(ax, curves: dict[str, tuple[Sequence[int], Sequence[float]]],
                 styles: dict[str, str] | None = None):
    """Potential speedup N₀/σ against N₀ (log–log) for each ``label → (N₀s, speedups)``,
    with the break-even line S = 1."""
    styles = styles or {}
    for label, (ns, s) in curves.items():
        if len(ns):
            ax.plot(ns, s, styles.get(label, "o-"), label=label)
    ax.axhline(1.0, color="0.5", lw=1, ls=":")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("$N_0$ (training steps)")
    ax.set_ylabel(r"potential speedup $N_0/\sigma$")
    ax.legend(fontsize=8)
    return ax


def hessian_eigenvalues(network, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                        eps: float = 1e-5) -> torch.Tensor:
    """Eigenvalues (B, s), ascending, of the loss Hessian ∇²ℓ(w_b) at each of the weight
    vectors ``w`` (B, s), by central differences of the network's closed-form gradient
    (``network.gradient``): column j is (∇ℓ(w + ε e_j) − ∇ℓ(w − ε e_j)) / 2ε, symmetrised.
    All 2·B·s gradients are one batched call. Meant for small networks (s in the tens)."""
    B, s = w.shape
    e = eps * torch.eye(s, dtype=w.dtype)
    shifted = torch.cat([(w[:, None, :] + e).reshape(-1, s), (w[:, None, :] - e).reshape(-1, s)])
    g = network.gradient(shifted, x, y)
    H = ((g[: B * s] - g[B * s :]) / (2 * eps)).reshape(B, s, s)
    return torch.linalg.eigvalsh(0.5 * (H + H.transpose(1, 2)))


def example_indices(prop, points: int, level: int, cf: int = 2) -> torch.Tensor:
    """The example index each of the first ``points`` points of MGRIT level ``level`` trains
    on with propagator ``prop`` (examples 'serial' or 'repeat'), as its
    ``coarse_examples`` reading chooses: 'level' uses the point's own index i, 'fine' its
    finest-grid index cf^level·i (Remark 1)."""
    i = torch.arange(points)
    if prop.coarse_examples == "fine":
        i = i * cf**level
    j = prop.examples.index(i, prop.data.examples)
    if j is None:
        raise ValueError("this propagator trains on all examples in every step (eq. 11); "
                         "example indices exist for 'serial' (eq. 15) and 'repeat' (eq. 16)")
    return j
