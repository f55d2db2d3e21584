"""The state, adjoint and design equations of a layer stack as MGRIT propagators.

Training minimises a loss J(x_N) subject to the network equations (thesis eqs. 3.12–3.14):

    state    x_{k+1} = Φ_k(x_k, θ_k),                   x_0 given          (eqs. 3.13–3.14)
    adjoint  x̄_k     = (∂Φ_k/∂x)(x_k)ᵀ x̄_{k+1},          x̄_N = ∂J/∂x_N      (eqs. 3.15–3.16)
    design   ∂J/∂θ_k = (∂Φ_k/∂θ_k)(x_k)ᵀ x̄_{k+1}                          (eq. 3.17)

The state runs forward in depth, the adjoint backward: both are time-stepping problems (the
adjoint as the all-at-once system of thesis eq. 3.18), so both are solved by the same MGRIT
solver (the adjoint with ``direction=-1``). On a coarse level with stride s the step from
point i uses the layer of its fine index, θ_{s·i}, step s·h and the level's index (injection in
depth, as TorchBraid); the coarse adjoint step linearises at the forward state x_{s(i-1)}.

On MPI ranks a process holds only a window of the states (:class:`StateWindow`): the layers it
owns and the first state of its right neighbour, which the adjoint steps need.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .blocks import LayerStack, as_slice


@dataclass
class StateWindow:
    """The states x_lo .. x_{lo+len-1} that this process holds, indexed by layer."""

    values: torch.Tensor
    lo: int = 0

    @property
    def hi(self) -> int:
        return self.lo + self.values.shape[0]

    def __getitem__(self, k: torch.Tensor) -> torch.Tensor:
        k = torch.as_tensor(k)
        if k.numel() and (int(k.min()) < self.lo or int(k.max()) >= self.hi):
            raise IndexError(f"states {k.min().item()}..{k.max().item()} requested but this "
                             f"process holds layers {self.lo}..{self.hi - 1} only")
        return self.values[as_slice(k - self.lo)]


class StatePropagator:
    """Φ on every level: x ↦ Φ_{s·i}(x; θ_{s·i}, H, ℓ) with H = ``level.h(i)`` (eq. 3.13)."""

    def __init__(self, block: LayerStack, params: dict[str, torch.Tensor], frozen=None):
        self.block, self.params, self.frozen = block, params, frozen

    def step(self, u, i, level):
        return self.block.step(u, level.fine_index(i), level.h(i), self.params, self.frozen,
                               level.index)


class AdjointPropagator:
    """Φ̄ on every level of the backward hierarchy: x̄_{i-1} = (∂Φ/∂x)(x_{i-1})ᵀ x̄_i (eq. 3.15).

    ``states``: the forward activations this process holds (a :class:`StateWindow`, or a full
    (N+1, ...) tensor); the vector–Jacobian product is the block's
    :meth:`~mgritlab.nn.blocks.LayerStack.vjp_x` (autograd, or a closed form), batched over
    the layers.
    """

    def __init__(self, block: LayerStack, params: dict[str, torch.Tensor], frozen,
                 states: StateWindow | torch.Tensor):
        if not isinstance(states, StateWindow):
            states = StateWindow(states, 0)
        self.block, self.params, self.frozen, self.states = block, params, frozen, states
        # a coarse step linearises at a fine layer's state too, so one linearisation of the
        # held layers (e.g. σ'(z_k)) serves every level and the design equations
        k = torch.arange(states.lo, min(states.hi, block.depth), device=states.values.device)
        self.lin = (block.linearize(states[k], k, block.take(params, k), frozen)
                    if k.numel() else None)

    def lin_at(self, k: torch.Tensor):
        """The linearisation rows of layers ``k`` (None if the block has none)."""
        return self.block.rows(self.lin, k - self.states.lo)

    def step(self, v, i, level):
        k = level.fine_index(i - 1)          # the forward step i-1 -> i this one transposes
        h = level.h(i)
        if k.numel() > 1 and int(k[0]) > int(k[-1]):
            # layers in decreasing order (the backward hierarchy's solver order): step them
            # in increasing order, so that states, parameters and linearisations are views
            # (slices), not copies; each layer's result does not depend on its batch
            h = h.flip(0) if torch.is_tensor(h) and h.dim() else h
            return self._vjp(v.flip(0), k.flip(0), h, level).flip(0)
        return self._vjp(v, k, h, level)

    def _vjp(self, v, k, h, level):
        return self.block.vjp_x(self.states[k], k, self.block.take(self.params, k), h,
                                self.frozen, v, self.lin_at(k), level.index)


#: the most layers of one batched design-equation product (bounds the per-layer rows that a
#: shared parameter's contributions take before they are summed)
DESIGN_BATCH = 512


def design_gradient(block: LayerStack, params: dict[str, torch.Tensor], frozen,
                    states: StateWindow | torch.Tensor, adjoints: StateWindow | torch.Tensor,
                    layers: range | None = None, lin_at=None, *, chunk: int = 1,
                    partial: bool = False) -> dict[str, torch.Tensor]:
    """∂J/∂θ_k = (∂Φ_k/∂θ_k)(x_k)ᵀ x̄_{k+1} for the given layers, batched (eq. 3.17).

    Stacked parameters: {name: (N, ...)} with zeros outside ``layers`` (default: all N
    layers), so that the contributions of MPI ranks owning disjoint layers simply add up.

    Shared parameters (``block.shared_names``): ∂J/∂θ = Σ_k (∂Φ_k/∂θ)ᵀ x̄_{k+1}, summed in a
    fixed order that does not depend on how the layers are split over ranks — first within
    each chunk of ``chunk`` consecutive layers (chunk j = layers j·chunk .. (j+1)·chunk − 1,
    added one after the other), then over the chunks in order. With ``partial=True`` the
    result is the (N / chunk, ...) tensor of chunk sums, zero for chunks outside ``layers``:
    ranks owning whole chunks add these exactly (one nonzero term per entry), then
    :func:`sum_chunks` finishes; so the gradient is bitwise the same on any rank count.
    ``layers`` must then consist of whole chunks. ``lin_at(k)``: the block's linearisation at
    the states of layers k, if already computed.
    """
    states = states if isinstance(states, StateWindow) else StateWindow(states, 0)
    adjoints = adjoints if isinstance(adjoints, StateWindow) else StateWindow(adjoints, 0)
    N = block.depth
    layers = range(N) if layers is None else layers
    shared = [n for n in block.shared_names if n in params]
    if shared and (N % chunk or layers.start % chunk or layers.stop % chunk):
        raise ValueError(f"the design gradient of shared parameters sums whole chunks of "
                         f"{chunk} layers: the depth {N} and the layers {layers.start}.."
                         f"{layers.stop - 1} must be multiples of {chunk}")
    grads = {n: (p.new_zeros((N // chunk, *p.shape)) if n in shared else torch.zeros_like(p))
             for n, p in params.items()}
    t = block.grid(states.values.device)
    # batches of whole chunks, aligned to multiples of `step` from layer 0 whichever layers
    # this process holds (each layer's product does not depend on its batch)
    step = chunk * max(1, DESIGN_BATCH // chunk)
    lo = layers.start
    while lo < layers.stop:
        hi = min(layers.stop, (lo // step + 1) * step)
        k = torch.arange(lo, hi, device=states.values.device)
        h = t[k + 1] - t[k]
        g = block.vjp_theta(states[k], k, block.take(params, k), h, frozen, adjoints[k + 1],
                            None if lin_at is None else lin_at(k))
        for n in grads:
            if n in shared:
                rows = g[n].reshape(-1, chunk, *g[n].shape[1:])
                total = rows[:, 0].clone()
                for j in range(1, chunk):
                    total += rows[:, j]
                grads[n][lo // chunk: lo // chunk + rows.shape[0]] = total
            else:
                grads[n][k] = g[n]
        lo = hi
    if not partial:
        for n in shared:
            grads[n] = sum_chunks(grads[n])
    return grads


def sum_chunks(partial: torch.Tensor) -> torch.Tensor:
    """Σ_j partial[j], added in order j = 0, 1, ... (a fixed order: the same bits on any
    number of ranks)."""
    total = partial[0].clone()
    for j in range(1, partial.shape[0]):
        total += partial[j]
    return total
