"""mgritlab vs PyMGRIT 1.0.6 on PyMGRIT's heat-1D example, side by side in one process.

PyMGRIT's shipped example (``examples/example_heat_1d.py``): u_t = u_xx + b on (0, 1),
nx = 1001, t in [0, 2], nt = 65, five levels with cf 2, F-cycle, FCF relaxation, zero initial
guess, no nested iteration, tol 1e-7, max_iter 10. Two more hierarchies on the same problem:
the V-cycle of that hierarchy, and the coarsening of PyMGRIT's TOMS example 1
(``examples/toms/example_1_heat1d.py``: cf 4, V-cycle, FCF) on 257 time points with four
levels (TOMS's 1025 points take PyMGRIT minutes per solve on this machine), with a zero
instead of a random initial guess, so the residual histories can be compared.

For each hierarchy, repeats interleave PyMGRIT and mgritlab (the order alternates), each timed
as set-up + solve (the application objects / propagator are built once, outside the timer);
the table reports medians, the ratio PyMGRIT / mgritlab, both residual histories' largest
relative difference, and sequential stepping on one process with each code (ratio MGRIT /
sequential). ``--profile`` adds a cProfile summary of mgritlab's F-cycle solve.

PyMGRIT 1.0.6 needs numpy < 2, so it lives in its own virtual environment (see
benchmarks/README.md). Run this script with any interpreter: when PyMGRIT is not importable it
re-runs itself with ``.venv-pymgrit/bin/python`` if that exists, else it prints how to set it
up and exits with status 0.

    python benchmarks/bench_vs_pymgrit.py [--quick] [--repeat 7] [--profile]
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one thread for both codes, before numpy/torch load

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from _results import keep, result_path  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYMGRIT_VENV = ROOT / ".venv-pymgrit"
SETUP = f"""\
PyMGRIT is not importable from {sys.executable}.
PyMGRIT 1.0.6 needs numpy < 2; give it its own virtual environment (from the repository root):

    python3 -m venv .venv-pymgrit
    .venv-pymgrit/bin/pip install pymgrit==1.0.6 "numpy<2" scipy mpi4py mpich torch==2.13.0 tqdm
    .venv-pymgrit/bin/pip install --no-deps -e .
    .venv-pymgrit/bin/python benchmarks/bench_vs_pymgrit.py

(this script re-runs itself with .venv-pymgrit/bin/python when that exists)."""

# (name, nx, nt, levels, cf, cycle, PyMGRIT cf_iter): cf_iter 1 = FCF
CASES = [
    ("example_heat_1d (F-cycle)", 1001, 65, 5, 2, "F", 1),
    ("example_heat_1d, V-cycle", 1001, 65, 5, 2, "V", 1),
    ("TOMS ex. 1 coarsening (V-cycle, cf 4)", 1001, 257, 4, 4, "V", 1),
]
TOL, MAX_ITER = 1e-7, 10


def _pymgrit_available() -> bool:
    try:
        return importlib.util.find_spec("pymgrit") is not None
    except (ImportError, ValueError):
        return False


def _reexec_or_explain() -> int:
    py = PYMGRIT_VENV / "bin" / "python"
    if py.exists() and Path(sys.prefix).resolve() != PYMGRIT_VENV.resolve():
        print(f"PyMGRIT not importable here; re-running with {py}", flush=True)
        os.execv(str(py), [str(py), __file__, *sys.argv[1:]])
    print(SETUP)
    return 0


# ------------------------------------------------------------------------------------------
# The two codes on one case
# ------------------------------------------------------------------------------------------
def _rhs(x, t):
    import numpy as np
    return -np.sin(np.pi * x) * (np.sin(t) - 1 * np.pi ** 2 * np.cos(t))


def _init_cond(x):
    import numpy as np
    return np.sin(np.pi * x)


def pymgrit_problem(nx: int, nt: int, levels: int, cf: int):
    from pymgrit.heat.heat_1d import Heat1D
    heat0 = Heat1D(x_start=0, x_end=1, nx=nx, a=1, init_cond=_init_cond, rhs=_rhs,
                   t_start=0, t_stop=2, nt=nt)
    problem = [heat0]
    for _ in range(levels - 1):
        problem.append(Heat1D(x_start=0, x_end=1, nx=nx, a=1, init_cond=_init_cond, rhs=_rhs,
                              t_interval=problem[-1].t[::cf]))
    return problem


def pymgrit_solve(problem, cycle: str, cf_iter: int) -> dict:
    from pymgrit.core.mgrit import Mgrit
    mgrit = Mgrit(problem=problem, cf_iter=cf_iter, cycle_type=cycle, nested_iteration=False,
                  max_iter=MAX_ITER, tol=TOL, logging_lvl=30, random_init_guess=False)
    info = mgrit.solve()
    info["u"] = mgrit.u[0]
    return info


def pymgrit_sequential(heat0):
    u = [heat0.vector_t_start.clone()]
    for i in range(1, len(heat0.t)):
        u.append(heat0.step(u_start=u[-1], t_start=heat0.t[i - 1], t_stop=heat0.t[i]))
    return u


def mgritlab_problem(nx: int, nt: int):
    from mgritlab.mgrit import uniform_grid
    from mgritlab.problems import Heat1D
    return Heat1D(a=1.0, x0=0.0, x1=1.0, nx=nx, t0=0.0, tf=2.0), uniform_grid(0.0, 2.0, nt)


def mgritlab_solve(prob, t, levels: int, cf: int, cycle: str):
    from mgritlab.mgrit import MGRIT
    solver = MGRIT(prob, t, max_levels=levels, cf=cf, relax="FCF", cycle=cycle, tol=TOL,
                   max_iter=MAX_ITER)
    return solver.solve(prob.u0)


def _git_state() -> dict:
    """The commit measured, and whether the package had uncommitted changes."""
    import subprocess

    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return dict(commit=git("rev-parse", "--short", "HEAD"),
                package_modified=bool(git("status", "--porcelain", "mgritlab")))


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def run_case(case, repeat: int) -> dict:
    import numpy as np
    import torch

    from mgritlab.mgrit import sequential_solve

    name, nx, nt, levels, cf, cycle, cf_iter = case
    problem = pymgrit_problem(nx, nt, levels, cf)
    prob, t = mgritlab_problem(nx, nt)
    assert np.allclose(problem[0].t, t.numpy(), rtol=0, atol=1e-14)
    times = {"pymgrit": [], "mgritlab": [], "pymgrit_seq": [], "mgritlab_seq": []}
    jobs = {
        "pymgrit": lambda: pymgrit_solve(problem, cycle, cf_iter),
        "mgritlab": lambda: mgritlab_solve(prob, t, levels, cf, cycle),
        "pymgrit_seq": lambda: pymgrit_sequential(problem[0]),
        "mgritlab_seq": lambda: sequential_solve(prob, prob.u0, t),
    }
    last = {}
    for r in range(repeat):
        order = list(jobs) if r % 2 == 0 else list(reversed(jobs))
        for key in order:
            secs, last[key] = _timed(jobs[key])
            times[key].append(secs)
    info, res = last["pymgrit"], last["mgritlab"]
    pm_hist = [float(c) for c in info["conv"]]
    ml_hist = [float(c) for c in res.residuals if c != 0.0]  # PyMGRIT drops zero entries
    n = min(len(pm_hist), len(ml_hist))
    rel = max((abs(a - b) / abs(a) for a, b in zip(pm_hist[:n], ml_hist[:n])), default=0.0)
    # rounding-level agreement: differences measured against the first residual
    abs_rel = max((abs(a - b) for a, b in zip(pm_hist[:n], ml_hist[:n])), default=0.0) / (
        pm_hist[0] if pm_hist else 1.0)
    u_pm = np.stack([v.get_values() for v in info["u"]])
    u_diff = float(np.abs(u_pm - res.u.numpy()).max())
    seq_pm = np.stack([v.get_values() for v in last["pymgrit_seq"]])
    seq_diff = float(np.abs(seq_pm - last["mgritlab_seq"].numpy()).max())
    med = {k: statistics.median(v) for k, v in times.items()}
    row = dict(
        case=name, nx=nx, nt=nt, levels=levels, cf=cf, cycle=cycle, relax="FCF",
        repeats=repeat, iterations_pymgrit=len(pm_hist), iterations_mgritlab=res.iterations,
        residuals_pymgrit=pm_hist, residuals_mgritlab=[float(c) for c in res.residuals],
        same_iterations=len(pm_hist) == len(ml_hist),
        residual_max_rel_diff=rel, residual_max_diff_over_first=abs_rel,
        solution_max_abs_diff=u_diff,
        sequential_max_abs_diff=seq_diff,
        seconds=med, all_seconds=times,
        ratio_pymgrit_over_mgritlab=med["pymgrit"] / med["mgritlab"],
        mgritlab_over_sequential=med["mgritlab"] / med["mgritlab_seq"],
        pymgrit_over_sequential=med["pymgrit"] / med["pymgrit_seq"],
        pymgrit_setup_solve_seconds=[info["time_setup"], info["time_solve"]],
        mgritlab_setup_solve_seconds=[res.setup_seconds, res.solve_seconds],
        mgritlab_phase_seconds=res.phase_seconds,
        mgritlab_applications=sum(w["states"] for w in res.work),
        mgritlab_batched_calls=sum(w["calls"] for w in res.work),
        torch_threads=torch.get_num_threads())
    add_best_of(row)
    print(f"{name}: PyMGRIT {med['pymgrit']:.4f} s, mgritlab {med['mgritlab']:.4f} s "
          f"(x{row['ratio_pymgrit_over_mgritlab']:.1f}); iterations {len(pm_hist)} / "
          f"{res.iterations}, residuals differ by <= {abs_rel:.1e} x r_1 ({rel:.1e} "
          f"relative); mgritlab/sequential "
          f"{row['mgritlab_over_sequential']:.2f}", flush=True)
    return row


def add_best_of(row: dict) -> dict:
    """Best-of-repeats seconds and ratios beside the medians (a shared machine's load only
    ever adds time, so the fastest repeat is the least disturbed one)."""
    best = {k: min(v) for k, v in row["all_seconds"].items()}
    row["best_seconds"] = best
    row["best_ratio_pymgrit_over_mgritlab"] = best["pymgrit"] / best["mgritlab"]
    row["best_mgritlab_over_sequential"] = best["mgritlab"] / best["mgritlab_seq"]
    row["best_pymgrit_over_sequential"] = best["pymgrit"] / best["pymgrit_seq"]
    return row


def profile_fcycle(case, top: int = 25, solves: int = 20) -> tuple[str, dict]:
    """cProfile of mgritlab's solve of one case (several solves, so the numbers settle).

    Returns the printed statistics and a summary for the JSON: seconds per solve under the
    profiler, propagator calls per solve and the ``top`` functions by own time.
    """
    import cProfile
    import io
    import pstats

    name, nx, nt, levels, cf, cycle, _ = case
    prob, t = mgritlab_problem(nx, nt)
    res = mgritlab_solve(prob, t, levels, cf, cycle)  # warm-up (factorisations, caches)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(solves):
        mgritlab_solve(prob, t, levels, cf, cycle)
    prof.disable()
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    stats.sort_stats("tottime").print_stats(top)
    total = stats.total_tt
    rows = []
    for (path, line, func), (_, ncalls, tottime, cumtime, _) in sorted(
            stats.stats.items(), key=lambda kv: -kv[1][2])[:top]:
        short = path.split("mgritlab/")[-1] if "mgritlab/" in path else Path(path).name
        rows.append(dict(function=f"{short}:{line}({func})", calls_per_solve=ncalls / solves,
                         own_seconds_per_solve=tottime / solves,
                         cum_seconds_per_solve=cumtime / solves, own_share=tottime / total))
    summary = dict(case=name, solves=solves, seconds_per_solve=total / solves,
                   propagator_calls_per_solve=sum(w["calls"] for w in res.work),
                   states_per_solve=sum(w["states"] for w in res.work), top=rows)
    text = (f"cProfile of {solves} mgritlab solves of {name!r}, sorted by own time\n"
            + buf.getvalue())
    return text, summary


# ------------------------------------------------------------------------------------------
# Output
# ------------------------------------------------------------------------------------------
def table(rows: list[dict]) -> str:
    """Markdown: medians, and in brackets the best of the repeats."""
    lines = ["| case | nt | levels | cf | cycle | iterations (PyMGRIT / mgritlab) | "
             "residuals: max diff / r_1 (max rel. diff) | PyMGRIT s | mgritlab s | "
             "PyMGRIT / mgritlab | sequential s (PyMGRIT / mgritlab) | "
             "MGRIT / sequential (PyMGRIT / mgritlab) |",
             "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        s, b = r["seconds"], r["best_seconds"]
        lines.append(
            f"| {r['case']} | {r['nt']} | {r['levels']} | {r['cf']} | {r['cycle']} | "
            f"{r['iterations_pymgrit']} / {r['iterations_mgritlab']} | "
            f"{r['residual_max_diff_over_first']:.0e} ({r['residual_max_rel_diff']:.0e}) | "
            f"{s['pymgrit']:.3f} ({b['pymgrit']:.3f}) | {s['mgritlab']:.4f} ({b['mgritlab']:.4f}) "
            f"| **{r['ratio_pymgrit_over_mgritlab']:.1f}** "
            f"({r['best_ratio_pymgrit_over_mgritlab']:.1f}) | "
            f"{s['pymgrit_seq']:.4f} / {s['mgritlab_seq']:.4f} | "
            f"{r['pymgrit_over_sequential']:.1f} / **{r['mgritlab_over_sequential']:.1f}** "
            f"({r['best_pymgrit_over_sequential']:.1f} / "
            f"{r['best_mgritlab_over_sequential']:.1f}) |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the shipped example only, 3 repeats")
    ap.add_argument("--repeat", type=int, default=5, help="interleaved repeats (median)")
    ap.add_argument("--profile", action="store_true",
                    help="also cProfile mgritlab's F-cycle solve (written next to the JSON)")
    ap.add_argument("--out", type=Path, default=None,
                    help="result JSON (default results/vs_pymgrit.json, *_quick with --quick)")
    args = ap.parse_args()
    if not _pymgrit_available():
        return _reexec_or_explain()

    import numpy as np
    import pymgrit
    import scipy
    import torch

    import mgritlab

    torch.set_num_threads(1)
    cases = CASES[:1] if args.quick else CASES
    repeat = 3 if args.quick else args.repeat
    out = result_path("vs_pymgrit", quick=args.quick, out=args.out)
    load_before = os.getloadavg()
    rows = [run_case(c, repeat if c[2] < 100 else max(3, repeat // 2)) for c in cases]
    meta = dict(machine=platform.machine(), processor=platform.processor(),
                python=platform.python_version(), numpy=np.__version__,
                scipy=scipy.__version__, torch=torch.__version__,
                pymgrit=getattr(pymgrit, "__version__", "1.0.6"),
                mgritlab=getattr(mgritlab, "__version__", "?"), threads=1, tol=TOL,
                max_iter=MAX_ITER, timing="median of interleaved repeats, set-up + solve",
                load_average_before=load_before, git=_git_state())
    meta["load_average_after"] = os.getloadavg()
    result = dict(meta=meta, rows=rows)
    if args.profile:
        text, result["profile"] = profile_fcycle(CASES[0])
        out.with_name(out.stem + "_profile.txt").write_text(text)
        print(text)
    md = table(rows)
    keep(out, result, md, indent=2)
    print(md)
    first = rows[0]
    print(f"\nshipped example: {first['ratio_pymgrit_over_mgritlab']:.1f}x faster than PyMGRIT "
          f"(target >= 30), MGRIT/sequential {first['mgritlab_over_sequential']:.1f} "
          f"(target <= 5), residual histories differ by <= "
          f"{first['residual_max_diff_over_first']:.1e} x the first residual")
    return 0


if __name__ == "__main__":
    sys.exit(main())
