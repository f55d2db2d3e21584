"""mgritlab.mgrit.scaling: the 2-D heat propagator, the scaling task and the helpers of
lesson 05 (tables, what-if speedups, figures)."""
import json
import math
import sys

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from mgritlab.cluster import SerialEngines
from mgritlab.mgrit import MGRIT, block_bounds, build_hierarchy, uniform_grid
from mgritlab.mgrit.scaling import (
    big_speedup,
    heat2d,
    heat2d_run,
    laplacian_2d,
    machine,
    per_state_seconds,
    plot_blocks,
    plot_phases,
    plot_speedup_grid,
    plot_strong_scaling,
    print_scaling_table,
    scaling_rows,
    sequential_seconds,
    solve_on,
)
from mgritlab.mgrit.speedup import costs_for, model_speedup


def test_laplacian_2d_has_the_kron_eigenvalues():
    n = 5
    L = laplacian_2d(n).toarray()
    assert L.shape == (n * n, n * n) and np.allclose(L, L.T)
    k = np.arange(1, n + 1)
    lam_1d = 4 * (n + 1) ** 2 * np.sin(k * np.pi / (2 * (n + 1))) ** 2
    expected = np.sort(np.add.outer(lam_1d, lam_1d).ravel())
    assert np.allclose(np.linalg.eigvalsh(L), expected)
    with pytest.raises(ValueError):
        laplacian_2d(0)


def test_heat2d_backward_euler_decays_like_its_eigenvalue():
    """u0 = sin(πx) sin(πy) is an eigenvector of the 5-point Laplacian: backward Euler
    multiplies it by 1/(1 + hμ) per step, μ = 8(n+1)² sin²(π/(2(n+1)))."""
    n, nt = 6, 9
    prob = heat2d(n, tf=0.5)
    assert prob.u0.shape == (n * n,)
    t = uniform_grid(prob.t0, prob.tf, nt)
    from mgritlab.mgrit import sequential_solve

    u = sequential_solve(prob, prob.u0, t)
    mu = 8 * (n + 1) ** 2 * math.sin(math.pi / (2 * (n + 1))) ** 2
    h = 0.5 / (nt - 1)
    steps = torch.arange(nt, dtype=torch.float64)[:, None]
    expected = prob.u0[None, :] * (1 / (1 + h * mu)) ** steps
    assert torch.allclose(u, expected.to(u.dtype), rtol=1e-12, atol=1e-15)


def test_heat2d_run_serial_is_the_mgrit_solve_with_the_model_speedup():
    rec = heat2d_run(n=6, nt=33, levels=3, cf=2, repeat=2)
    prob = heat2d(6)
    solver = MGRIT(prob, uniform_grid(prob.t0, prob.tf, 33), max_levels=3, cf=2, tol=1e-7,
                   max_iter=50)
    ref = solver.solve(prob.u0)
    assert rec["rank"] == 0 and rec["size"] == 1 and rec["levels"] == 3
    assert rec["residuals"] == ref.residuals and rec["converged"]
    assert rec["model_speedup"] == model_speedup(solver.hierarchy, ref.iterations, 1)
    assert rec["seconds"] > 0 and rec["cores"] >= 1
    assert set(rec["phase_seconds"]) <= {"relax", "restrict", "interpolate", "coarse solve",
                                         "residual"}


def test_machine_and_timers():
    m = machine()
    assert m["cores"] >= 1 and m["cpu_count"] >= m["cores"]
    prob = heat2d(6)
    t = uniform_grid(prob.t0, prob.tf, 9)
    assert sequential_seconds(prob, t, repeat=2) > 0
    costs = per_state_seconds(prob, t, [1, 4], calls=8)
    assert len(costs) == 2 and all(c > 0 for c in costs)


def _fake(levels, cf, p, seconds, iters=5):
    costs = costs_for(65, cf, levels)
    return [dict(rank=r, size=p, iterations=iters, seconds=seconds, residuals=[1.0],
                 phase_seconds={"relax": seconds / 2, "coarse solve": seconds / 2},
                 model_speedup=model_speedup(costs, iters, p)) for r in range(p)]


def test_scaling_rows_table_and_figures(capsys):
    runs = {(3, 2, 1): _fake(3, 2, 1, 2.0), (3, 2, 2): _fake(3, 2, 2, 1.25)}
    rows = scaling_rows(runs, seq_seconds=0.5)
    assert [w["P"] for w in rows] == [1, 2]
    assert rows[0]["vs1"] == 1.0 and rows[0]["model_vs1"] == 1.0
    assert rows[1]["vs1"] == pytest.approx(1.6) and rows[1]["vs_seq"] == pytest.approx(0.4)
    assert rows[1]["model_vs1"] == pytest.approx(runs[3, 2, 2][0]["model_speedup"]
                                                 / runs[3, 2, 1][0]["model_speedup"])
    print_scaling_table(rows, cores=1)
    out = capsys.readouterr().out
    assert "oversubscribed" in out.splitlines()[2] and "oversubscribed" not in out.splitlines()[1]
    fig, axes = plt.subplots(1, 3)
    plot_strong_scaling(axes[:2], rows, 0.5, cores=1)
    plot_phases(axes[2], runs, 3, 2)
    plt.close(fig)


def test_solve_on_a_serial_fallback_keys_by_the_reported_size():
    runs = solve_on(SerialEngines("test"), [(2, 4)], timeout=30, n=5, nt=17)
    assert list(runs) == [(2, 4, 1)] and runs[2, 4, 1][0]["converged"]


def test_big_speedup_is_the_model_or_nan_where_the_split_does_not_fit():
    assert big_speedup(2**10, 3, 4, 16, 6) == model_speedup(costs_for(2**10 + 1, 4, 3), 6, 16)
    assert math.isnan(big_speedup(2**10, 3, 4, 128, 6))       # 64 coarsest intervals < 128
    assert math.isnan(big_speedup(16, 4, 4, 1, 6))            # 16 // 4**3 = 0: does not fit


def test_plot_blocks_and_speedup_grid():
    hier = build_hierarchy(uniform_grid(0.0, 1.0, 33), heat2d(4), max_levels=3, cf=2)
    fig, ax = plt.subplots()
    bounds = plot_blocks(ax, hier, 3)
    assert bounds == [block_bounds(hier, p, 3) for p in range(3)]
    S = np.array([[1.0, np.nan], [2.0, 3.0]])
    im = plot_speedup_grid(ax, S, [2, 3], [2, 4], "t")
    assert im is not None and [t.get_text() for t in ax.texts][-4:] == ["1.0", "—", "2.0", "3.0"]
    plt.close(fig)


@pytest.mark.mpi
def test_heat2d_run_on_two_ranks_is_identical_to_one(tmp_path):
    from mgritlab.cluster import run_mpi

    # each rank writes its own file: the ranks' stdout streams interleave under mpiexec
    code = ("import json, sys\n"
            "from mgritlab.mgrit.scaling import heat2d_run\n"
            "r = heat2d_run(n=6, nt=33, levels=3, cf=2)\n"
            "json.dump({'size': r['size'], 'residuals': r['residuals']},\n"
            "          open(f\"{sys.argv[1]}/rank{r['rank']}.json\", 'w'))\n")
    proc = run_mpi([sys.executable, "-c", code, str(tmp_path)], 2, timeout=120)
    assert proc.returncode == 0, proc.stdout
    serial = heat2d_run(n=6, nt=33, levels=3, cf=2)["residuals"]
    runs = {p.name: json.loads(p.read_text()) for p in tmp_path.glob("rank*.json")}
    assert sorted(runs) == ["rank0.json", "rank1.json"]
    assert all(r["size"] == 2 and r["residuals"] == serial for r in runs.values())
