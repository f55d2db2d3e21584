"""MGRIT over training steps (Schroder 2022): the networks, the training-step propagator, the
solvers and the tables, each against an independent oracle."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mgritlab.mgrit import MGRIT
from mgritlab.problems.networks import (
    SigmoidMLP,
    TrainingData,
    binary_addition_problem,
    state_matmul,
    xor_problem,
)
from mgritlab.problems.training import (
    FINEST_LEVEL,
    LearningRate,
    Repeated,
    TrainingSteps,
    constant,
    doubling,
)
from mgritlab.training_runs import Solver, levels_for, paper_sigma, run
from mgritlab.training_runs.paper import TABLES, table
from mgritlab.training_runs.tables import agreement, format_table, load, run_table


def trask_xor(steps: int, alpha: float) -> np.ndarray:
    """The serial training loop of the paper's Appendix A (Trask 2015), in plain numpy."""
    np.random.seed(1)  # noqa: NPY002 - the appendix's own generator calls
    X = np.array([[0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 1]])
    y = np.array([[0], [1], [1], [0]])
    syn0 = 2 * np.random.random((3, 4)) - 1  # noqa: NPY002
    syn1 = 2 * np.random.random((4, 1)) - 1  # noqa: NPY002

    def nonlin(x, deriv=False):
        return x * (1 - x) if deriv else 1 / (1 + np.exp(-x))

    for _ in range(steps):
        l1 = nonlin(X @ syn0)
        l2 = nonlin(l1 @ syn1)
        l2_delta = (y - l2) * nonlin(l2, True)
        l1_delta = l2_delta @ syn1.T * nonlin(l1, True)
        syn1 = syn1 + alpha * l1.T @ l2_delta
        syn0 = syn0 + alpha * X.T @ l1_delta
    return np.concatenate([syn0.ravel(), syn1.ravel()])


class _Level:
    def __init__(self, index, stride):
        self.index, self.stride, self.direction = index, stride, 1

    def fine_index(self, i):
        return i * self.stride


# ---- networks --------------------------------------------------------------------------------
def test_xor_weights_are_the_appendix_ones_and_serial_training_is_its_loop():
    data = xor_problem()
    assert data.network.size == 16 and data.examples == 4
    assert np.allclose(data.w0.numpy(), trask_xor(0, 1.0), rtol=0, atol=0)
    for alpha in (1.0, 0.1):
        w = TrainingSteps(data, alpha).serial(300)
        assert np.abs(w[-1].numpy() - trask_xor(300, alpha)).max() < 1e-13


def test_gradient_is_autograd_of_the_loss_for_both_networks():
    for data in (xor_problem(), binary_addition_problem(pairs=20, hidden=(16, 8), bits=6)):
        net = data.network
        g = torch.Generator().manual_seed(3)
        w = (data.w0 + 0.3 * torch.randn(3, net.size, dtype=torch.float64, generator=g))
        w.requires_grad_(True)
        net.loss(w, data.x, data.y).sum().backward()
        assert torch.allclose(net.gradient(w.detach(), data.x, data.y), w.grad, rtol=1e-12,
                              atol=1e-14)


def test_binary_addition_data_add_up_and_have_the_paper_size():
    data = binary_addition_problem()
    assert data.network.sizes == (24, 128, 64, 12) and data.network.size == 12_032
    assert data.examples == 500
    weights = 2.0 ** torch.arange(11, -1, -1, dtype=torch.float64)
    left, right = data.x[:, :12] @ weights, data.x[:, 12:] @ weights
    assert torch.equal(left + right, data.y @ weights)
    assert torch.equal(binary_addition_problem(seed=5).x, binary_addition_problem(seed=5).x)
    assert not torch.equal(binary_addition_problem(seed=5).x, data.x)


def test_state_matmul_is_each_states_own_product_on_both_paths():
    g = torch.Generator().manual_seed(0)
    for M, R, C in ((4, 3, 5), (500, 24, 128)):  # the ordered sum and the per-state mm
        x = torch.randn(M, R, dtype=torch.float64, generator=g)
        W = torch.randn(6, R, C, dtype=torch.float64, generator=g)
        assert torch.allclose(state_matmul(x, W), torch.einsum("mr,brc->bmc", x, W),
                              rtol=1e-13, atol=1e-12)
        xb = torch.randn(6, M, R, dtype=torch.float64, generator=g)
        assert torch.allclose(state_matmul(xb, W), xb @ W, rtol=1e-13, atol=1e-12)


# ---- the propagator ------------------------------------------------------------------------
@pytest.mark.parametrize("examples", ["all", "serial", "repeat"])
def test_batched_step_is_bitwise_a_per_point_loop(examples):
    for data in (xor_problem(), binary_addition_problem(pairs=40)):
        prop = TrainingSteps(data, doubling(0.1, 0.2), examples)
        g = torch.Generator().manual_seed(1)
        B = 37
        u = data.w0 + 0.1 * torch.randn(B, data.network.size, dtype=torch.float64, generator=g)
        i = torch.arange(B) * 3
        level = _Level(1, 2)
        batched = prop.step(u, i, level)
        loop = torch.cat([prop.step(u[k : k + 1], i[k : k + 1], level) for k in range(B)])
        assert torch.equal(batched, loop)


def test_example_rules_and_the_coarse_index_readings():
    data = xor_problem()
    i = torch.arange(10)
    serial = TrainingSteps(data, 1.0, "serial")
    assert serial.examples.index(i, 4).tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    assert Repeated().index(i, 4).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 0, 0]
    assert Repeated(3).index(i, 4).tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]
    x, _ = serial.batch(i, _Level(1, 2))  # Remark 1: the level's own index
    assert torch.equal(x[:, 0], data.x[i % 4])
    fine = TrainingSteps(data, 1.0, "serial", coarse_examples="fine")
    x, _ = fine.batch(i, _Level(1, 2))
    assert torch.equal(x[:, 0], data.x[(2 * i) % 4])
    x, y = TrainingSteps(data, 1.0, "all").batch(i, _Level(2, 4))
    assert torch.equal(x, data.x) and torch.equal(y, data.y)


def test_one_example_step_is_a_gradient_step_on_that_example():
    data = xor_problem()
    prop = TrainingSteps(data, doubling(0.5, 8.0), "serial")
    w = data.w0[None]
    level = _Level(2, 4)
    stepped = prop.step(w, torch.tensor([7]), level)
    x, y = data.x[3:4], data.y[3:4]  # mod(7, 4) = 3 on the level's own index
    wr = w.clone().requires_grad_(True)
    (0.5 * ((data.network.output(wr, x) - y) ** 2).sum()).backward()
    assert torch.allclose(stepped, w - 2.0 * wr.grad, rtol=1e-14, atol=1e-15)


def test_learning_rates_per_level():
    assert [doubling(0.1, 8.0)(lv) for lv in range(8)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 8.0])
    assert [constant(0.3)(lv) for lv in range(3)] == [0.3, 0.3, 0.3]
    prop = TrainingSteps(xor_problem(), lambda lv: 0.1 * (lv + 1))
    assert prop.alpha(2) == pytest.approx(0.3)


def test_a_loss_function_gives_the_same_steps_as_the_closed_form():
    data = xor_problem()
    net = data.network

    def loss(w, x, y):
        return net.loss(w[None], x, y)[0]

    closed = TrainingSteps(data, 1.0, "serial")
    generic = TrainingSteps(data, 1.0, "serial", loss=loss)
    u = data.w0.repeat(5, 1) + 0.01 * torch.arange(5.0, dtype=torch.float64)[:, None]
    i = torch.arange(5)
    assert torch.allclose(generic.step(u, i, FINEST_LEVEL), closed.step(u, i, FINEST_LEVEL),
                          rtol=1e-13, atol=1e-15)
    all_data = TrainingSteps(data, 1.0, "all", loss=loss)
    assert torch.allclose(all_data.step(u, i, FINEST_LEVEL),
                          TrainingSteps(data, 1.0).step(u, i, FINEST_LEVEL), rtol=1e-13)


def test_bad_input_gets_a_clear_error():
    data = xor_problem()
    with pytest.raises(ValueError, match=r"α_max = 0\.05 is below α_b = 0\.1"):
        doubling(0.1, 0.05)
    with pytest.raises(ValueError, match="learning rate base"):
        LearningRate(-1.0)
    with pytest.raises(TypeError, match="examples=3: give 'all'"):
        TrainingSteps(data, 1.0, 3)
    with pytest.raises(TypeError, match="ExampleRule"):
        TrainingSteps(data, 1.0, "shuffle")
    with pytest.raises(ValueError, match="coarse_examples"):
        TrainingSteps(data, 1.0, coarse_examples="coarse")
    prop = TrainingSteps(data, 1.0)
    with pytest.raises(ValueError, match=r"flat weight vectors \(B, 16\)"):
        prop.step(torch.zeros(2, 15, dtype=torch.float64), torch.arange(2), FINEST_LEVEL)
    with pytest.raises(ValueError, match="16 weights"):
        prop.serial(3, w0=torch.zeros(17))
    with pytest.raises(ValueError, match="w0 has shape"):
        TrainingData(SigmoidMLP((3, 4, 1)), data.x, data.y, torch.zeros(15))
    with pytest.raises(ValueError, match="learning rate of level 1"):
        TrainingSteps(data, lambda lv: float("nan") if lv else 1.0).step(
            data.w0[None], torch.tensor([0]), _Level(1, 2))
    with pytest.raises(ValueError, match="alpha_max"):
        Solver("solver1", 0.1)
    with pytest.raises(ValueError, match=r"Tables 1–20"):
        table(21)


# ---- MGRIT over training steps ---------------------------------------------------------------
@pytest.mark.parametrize("solver,cycle", [(Solver("solver1", 1.0, 8.0), "F"),
                                          (Solver("solver3", 1.0, 8.0, "fine"), "V")])
def test_mgrit_converges_to_serial_training(solver, cycle):
    data = xor_problem()
    prop = solver.propagator(data)
    steps = 200
    mgrit = MGRIT(prop, torch.arange(steps + 1, dtype=torch.float64),
                  max_levels=levels_for(steps, cycle), cf=2, relax="FCF", cycle=cycle,
                  tol=1e-13, max_iter=60)
    res = mgrit.solve(data.w0)
    assert res.converged
    assert (res.u - prop.serial(steps)).abs().max() < 1e-9


def test_solver1_two_level_iterations_stay_flat_while_the_naive_ones_grow():
    flat = [run("xor", Solver("solver1", 1.0, 8.0), n, "two-level")["iterations"]
            for n in (100, 200, 800)]
    assert max(flat) - min(flat) <= 1 and max(flat) <= 8
    naive = [run("xor", Solver("naive", 1.0), n, "two-level")["iterations"] for n in (100, 400)]
    assert naive[1] >= naive[0] + 5


def test_a_run_record_holds_the_paper_quantities():
    rec = run("xor", Solver("solver1", 1.0, 8.0), 100, "F", check_serial=True)
    assert rec["levels"] == levels_for(100, "F") == 5  # 100, 50, 25, 12, 6 steps
    assert rec["converged"] and rec["residuals"][-1] <= 1e-9 * math.sqrt(100)
    k = rec["iterations"]
    assert rec["rho"] == pytest.approx((rec["residuals"][-1] / rec["r0"]) ** (1 / k))
    assert rec["serial_difference"] < 1e-7
    assert rec["paper_speedup"] == pytest.approx(100 / paper_sigma(5, k, "F"))
    assert paper_sigma(5, 2, "V") == 2 * (17 + 8 * 3)
    assert paper_sigma(4, 1, "F") == 17 + 25 + 33


def test_paper_tables_are_complete():
    assert [t["table"] for t in TABLES] == list(range(1, 21))
    for t in TABLES:
        assert len(t["steps"]) == len(t["iterations"]) == len(t["rho"])


def test_run_table_writes_resumes_and_prints(tmp_path):
    recs = run_table(2, out=tmp_path, max_steps=200)
    assert [r["steps"] for r in recs] == [100, 200]
    assert len(list(tmp_path.glob("table02_*.json"))) == 2
    again = run_table(2, out=tmp_path, max_steps=200, resume=True)
    assert again == json.loads(json.dumps(recs))  # read back, not rerun
    text = format_table(load(tmp_path))
    assert "Table 2: xor, solver1, two-level, α_b = 1 (caption 0.1)" in text
    assert agreement(recs) == []


KEPT = Path(__file__).resolve().parents[1] / "results" / "training_runs"


def test_the_kept_tables_are_what_the_runs_give():
    """The smallest N0 of every kept table (both tolerance readings), rerun: the same
    iterations and residual history."""
    kept = load(KEPT)
    assert len({r["table"] for r in kept}) >= 8, "results/training_runs holds too few tables"
    smallest = {}
    for r in kept:
        key = (r["table"], r["scale_tol"])
        if key not in smallest or r["steps"] < smallest[key]["steps"]:
            smallest[key] = r
    for (number, scale_tol), rec in sorted(smallest.items()):
        if rec["problem"] != "xor" and rec["solver"] in ("naive", "solver1"):
            continue  # the 500-example runs take minutes; the XOR and one-example ones do not
        again = run_table(number, max_steps=rec["steps"], scale_tol=scale_tol,
                          check_serial=False)[0]
        assert again["iterations"] == rec["iterations"], (number, scale_tol)
        assert again["residuals"] == pytest.approx(rec["residuals"], rel=1e-9), number


def test_cli_reruns_a_table(tmp_path, capsys):
    from mgritlab.__main__ import main

    assert main(["experiment", "training-runs", "--tables", "2", "--max-steps", "100",
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Table 2: xor, solver1, two-level" in out and "1 of 1 entries within ±2" in out
    assert len(list(tmp_path.glob("table02_N100_*.json"))) == 1


def test_report_fills_every_field(tmp_path):
    from mgritlab.training_runs.report import write_report

    run_table(3, out=tmp_path, max_steps=200, check_serial=False)
    (tmp_path / "README.in.md").write_text(
        "{{COUNT}}\n{{SUMMARY_SCALED}}\n{{SUMMARY_UNSCALED}}\n{{TABLES_SCALED}}\n"
        "{{TABLES_UNSCALED}}\n{{SPEEDUPS}}\n{{SCALING}}\n")
    text = write_report(tmp_path)
    assert "{{" not in text and "2 records (2 at" in text
    assert "| 3 | xor | solver1 | F | 100–200 | 2 of 2 |" in text
    assert (tmp_path / "speedup.png").stat().st_size > 1000
    with pytest.raises(FileNotFoundError, match=r"README\.in\.md"):
        write_report(tmp_path / "nowhere")


def test_a_solve_the_guard_stopped_shows_the_iteration_it_stopped_at():
    from mgritlab.training_runs.tables import iterations_text

    base = {"converged": False, "iterations": 0, "residuals": []}
    assert iterations_text({**base, "stop_reason": "MGRIT stagnated at residual 9.0e+00 "
                                                   "(tol 1.3e-08) after iteration 32."}) == "32+"
    assert iterations_text({**base, "iterations": 50, "stop_reason": ""}) == "50+"
    assert iterations_text({"converged": True, "iterations": 7}) == "7"
