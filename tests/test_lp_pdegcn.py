"""Layer-parallel PDE-GCN-D: the layer contract with IMEX per level, exact gradients, bad input."""
import pytest
import torch
import torch.nn.functional as F

from mgritlab.graphs.operators import graph_operators
from mgritlab.graphs.pdegcn import IMEX_CHOICES, PDEGCN
from mgritlab.mgrit import MGRIT

F64 = torch.float64


@pytest.fixture(scope="module")
def ops():
    g = torch.Generator().manual_seed(0)
    i, j = torch.randint(0, 12, (2, 20), generator=g)
    keep = i != j
    i, j = i[keep], j[keep]
    ei = torch.stack([torch.cat([i, j]), torch.cat([j, i])]).unique(dim=1)
    return graph_operators(ei, 12, dtype=F64)


def model(ops, imex="none", layers=8, dropout=0.3, **kw):
    kw.setdefault("alpha", 0.7)
    return PDEGCN(ops, 5, 3, channels=4, layers=layers, h=0.5, dropout=dropout, imex=imex,
                  init_noise=0.3, seed=1, cg_tol=1e-13, **kw)


def grads_of(m, x, y, seed=5):
    m.zero_grad()
    x = x.clone().requires_grad_(True)
    loss = F.nll_loss(m(x, mask_seed=seed), y)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in m.parameters()] + [x.grad]


@pytest.mark.parametrize("imex", IMEX_CHOICES)
def test_exact_layer_parallel_equals_autograd_through_the_serial_network(ops, imex):
    x = torch.rand(ops.num_nodes, 5, dtype=F64)
    y = torch.randint(0, 3, (ops.num_nodes,), generator=torch.Generator().manual_seed(2))
    learn = imex != "none"
    serial = model(ops, imex, learn_alpha=learn).train()
    lp = model(ops, imex, learn_alpha=learn, parallel=True, max_levels=3, cf=2,
               exact=True).train()
    lp.load_state_dict(serial.state_dict())
    l_s, g_s = grads_of(serial, x, y)
    l_p, g_p = grads_of(lp, x, y)
    assert abs(float(l_s - l_p)) <= 1e-12 * abs(float(l_s))
    for a, b in zip(g_p, g_s):   # every parameter (α included) and the input gradient
        assert float((a - b).norm()) <= 1e-10 * float(b.norm()) + 1e-300


def _phi_reference(blk, x, k, theta, h, frozen, level):
    """Φ by plain torch operations (no custom backward): the oracle for autograd."""
    h = torch.as_tensor(h, dtype=x.dtype).expand(k.numel())
    r = []
    for b in range(x.shape[0]):
        g = frozen.apply(blk.ops.grad(x[b]), "grad", int(k[b]))
        r.append(blk.ops.div(torch.relu(g @ theta["K"][b].t())) @ theta["K"][b])
    return x - h[:, None, None] * blk.apply_M(torch.stack(r), k, theta, h, level)


@pytest.mark.parametrize("layout", ["loop", "batched"])
@pytest.mark.parametrize("imex", IMEX_CHOICES)
def test_closed_form_adjoint_and_design_products_equal_plain_autograd(ops, imex, layout):
    """PDEGCNBlock.vjp_x from the stored σ'(z), and vjp_theta through the layer's custom
    backward, equal autograd through plain torch operations, on the fine and on a coarse level
    (per-level α), with dropout masks."""
    from mgritlab.nn import FrozenDropout

    m = model(ops, imex, level_alpha=None if imex == "none" else [0.0, None])
    blk = m.block
    blk.layout = layout
    g = torch.Generator().manual_seed(3)
    k = torch.tensor([5, 0, 3])
    x = torch.randn(3, ops.num_nodes, 4, generator=g, dtype=F64)
    v = torch.randn(3, ops.num_nodes, 4, generator=g, dtype=F64)
    theta = {n: t.detach() for n, t in blk.take(blk.layer_parameters(), k).items()}
    frozen = FrozenDropout({"grad": 0.4}, seed=9)
    lin = blk.linearize(x, k, theta, frozen)
    assert lin["relu"].dtype == torch.uint8 and lin["relu"].shape == (3, ops.num_edges, 4)
    for level, h in ((0, 0.5), (1, torch.tensor([2.0, 2.0, 1.0], dtype=F64))):
        xr = x.clone().requires_grad_(True)
        Kr = theta["K"].clone().requires_grad_(True)
        ref_x, ref_K = torch.autograd.grad(
            _phi_reference(blk, xr, k, {**theta, "K": Kr}, h, frozen, level), (xr, Kr), v)
        closed = blk.vjp_x(x, k, theta, h, frozen, v, lin, level)
        torch.testing.assert_close(closed, ref_x, rtol=1e-10, atol=1e-12)
        design = blk.vjp_theta(x, k, theta, h, frozen, v, lin, level)
        torch.testing.assert_close(design["K"], ref_K, rtol=1e-10, atol=1e-12)


def test_the_layer_residual_backward_passes_gradcheck(ops):
    from mgritlab.graphs.pdegcn import _LayerResidual
    from mgritlab.nn import FrozenDropout

    g = torch.Generator().manual_seed(4)
    f = torch.randn(ops.num_nodes, 3, generator=g, dtype=F64, requires_grad=True)
    K = torch.randn(3, 3, generator=g, dtype=F64, requires_grad=True)
    frozen = FrozenDropout({"grad": 0.3}, seed=2)
    assert torch.autograd.gradcheck(lambda f, K: _LayerResidual.apply(f, K, ops, frozen, 1),
                                    (f, K))


def test_one_level_reproduces_the_serial_training_curve_bit_for_bit(ops):
    x = torch.rand(ops.num_nodes, 5, dtype=F64)
    y = torch.randint(0, 3, (ops.num_nodes,), generator=torch.Generator().manual_seed(2))
    curves = []
    for opts in ({}, dict(parallel=True, max_levels=1)):
        m = model(ops, "shared", **opts).train()
        opt = torch.optim.Adam(m.parameters(), lr=0.05)
        losses = []
        for step in range(4):
            opt.zero_grad()
            loss = F.nll_loss(m(x, mask_seed=step), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        curves.append((losses, [p.detach().clone() for p in m.parameters()]))
    assert curves[0][0] == curves[1][0]
    assert all(torch.equal(a, b) for a, b in zip(curves[0][1], curves[1][1]))


def test_frozen_masks_are_shared_by_the_parallel_pass_and_its_serial_replay(ops):
    x = torch.rand(ops.num_nodes, 5, dtype=F64)
    m = model(ops, parallel=True, max_levels=2, cf=2, exact=True).train()
    out = m(x, mask_seed=3)
    frozen = m.layer_parallel().last_frozen
    assert frozen is m.frozen and frozen.layers_drawn("grad") == list(range(8))
    with torch.no_grad():
        f0 = m.open(x, frozen)
        replay = m.close(m.body.serial(frozen)(f0), frozen)
    torch.testing.assert_close(out, replay, rtol=1e-11, atol=1e-12)


def test_converged_mgrit_equals_serial_features_with_imex_on_coarse_levels_only(ops):
    m = model(ops, "shared", layers=16, dropout=0.0, alpha=2.0,
              level_alpha=[0.0, None, None]).eval()
    x = torch.rand(ops.num_nodes, 5, dtype=F64)
    with torch.no_grad():
        f0 = m.open(x)
        ref = torch.stack(m.features(x))
        explicit = torch.stack(model(ops, "none", layers=16, dropout=0.0).eval().features(x))
        torch.testing.assert_close(ref, explicit)      # level 0 is the explicit network
        res = MGRIT(m.propagator(), m.block.grid(), max_levels=3, cf=2, tol=1e-12,
                    max_iter=30).solve(f0)
    assert res.converged
    torch.testing.assert_close(res.u, ref, rtol=1e-10, atol=1e-10)
    # the coarse step really is IMEX: it differs from the explicit coarse step
    lv = res.hierarchy.levels[1]
    i = torch.tensor([0])
    prop = m.propagator()
    assert not torch.allclose(prop.step(f0[None], i, lv),
                              model(ops, "none", layers=16, dropout=0.0).eval()
                              .propagator().step(f0[None], i, lv))


def test_bad_input_says_what_to_change(ops):
    with pytest.raises(ValueError, match=r"level_alpha has 2 entries.*3 level"):
        model(ops, "shared", level_alpha=[0.0, 1.0], parallel=True, max_levels=3, cf=2)
    with pytest.raises(ValueError, match="imex='shared'"):
        model(ops, "none", level_alpha=[0.0, 1.0])
    with pytest.raises(ValueError, match="one entry per MGRIT level"):
        model(ops, "shared", level_alpha=1.0)
    with pytest.raises(ValueError, match="none, shared, channel, diffusion"):
        model(ops, "implicit")
    with pytest.raises(ValueError, match="multiple of 4"):
        model(ops, layers=6, parallel=True, max_levels=3, cf=2)
    with pytest.raises(ValueError, match="T1, T2 >= 1"):
        model(ops, parallel=True, max_levels=2, cf=2, fwd_iters=0)
    with pytest.raises(ValueError, match="parallel=True"):
        model(ops, max_levels=2)


def test_unstable_coarse_level_names_the_stabilising_alpha(ops):
    # h = 0.5 * 4^2 = 8 on level 2 with weights far from I: the explicit coarse step blows up
    m = PDEGCN(ops, 5, 3, channels=4, layers=64, h=1.5, dropout=0.0, init_noise=1.5, seed=0,
               parallel=True, max_levels=3, cf=4, fwd_iters=30).eval()
    x = torch.rand(ops.num_nodes, 5, dtype=F64)
    from mgritlab.mgrit import MGRITDivergenceError
    with pytest.raises(MGRITDivergenceError, match=r"(?s)level 2 .*α ≥"):
        with torch.no_grad():
            m(x)


@pytest.mark.parametrize("fine, coarse, asks", [
    (0.0, 0.0, True),       # explicit coarse level: it needs the bound's α
    (0.0, 0.9, True),       # below the bound
    (1.1, 1.1, False),      # α on every level, above the bound
    (0.0, 1.1, False),      # α on the coarse levels only (fig. 5.10), above the bound
])
def test_divergence_advice_asks_a_level_for_the_alpha_it_lacks_and_only_then(ops, fine, coarse,
                                                                            asks):
    from mgritlab.stability import min_alpha

    blk = model(ops, "shared", alpha=0.0, level_alpha=[0.0, 0.0], parallel=True,
                max_levels=2, cf=4).block
    f = torch.rand(ops.num_nodes, 4, dtype=F64, generator=torch.Generator().manual_seed(3))
    # the oracle: the dense Jacobian of the layer's residual, not the block's power iteration
    J = torch.autograd.functional.jacobian(
        lambda g: blk._residual1(g, 0, blk.K[0].detach(), None), f).reshape(f.numel(), -1)
    rho = float(torch.linalg.eigvals(J).abs().max())
    H = 16.0  # a coarse step far above the explicit limit 2/ρ
    need = min_alpha([-rho], H)
    assert need > 0.5, "the test needs a level that is unstable when explicit"
    m = model(ops, "shared", alpha=0.0, level_alpha=[fine * need, coarse * need],
              parallel=True, max_levels=2, cf=4)  # the same seed: the same layers
    text = m.block.divergence_advice(f, 0, H, 1)
    assert ("set e.g. imex='shared'" in text) is asks, text
    assert (f"α ≥ {need:.3g}" in text) or (f"α ≥ {need:.2g}" in text), (need, text)
    assert ("meets the bound" in text) is not asks
    assert ("thesis fig. 5.10" in text) is (not asks and fine == 0)
