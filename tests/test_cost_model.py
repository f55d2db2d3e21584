"""The layer-parallel epoch model: counts by hand, costs measured on a real block."""
import torch

from mgritlab.nn import DenseBlock
from mgritlab.nn.cost_model import epoch_model, layer_costs


def test_epoch_model_counts_the_thesis_setting_by_hand():
    # 256 layers, 3 levels, cf 4, T1 = 2, T2 = 1, 64 ranks (per-level split): σ = 37 in the
    # first iteration, 34 after (tests/test_mgrit.py), 4 own layers per rank
    unit = {"step": 1.0, "vjp_x": 10.0, "linearize": 100.0, "vjp_theta": 1000.0}
    m = epoch_model(unit, 256, 64, other=0.5)
    assert (m["forward"], m["adjoint"], m["gradient"]) == (37 + 34, 10 * 37 + 4 * 100, 4000)
    assert m["total"] == 71 + 770 + 4000 + 0.5
    one = epoch_model(unit, 256, 1)
    assert one["gradient"] == 256 * 1000  # one rank assembles every layer's gradient


def test_layer_costs_are_measured_per_layer():
    torch.manual_seed(0)
    blk = DenseBlock(8, 4, T=1.0, dtype=torch.float64)
    c = layer_costs(blk, torch.randn(3, 8, dtype=torch.float64), batch=2, reps=2)
    assert set(c) == {"step", "vjp_x", "linearize", "vjp_theta"}
    assert all(v > 0 for v in c.values())
