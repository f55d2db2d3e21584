"""Layer-parallel solves that diverge are reported, however few iterations they run."""
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


def test_an_exploding_network_raises_in_the_forward():
    lp, x = _exploding("raise")
    with pytest.raises(MGRITDivergenceError, match=r"(?s)state \(forward\) solve did not "
                                                   r"converge.*raised the residual from .* "
                                                   r"times.*fine step is unstable"):
        lp(x)


def test_an_exploding_network_warns_and_goes_on_with_on_divergence_warn():
    lp, x = _exploding("warn")
    with pytest.warns(RuntimeWarning, match=r"on_divergence='warn'"):
        y = lp(x)
    r = lp.stats["forward"].residuals
    assert r[1] > 10 * r[0] and y.shape == x.shape and lp.divergence_warning
