"""An ODE-net classifier: opening layer → N residual steps → closing layer.

    x_0     = σ(K_in y + b_in)                      opening  (thesis eq. 3.7, here nonlinear)
    x_{k+1} = x_k + h σ(W_k x_k + b_k),  k < N      residual (thesis eq. 3.6 with step h)
    z       = K_out x_N + b_out,   J = CE(z, c)     closing  (the loss of thesis eq. 3.12)

(the residual steps are forward Euler on the ODE of thesis eq. 3.8).

The residual steps run layer-parallel (:class:`~mgritlab.nn.layer_parallel.LayerParallel`) or
serially; the opening and closing layers are ordinary PyTorch layers, differentiated by
autograd around the MGRIT solves.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .blocks import DenseBlock, SerialODENet, activation
from .layer_parallel import LayerParallel


class Activation(nn.Module):
    """σ as a module (for ``nn.Sequential``)."""

    def __init__(self, name: str):
        super().__init__()
        self.name, self.sigma = name, activation(name)

    def forward(self, x):
        return self.sigma(x)

    def extra_repr(self) -> str:
        return self.name


def _linear(n_in: int, n_out: int, g: torch.Generator, dtype, device) -> nn.Linear:
    """nn.Linear with PyTorch's default U(±1/√n_in) initialisation, drawn from ``g``."""
    lin = nn.Linear(n_in, n_out, dtype=dtype, device=device)
    bound = 1.0 / math.sqrt(n_in)
    with torch.no_grad():
        for p in (lin.weight, lin.bias):
            u = torch.rand(p.shape, generator=g, dtype=torch.float64)
            p.copy_(((2 * u - 1) * bound).to(dtype))
    return lin


class ODENet(nn.Module):
    """Opening layer, a :class:`DenseBlock` of ``depth`` residual steps, closing layer.

    ``parallel=True`` runs the residual steps with :class:`LayerParallel` (``lp_options``
    are its keyword arguments: max_levels, cf, fwd_iters, bwd_iters, exact, warm_start,
    partition, ...); ``parallel=False`` runs them serially. :meth:`serial` returns the
    equivalent ``nn.Sequential`` sharing the parameters; :meth:`refine` the network on
    ``factor``-times as many layers for nested iteration.
    """

    def __init__(self, in_features: int, width: int, out_features: int, depth: int, *,
                 T: float = 1.0, act: str = "tanh", dropout: float = 0.0, scale: float = 1.0,
                 parallel: bool = True, seed: int = 0, dtype=torch.float64, device=None,
                 **lp_options):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.opening = _linear(in_features, width, g, dtype, device)
        self.act = Activation(act)
        self.block = DenseBlock(width, depth, T, act=act, dropout=dropout, scale=scale,
                                generator=g, dtype=dtype, device=device)
        self.closing = _linear(width, out_features, g, dtype, device)
        self.parallel, self.lp_options = parallel, dict(lp_options)
        self.body = (LayerParallel(self.block, **lp_options) if parallel
                     else SerialODENet(self.block))

    @property
    def depth(self) -> int:
        return self.block.depth

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.closing(self.body(self.act(self.opening(y))))

    def serial(self, frozen: dict | None = None) -> nn.Sequential:
        """The same network as ``nn.Sequential`` of serial layers (parameters shared)."""
        return nn.Sequential(self.opening, self.act, SerialODENet(self.block, frozen),
                             self.closing)

    def refine(self, factor: int = 2, **lp_options) -> ODENet:
        """This network on ``factor``·N layers: θ prolonged piecewise constantly, same T.

        Opening and closing layers are copied; the layer-parallel options are kept unless
        overridden by ``lp_options`` (nested iteration: Cyr, Günther, Schroder 2019).
        """
        fine = ODENet.__new__(ODENet)
        nn.Module.__init__(fine)
        fine.opening = _copy_linear(self.opening)
        fine.act = Activation(self.act.name)
        fine.block = self.block.refined(factor)
        fine.closing = _copy_linear(self.closing)
        fine.parallel = self.parallel
        fine.lp_options = {**self.lp_options, **lp_options}
        fine.body = (LayerParallel(fine.block, **fine.lp_options) if fine.parallel
                     else SerialODENet(fine.block))
        fine.train(self.training)
        return fine

    def layer_parallel(self) -> LayerParallel:
        """The :class:`LayerParallel` body (for its ``stats``), or a clear error."""
        if not isinstance(self.body, LayerParallel):
            raise AttributeError("this ODENet runs serially (parallel=False); build it with "
                                 "parallel=True for MGRIT statistics")
        return self.body


def _copy_linear(lin: nn.Linear) -> nn.Linear:
    new = nn.Linear(lin.in_features, lin.out_features, dtype=lin.weight.dtype,
                    device=lin.weight.device)
    new.load_state_dict(lin.state_dict())
    return new
