"""What a layer-parallel epoch costs: measured per-layer costs and the critical-path model.

The model of one training step of :class:`~mgritlab.nn.LayerParallel` on P ranks is

    t_LP(P) = o + T₁·σ(P)·c_Φ + T₂·σ(P)·c_Φ̄ + ⌈N/P⌉·(c_lin + c_θ)

with σ(P) the critical path of an MGRIT V-cycle in layer applications
(:mod:`mgritlab.mgrit.speedup`; the first iteration counts its extra F-relaxation), c_Φ the
cost of one layer step, c_Φ̄ of one adjoint step (vjp_x), c_lin of the block's linearisation
(once per backward per own layer), c_θ of the design gradient (vjp_theta), and o the rest of
the step (opening/closing maps, loss, optimiser), which every rank does alike.
Communication is left out, so the model bounds what an ideal machine would give; the serial
epoch it is compared with is *measured*, not modelled.
"""
from __future__ import annotations

import math
import time

import torch

from ..mgrit.speedup import costs_for, critical_path
from .blocks import LayerStack


def _median(xs):
    xs = sorted(xs)
    return float(xs[len(xs) // 2])


@torch.no_grad()
def layer_costs(block: LayerStack, x: torch.Tensor, frozen=None, *, batch: int = 1,
                reps: int = 5) -> dict[str, float]:
    """Seconds per layer of the step, the adjoint step, the linearisation and the design
    gradient of ``block`` at the state ``x`` (one layer's state), on ``batch`` layers per
    call (1: what MGRIT's relaxation does on many ranks), median of ``reps``."""
    k = torch.arange(batch, device=x.device) % block.depth
    xs = x.expand(batch, *x.shape).contiguous()
    v = torch.randn_like(xs)
    params = block.layer_parameters()
    theta = block.take(params, k)
    lin = block.linearize(xs, k, theta, frozen)
    calls = {
        "step": lambda: block.step(xs, k, block.h, params, frozen, 0),
        "vjp_x": lambda: block.vjp_x(xs, k, theta, block.h, frozen, v, lin, 0),
        "linearize": lambda: block.linearize(xs, k, theta, frozen),
        "vjp_theta": lambda: block.vjp_theta(xs, k, theta, block.h, frozen, v, lin, 0),
    }
    sync = torch.cuda.synchronize if x.device.type == "cuda" else (lambda: None)
    out = {n: [] for n in calls}
    for rep in range(reps + 1):
        for name, call in calls.items():
            call()  # same shape first: caches and allocator as in a run of such calls
            sync()
            t0 = time.perf_counter()
            call()
            sync()
            if rep:
                out[name].append(time.perf_counter() - t0)
    return {n: _median(ts) / batch for n, ts in out.items()}


def epoch_model(costs: dict[str, float], depth: int, ranks: int, *, levels: int = 3,
                cf: int = 4, fwd_iters: int = 2, bwd_iters: int = 1, other: float = 0.0,
                relax=None, distribution: str = "per_level") -> dict[str, float]:
    """The modelled seconds of one layer-parallel training step on ``ranks`` ranks, by phase
    ('forward', 'adjoint', 'gradient', 'other', 'total'), from :func:`layer_costs`.

    ``relax`` defaults to LayerParallel's ('F' on the fine level, 'FCF' below);
    ``distribution`` 'per_level' is XBraid/TorchBraid's split (more ranks than coarsest
    intervals allowed), 'coarsest' this package's MPIPartition."""
    relax = relax or ["F"] + ["FCF"] * (levels - 1)
    lc = costs_for(depth + 1, cf, levels, relax)
    first = critical_path(lc, ranks, first_iteration=True, distribution=distribution)
    later = critical_path(lc, ranks, distribution=distribution)
    own = math.ceil(depth / ranks)
    out = {"forward": (first + (fwd_iters - 1) * later) * costs["step"],
           "adjoint": (first + (bwd_iters - 1) * later) * costs["vjp_x"]
           + own * costs["linearize"],
           "gradient": own * costs["vjp_theta"], "other": other,
           "sigma_first": first, "sigma": later}
    out["total"] = out["forward"] + out["adjoint"] + out["gradient"] + other
    return out
