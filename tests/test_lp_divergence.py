"""Layer-parallel solves that diverge are reported, however few iterations they run."""
import warnings

import pytest
import torch

from mgritlab.mgrit import MGRITDivergenceError
from mgritlab.nn.blocks import DenseBlock
from mgritlab.nn.layer_parallel import LayerParallel


def _exploding(on_divergence):
    """64 ReLU layers that amplify on every level alike (no coarse level is 'more unstable'
    than the fine one): the forward residual grows about 40 times in T₁ = 2 iterations."""
    torch.manual_seed(0)
    block = DenseBlock(8, 64, T=20.0, scale=3.0, act="relu", dtype=torch.float64)
    lp = LayerParallel(block, max_levels=3, cf=4, on_divergence=on_divergence)
    return lp, torch.randn(5, 8, dtype=torch.float64)


def test_an_exploding_network_warns_in_the_forward_with_on_divergence_raise():
    """No coarse level is to blame, so no error — but no silence either (it was silent)."""
    lp, x = _exploding("raise")
    with pytest.warns(RuntimeWarning, match=r"(?s)state \(forward\) solve did not converge"
                                            r".*grew \d+(\.\d+)? times in one iteration"):
        y = lp(x)
    assert y.shape == x.shape and "themselves amplify" in lp.divergence_warning


def test_the_divergence_warning_points_at_the_callers_line():
    """The solve runs inside torch.autograd.Function.apply; the warning must name the line
    of the user's code, not a torch file."""
    lp, x = _exploding("warn")
    with pytest.warns(RuntimeWarning) as caught:
        lp(x)
    assert caught[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reported once, not on every forward
        lp(x)


def test_an_unstable_coarse_level_still_raises():
    """tanh layers with a large step: explicit coarse steps 4h, 16h amplify, the fine does not."""
    torch.manual_seed(0)
    block = DenseBlock(4, 64, T=40.0, scale=0.5, act="tanh", dtype=torch.float64)
    with torch.no_grad():
        block.weight.copy_(-2.0 * torch.eye(4).expand(64, 4, 4))
    lp = LayerParallel(block, max_levels=3, cf=4, fwd_iters=3)
    with pytest.raises(MGRITDivergenceError, match=r"(?s)state \(forward\).*Level [12] looks "
                                                   r"unstable"):
        lp(torch.randn(5, 4, dtype=torch.float64))


def test_an_exploding_network_warns_and_goes_on_with_on_divergence_warn():
    lp, x = _exploding("warn")
    with pytest.warns(RuntimeWarning, match=r"on_divergence='warn'"):
        y = lp(x)
    r = lp.stats["forward"].residuals
    assert r[1] > 10 * r[0] and y.shape == x.shape and lp.divergence_warning



class _ForcedFromZero:
    """u_{i+1} = a u_i + 1 from u_0 = 0 (a = 0.9; coarse levels nearly the s-fold step): the
    forcing, not u_0, sets the size of the states, as for a GRU's h_0 = 0."""

    def step(self, u, i, level):
        s = round(float(level.h(i[:1])[0]))
        a = 0.9 ** s
        return (a + 0.02 * (s > 1)) * u + (1 - a) / (1 - 0.9)


def test_a_zero_initial_state_with_forcing_is_not_called_a_blow_up(monkeypatch):
    """States of size ten are not "far beyond the size of the initial state" because that
    state is zero: the guard sizes them by the first step. (The diagnosis is made to blame
    a coarse level, as it did for a trained GRU whose coarse steps amplify slightly at h_0.)"""
    from mgritlab.mgrit import MGRIT, divergence

    monkeypatch.setattr(divergence, "diagnose", lambda blocks, u0: (True, "blamed"))
    solver = MGRIT(_ForcedFromZero(), torch.linspace(0, 64, 65, dtype=torch.float64),
                   max_levels=3, cf=4, max_iter=3, check_growth=True, divergence_factor=1e4)
    res = solver.solve(torch.zeros(3, dtype=torch.float64))
    assert res.iterations == 3 and res.residuals[-1] < 1e-2 * res.residuals[0]


@pytest.mark.parametrize("levels, advice", [(3, "fewer levels (max_levels=2), a smaller cf"),
                                            (2, "Otherwise use a smaller cf")])
def test_the_divergence_message_asks_for_fewer_levels_only_where_two_remain(levels, advice):
    lp, x = _exploding("warn")
    lp = LayerParallel(lp.block, max_levels=levels, cf=4, on_divergence="warn")
    with pytest.warns(RuntimeWarning):
        lp(x)
    assert advice in lp.divergence_warning and "max_levels=1" not in lp.divergence_warning
