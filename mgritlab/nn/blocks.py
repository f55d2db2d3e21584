"""The layer contract of layer-parallel training, and forward-Euler residual layers on it.

What :class:`~mgritlab.nn.layer_parallel.LayerParallel` (and the serial network) calls is one
*batched layer step* (:class:`LayerStack`)

    Φ_k(x; θ_k, h, level),       k = (k_1, ..., k_B) a batch of layers,

with the per-layer parameters θ_k stored *stacked* — e.g. a weight of shape (N, w, w) — so that
any batch of layers is evaluated in one call (that is what lets MGRIT relax all C-intervals of a
level at once). ``h`` is the step of the level (c_f^ℓ h on coarse level ℓ) and ``level`` its
index ℓ: a step whose scheme depends on the level (an IMEX term on coarse levels only) reads
it there — scheme configuration, not a second model. The adjoint products ``vjp_x`` and
``vjp_theta`` default to autograd through Φ; a block may give closed forms.

Anything random in a layer (dropout) is *frozen*: :meth:`LayerStack.draw_frozen` returns one
object per forward/backward pair (e.g. a :class:`~mgritlab.nn.frozen.FrozenDropout`), which
every evaluation of Φ receives; ``LayerParallel`` treats it as opaque.

Forward Euler on an ODE whose time is depth (thesis §3.2: the ODE eq. 3.8, the ResNet rule
eq. 3.6) is one implementation, :class:`ODEBlock`:

    x_{k+1} = Φ_k(x_k) = x_k + h f(x_k, θ_k),     k = 0, ..., N-1,   h = T / N;

the PDE-GCN-D step with an IMEX term (:mod:`mgritlab.graphs.pdegcn`) is another.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from torch import nn

# one batch-independent sigmoid for the package (torch.sigmoid's vectorised CPU kernel rounds
# some entries differently from its scalar tail: a state's value would depend on its batch)
from ..problems.networks import sigmoid
from .frozen import FrozenDropout

_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": sigmoid,
    "softplus": nn.functional.softplus,
    "identity": lambda z: z,
}


_DERIVATIVES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": lambda z: 1 - torch.tanh(z) ** 2,
    "relu": lambda z: (z > 0).to(z.dtype),
    "sigmoid": lambda z: sigmoid(z) * (1 - sigmoid(z)),
    "softplus": sigmoid,
    "identity": torch.ones_like,
}


def activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The activation σ called ``name`` ('tanh', 'relu', 'sigmoid', 'softplus', 'identity')."""
    try:
        return _ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}: use one of "
                         f"{sorted(_ACTIVATIONS)}") from None


def _col(h, like: torch.Tensor):
    """A step size (float or (B,)) shaped to broadcast against a batch ``like`` (B, ...)."""
    if torch.is_tensor(h):
        return h.to(like.dtype).reshape(-1, *([1] * (like.dim() - 1)))
    return h


def as_slice(k: torch.Tensor):
    """``k`` as a slice when it is an increasing arithmetic progression (indexing with it is
    then a view, not a copy of the rows: the design gradient takes all held layers at once),
    else ``k`` itself."""
    if isinstance(k, slice):
        return k
    k = torch.as_tensor(k)
    if k.dim() != 1 or k.numel() == 0 or k.dtype not in (torch.int64, torch.int32):
        return k
    first = int(k[0])
    if k.numel() == 1:
        return slice(first, first + 1) if first >= 0 else k
    step = int(k[1]) - first
    if step < 1 or first < 0:
        return k
    if not torch.equal(k, torch.arange(first, first + step * k.numel(), step,
                                       dtype=k.dtype, device=k.device)):
        return k
    return slice(first, first + step * (k.numel() - 1) + 1, step)


def _count(k) -> int:
    """The number of layers in ``k`` (an index tensor or a slice of a stack)."""
    if isinstance(k, slice):
        if k.stop is None:
            raise ValueError("a slice of layers needs an explicit stop")
        return len(range(k.start or 0, k.stop, k.step or 1))
    return torch.as_tensor(k).numel()


class LayerStack(nn.Module):
    """N layers with stacked parameters on the depth interval [0, T]: the layer contract.

    Subclasses name their parameters in ``param_names`` and implement :meth:`phi` for a *batch
    of layers*. A parameter is stacked, of shape (N, ...) with layer k's in row k, unless it is
    named in ``shared_names`` too: then it is one tensor used by every layer (a recurrent
    network's weights, shared over time steps). :meth:`take` hands Φ both kinds with a leading
    batch dimension B (a shared one as an expanded view), so Φ is written once; the design
    equations then give one contribution per layer, which :func:`~mgritlab.nn.adjoint.
    design_gradient` sums.

    Optionally: :meth:`draw_frozen` (what is fixed for one forward/backward pair: random
    choices, or per-step data such as a recurrent network's inputs), closed-form :meth:`vjp_x`
    / :meth:`vjp_theta` with :meth:`linearize`, :meth:`check_levels` (validate a per-level
    scheme for a hierarchy) and :meth:`divergence_advice` (what to change when a coarse level
    is unstable).
    """

    param_names: tuple[str, ...] = ()
    #: the names in ``param_names`` whose tensor is shared by all layers (not stacked)
    shared_names: tuple[str, ...] = ()

    def __init__(self, depth: int, T: float = 1.0):
        super().__init__()
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be a positive integer (number of layers), got {depth!r}")
        if not (math.isfinite(T) and T > 0):
            raise ValueError(f"the final time T must be positive, got {T!r}")
        self.depth, self.T = depth, float(T)

    # -- what subclasses provide ---------------------------------------------------------
    def phi(self, x: torch.Tensor, k: torch.Tensor, theta: dict[str, torch.Tensor],
            h: torch.Tensor | float, frozen=None, level: int = 0) -> torch.Tensor:
        """Φ_k(x; θ_k, h, level) for a batch: x (B, ...), layers k (B,), θ = rows k of the
        stacked parameters, h a float or (B,), ``frozen`` from :meth:`draw_frozen`."""
        raise NotImplementedError

    def draw_frozen(self, x0: torch.Tensor, generator: torch.Generator | None = None):
        """The random choices of one forward/backward pair (None: none)."""
        return None

    def check_levels(self, max_levels: int) -> None:
        """Raise a ValueError saying what to change if the block's per-level scheme does not
        fit a hierarchy of ``max_levels`` levels (default: every level is fine)."""

    def divergence_advice(self, x: torch.Tensor, k: int, h: float, level: int,
                          frozen=None) -> str:
        """A hint for a level whose step h diverges, from the state x at layer k ('' if none)."""
        return ""

    # -- shared machinery ----------------------------------------------------------------
    @property
    def h(self) -> float:
        """The step size T / N of the finest grid."""
        return self.T / self.depth

    def grid(self, device=None) -> torch.Tensor:
        """The depth grid t_k = k h, k = 0..N (float64), shared with the MGRIT hierarchy."""
        return torch.linspace(0.0, self.T, self.depth + 1, dtype=torch.float64, device=device)

    def layer_parameters(self) -> dict[str, torch.Tensor]:
        """The parameters {name: tensor} in ``param_names`` order: (N, ...) when stacked, the
        tensor itself when shared."""
        return {n: getattr(self, n) for n in self.param_names}

    def take(self, params: dict[str, torch.Tensor] | None, k: torch.Tensor):
        """The parameters of the layers ``k`` (B,), each with a leading dimension B: rows k of
        a stacked tensor (a view where ``k`` is evenly spaced, as MGRIT's layer indices are),
        a shared tensor expanded to (B, ...) (a view: no copy)."""
        if params is None:
            return None
        shared = [n for n in self.shared_names if n in params]
        if not shared:
            return self.rows(params, k)
        B = _count(k)
        return {n: (p.unsqueeze(0).expand(B, *p.shape) if n in shared else p[as_slice(k)])
                for n, p in params.items()}

    @staticmethod
    def rows(stacked: dict[str, torch.Tensor] | None, k):
        """Rows ``k`` of every tensor of ``stacked`` (all stacked by layer or batch row: a
        linearisation, frozen masks, or parameters already taken)."""
        if stacked is None:
            return None
        rows = as_slice(k)
        return {n: p[rows] for n, p in stacked.items()}

    def linearize(self, x, k, theta, frozen=None) -> dict[str, torch.Tensor] | None:
        """What every vector–Jacobian product at the states ``x`` of layers ``k`` can reuse,
        stacked per layer (e.g. σ'(W_k x_k + b_k)); computed once per backward pass. None:
        nothing to reuse."""
        return None

    #: the most layers one autograd vector–Jacobian product takes at once (None: all); a
    #: large layer keeps its intermediate tensors until the product is done
    vjp_chunk: int | None = None

    def _chunks(self, n: int):
        c = self.vjp_chunk or n
        return [slice(a, min(a + c, n)) for a in range(0, n, c)]

    def vjp_x(self, x, k, theta, h, frozen, v, lin=None, level: int = 0) -> torch.Tensor:
        """(∂Φ/∂x)(x)ᵀ v for a batch of layers: one adjoint step (thesis eq. 3.15).

        Generic version by autograd (``vjp_chunk`` layers at a time); subclasses may override
        it with a closed form that uses ``lin`` (their :meth:`linearize` at ``x``).
        """
        out = []
        for c in self._chunks(x.shape[0]):
            th, hc = self.rows(theta, c), (h[c] if torch.is_tensor(h) and h.dim() else h)
            with torch.enable_grad():
                xc = x[c].detach().requires_grad_(True)
                (g,) = torch.autograd.grad(self.phi(xc, k[c], th, hc, frozen, level), xc, v[c])
            out.append(g)
        return out[0] if len(out) == 1 else torch.cat(out)

    def vjp_theta(self, x, k, theta, h, frozen, v, lin=None, level: int = 0
                  ) -> dict[str, torch.Tensor]:
        """(∂Φ/∂θ)(x)ᵀ v for a batch of layers: the design equations (thesis eq. 3.17).

        One row per layer of the batch, a shared parameter included (its contribution from
        each layer; :func:`~mgritlab.nn.adjoint.design_gradient` sums them)."""
        out: dict[str, list] = {n: [] for n in theta}
        for c in self._chunks(x.shape[0]):
            hc = h[c] if torch.is_tensor(h) and h.dim() else h
            with torch.enable_grad():
                th = {n: p[c].detach().requires_grad_(True) for n, p in theta.items()}
                y = self.phi(x[c].detach(), k[c], th, hc, frozen, level)
                gs = torch.autograd.grad(y, list(th.values()), v[c], allow_unused=True)
            for n, g in zip(th, gs):
                out[n].append(torch.zeros_like(th[n]) if g is None else g)
        return {n: gs[0] if len(gs) == 1 else torch.cat(gs) for n, gs in out.items()}

    def step(self, x: torch.Tensor, k: torch.Tensor, h: torch.Tensor | float,
             params: dict[str, torch.Tensor] | None = None, frozen=None,
             level: int = 0) -> torch.Tensor:
        """Φ_k(x) for the layers ``k`` (B,), with ``params`` (default: this block's own)."""
        params = self.layer_parameters() if params is None else params
        k = torch.as_tensor(k, dtype=torch.long, device=x.device).reshape(-1)
        return self.phi(x, k, self.take(params, k), h, frozen, level)

    def refined(self, factor: int) -> LayerStack:
        """The same block on ``factor``·N layers, θ prolonged piecewise constantly in depth.

        θ^fine_k = θ^coarse_{⌊k / factor⌋} and h^fine = h / factor (same T): the initialisation
        of nested iteration (Cyr, Günther, Schroder 2019, §3).
        """
        if not isinstance(factor, int) or factor < 1:
            raise ValueError(f"the refinement factor must be a positive integer, got {factor!r}")
        fine = copy.deepcopy(self)
        fine.depth = self.depth * factor
        for n in self.param_names:
            if n in self.shared_names:
                continue
            p = getattr(self, n).detach()
            setattr(fine, n, nn.Parameter(p.repeat_interleave(factor, dim=0).clone()))
        return fine

    def extra_repr(self) -> str:
        return f"depth={self.depth}, T={self.T}, h={self.h:.4g}"


class ODEBlock(LayerStack):
    """N residual layers x_{k+1} = x_k + h f(x_k, θ_k): forward Euler on the ODE of thesis
    eq. 3.8 (the ResNet rule eq. 3.6 with a step h).

    Subclasses implement :meth:`f` for a *batch of layers*: ``x`` is (B, batch, width) and
    every entry of ``theta`` has a leading dimension B (layer k_b's parameters in row b);
    ``frozen`` is what :meth:`frozen_for` makes of the pair's random choices for those layers.
    """

    def f(self, x: torch.Tensor, theta: dict[str, torch.Tensor],
          frozen: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """The right-hand side f(x, θ) for a batch of layers (thesis eqs. 3.6, 3.8)."""
        raise NotImplementedError

    def frozen_for(self, frozen, k: torch.Tensor, x: torch.Tensor):
        """The random choices of the layers ``k`` as :meth:`f` takes them: rows k of a dict of
        stacked tensors, or the frozen object itself."""
        if frozen is None or not isinstance(frozen, dict):
            return frozen
        return self.rows(frozen, k)

    def phi(self, x, k, theta, h, frozen=None, level=0):
        """Φ(x) = x + h f(x, θ) for a batch of layers whose parameters are ``theta``."""
        return x + _col(h, x) * self.f(x, theta, self.frozen_for(frozen, k, x))


class DenseBlock(ODEBlock):
    """f(x, θ_k) = σ(W_k x + b_k) (⊙ a frozen dropout mask), θ_k = (W_k, b_k) (thesis eq. 3.6).

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

    def frozen_for(self, frozen, k, x):
        """{'mask': (B, batch, w)}: the frozen masks of the layers k, stacked for one call."""
        if isinstance(frozen, FrozenDropout):
            return {"mask": frozen.stack("hidden", k.tolist(), tuple(x.shape[1:]), x.dtype,
                                         x.device)}
        return super().frozen_for(frozen, k, x)

    def linearize(self, x, k, theta, frozen=None):
        z = torch.baddbmm(theta["bias"].unsqueeze(1), x, theta["weight"].transpose(1, 2))
        d = _DERIVATIVES[self.act_name](z)
        fz = self.frozen_for(frozen, k, x)
        return {"dsigma": d if fz is None else d * fz["mask"]}

    def _local_sensitivity(self, x, k, theta, h, frozen, v, lin):
        """s = h σ'(W x + b) ⊙ m ⊙ v, shared by both vector–Jacobian products."""
        d = (lin if lin is not None else self.linearize(x, k, theta, frozen))["dsigma"]
        return _col(h, x) * (d * v)

    def vjp_x(self, x, k, theta, h, frozen, v, lin=None, level=0):
        # (I + h diag(σ'(z)) W)ᵀ v = v + Wᵀ (h σ'(z) ⊙ v), batched over layers
        s = self._local_sensitivity(x, k, theta, h, frozen, v, lin)
        return v + torch.bmm(s, theta["weight"])

    def vjp_theta(self, x, k, theta, h, frozen, v, lin=None, level=0):
        s = self._local_sensitivity(x, k, theta, h, frozen, v, lin)
        return {"weight": torch.bmm(s.transpose(1, 2), x), "bias": s.sum(dim=1)}

    def draw_frozen(self, x0, generator=None):
        """One :class:`FrozenDropout` per forward/backward pair (site 'hidden'), or None."""
        if not (self.training and self.dropout > 0):
            return None
        return FrozenDropout.draw({"hidden": self.dropout}, generator)

    def masks(self, frozen: FrozenDropout, batch: int) -> torch.Tensor:
        """All layers' masks of a pair, (N, batch, w) — to look at them (small networks)."""
        return frozen.stack("hidden", range(self.depth), (batch, self.width),
                            self.weight.dtype, self.weight.device)

    def extra_repr(self) -> str:
        return (f"width={self.width}, {super().extra_repr()}, act={self.act_name}, "
                f"dropout={self.dropout}")


class SerialODENet(nn.Module):
    """The N layers of a :class:`LayerStack` applied one after the other: the reference for
    MGRIT (and one level of it: ``LayerParallel(max_levels=1)`` takes the same steps).

    Shares the block's parameters (so autograd through it gives the exact gradient).
    ``len()``, indexing and iteration give the single layers, like ``nn.Sequential``.
    ``frozen``: fixed random choices (e.g. ``LayerParallel.last_frozen``) to reproduce a
    layer-parallel pass exactly; without it a training-mode block draws its own each call.
    """

    def __init__(self, block: LayerStack, frozen=None):
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
        shared = self.block.shared_names
        layers = {n: (p.unsqueeze(0),) * self.block.depth if n in shared else p.unbind(0)
                  for n, p in self.block.layer_parameters().items()}
        h = torch.diff(self.block.grid(x.device))
        out = [x]
        for k in ks:
            theta = {n: ps[k] if n in shared else ps[k].unsqueeze(0)
                     for n, ps in layers.items()}
            kk = torch.tensor([k], device=x.device)
            out.append(self.block.phi(out[-1].unsqueeze(0), kk, theta, h[k : k + 1], frozen)[0])
        return out

    def forward(self, x: torch.Tensor, frozen=None) -> torch.Tensor:
        """x_N; ``frozen``: this pass's random choices (default: this network's, or drawn)."""
        if frozen is None:
            frozen = self.frozen if self.frozen is not None else self.block.draw_frozen(x)
        return self._layers(x, frozen, range(len(self)))[-1]

    def states(self, x: torch.Tensor, frozen=None) -> torch.Tensor:
        """All activations x_0..x_N, shape (N+1, *x.shape) (no dropout unless frozen)."""
        frozen = self.frozen if frozen is None else frozen
        return torch.stack(self._layers(x, frozen, range(len(self))))
