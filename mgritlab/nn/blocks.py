"""Residual layers with stacked parameters: the time-stepping part of an ODE-net.

A residual network is forward Euler on an ODE whose time is depth (thesis §3.2, eq. 3.7):

    x_{k+1} = Φ_k(x_k) = x_k + h f(x_k, θ_k),     k = 0, ..., N-1,   h = T / N.

The per-layer parameters θ_k are stored *stacked* — e.g. a weight of shape (N, w, w) and a bias of
shape (N, w) — so that any batch of layers ``k = (k_1, ..., k_B)`` is evaluated in one call
(``torch.baddbmm``). That is what lets MGRIT relax all C-intervals of a level at once.

Anything random in a layer (dropout) is *frozen*: a mask per layer is drawn once per
forward/backward pair (:meth:`ODEBlock.draw_frozen`) and passed to every evaluation of Φ, so
Φ is a fixed function while MGRIT iterates on the state and the adjoint. Redrawing it inside an
iteration would change the equations being solved, and MGRIT would not converge.
"""
from __future__ import annotations

import copy
import math
from typing import Callable

import torch
from torch import nn

_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "softplus": nn.functional.softplus,
    "identity": lambda z: z,
}


_DERIVATIVES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": lambda z: 1 - torch.tanh(z) ** 2,
    "relu": lambda z: (z > 0).to(z.dtype),
    "sigmoid": lambda z: torch.sigmoid(z) * (1 - torch.sigmoid(z)),
    "softplus": torch.sigmoid,
    "identity": torch.ones_like,
}


def activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The activation σ called ``name`` ('tanh', 'relu', 'sigmoid', 'softplus', 'identity')."""
    try:
        return _ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}: use one of "
                         f"{sorted(_ACTIVATIONS)}") from None


class ODEBlock(nn.Module):
    """N residual layers x_{k+1} = x_k + h f(x_k, θ_k) on the depth interval [0, T].

    Subclasses name their stacked parameters in ``param_names`` (each of shape (N, ...)) and
    implement :meth:`f` for a *batch of layers*: ``x`` is (B, batch, width) and every entry of
    ``theta`` has a leading dimension B (layer k_b's parameters in row b).
    """

    param_names: tuple[str, ...] = ()

    def __init__(self, depth: int, T: float = 1.0):
        super().__init__()
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be a positive integer (number of layers), got {depth!r}")
        if not (math.isfinite(T) and T > 0):
            raise ValueError(f"the final time T must be positive, got {T!r}")
        self.depth, self.T = depth, float(T)

    # -- what subclasses provide ---------------------------------------------------------
    def f(self, x: torch.Tensor, theta: dict[str, torch.Tensor],
          frozen: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """The right-hand side f(x, θ) for a batch of layers (thesis eq. 3.7)."""
        raise NotImplementedError

    def draw_frozen(self, x0: torch.Tensor, generator: torch.Generator | None = None):
        """The random choices of one forward/backward pair, stacked per layer (None: none)."""
        return None

    # -- shared machinery ----------------------------------------------------------------
    @property
    def h(self) -> float:
        """The step size T / N of the finest grid."""
        return self.T / self.depth

    def grid(self, device=None) -> torch.Tensor:
        """The depth grid t_k = k h, k = 0..N (float64), shared with the MGRIT hierarchy."""
        return torch.linspace(0.0, self.T, self.depth + 1, dtype=torch.float64, device=device)

    def layer_parameters(self) -> dict[str, torch.Tensor]:
        """The stacked parameters {name: (N, ...)} in ``param_names`` order."""
        return {n: getattr(self, n) for n in self.param_names}

    @staticmethod
    def take(stacked: dict[str, torch.Tensor] | None, k: torch.Tensor):
        """Rows ``k`` of every stacked tensor: the parameters of the layers ``k``."""
        if stacked is None:
            return None
        return {n: p[k] for n, p in stacked.items()}

    def phi(self, x: torch.Tensor, theta: dict[str, torch.Tensor], h: torch.Tensor | float,
            frozen: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Φ(x) = x + h f(x, θ) for a batch of layers whose parameters are ``theta``."""
        if torch.is_tensor(h):
            h = h.to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
        return x + h * self.f(x, theta, frozen)

    def linearize(self, x, theta, frozen=None) -> dict[str, torch.Tensor] | None:
        """What every vector–Jacobian product at the states ``x`` can reuse, stacked per layer
        (e.g. σ'(W_k x_k + b_k)); computed once per backward pass. None: nothing to reuse."""
        return None

    def vjp_x(self, x, theta, h, frozen, v, lin=None) -> torch.Tensor:
        """(∂Φ/∂x)(x)ᵀ v for a batch of layers: one adjoint step (thesis eq. 3.18).

        Generic version by autograd; subclasses may override it with a closed form that uses
        ``lin`` (their :meth:`linearize` at ``x``).
        """
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.phi(x, theta, h, frozen), x, v)
        return g

    def vjp_theta(self, x, theta, h, frozen, v, lin=None) -> dict[str, torch.Tensor]:
        """(∂Φ/∂θ)(x)ᵀ v for a batch of layers: the design equations (thesis eq. 3.17)."""
        with torch.enable_grad():
            th = {n: p.detach().requires_grad_(True) for n, p in theta.items()}
            gs = torch.autograd.grad(self.phi(x.detach(), th, h, frozen), list(th.values()), v)
        return dict(zip(th, gs))

    def step(self, x: torch.Tensor, k: torch.Tensor, h: torch.Tensor | float,
             params: dict[str, torch.Tensor] | None = None,
             frozen: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Φ_k(x) for the layers ``k`` (B,), with ``params`` (default: this block's own)."""
        params = self.layer_parameters() if params is None else params
        return self.phi(x, self.take(params, k), h, self.take(frozen, k))

    def refined(self, factor: int) -> "ODEBlock":
        """The same block on ``factor``·N layers, θ prolonged piecewise constantly in depth.

        θ^fine_k = θ^coarse_{⌊k / factor⌋} and h^fine = h / factor (same T): the initialisation
        of nested iteration (Cyr, Günther, Schroder 2019, §3).
        """
        if not isinstance(factor, int) or factor < 1:
            raise ValueError(f"the refinement factor must be a positive integer, got {factor!r}")
        fine = copy.deepcopy(self)
        fine.depth = self.depth * factor
        for n in self.param_names:
            p = getattr(self, n).detach()
            setattr(fine, n, nn.Parameter(p.repeat_interleave(factor, dim=0).clone()))
        return fine

    def extra_repr(self) -> str:
        return f"depth={self.depth}, T={self.T}, h={self.h:.4g}"


class DenseBlock(ODEBlock):
    """f(x, θ_k) = σ(W_k x + b_k) (⊙ a frozen dropout mask), θ_k = (W_k, b_k) (thesis eq. 3.7).

    ``weight`` is (N, w, w), ``bias`` (N, w); the initial weights are N(0, scale²/w).
    With ``dropout`` p > 0 and the block in training mode, :meth:`draw_frozen` draws one mask
    m_k ∈ {0, 1/(1-p)}^(batch × w) per layer, and f becomes m_k ⊙ σ(W_k x + b_k).
    """

    param_names = ("weight", "bias")

    def __init__(self, width: int, depth: int, T: float = 1.0, *, act: str = "tanh",
                 dropout: float = 0.0, scale: float = 1.0,
                 generator: torch.Generator | None = None, dtype=torch.float64, device=None):
        super().__init__(depth, T)
        if not (0.0 <= dropout < 1.0):
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.width, self.act_name, self.dropout = width, act, float(dropout)
        self.sigma = activation(act)
        w = torch.randn(depth, width, width, generator=generator, dtype=torch.float64)
        b = torch.randn(depth, width, generator=generator, dtype=torch.float64)
        self.weight = nn.Parameter((w * scale / math.sqrt(width)).to(dtype=dtype, device=device))
        self.bias = nn.Parameter((0.1 * scale * b).to(dtype=dtype, device=device))

    def f(self, x, theta, frozen=None):
        z = torch.baddbmm(theta["bias"].unsqueeze(1), x, theta["weight"].transpose(1, 2))
        y = self.sigma(z)
        if frozen is not None:
            y = y * frozen["mask"]
        return y

    def linearize(self, x, theta, frozen=None):
        z = torch.baddbmm(theta["bias"].unsqueeze(1), x, theta["weight"].transpose(1, 2))
        d = _DERIVATIVES[self.act_name](z)
        return {"dsigma": d if frozen is None else d * frozen["mask"]}

    def _local_sensitivity(self, x, theta, h, frozen, v, lin):
        """s = h σ'(W x + b) ⊙ m ⊙ v, shared by both vector–Jacobian products."""
        d = (lin if lin is not None else self.linearize(x, theta, frozen))["dsigma"]
        if torch.is_tensor(h):
            h = h.to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
        return h * (d * v)

    def vjp_x(self, x, theta, h, frozen, v, lin=None):
        # (I + h diag(σ'(z)) W)ᵀ v = v + Wᵀ (h σ'(z) ⊙ v), batched over layers
        s = self._local_sensitivity(x, theta, h, frozen, v, lin)
        return v + torch.bmm(s, theta["weight"])

    def vjp_theta(self, x, theta, h, frozen, v, lin=None):
        s = self._local_sensitivity(x, theta, h, frozen, v, lin)
        return {"weight": torch.bmm(s.transpose(1, 2), x), "bias": s.sum(dim=1)}

    def draw_frozen(self, x0, generator=None):
        if not (self.training and self.dropout > 0):
            return None
        keep = 1.0 - self.dropout
        shape = (self.depth, *x0.shape)
        u = torch.rand(shape, generator=generator, dtype=x0.dtype, device=x0.device)
        return {"mask": (u < keep).to(x0.dtype) / keep}

    def extra_repr(self) -> str:
        return (f"width={self.width}, {super().extra_repr()}, act={self.act_name}, "
                f"dropout={self.dropout}")


class SerialODENet(nn.Module):
    """The N residual layers applied one after the other: the reference for MGRIT.

    Shares the block's parameters (so autograd through it gives the exact gradient).
    ``len()``, indexing and iteration give the single layers, like ``nn.Sequential``.
    ``frozen``: fixed random choices (e.g. ``LayerParallel.last_frozen``) to reproduce a
    layer-parallel pass exactly; without it a training-mode block draws its own each call.
    """

    def __init__(self, block: ODEBlock, frozen: dict[str, torch.Tensor] | None = None):
        super().__init__()
        self.block, self.frozen = block, frozen

    def __len__(self) -> int:
        return self.block.depth

    def __getitem__(self, k: int) -> Callable[[torch.Tensor], torch.Tensor]:
        if not -len(self) <= k < len(self):
            raise IndexError(f"layer {k} out of range for a network of {len(self)} layers")
        k = k % len(self)
        return lambda x, frozen=None: self._layers(x, frozen or self.frozen, range(k, k + 1))[-1]

    def __iter__(self):
        return (self[k] for k in range(len(self)))

    def _layers(self, x, frozen, ks) -> list[torch.Tensor]:
        # unbind once: autograd then stacks the per-layer gradients in one O(N) pass, where
        # indexing the stacked parameter per layer would add a full (N, ...) zero tensor each
        layers = {n: p.unbind(0) for n, p in self.block.layer_parameters().items()}
        h = torch.diff(self.block.grid(x.device))
        out = [x]
        for k in ks:
            theta = {n: ps[k].unsqueeze(0) for n, ps in layers.items()}
            fz = None if frozen is None else {n: m[k].unsqueeze(0) for n, m in frozen.items()}
            out.append(self.block.phi(out[-1].unsqueeze(0), theta, h[k], fz)[0])
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frozen = self.frozen if self.frozen is not None else self.block.draw_frozen(x)
        return self._layers(x, frozen, range(len(self)))[-1]

    def states(self, x: torch.Tensor) -> torch.Tensor:
        """All activations x_0..x_N, shape (N+1, *x.shape) (no dropout unless frozen)."""
        return torch.stack(self._layers(x, self.frozen, range(len(self))))
