"""The GRU over the sequence on the layer contract: torch's GRU, exact gradients, stability."""
import math
from itertools import pairwise

import pytest
import torch
from torch import nn

from mgritlab.nn.adjoint import design_gradient, sum_chunks
from mgritlab.nn.blocks import SerialODENet
from mgritlab.nn.layer_parallel import LayerParallel
from mgritlab.recurrent.gru import GRUStack, StepInputs
from mgritlab.recurrent.model import GRUClassifier

F64 = torch.float64


def _data(N=32, B=5, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, B, c, generator=g, dtype=F64)


def test_classic_step_with_dt_1_is_torch_gru_cell_and_gru():
    N, B, c, H = 20, 4, 3, 5
    x = _data(N, B, c)
    stack = GRUStack(c, H, N, num_layers=2, scheme="classic",
                     generator=torch.Generator().manual_seed(1))
    ref = nn.GRU(c, H, num_layers=2, dtype=F64)
    ref.load_state_dict(stack.state_dict())          # the same names as torch.nn.GRU
    want, _ = ref(x)                                 # (N, B, H): the top layer's states
    got = SerialODENet(stack).states(torch.zeros(B, 2 * H, dtype=F64), StepInputs(x))
    assert torch.allclose(got[1:, :, H:], want, rtol=0, atol=1e-15)
    cell = nn.GRUCell(c, H, dtype=F64)
    with torch.no_grad():
        for a, b in (("weight_ih", "weight_ih_l0"), ("weight_hh", "weight_hh_l0"),
                     ("bias_ih", "bias_ih_l0"), ("bias_hh", "bias_hh_l0")):
            getattr(cell, a).copy_(getattr(stack, b))
    h = torch.zeros(B, H, dtype=F64)
    for t in range(N):
        h = cell(x[t], h)
    assert torch.allclose(got[-1, :, :H], h, rtol=0, atol=1e-15)


def test_implicit_step_solves_its_diagonal_equation():
    """(1 + Δt(1 − z)) ⊙ h_t = h_{t−1} + Δt(1 − z) ⊙ n_t, with z and n recomputed here."""
    N, B, c, H, dt = 8, 3, 2, 4, 3.5
    stack = GRUStack(c, H, N, dt=dt, generator=torch.Generator().manual_seed(2))
    x = _data(N, B, c, seed=3)
    hs = SerialODENet(stack).states(torch.zeros(B, H, dtype=F64), StepInputs(x))
    w_ih, w_hh = stack.weight_ih_l0.detach(), stack.weight_hh_l0.detach()
    b_ih, b_hh = stack.bias_ih_l0.detach(), stack.bias_hh_l0.detach()
    for t in range(N):
        h = hs[t]
        gi, gh = x[t] @ w_ih.T + b_ih, h @ w_hh.T + b_hh
        r = torch.sigmoid(gi[:, :H] + gh[:, :H])
        z = torch.sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
        n = torch.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
        lhs = (1 + dt * (1 - z)) * hs[t + 1]
        assert torch.allclose(lhs, h + dt * (1 - z) * n, rtol=0, atol=1e-14)


def test_implicit_gru_is_bounded_for_any_step_and_classic_is_not():
    N, B, c, H = 16, 6, 3, 8
    x = 3 * _data(N, B, c, seed=4)
    h0 = torch.zeros(B, H, dtype=F64)
    for dt in (1.0, 10.0, 1e3, 1e8):
        imp = GRUStack(c, H, N, dt=dt, generator=torch.Generator().manual_seed(5))
        hs = SerialODENet(imp).states(h0, StepInputs(x))
        assert torch.isfinite(hs).all() and hs.abs().max() <= 1.0, dt
    cls = GRUStack(c, H, N, dt=1e3, scheme="classic", generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        hs = SerialODENet(cls).states(h0, StepInputs(x))
    assert not (torch.isfinite(hs).all() and hs.abs().max() <= 1.0)


@pytest.mark.parametrize("scheme,levels,cf", [("implicit", 3, 4), ("implicit", 2, 2),
                                              ("classic", 2, 2),
                                              (("classic", "implicit", "implicit"), 3, 4)])
def test_exact_layer_parallel_gradients_equal_autograd_through_the_serial_recurrence(
        scheme, levels, cf):
    N, B, c, H = 32, 5, 3, 4
    m = GRUClassifier(c, H, 3, N, num_layers=2, scheme=scheme, parallel=True, seed=1,
                      max_levels=levels, cf=cf, exact=True)
    g = torch.Generator().manual_seed(7)
    xb = torch.randn(B, N, c, generator=g, dtype=F64)
    y = torch.randint(0, 3, (B,), generator=g)
    loss = nn.functional.cross_entropy(m(xb), y)
    loss.backward()
    lp = {n: p.grad.clone() for n, p in m.named_parameters()}
    m.zero_grad()
    ref = nn.functional.cross_entropy(m.serial()(xb), y)
    ref.backward()
    assert abs(float((loss - ref).detach())) <= 1e-12 * float(ref.detach())
    for n, p in m.named_parameters():
        assert torch.allclose(lp[n], p.grad, rtol=1e-10, atol=1e-13), n
    assert m.layer_parallel().stats["forward"].levels == levels


def test_inexact_layer_parallel_gradient_is_a_descent_direction_near_the_exact_one():
    N, B, c, H = 64, 8, 3, 6
    g = torch.Generator().manual_seed(8)
    xb = torch.randn(B, N, c, generator=g, dtype=F64)
    y = torch.randint(0, 2, (B,), generator=g)
    m = GRUClassifier(c, H, 2, N, parallel=True, seed=2, max_levels=3, cf=4)
    nn.functional.cross_entropy(m(xb), y).backward()
    inexact = torch.cat([p.grad.flatten() for p in m.parameters()])
    m.zero_grad()
    nn.functional.cross_entropy(m.serial()(xb), y).backward()
    exact = torch.cat([p.grad.flatten() for p in m.parameters()])
    cos = float(inexact @ exact / (inexact.norm() * exact.norm()))
    assert cos > 0.9, cos


def test_shared_gradient_is_the_same_bits_whatever_the_split_into_rank_blocks():
    """Partial sums over whole chunks of m layers, added over disjoint blocks, then finished
    in order: the split of MPI ranks without MPI."""
    N, B, c, H, m = 64, 4, 3, 5, 16
    stack = GRUStack(c, H, N, generator=torch.Generator().manual_seed(3))
    x = StepInputs(_data(N, B, c, seed=9))
    params = {n: p.detach() for n, p in stack.layer_parameters().items()}
    states = SerialODENet(stack).states(torch.zeros(B, H, dtype=F64), x).detach()
    adj = torch.randn(N + 1, B, H, generator=torch.Generator().manual_seed(4), dtype=F64)
    whole = design_gradient(stack, params, x, states, adj, chunk=m)
    for cuts in ([0, 16, 64], [0, 48, 64], [0, 16, 32, 48, 64]):
        parts = [design_gradient(stack, params, x, states, adj, range(a, b), chunk=m,
                                 partial=True) for a, b in pairwise(cuts)]
        for n in params:
            assert torch.equal(sum_chunks(sum(p[n] for p in parts)), whole[n]), (cuts, n)
    # and the sum is the sum of the per-step products (autograd through each step)
    k = torch.arange(N)
    per_step = stack.vjp_theta(states[:-1], k, stack.take(params, k), stack.dt, x, adj[1:])
    for n in params:
        assert torch.allclose(whole[n], per_step[n].sum(0), rtol=1e-13, atol=1e-14)
    with pytest.raises(ValueError, match="multiples of 16"):
        design_gradient(stack, params, x, states, adj, range(8, 64), chunk=m, partial=True)


def test_take_hands_shared_parameters_as_expanded_views():
    stack = GRUStack(2, 3, 8, generator=torch.Generator().manual_seed(0))
    theta = stack.take(stack.layer_parameters(), torch.tensor([2, 5, 7]))
    w = theta["weight_hh_l0"]
    assert w.shape == (3, 9, 3) and w.data_ptr() == stack.weight_hh_l0.data_ptr()
    assert w.stride(0) == 0


def test_bad_input_gets_a_clear_error():
    with pytest.raises(ValueError, match=r"multiple of cf\*\*\(levels-1\) = 16.*last 96"):
        GRUClassifier(6, 8, 4, 100, parallel=True, max_levels=3, cf=4)
    m = GRUClassifier(6, 8, 4, 96, parallel=True, max_levels=3, cf=4)
    with pytest.raises(ValueError, match="5 channels but the GRU was built for input_size=6"):
        m(torch.zeros(2, 96, 5, dtype=F64))
    with pytest.raises(ValueError, match="100 steps but the GRU was built for steps=96"):
        m(torch.zeros(2, 100, 6, dtype=F64))
    with pytest.raises(ValueError, match=r"float32.*float64"):
        m(torch.zeros(2, 96, 6))
    with pytest.raises(ValueError, match="scheme must be one of"):
        GRUStack(2, 3, 8, scheme="explicit")
    with pytest.raises(ValueError, match="one scheme per level"):
        LayerParallel(GRUStack(2, 3, 16, scheme=("classic", "implicit")), max_levels=3, cf=2)
    with pytest.raises(ValueError, match="needs the sequence's inputs"):
        SerialODENet(GRUStack(2, 3, 8))(torch.zeros(1, 3, dtype=F64), frozen=None)
    with pytest.raises(ValueError, match="require grad"):
        StepInputs(torch.zeros(8, 1, 2, requires_grad=True))


def test_classic_gru_with_large_coarse_steps_diverges_with_advice_and_implicit_converges():
    from mgritlab.mgrit import MGRITDivergenceError

    N, B, c, H = 64, 4, 3, 6
    x = torch.randn(B, N, c, generator=torch.Generator().manual_seed(11), dtype=F64)
    opts = dict(parallel=True, max_levels=3, cf=4, exact=True, seed=4)
    with pytest.raises(MGRITDivergenceError, match="scheme='implicit'"):
        GRUClassifier(c, H, 2, N, scheme="classic", **opts)(x)
    m = GRUClassifier(c, H, 2, N, scheme="implicit", **opts)
    out = m(x)
    assert m.layer_parallel().stats["forward"].converged
    assert torch.allclose(out, m.serial()(x), rtol=0, atol=1e-12)


def test_coarse_levels_classic_gru_diverges_where_the_implicit_converges():
    from mgritlab.recurrent.coarse import coarse_residuals

    N, B, c, H = 64, 4, 3, 8
    st = GRUStack(c, H, N, generator=torch.Generator().manual_seed(0))
    x = StepInputs(_data(N, B, c, seed=12))
    r = coarse_residuals(st, torch.zeros(B, H, dtype=F64), x, levels=3, cf=4)
    assert r["classic"]["diverged"] and "did not converge" in r["classic"]["message"]
    assert (r["classic"]["residuals"] and not math.isfinite(r["classic"]["residuals"][-1])) \
        or r["classic"]["residuals"][-1] > r["implicit"]["residuals"][0]
    imp = r["implicit"]
    assert not imp["diverged"] and imp["residuals"][-1] < 1e-10 * imp["residuals"][0]
