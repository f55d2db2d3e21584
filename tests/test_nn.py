"""Layer-parallel training: exact gradients, inexact-gradient error, warm start, dropout, errors."""
from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from mgritlab.nn import (
    DenseBlock,
    FrozenDropout,
    LayerParallel,
    LayerParallelFunction,
    ODEBlock,
    ODENet,
    coarse_depths,
    nested_training,
    peaks,
    train,
    two_spirals,
)

F64 = torch.float64


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # tiny tensors: on a loaded machine, extra OpenMP threads make each op ~100x slower
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def data(n=6, d_in=2, classes=3, seed=0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d_in, generator=g, dtype=F64).to(dtype),
            torch.randint(0, classes, (n,), generator=g))


def loss_and_grads(model, params, x, y):
    for p in params:
        p.grad = None
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in params]


def rel(a, b):
    return float((a - b).norm() / b.norm())


def flat(gs):
    return torch.cat([g.flatten() for g in gs])


@pytest.mark.parametrize("levels,cf,cycle,relax", [
    (2, 4, "V", None), (3, 2, "V", None), (3, 2, "F", "FCF"), (3, 4, "V", None)])
def test_exact_mode_matches_autograd(levels, cf, cycle, relax):
    x, y = data()
    net = ODENet(2, 4, 3, 16, max_levels=levels, cf=cf, cycle=cycle, relax=relax, exact=True,
                 seed=1)
    params = list(net.parameters())
    loss, grads = loss_and_grads(net, params, x, y)
    loss_ref, grads_ref = loss_and_grads(net.serial(), params, x, y)
    assert abs(float(loss - loss_ref)) <= 1e-10 * abs(float(loss_ref))
    for (name, _), g, g_ref in zip(net.named_parameters(), grads, grads_ref):
        assert rel(g, g_ref) <= 1e-10, name
    lp = net.layer_parallel()
    assert lp.stats["forward"].converged and lp.stats["backward"].converged
    assert lp.stats["forward"].levels == levels


@pytest.mark.parametrize("act", ["tanh", "relu", "sigmoid", "softplus", "identity"])
def test_closed_form_vjps_match_autograd(act):
    g = torch.Generator().manual_seed(3)
    block = DenseBlock(5, 6, act=act, generator=g)
    k = torch.tensor([0, 3, 5])
    theta = block.take(block.layer_parameters(), k)
    theta = {n: p.detach() for n, p in theta.items()}
    x = torch.randn(3, 4, 5, generator=g, dtype=F64)
    v = torch.randn(3, 4, 5, generator=g, dtype=F64)
    h = torch.tensor([0.1, 0.2, 0.3], dtype=F64)
    mask = {"mask": (torch.rand(6, 4, 5, generator=g, dtype=F64) < 0.7).to(F64) / 0.7}
    for frozen in (None, mask, FrozenDropout({"hidden": 0.3}, seed=5)):
        lin = block.linearize(x, k, theta, frozen)
        generic = ODEBlock.vjp_x(block, x, k, theta, h, frozen, v)
        for lin_ in (None, lin):
            assert torch.allclose(block.vjp_x(x, k, theta, h, frozen, v, lin_), generic,
                                  rtol=1e-13, atol=1e-14)
            closed = block.vjp_theta(x, k, theta, h, frozen, v, lin_)
            ref = ODEBlock.vjp_theta(block, x, k, theta, h, frozen, v)
            for n in block.param_names:
                assert torch.allclose(closed[n], ref[n], rtol=1e-13, atol=1e-14), n


def inexact_gradient_error(fwd_iters, bwd_iters, depth=32, levels=2, cf=4):
    x, y = data(n=16, classes=2, seed=5)
    net = ODENet(2, 4, 2, depth, max_levels=levels, cf=cf, fwd_iters=fwd_iters,
                 bwd_iters=bwd_iters, seed=2)
    params = list(net.parameters())
    _, g = loss_and_grads(net, params, x, y)
    _, g_ref = loss_and_grads(net.serial(), params, x, y)
    return rel(flat(g), flat(g_ref))


def test_inexact_gradient_error_is_bounded_and_shrinks():
    err_21 = inexact_gradient_error(2, 1)
    err_44 = inexact_gradient_error(4, 4)
    print(f"relative gradient error, depth 32, 2 levels, cf 4: T1=2,T2=1 {err_21:.3e}; "
          f"T1=4,T2=4 {err_44:.3e}")
    assert 1e-6 < err_21 < 0.3
    assert err_44 < err_21 / 10


def test_gradcheck_tiny_network_exact_mode():
    g = torch.Generator().manual_seed(4)
    block = DenseBlock(2, 4, generator=g)
    lp = LayerParallel(block, max_levels=2, cf=2, exact=True, warm_start=False)
    x = torch.randn(3, 2, generator=g, dtype=F64, requires_grad=True)
    W = block.weight.detach().clone().requires_grad_(True)
    b = block.bias.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, W, b: LayerParallelFunction.apply(x, lp, None, W, b),
                                    (x, W, b), eps=1e-6, atol=1e-8)


def test_warm_start_reduces_the_first_residual():
    x, y = data(n=8)
    net = ODENet(2, 4, 3, 32, max_levels=2, cf=4, seed=3)
    lp = net.layer_parallel()
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    first = {}
    for call in range(2):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
        first[call] = (lp.stats["forward"].residuals[0], lp.stats["backward"].residuals[0])
    assert lp.stats["forward"].warm_start and lp.stats["backward"].warm_start
    assert first[1][0] < 0.1 * first[0][0]
    assert first[1][1] < 0.5 * first[0][1]     # the stored adjoint had one iteration only
    lp.warm_start = False
    nn.functional.cross_entropy(net(x), y).backward()
    assert not lp.stats["forward"].warm_start
    assert lp.stats["forward"].residuals[0] > 0.5 * first[0][0]


def test_frozen_dropout_gives_a_deterministic_fixed_point():
    x, y = data(n=8)
    net = ODENet(2, 4, 3, 16, dropout=0.3, max_levels=2, cf=2, exact=True, seed=4)
    lp = net.layer_parallel()
    params = list(net.parameters())
    torch.manual_seed(11)
    loss, grads = loss_and_grads(net, params, x, y)
    mask = net.block.masks(lp.last_frozen, 8)
    assert mask.shape == (16, 8, 4) and (mask == 0).any()
    # the MGRIT fixed point is the serial network with the same masks: loss and gradient
    loss_ref, grads_ref = loss_and_grads(net.serial(lp.last_frozen), params, x, y)
    assert abs(float(loss - loss_ref)) <= 1e-10 * abs(float(loss_ref))
    assert rel(flat(grads), flat(grads_ref)) <= 1e-10
    # another hierarchy, the same masks: the same fixed point
    other = ODENet(2, 4, 3, 16, dropout=0.3, max_levels=3, cf=2, exact=True, seed=4)
    torch.manual_seed(11)
    loss_other, _ = loss_and_grads(other, list(other.parameters()), x, y)
    assert torch.equal(other.block.masks(other.layer_parallel().last_frozen, 8), mask)
    assert abs(float(loss_other - loss)) <= 1e-12 * abs(float(loss))
    # inexact iterations with a frozen mask contract towards that fixed point
    net.layer_parallel().exact = False
    lp.fwd_iters, lp.warm_start = 6, False
    torch.manual_seed(11)
    net(x)
    r = lp.stats["forward"].residuals
    assert all(b < a for a, b in itertools.pairwise(r)) and r[-1] < 1e-3 * r[0]
    # eval mode: no dropout at all
    net.eval()
    net(x)
    assert lp.last_frozen is None


def test_bad_configurations_say_what_to_change():
    block = DenseBlock(3, 8)
    with pytest.raises(ValueError, match="at most 2 MGRIT level"):
        LayerParallel(block, max_levels=3, cf=4)
    with pytest.raises(ValueError, match="not divisible by cf"):
        LayerParallel(DenseBlock(3, 12), max_levels=2, cf=8)
    with pytest.raises(ValueError, match="multiple of 4"):
        LayerParallel(DenseBlock(3, 10), max_levels=3, cf=2)
    with pytest.raises(ValueError, match="cf must be an integer >= 2"):
        LayerParallel(block, cf=1)
    with pytest.raises(ValueError, match="fwd_iters"):
        LayerParallel(block, fwd_iters=0)
    lp = LayerParallel(block, max_levels=2, cf=2)
    block.bias = nn.Parameter(torch.zeros(8, 3, dtype=F64, device="meta"))
    with pytest.raises(ValueError, match=r"different devices.*model\.to"):
        lp(torch.zeros(2, 3, dtype=F64))
    lp = LayerParallel(DenseBlock(3, 8), max_levels=2, cf=2)
    with pytest.raises(ValueError, match="input is on meta"):
        lp(torch.zeros(2, 3, dtype=F64, device="meta"))
    with pytest.raises(ValueError, match=r"input is torch\.float32"):
        lp(torch.zeros(2, 3, dtype=torch.float32))
    with pytest.raises(ValueError, match="depth must be a positive integer"):
        DenseBlock(3, 0)


def test_float32_runs_and_is_close_to_autograd():
    x, y = data(dtype=torch.float32)
    net = ODENet(2, 4, 3, 16, max_levels=2, cf=4, exact=True, dtype=torch.float32, seed=5)
    params = list(net.parameters())
    loss, g = loss_and_grads(net, params, x, y)
    loss_ref, g_ref = loss_and_grads(net.serial(), params, x, y)
    assert loss.dtype == torch.float32 and g[0].dtype == torch.float32
    assert abs(float(loss - loss_ref)) <= 1e-5 * abs(float(loss_ref))
    assert rel(flat(g), flat(g_ref)) <= 1e-4


def test_serial_network_is_the_same_function():
    x, _ = data()
    net = ODENet(2, 4, 3, 8, max_levels=2, cf=2, exact=True, seed=6)
    ser = net.serial()
    with torch.no_grad():
        assert torch.allclose(net(x), ser(x), rtol=1e-12, atol=1e-13)
    layers = ser[2]
    assert len(layers) == 8
    h0 = torch.tanh(net.opening(x))
    with torch.no_grad():
        out = h0
        for layer in layers:
            out = layer(out)
        assert torch.allclose(out, layers(h0), rtol=0, atol=0)
        assert torch.allclose(layers.states(h0)[-1], out)


def test_refine_is_piecewise_constant_and_nearly_the_same_function():
    x, _ = data()
    coarse = ODENet(2, 4, 3, 8, max_levels=2, cf=2, exact=True, seed=7)
    fine = coarse.refine(2)
    assert fine.depth == 16 and fine.block.h == coarse.block.h / 2
    assert torch.equal(fine.block.weight[0::2], coarse.block.weight)
    assert torch.equal(fine.block.weight[1::2], coarse.block.weight)
    assert torch.equal(fine.closing.weight, coarse.closing.weight)
    assert fine.closing.weight is not coarse.closing.weight
    with torch.no_grad():
        a, b = coarse.serial()(x), fine.serial()(x)
        assert 0 < rel(b, a) < 0.05


def test_nested_training_trains_each_depth():
    x, y = two_spirals(32, seed=1)
    depths, losses = [], []

    def stage(net, s):
        depths.append(net.depth)
        return train(net, x, y, epochs=2, lr=1e-2)

    net = ODENet(2, 4, 2, 4, max_levels=2, cf=2, seed=8)
    fine, hist = nested_training(net, stage, refinements=2)
    losses = [h.loss for h in hist]
    assert depths == [4, 8, 16] == coarse_depths(16, 2) and fine.depth == 16
    assert all(len(h) == 2 for h in losses)
    with pytest.raises(ValueError, match="multiple of 4"):
        coarse_depths(10, 2)


def test_toy_problems_and_training_loop():
    x, y = two_spirals(100, seed=0)
    assert x.shape == (100, 2) and set(y.tolist()) == {0, 1}
    xp, yp = peaks(500, seed=0)
    assert xp.abs().max() <= 1 and yp.bincount().min() > 50
    net = ODENet(2, 6, 2, 8, max_levels=2, cf=2, seed=9)
    hist = train(net, x, y, epochs=4, lr=3e-2, batch_size=50, val=(x, y))
    assert len(hist.loss) == 4 and hist.loss[-1] < hist.loss[0]
    assert hist.seconds == sorted(hist.seconds) and len(hist.val_acc) == 4


def test_a_checkpointed_training_run_resumes_exactly(tmp_path):
    x, y = two_spirals(100, seed=0)
    kw = dict(lr=3e-2, batch_size=30, val=(x, y))
    full = train(ODENet(2, 6, 2, 8, max_levels=2, cf=2, seed=9), x, y, epochs=5, **kw)
    ck = tmp_path / "ode.ckpt.pt"
    first = train(ODENet(2, 6, 2, 8, max_levels=2, cf=2, seed=9), x, y, epochs=3,
                  checkpoint=ck, checkpoint_every=2, **kw)
    torch.manual_seed(123)  # a fresh process: whatever happened in between must not matter
    rest = train(ODENet(2, 6, 2, 8, max_levels=2, cf=2, seed=1), x, y, epochs=5,
                 checkpoint=ck, resume=True, **kw)
    assert first.loss == full.loss[:3]
    assert rest.loss == full.loss and rest.val_acc == full.val_acc
    ck.write_bytes(b"garbage")
    from mgritlab.nn.runner import CheckpointError

    with pytest.raises(CheckpointError, match=r"ode\.ckpt\.pt cannot be read"):
        train(ODENet(2, 6, 2, 8, max_levels=2, cf=2, seed=9), x, y, epochs=5, checkpoint=ck,
              resume=True, **kw)


def test_divergence_names_the_layer_parallel_options(monkeypatch):
    from mgritlab.mgrit import MGRITDivergenceError
    from mgritlab.nn import layer_parallel

    def diverge(self, u0, u_init=None, **kw):
        raise MGRITDivergenceError("MGRIT diverged: residual 1e+30")

    monkeypatch.setattr(layer_parallel.MGRIT, "solve", diverge)
    lp = LayerParallel(DenseBlock(3, 16, T=8.0), max_levels=3, cf=2)
    with pytest.raises(MGRITDivergenceError, match=r"(?s)state \(forward\).*max_levels=2.*T=8"):
        lp(torch.zeros(2, 3, dtype=F64))


def test_engine_task_runs_in_one_process():
    from mgritlab.tasks import train_layer_parallel

    n_threads = torch.get_num_threads()
    rec = train_layer_parallel(n=40, depth=8, width=4, epochs=2, cf=2, problem="peaks")
    torch.set_num_threads(n_threads)
    assert (rec["rank"], rec["size"]) == (0, 1) and len(rec["loss"]) == 2
    # the task is the plain training run: same losses, same trained parameters
    from mgritlab.nn.data import peaks
    from mgritlab.nn.network import ODENet
    from mgritlab.nn.training import train

    x, y = peaks(40, seed=0)
    net = ODENet(2, 4, 5, 8, seed=0, max_levels=2, cf=2, fwd_iters=2, bwd_iters=1)
    hist = train(net, x, y, epochs=2, lr=2e-2, eval_model=net.serial())
    torch.set_num_threads(n_threads)
    assert rec["loss"] == hist.loss
    assert rec["checksum"] == float(sum(p.detach().double().sum() for p in net.parameters()))
    assert rec["checksum"] != float(sum(p.detach().double().sum()
                                        for p in ODENet(2, 4, 5, 8, seed=0).parameters()))
    with pytest.raises(ValueError, match="unknown problem"):
        train_layer_parallel(problem="moons")
