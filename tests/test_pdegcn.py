"""PDE-GCN-D layers: IMEX variants, CG, gradients, batching, the MGRIT propagator."""
import pytest
import torch

from mgritlab.graphs.operators import graph_operators
from mgritlab.graphs.pdegcn import IMEX_CHOICES, PDEGCN
from mgritlab.linalg import shifted_solve
from mgritlab.mgrit.hierarchy import build_hierarchy, uniform_grid
from mgritlab.nn.frozen import FrozenDropout


def random_graph(n=12, m=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    i, j = torch.randint(0, n, (2, m), generator=g)
    keep = i != j
    i, j = i[keep], j[keep]
    return torch.stack([torch.cat([i, j]), torch.cat([j, i])]).unique(dim=1), n


@pytest.fixture(scope="module")
def ops():
    ei, n = random_graph()
    return graph_operators(ei, n, dtype=torch.float64)


def model(ops, imex="none", alpha=0.0, learn_alpha=False, layers=4, dropout=0.0, **kw):
    return PDEGCN(ops, 5, 3, channels=4, layers=layers, h=0.5, dropout=dropout, imex=imex,
                  alpha=alpha, learn_alpha=learn_alpha, init_noise=0.3, seed=1,
                  cg_tol=1e-12, **kw)


@pytest.mark.parametrize("imex", IMEX_CHOICES[1:])
def test_imex_variants_reduce_to_explicit_at_alpha_zero(ops, imex):
    x = torch.rand(ops.num_nodes, 5, dtype=torch.float64)
    ref = model(ops).eval()
    m = model(ops, imex=imex, alpha=0.0).eval()
    torch.testing.assert_close(m(x), ref(x))
    m1 = model(ops, imex=imex, alpha=1.0).eval()
    assert not torch.allclose(m1(x), ref(x))


@pytest.mark.parametrize("imex", IMEX_CHOICES[1:])
def test_imex_factors(ops, imex):
    """M r = (I + hA)^{-1} r against a dense solve on vec(r) (node-major, channels inside):
    A = α I (shared), I ⊗ diag(α_c) (channel), α GᵀG ⊗ I (diffusion), per layer."""
    f = torch.randn(2, ops.num_nodes, 4, dtype=torch.float64)
    idx, h = torch.tensor([0, 3]), torch.tensor([0.5, 0.25], dtype=torch.float64)
    m = model(ops, imex=imex, alpha=1.0)
    with torch.no_grad():
        m.alpha.copy_(torch.rand(m.alpha.shape, generator=torch.Generator().manual_seed(3),
                                 dtype=torch.float64) * 3)
    r = m.block.residual(f, idx, m.K[idx])
    a = m.block.alpha_at(idx, {}, 0)
    y = m.block.imex_factor(r, a, h)
    n, c = ops.num_nodes, r.shape[2]
    eye_n, eye_c = torch.eye(n, dtype=torch.float64), torch.eye(c, dtype=torch.float64)
    for b in range(2):
        if imex == "shared":
            A = a[b] * torch.eye(n * c, dtype=torch.float64)
        elif imex == "channel":
            A = torch.kron(eye_n, torch.diag(a[b].reshape(c)))
        else:
            A = a[b] * torch.kron(ops.GtG.to_dense(), eye_c)
        ref = torch.linalg.solve(torch.eye(n * c, dtype=torch.float64) + h[b] * A,
                                 r[b].reshape(-1))
        torch.testing.assert_close(y[b].reshape(-1), ref, rtol=0, atol=1e-10)


def test_cg_matches_dense_solve(ops):
    L = ops.GtG.to_dense()
    b = torch.randn(ops.num_nodes, 3, dtype=torch.float64)
    s = torch.tensor([0.0, 0.7, 5.0], dtype=torch.float64)
    y = shifted_solve(ops.lap, b, s, tol=1e-12, batch_dim=-1)
    for k in range(3):
        A = torch.eye(ops.num_nodes, dtype=torch.float64) + s[k] * L
        torch.testing.assert_close(y[:, k], torch.linalg.solve(A, b[:, k]))


@pytest.mark.parametrize("imex", IMEX_CHOICES)
def test_one_layer_gradcheck_float64_with_frozen_dropout(ops, imex):
    m = model(ops, imex=imex, alpha=0.8, learn_alpha=True, dropout=0.3).train()
    m.new_masks(seed=7)  # one training step: the masks are fixed, the layer a fixed function
    f = torch.randn(1, ops.num_nodes, 4, dtype=torch.float64, requires_grad=True)
    idx = torch.tensor([2])
    params = [m.K] + ([m.alpha] if imex != "none" else [])

    def fn(f, *p):
        return m.layer_step(f, idx, 0.5)

    assert torch.autograd.gradcheck(fn, (f, *params), atol=1e-6, fast_mode=True)


def test_batched_layer_step_equals_per_layer_loop(ops):
    for imex in IMEX_CHOICES:
        m = model(ops, imex=imex, alpha=0.5, layers=5, dropout=0.4).train()
        m.new_masks(seed=3)
        f = torch.randn(4, ops.num_nodes, 4, dtype=torch.float64)
        idx = torch.tensor([4, 0, 2, 2])
        loop = torch.cat([m.layer_step(f[b:b + 1], idx[b:b + 1]) for b in range(4)])
        # the loop layout (CPU) is batch independent to the bit; the batched one (GPU) agrees
        assert torch.equal(m.layer_step(f, idx), loop)
        m.block.layout = "batched"
        torch.testing.assert_close(m.layer_step(f, idx), loop)


def test_frozen_masks_until_next_step():
    masks = FrozenDropout(0.5, seed=1)
    a = masks.mask("grad", 3, (50, 4))
    assert torch.equal(a, masks.mask("grad", 3, (50, 4)))
    assert not torch.equal(a, masks.mask("grad", 4, (50, 4)))
    assert set(a.unique().tolist()) == {0.0, 2.0}
    # seedable and order independent: another process drawing layer 3 first gets the same
    assert torch.equal(a, FrozenDropout(0.5, seed=1).mask("grad", 3, (50, 4)))
    assert not torch.equal(a, FrozenDropout(0.5, seed=2).mask("grad", 3, (50, 4)))
    assert masks.layers_drawn("grad") == [3, 4]
    with pytest.raises(ValueError, match="dropout"):
        FrozenDropout(1.0, seed=0)


def test_forward_is_log_softmax_and_deterministic_in_eval(ops):
    m = model(ops, dropout=0.5).eval()
    x = torch.rand(ops.num_nodes, 5, dtype=torch.float64)
    out = m(x)
    assert out.shape == (ops.num_nodes, 3)
    torch.testing.assert_close(out.exp().sum(1), torch.ones(ops.num_nodes, dtype=torch.float64))
    torch.testing.assert_close(m(x), out)
    m.train()
    a = m(x, mask_seed=5)
    torch.testing.assert_close(m(x, keep_masks=True), a)
    torch.testing.assert_close(m(x, mask_seed=5), a)


def test_dropout_sites_can_be_set_apart(ops):
    x = torch.rand(ops.num_nodes, 5, dtype=torch.float64)
    # open_dropout=0 (the authors' code): f_0 = relu(K_o dropout(x)), no mask after the map
    m = model(ops, dropout=0.5, input_dropout=0.0, open_dropout=0.0).train()
    m.new_masks(3)
    torch.testing.assert_close(m.open(x), torch.relu(x @ m.K_open.t()))
    m = model(ops, dropout=0.5, input_dropout=0.0).train()  # default: the same p everywhere
    m.new_masks(3)
    f0 = m.open(x)
    assert bool((f0 == 0).any()) and not torch.equal(f0, torch.relu(x @ m.K_open.t()))
    # the open override does not change the masks of the other sites
    a = model(ops, dropout=0.5).train()
    b = model(ops, dropout=0.5, open_dropout=0.2).train()
    a.new_masks(7)
    b.new_masks(7)
    f = torch.randn(1, ops.num_nodes, 4, dtype=torch.float64)
    torch.testing.assert_close(a.layer_step(f, [1]), b.layer_step(f, [1]))
    torch.testing.assert_close(a.frozen.mask("input", 0, (3, 5)),
                               b.frozen.mask("input", 0, (3, 5)))


def test_deepcopy_shares_the_graph_and_copies_the_weights(ops):
    import copy

    m = model(ops, dropout=0.5)
    c = copy.deepcopy(m)
    assert c.ops is m.ops
    with torch.no_grad():
        c.K.add_(1.0)
    assert not torch.equal(c.K, m.K)
    x = torch.rand(ops.num_nodes, 5, dtype=torch.float64)
    torch.testing.assert_close(copy.deepcopy(m).eval()(x), m.eval()(x))


def test_propagator_uses_fine_index_and_level_step(ops):
    m = model(ops, layers=8, imex="shared", alpha=1.0).eval()
    hier = build_hierarchy(uniform_grid(0.0, 8 * 0.5, 9), m.propagator(), max_levels=2, cf=2)
    fine, coarse = hier.levels
    f = torch.randn(2, ops.num_nodes, 4, dtype=torch.float64)
    i = torch.tensor([0, 3])
    prop = hier.propagators[0]
    torch.testing.assert_close(prop.step(f, i, fine), m.layer_step(f, i, 0.5))
    # coarse level: layer weights of fine layers 2i, step cf*h
    torch.testing.assert_close(prop.step(f, i, coarse), m.layer_step(f, 2 * i, 1.0))


def test_errors_say_what_to_change(ops):
    with pytest.raises(ValueError, match="none, shared, channel, diffusion"):
        model(ops, imex="implicit")
    m = model(ops)
    with pytest.raises(IndexError, match=r"0\.\.3"):
        m.layer_step(torch.zeros(1, ops.num_nodes, 4, dtype=torch.float64), [4])


def test_eval_mode_layer_is_the_linear_map_half_gtg_f_ktk(ops):
    """With both directions of every edge, (G f K_lᵀ) on edge (j, i) is minus that on (i, j),
    and relu(z) − relu(−z) = z, so Gᵀ relu(G f K_lᵀ) K_l = ½ GᵀG f K_lᵀ K_l: without dropout
    the PDE-GCN-D layer is linear (the thesis writes G f K_l, hence ½ GᵀG f K_l K_lᵀ there).
    Oracle: dense G from the edge list, not the package's operators."""
    net = model(ops).eval()
    ei, w, n = ops.edge_index, ops.weight, ops.num_nodes
    G = torch.zeros(ei.shape[1], n, dtype=torch.float64)
    G[torch.arange(ei.shape[1]), ei[0]] += w
    G[torch.arange(ei.shape[1]), ei[1]] -= w
    f = torch.randn(n, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    for k in range(net.num_layers):
        K = net.K[k].detach()
        oracle = 0.5 * G.T @ G @ f @ K.T @ K
        r = net.residual(f[None], [k])[0].detach()
        torch.testing.assert_close(r, oracle, rtol=1e-12, atol=1e-12)
    # one direction per edge breaks the pairing: the layer is no longer linear
    one_way = ei[:, ei[0] < ei[1]]
    half = model(graph_operators(one_way, n, dtype=torch.float64)).eval()
    r1 = half.residual(f[None], [0])[0].detach()
    G1 = torch.zeros(one_way.shape[1], n, dtype=torch.float64)
    w1 = half.ops.weight
    G1[torch.arange(one_way.shape[1]), one_way[0]] += w1
    G1[torch.arange(one_way.shape[1]), one_way[1]] -= w1
    K0 = half.K[0].detach()
    assert (r1 - 0.5 * G1.T @ G1 @ f @ K0.T @ K0).abs().max() > 1e-3
