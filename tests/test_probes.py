"""mgritlab.graphs.probes against independent computations (dense matrices, edge loops)."""
import json
from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest
import torch

from mgritlab.graphs.operators import graph_operators, normalized_adjacency
from mgritlab.graphs.probes import (
    dirichlet,
    gradient_energy,
    kept_runs,
    linear_probe,
    mean_cosine,
    plot_losses,
    plot_run,
    smoothing_table,
)

matplotlib.use("Agg")


def _graph(n=9, seed=0):
    """A random undirected graph as a PyG edge list (both directions), plus its edge set."""
    rng = np.random.default_rng(seed)
    und = sorted({tuple(sorted(map(int, rng.choice(n, 2, replace=False)))) for _ in range(14)})
    ei = torch.tensor([[i for i, j in und] + [j for i, j in und],
                       [j for i, j in und] + [i for i, j in und]])
    return ei, und


def _data(y, n_train, n_val):
    n = len(y)
    idx = torch.arange(n)
    return SimpleNamespace(y=torch.as_tensor(y), num_classes=int(max(y)) + 1,
                           train_mask=idx < n_train,
                           val_mask=(idx >= n_train) & (idx < n_train + n_val),
                           test_mask=idx >= n_train + n_val)


def test_dirichlet_is_the_edge_sum_with_self_loop_degrees():
    n = 9
    ei, und = _graph(n)
    f = torch.randn(n, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    d = np.ones(n)
    for i, j in und:
        d[i] += 1
        d[j] += 1
    fn = f.numpy()
    edge_sum = sum(((fn[i] / np.sqrt(d[i]) - fn[j] / np.sqrt(d[j])) ** 2).sum() for i, j in und)
    A_hat = normalized_adjacency(ei, n, dtype=torch.float64)
    assert dirichlet(f, A_hat) == pytest.approx(edge_sum / (fn ** 2).sum(), rel=1e-12)
    # constant on D~^{1/2} 1 (one component per column): zero energy only if connected
    assert dirichlet(f, A_hat) > 0


def test_gradient_energy_against_a_dense_gradient():
    n = 9
    ei, und = _graph(n, seed=2)
    ops = graph_operators(ei, n, dtype=torch.float64)
    f = torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    d = np.ones(n)
    for i, j in und:
        d[i] += 1
        d[j] += 1
    G = np.zeros((ei.shape[1], n))
    for e, (i, j) in enumerate(ei.T.tolist()):
        G[e, i], G[e, j] = 1 / np.sqrt(d[i] * d[j]), -1 / np.sqrt(d[i] * d[j])
    fn = f.numpy()
    assert gradient_energy(f, ops) == pytest.approx(((G @ fn) ** 2).sum() / (fn ** 2).sum(),
                                                    rel=1e-12)


def test_mean_cosine_against_numpy():
    f = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    pairs = torch.tensor([[0, 1, 2, 5], [3, 3, 4, 0]])
    fn = f.numpy()
    cos = [fn[i] @ fn[j] / np.linalg.norm(fn[i]) / np.linalg.norm(fn[j]) for i, j in pairs.T]
    assert mean_cosine(f, pairs) == pytest.approx(np.mean(cos), rel=1e-12)
    assert mean_cosine(f, torch.tensor([[1], [1]])) == pytest.approx(1.0)


def test_linear_probe_separable_and_uninformative_features():
    y = [0, 1, 2] * 10
    data = _data(y, n_train=9, n_val=9)
    onehot = torch.nn.functional.one_hot(torch.tensor(y)).to(torch.float32)
    assert linear_probe(onehot, data) == 1.0
    # constant features: every node gets the same class, so the test accuracy is that
    # class's share of the test nodes (1/3 here, whichever class it is)
    assert linear_probe(torch.ones(30, 2), data) == pytest.approx(1 / 3)


def test_smoothing_table_rows_match_explicit_powers():
    n = 9
    ei, _ = _graph(n, seed=5)
    A_hat = normalized_adjacency(ei, n, dtype=torch.float64)
    X = torch.rand(n, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    y = [0, 1, 0, 1, 0, 1, 0, 1, 0]
    data = _data(y, 3, 3)
    pairs = torch.tensor([[0, 1, 2], [3, 4, 8]])
    rows = smoothing_table(A_hat, X, [3, 0], data, pairs, steps=20)
    dense = A_hat.to_dense()
    assert [r[0] for r in rows] == [0, 3]
    f3 = torch.linalg.matrix_power(dense, 3) @ X
    assert rows[1][1] == pytest.approx(dirichlet(f3, A_hat), rel=1e-12)
    assert rows[1][2] == pytest.approx(mean_cosine(f3, pairs), rel=1e-12)
    with pytest.raises(ValueError, match=">= 0"):
        smoothing_table(A_hat, X, [-1], data, pairs)


def test_kept_runs_groups_finished_runs(tmp_path, monkeypatch):
    folder = tmp_path / "pdegcn"
    folder.mkdir()
    for i, (name, done) in enumerate([("cora_a", True), ("cora_a", True), ("cora_b", False)]):
        (folder / f"{name}_seed{i}.json").write_text(json.dumps({"name": name, "finished": done}))
    (folder / "cora_a_summary.json").write_text("{}")  # not a seed file
    monkeypatch.setenv("MGRITLAB_RESULTS", str(tmp_path))
    runs = kept_runs("pdegcn")
    assert list(runs) == ["cora_a"] and len(runs["cora_a"]) == 2
    assert kept_runs("no_such_results_folder") == {}


def test_plots_draw_the_curves():
    import matplotlib.pyplot as plt

    res = {"curves": {k: [0.1, 0.5, 0.4] for k in
                      ["train_acc", "val_acc", "test_acc", "train_loss", "val_loss"]},
           "best_epoch": 1, "test_acc_at_best_val": 0.5}
    fig, (a, b) = plt.subplots(1, 2)
    plot_run(res, a, "t")
    plot_losses(res, b)
    assert len(a.lines) == 4 and a.get_title() == "t"  # 3 curves + the best-epoch marker
    assert len(b.lines) == 2 and b.get_yscale() == "log"
    plt.close(fig)
