"""Graph operators G, Gᵀ, GᵀG and the offline Planetoid datasets."""
import shutil
import socket

import pytest
import torch

from mgritlab.graphs import datasets
from mgritlab.graphs.operators import (
    dense_gradient,
    graph_operators,
    incidence_matrix,
    laplacian,
    largest_eigenvalue,
    normalized_adjacency,
)

# a small undirected graph: a 4-cycle with a chord, a pendant node 4, and a self-loop at 1
PAIRS = [(0, 1), (1, 2), (2, 3), (3, 0), (0, 2), (2, 4)]


def small_graph(self_loop=True):
    src = [i for i, j in PAIRS] + [j for i, j in PAIRS] + ([1] if self_loop else [])
    dst = [j for i, j in PAIRS] + [i for i, j in PAIRS] + ([1] if self_loop else [])
    return torch.tensor([src, dst]), 5


def test_gradient_matches_dense_definition():
    ei, n = small_graph()
    ops = graph_operators(ei, n, dtype=torch.float64)
    G = ops.G.to_dense()
    assert G.shape == (2 * len(PAIRS), n)  # self-loop left out
    torch.testing.assert_close(G, dense_gradient(ei, n))
    # the definition by hand: w_ij = 1/sqrt(d̃_i d̃_j), degrees with self-loops
    deg = torch.tensor([3, 2, 4, 2, 1], dtype=torch.float64) + 1
    for k, (i, j) in enumerate(ops.edge_index.t().tolist()):
        w = 1 / torch.sqrt(deg[i] * deg[j])
        expect = torch.zeros(n, dtype=torch.float64)
        expect[i], expect[j] = w, -w
        torch.testing.assert_close(G[k], expect)
    torch.testing.assert_close(ops.Gt.to_dense(), G.t())
    torch.testing.assert_close(ops.GtG.to_dense(), G.t() @ G)


def test_laplacian_is_incidence_product_and_gtg_is_symmetric_psd():
    ei, n = small_graph()
    B = incidence_matrix(ei, n)
    assert B.shape == (len(PAIRS), n)
    L = laplacian(ei, n)
    A = torch.zeros(n, n, dtype=torch.float64)
    for i, j in PAIRS:
        A[i, j] = A[j, i] = 1
    torch.testing.assert_close(L, torch.diag(A.sum(1)) - A)
    torch.testing.assert_close(L, B.t() @ B)
    GtG = graph_operators(ei, n, dtype=torch.float64).GtG.to_dense()
    torch.testing.assert_close(GtG, GtG.t())
    ev = torch.linalg.eigvalsh(GtG)
    assert ev.min() > -1e-12 and abs(ev.min()) < 1e-12  # constants are in the kernel


def test_spmm_equals_gather_scatter_with_gradients():
    ei, n = small_graph()
    ops = graph_operators(ei, n, dtype=torch.float64)
    gs = ops.gather_scatter()
    f = torch.randn(n, 3, dtype=torch.float64, requires_grad=True)
    g = torch.randn(ops.num_edges, 3, dtype=torch.float64)
    torch.testing.assert_close(ops.grad(f), gs.grad(f))
    torch.testing.assert_close(ops.div(g), gs.div(g))
    torch.testing.assert_close(ops.lap(f), gs.lap(f))
    torch.autograd.gradcheck(lambda v: ops.div(torch.tanh(ops.grad(v))), (f,))


# torch loads its forward-AD decompositions with the deprecated torch.jit.script
@pytest.mark.filterwarnings("ignore:.*torch.jit.script.* is deprecated:DeprecationWarning")
def test_forward_mode_tangents_through_the_operators():
    import torch.autograd.forward_ad as fwAD

    ei, n = small_graph()
    ops = graph_operators(ei, n, dtype=torch.float64)
    f, v = torch.randn(2, n, 3, dtype=torch.float64).unbind(0)

    def layer(x):
        return x - 0.5 * ops.div(torch.tanh(ops.grad(x)))

    with fwAD.dual_level():
        tangent = fwAD.unpack_dual(layer(fwAD.make_dual(f, v))).tangent
    _, expected = torch.autograd.functional.jvp(layer, f, v)  # by double backward
    torch.testing.assert_close(tangent, expected)


def test_normalized_adjacency():
    ei, n = small_graph()
    A = normalized_adjacency(ei, n, dtype=torch.float64).to_dense()
    deg = torch.tensor([4, 3, 5, 3, 2], dtype=torch.float64)
    torch.testing.assert_close(A[0, 0], 1 / deg[0])
    torch.testing.assert_close(A[2, 4], 1 / torch.sqrt(deg[2] * deg[4]))
    torch.testing.assert_close(A, A.t())


@pytest.fixture(scope="module")
def cora(tmp_path_factory):
    return datasets.load_planetoid("Cora", tmp_path_factory.mktemp("planetoid"))


def test_cora_sizes_and_largest_eigenvalue(cora):
    assert (cora.num_nodes, cora.num_features, cora.num_classes) == (2708, 1433, 7)
    assert [int(m.sum()) for m in (cora.train_mask, cora.val_mask, cora.test_mask)] == [
        140, 500, 1000]
    torch.testing.assert_close(cora.x.sum(1), torch.ones(2708))  # NormalizeFeatures
    ops = graph_operators(cora.edge_index, cora.num_nodes)
    assert ops.num_edges == 10556
    assert largest_eigenvalue(ops) == pytest.approx(1.0, abs=1e-6)


@pytest.fixture
def no_network(monkeypatch):
    import torch_geometric.datasets  # noqa: F401  (imports need sockets' module, not a socket)

    class NoSocket(socket.socket):
        def __init__(self, *a, **k):
            raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "socket", NoSocket)
    monkeypatch.setattr(socket, "create_connection",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("network disabled")))


@pytest.mark.parametrize("name,sizes", [
    ("Cora", (2708, 1433, 7, 140, 500, 1000)),
    ("citeseer", (3327, 3703, 6, 120, 500, 1000)),
])
def test_load_offline_with_sockets_disabled(no_network, tmp_path, monkeypatch, name, sizes):
    monkeypatch.setenv("MGRITLAB_DATA", str(tmp_path))
    d = datasets.load_planetoid(name)
    got = (d.num_nodes, d.num_features, d.num_classes, int(d.train_mask.sum()),
           int(d.val_mask.sum()), int(d.test_mask.sum()))
    assert got == sizes
    assert (tmp_path / datasets.canonical_name(name) / "raw").is_dir()


def test_corrupt_raw_file_is_reported(tmp_path):
    datasets.prepare_root("Cora", tmp_path)
    bad = tmp_path / "Cora" / "raw" / "ind.cora.graph"
    bad.write_bytes(bad.read_bytes()[:-10])
    with pytest.raises(datasets.DatasetError, match=r"ind\.cora\.graph is corrupt.*Delete"):
        datasets.load_planetoid("Cora", tmp_path)


def test_missing_shipped_file_is_reported(tmp_path):
    src = tmp_path / "pkg"
    shutil.copytree(datasets.PACKAGE_DATA, src)
    (src / "Cora" / "raw" / "ind.cora.tx").unlink()
    with pytest.raises(datasets.DatasetError, match=r"ind\.cora\.tx is missing.*reinstall"):
        datasets.prepare_root("Cora", tmp_path / "root", source=src)


def test_unknown_dataset_names_choices():
    with pytest.raises(ValueError, match="Cora, CiteSeer"):
        datasets.canonical_name("PubMed")


@pytest.mark.parametrize("damage", ["empty", "garbage", "truncated"])
def test_a_corrupt_processed_file_is_rebuilt_from_the_raw_files(tmp_path, damage):
    ref = datasets.load_planetoid("Cora", tmp_path)
    processed = tmp_path / "Cora" / "processed" / "data.pt"
    good = processed.read_bytes()
    processed.write_bytes({"empty": b"", "garbage": b"hello\n",
                           "truncated": good[: len(good) // 3]}[damage])
    with pytest.warns(RuntimeWarning, match=r"processed.*rebuilding them from the hash-checked"):
        d = datasets.load_planetoid("Cora", tmp_path)
    assert d.num_nodes == ref.num_nodes and bool((d.x == ref.x).all())
    assert bool((d.edge_index == ref.edge_index).all())


def test_a_complete_read_only_cache_is_used_without_its_lock(tmp_path, monkeypatch):
    ref = datasets.load_planetoid("Cora", tmp_path)

    def read_only(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(datasets, "_open_lock_file", read_only)  # (root ignores chmod)
    d = datasets.load_planetoid("Cora", tmp_path)
    assert bool((d.x == ref.x).all())
    # read-only with a damaged processed file: no rebuild possible, say what to do
    (tmp_path / "Cora" / "processed" / "data.pt").write_bytes(b"")
    with pytest.raises(datasets.DatasetError, match=r"read-only: delete .*processed"):
        datasets.load_planetoid("Cora", tmp_path)
    with pytest.raises(datasets.DatasetError, match="MGRITLAB_DATA"):
        datasets.load_planetoid("Cora", tmp_path / "empty")
