"""mgritlab.training_runs.plots (lesson 13's helpers), each against an independent oracle."""
import json
import math

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from mgritlab.problems.networks import xor_problem
from mgritlab.problems.training import TrainingSteps, doubling
from mgritlab.training_runs import Solver, plots
from mgritlab.training_runs.paper import table
from mgritlab.training_runs.tables import table_solver


def test_potential_speedup_counts_by_hand():
    # 25600 steps: 13 levels (25600 / 2^12 = 6 <= 10); one F-cycle = 12·17 + 8·(0+...+11)
    assert plots.potential_speedup(25600, 21, "F") == pytest.approx(25600 / (21 * 732))
    # V-cycle, eq. (18): 17 + 8(L - 2); 100 steps -> 100, 50, 25, 12, 6: 5 levels
    assert plots.potential_speedup(100, 4, "V") == pytest.approx(100 / (4 * (17 + 24)))
    assert plots.potential_speedup(100, 4, "two-level") == pytest.approx(100 / (4 * 17))
    with pytest.raises(ValueError):
        plots.potential_speedup(100, 0, "F")


def test_paper_speedups_skip_fifty_plus():
    ns, s = plots.paper_speedups(1)  # Table 1: the last three entries are "50+"
    t = table(1)
    assert ns == list(t["steps"][:6]) and len(s) == 6
    assert s[0] == pytest.approx(100 / (14 * 17))


def test_record_speedups_sorted_and_converged_only():
    recs = [dict(steps=400, iterations=8, cycle="F", converged=True, cf=2),
            dict(steps=200, iterations=5, cycle="F", converged=True, cf=2),
            dict(steps=800, iterations=50, cycle="F", converged=False, cf=2)]
    ns, s = plots.record_speedups(recs)
    assert ns == [200, 400]
    assert s[0] == pytest.approx(200 / (5 * sum(17 + 8 * (lv - 2) for lv in range(2, 7))))


def _write(folder, name, **rec):
    (folder / name).write_text(json.dumps(rec))


def test_kept_records_keeps_the_default_reading_once(tmp_path):
    assert plots.kept_records([3], folder=tmp_path) is None
    s3 = table_solver(3)
    base = dict(table=3, steps=100, iterations=5, converged=True, cycle="F",
                alpha_b=s3.alpha_b, coarse_examples=s3.coarse_examples)
    _write(tmp_path, "table03_a.json", **base, tol=1e-9 * math.sqrt(100))
    _write(tmp_path, "table03_b.json", **{**base, "iterations": 6}, tol=1e-9)  # other tolerance
    _write(tmp_path, "table03_c.json", **{**base, "alpha_b": 0.1, "iterations": 3},
           tol=1e-9 * math.sqrt(100))  # the caption's α_b
    recs = plots.kept_records([3], folder=tmp_path)
    assert [r["iterations"] for r in recs] == [5]
    assert plots.kept_records([4], folder=tmp_path) is None


def test_plots_draw_on_an_axis():
    recs = [dict(steps=n, iterations=it, converged=ok) for n, it, ok in
            [(100, 5, True), (200, 6, True), (400, 50, False)]]
    fig, ax = plt.subplots()
    plots.plot_iterations(ax, {"a": recs}, paper={"a": 2})
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["a", "a: paper, Table 2", "not converged (50+)"]
    paper_line = ax.get_lines()[1]
    assert list(paper_line.get_xdata()) == [100, 200, 400]  # the paper's N0 up to ours
    fig2, ax2 = plt.subplots()
    plots.plot_speedup(ax2, {"x": ([100, 200], [0.1, 0.2]), "empty": ([], [])}, {"x": "k^:"})
    assert [ln.get_label() for ln in ax2.get_lines() if not ln.get_label().startswith("_")] \
        == ["x"]  # and the unlabelled S = 1 line
    plt.close(fig)
    plt.close(fig2)


def test_hessian_eigenvalues_match_autograd():
    data = xor_problem()
    net = data.network
    w = torch.stack([data.w0, 0.5 * data.w0 + 0.3])
    got = plots.hessian_eigenvalues(net, w, data.x, data.y)

    def loss(v):
        a1 = torch.sigmoid(data.x @ v[:12].reshape(3, 4))
        a2 = torch.sigmoid(a1 @ v[12:].reshape(4, 1))
        return 0.5 * ((a2 - data.y) ** 2).sum()

    for b in range(2):
        want = torch.linalg.eigvalsh(torch.func.hessian(loss)(w[b]))
        assert torch.allclose(got[b], want, atol=1e-8)


def test_example_indices_both_readings():
    data = xor_problem()
    lr = doubling(1.0, 8.0)
    serial_fine = TrainingSteps(data, lr, "serial", coarse_examples="fine")
    repeat_level = TrainingSteps(data, lr, "repeat", coarse_examples="level")
    repeat_fine = TrainingSteps(data, lr, "repeat", coarse_examples="fine")
    assert plots.example_indices(serial_fine, 6, 1).tolist() == [0, 2, 0, 2, 0, 2]
    assert plots.example_indices(repeat_level, 6, 2).tolist() == [0, 0, 1, 1, 2, 2]
    # eq. (16) at fine index 2i: mod(⌊2i/2⌋, 4) = mod(i, 4)
    assert plots.example_indices(repeat_fine, 6, 1).tolist() == [0, 1, 2, 3, 0, 1]
    with pytest.raises(ValueError):
        plots.example_indices(TrainingSteps(data, 1.0), 4, 0)


def test_sweep_runs_each_steps_and_reports():
    seen = []
    recs = plots.sweep("xor", Solver("solver1", 1.0, 8.0), (8, 16), "two-level",
                       progress=seen.append)
    assert [r["steps"] for r in recs] == [8, 16] and seen == recs
    assert all(r["converged"] for r in recs)
