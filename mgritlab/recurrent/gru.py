"""The GRU as a time stepper over the sequence, classic and implicit, on the layer contract.

A gated recurrent unit (Cho et al. 2014; PyTorch's ``nn.GRUCell``) maps the hidden state
h_{t−1} and the input x_t to h_t (Cyr slides, "Generalized Recurrent Units"):

    r_t = σ(W_ir x_t + b_ir + W_hr h_{t−1} + b_hr)
    z_t = σ(W_iz x_t + b_iz + W_hz h_{t−1} + b_hz)
    n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn h_{t−1} + b_hn))
    h_t = z_t ⊙ h_{t−1} + (1 − z_t) ⊙ n_t.

Written with a step Δt (Δt = 1 is the GRU) it is forward Euler on the ODE (Cyr slides, "GRUs
to ODEs"; Moon & Cyr 2022 §3)

    ∂_t h = −(1 − z) ⊙ h + (1 − z) ⊙ n,

    classic   h_t = h_{t−1} + Δt (1 − z_t) ⊙ (n_t − h_{t−1}),

whose first term is a stiff, dissipative mode: on the linear model h' = −λh with
λ = 1 − z ∈ (0, 1) the classic step multiplies by 1 − λΔt, which leaves [−1, 1] once
λΔt > 2 — on a coarse MGRIT level with Δt = c_f^ℓ the classic GRU blows up. The *implicit GRU*
(Cyr slides, "Implicit GRUs"; Moon & Cyr 2022) takes that term implicitly and the gates at
h_{t−1}:

    implicit  (1 + Δt (1 − z_t)) ⊙ h_t = h_{t−1} + Δt (1 − z_t) ⊙ n_t,

a diagonal solve in closed form whose result is a convex combination of h_{t−1} and
n_t ∈ (−1, 1), so it is stable (and bounded) for any Δt; on the linear model it multiplies by
1/(1 + λΔt) (:func:`mgritlab.stability.R_backward_euler` at z = −λΔt).

:class:`GRUStack` is these steps as a :class:`~mgritlab.nn.blocks.LayerStack` whose "layers"
are the N time steps of a sequence: the parameters are *shared* over time (``shared_names``;
named as in ``torch.nn.GRU``, so a state dict of one loads into the other) and the inputs x_t
are per-step data carried by :class:`StepInputs` in the pass's ``frozen`` slot. One or more
stacked GRU layers form one state, the concatenation [h^(1), ..., h^(L)] of width L·H: at every
time step layer l reads the new state of layer l − 1 as its input, as ``torch.nn.GRU`` does.

Coarse MGRIT levels (stride s = c_f^ℓ) take steps Δt = s·Δt_fine with the input of the *first
fine step* of the coarse interval, x_{s·i} (injection, the same choice as TorchBraid's GRU
examples and as for PDE-GCN-D's layer weights): the coarse problem is only a preconditioner,
MGRIT-FAS's fixed point is the fine recurrence whatever input a coarse step reads, and the
first fine input is the one the coarse step's start point already depends on.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ..nn.blocks import LayerStack, _col, as_slice, sigmoid

SCHEMES = ("classic", "implicit")


class StepInputs:
    """The inputs x_0, ..., x_{N−1} of a batch of sequences, one row per time step.

    ``x`` is (N, batch, channels): step t → t + 1 reads row t. Fixed for one forward/backward
    pair, like frozen dropout masks (it travels in the same slot of the layer contract). The
    inputs are data: no gradient flows into them.
    """

    def __init__(self, x: torch.Tensor):
        if not torch.is_tensor(x) or x.dim() != 3:
            raise ValueError(f"StepInputs needs a (steps, batch, channels) tensor, got "
                             f"{getattr(x, 'shape', type(x).__name__)}")
        if x.requires_grad:
            raise ValueError("the per-step inputs require grad, but no gradient flows into "
                             "them through the layer-parallel recurrence: compute them under "
                             "torch.no_grad() (or .detach() them), or train an input map "
                             "serially")
        self.x = x

    @property
    def steps(self) -> int:
        return self.x.shape[0]

    def rows(self, k) -> torch.Tensor:
        """The inputs of the steps ``k`` (B,): (B, batch, channels) (a view when evenly
        spaced)."""
        return self.x[as_slice(k)]

    def __repr__(self) -> str:
        return f"StepInputs(steps={self.x.shape[0]}, batch={self.x.shape[1]}, " \
               f"channels={self.x.shape[2]})"


def gates(h: torch.Tensor, x: torch.Tensor, w_ih, w_hh, b_ih, b_hh):
    """(z, n) of one GRU layer for a batch of steps: h (B, batch, H), x (B, batch, c), the
    weights with a leading batch dimension B ((B, 3H, c), (B, 3H, H), (B, 3H), (B, 3H)), in
    PyTorch's gate order r, z, n. Batched matrix products, so each step's result does not
    depend on the other steps of its batch."""
    gi = torch.baddbmm(b_ih.unsqueeze(1), x, w_ih.transpose(1, 2))
    gh = torch.baddbmm(b_hh.unsqueeze(1), h, w_hh.transpose(1, 2))
    i_r, i_z, i_n = gi.chunk(3, dim=-1)
    h_r, h_z, h_n = gh.chunk(3, dim=-1)
    r = sigmoid(i_r + h_r)      # not torch.sigmoid: see problems.networks.sigmoid
    z = sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return z, n


def gru_update(h: torch.Tensor, z: torch.Tensor, n: torch.Tensor, dt, scheme: str):
    """h_t from h_{t−1} and the gates: the classic (forward Euler) or implicit step."""
    a = dt * (1 - z)
    if scheme == "classic":
        return h + a * (n - h)
    return (h + a * n) / (1 + a)


class GRUStack(LayerStack):
    """N time steps of an L-layer GRU (hidden size H) as a layer stack with shared weights.

    Parameters
    ----------
    input_size, hidden_size : channels c of x_t and H.
    steps : N, the sequence length (the "depth" of the stack).
    num_layers : L stacked GRU layers; the state is [h^(1), ..., h^(L)], (batch, L·H).
    scheme : 'implicit' (default) or 'classic' on every level, or one per MGRIT level
        (e.g. ``('classic', 'implicit', 'implicit')``: the GRU on the fine level, implicit
        coarse levels — scheme configuration reaching the step through its level).
    dt : the fine step Δt (T = N·Δt); coarse level ℓ of a hierarchy with c_f steps c_f^ℓ·Δt.
    generator, dtype, device : the initial weights are U(−1/√H, 1/√H), as ``torch.nn.GRU``.
    """

    def __init__(self, input_size: int, hidden_size: int, steps: int, *, num_layers: int = 1,
                 scheme: str | Sequence[str] = "implicit", dt: float = 1.0,
                 generator: torch.Generator | None = None, dtype=torch.float64, device=None):
        for name, v in (("input_size", input_size), ("hidden_size", hidden_size),
                        ("num_layers", num_layers)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer (the sequence length), got "
                             f"{steps!r}")
        if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be a positive step, got {dt!r}")
        super().__init__(steps, steps * float(dt))
        self.schemes = (scheme,) if isinstance(scheme, str) else tuple(scheme)
        bad = [s for s in self.schemes if s not in SCHEMES]
        if bad or not self.schemes:
            raise ValueError(f"scheme must be one of {SCHEMES} or a sequence of them (one per "
                             f"MGRIT level), got {scheme!r}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        names = []
        bound = 1.0 / math.sqrt(hidden_size)
        for layer in range(num_layers):
            c = input_size if layer == 0 else hidden_size
            for kind, shape in (("weight_ih", (3 * hidden_size, c)),
                                ("weight_hh", (3 * hidden_size, hidden_size)),
                                ("bias_ih", (3 * hidden_size,)),
                                ("bias_hh", (3 * hidden_size,))):
                u = torch.rand(shape, generator=generator, dtype=torch.float64)
                name = f"{kind}_l{layer}"
                setattr(self, name, nn.Parameter(((2 * u - 1) * bound).to(dtype=dtype,
                                                                           device=device)))
                names.append(name)
        self.param_names = tuple(names)
        self.shared_names = tuple(names)

    @property
    def dt(self) -> float:
        """The fine step Δt."""
        return self.h

    @property
    def state_size(self) -> int:
        """The width L·H of the state [h^(1), ..., h^(L)]."""
        return self.num_layers * self.hidden_size

    def scheme(self, level: int) -> str:
        """The step's scheme on MGRIT level ``level`` (the last one given for deeper ones)."""
        return self.schemes[min(level, len(self.schemes) - 1)]

    def check_levels(self, max_levels: int) -> None:
        if len(self.schemes) > 1 and len(self.schemes) != max_levels:
            raise ValueError(f"the GRU has a scheme per level {self.schemes} "
                             f"({len(self.schemes)} levels) but the hierarchy has {max_levels}: "
                             f"give one scheme per level, or a single scheme for all")

    def layer_weights(self, theta: dict[str, torch.Tensor], layer: int):
        """(w_ih, w_hh, b_ih, b_hh) of GRU layer ``layer`` from the taken parameters."""
        return tuple(theta[f"{kind}_l{layer}"]
                     for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))

    def phi(self, x, k, theta, h, frozen=None, level=0):
        """h_{k+1} = Q(h_k, x_k) for a batch of steps k: x (B, batch, L·H), inputs
        ``frozen`` (:class:`StepInputs`), Δt = ``h`` (float or (B,))."""
        if not isinstance(frozen, StepInputs):
            raise ValueError("a GRU step needs the sequence's inputs: pass "
                             "frozen=StepInputs(x) with x of shape (steps, batch, channels) "
                             f"(got {type(frozen).__name__})")
        inp = frozen.rows(k)
        if inp.shape[-1] != self.input_size:
            raise ValueError(f"the inputs have {inp.shape[-1]} channels but the GRU was built "
                             f"for input_size={self.input_size}")
        scheme = self.scheme(level)
        dt = _col(h, x)
        out, below = [], inp
        for layer, state in enumerate(x.split(self.hidden_size, dim=-1)):
            z, n = gates(state, below, *self.layer_weights(theta, layer))
            below = gru_update(state, z, n, dt, scheme)
            out.append(below)
        return out[0] if len(out) == 1 else torch.cat(out, dim=-1)

    def divergence_advice(self, x, k, h, level, frozen=None) -> str:
        if self.scheme(level) != "classic" or h <= 2:
            return ""   # 1 - z < 1: the stiff mode is stable for dt <= 2
        return (f"the classic GRU step multiplies its stiff mode by 1 - dt(1 - z), which "
                f"leaves [-1, 1] once dt(1 - z) > 2; this level takes dt = {h:.3g}, unstable "
                f"wherever 1 - z > {2 / h:.3g}. Use scheme='implicit' on the coarse levels "
                f"(stable for any dt), or a smaller cf / fewer levels")

    def extra_repr(self) -> str:
        return (f"input_size={self.input_size}, hidden_size={self.hidden_size}, "
                f"num_layers={self.num_layers}, steps={self.depth}, dt={self.dt:g}, "
                f"scheme={self.schemes if len(self.schemes) > 1 else self.schemes[0]}")
