"""The state, adjoint and design equations of an ODE-net as MGRIT propagators.

Training minimises a loss J(x_N) subject to the network equations (thesis eqs. 3.12–3.14).
With multipliers x̄_k, the Lagrangian (thesis §3.2)

    𝓛 = J(x_N) - Σ_k x̄_{k+1}ᵀ (x_{k+1} - Φ_k(x_k, θ_k))

is stationary when

    state    x_{k+1} = Φ_k(x_k, θ_k),                   x_0 given          (eq. 3.7)
    adjoint  x̄_k     = (∂Φ_k/∂x)(x_k)ᵀ x̄_{k+1},          x̄_N = ∂J/∂x_N      (eq. 3.18)
    design   ∂J/∂θ_k = (∂Φ_k/∂θ_k)(x_k)ᵀ x̄_{k+1}                          (eq. 3.17)

The state runs forward in depth, the adjoint backward: both are time-stepping problems, so both
are solved by the same MGRIT solver (the adjoint with ``direction=-1``). On a coarse level with
stride s the step from point i uses the layer of its fine index, θ_{s·i} and step s·h (injection
in depth, as TorchBraid); the coarse adjoint step linearises at the forward state x_{s(i-1)}.
"""
from __future__ import annotations

import torch

from .blocks import ODEBlock


class StatePropagator:
    """Φ on every level: x ↦ x + H f(x, θ_{s·i}) with H = ``level.h(i)`` (thesis eq. 3.7)."""

    def __init__(self, block: ODEBlock, params: dict[str, torch.Tensor],
                 frozen: dict[str, torch.Tensor] | None = None):
        self.block, self.params, self.frozen = block, params, frozen

    def step(self, u, i, level):
        return self.block.step(u, level.fine_index(i), level.h(i), self.params, self.frozen)


class AdjointPropagator:
    """Φ̄ on every level of the backward hierarchy: x̄_{i-1} = (∂Φ/∂x)(x_{i-1})ᵀ x̄_i (eq. 3.18).

    ``states`` (N+1, batch, width) are the forward activations in physical order; the
    vector–Jacobian product is the block's :meth:`~mgritlab.nn.blocks.ODEBlock.vjp_x`
    (autograd, or a closed form), batched over the layers.
    """

    def __init__(self, block: ODEBlock, params: dict[str, torch.Tensor],
                 frozen: dict[str, torch.Tensor] | None, states: torch.Tensor):
        self.block, self.params, self.frozen, self.states = block, params, frozen, states
        # a coarse step linearises at a fine layer's state too, so one linearisation of all
        # N layers (e.g. σ'(z_k)) serves every level and the design equations
        self.lin = block.linearize(states[:-1], params, frozen)

    def step(self, v, i, level):
        k = level.fine_index(i - 1)          # the forward step i-1 -> i this one transposes
        take = self.block.take
        return self.block.vjp_x(self.states[k], take(self.params, k), level.h(i),
                                take(self.frozen, k), v, take(self.lin, k))


def design_gradient(block: ODEBlock, params: dict[str, torch.Tensor],
                    frozen: dict[str, torch.Tensor] | None, states: torch.Tensor,
                    adjoints: torch.Tensor, layers: range | None = None,
                    lin: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """∂J/∂θ_k = (∂Φ_k/∂θ_k)(x_k)ᵀ x̄_{k+1} for the given layers, in one batched vjp (eq. 3.17).

    Returns {name: (N, ...)} with zeros outside ``layers`` (default: all N layers), so that
    the contributions of MPI ranks owning disjoint layers simply add up. ``lin``: the block's
    :meth:`~mgritlab.nn.blocks.ODEBlock.linearize` at the states, if already computed.
    """
    N = block.depth
    layers = range(N) if layers is None else layers
    grads = {n: torch.zeros_like(p) for n, p in params.items()}
    if len(layers) == 0:
        return grads
    k = torch.arange(layers.start, layers.stop, device=states.device)
    t = block.grid(states.device)
    h = t[k + 1] - t[k]
    g = block.vjp_theta(states[k], block.take(params, k), h, block.take(frozen, k),
                        adjoints[k + 1], block.take(lin, k))
    for n in grads:
        grads[n][k] = g[n]
    return grads
