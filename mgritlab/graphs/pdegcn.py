"""PDE-GCN-D: the diffusion graph network as forward Euler (or IMEX) steps on a graph.

Thesis eq. 4.4 (Eliasof, Haber, Treister, NeurIPS 2021, eq. 9) with the IMEX factor of eq.
4.16: with f ∈ R^{n×c} the node features, G the weighted graph gradient (``operators.py``) and
K_l ∈ R^{c×c} acting on channels (the thesis writes G f K_l; here features are rows, f K_lᵀ),

    x  ← dropout(x)                       (input)
    f  ← dropout(relu(K_o x))             (opening 1×1 map; ``open_dropout=0``: none, as the
                                           authors' code and the CORA preset have it)
    f  ← f − h · M_l r_l(f),   r_l(f) = Gᵀ σ(dropout(G f) K_lᵀ) K_l,   l = 0 … L−1,  σ = ReLU
    y  = log_softmax(dropout(f) K_cᵀ)     (closing 1×1 map)

M_l is the IMEX factor. Splitting the right-hand side as −(r(f) − Af) − Af and taking the
stabilising term Af implicitly gives f ← f − h (I + hA)^{-1} r(f), so M = (I + hA)^{-1}:

    'none'       A = 0                          M = I            (explicit, α = 0)
    'shared'     A = α_l I                      M = 1 / (1 + hα_l)        (thesis eq. 4.17)
    'channel'    A = diag(α_l) over channels    M = diag(1 / (1 + hα_lc)) (eqs. 4.18–4.19)
    'diffusion'  A = k² GᵀG                     M = (I + hk² GᵀG)^{-1}    (eq. 4.23), by CG

The layers are a :class:`PDEGCNBlock` — a :class:`~mgritlab.nn.blocks.LayerStack`, so the body
of :class:`PDEGCN` is either the serial stack or :class:`~mgritlab.nn.LayerParallel` (MGRIT in
depth). On MGRIT's coarse level ℓ a step is h_ℓ = cf^ℓ·h with the weights of the fine layer at
the coarse point, and the IMEX term may be chosen **per level** (``level_alpha``: e.g. none on
the fine level and α on the coarse ones, thesis fig. 5.10) — the same block, not a second model.

The adjoint of a layer is in closed form (thesis eq. 3.15: J_rᵀ w = Gᵀ D((σ'(z) ⊙ G(w K_lᵀ)) K_l),
with σ'(z) kept as one byte per edge and channel): :meth:`PDEGCNBlock.vjp_x` for MGRIT's adjoint
steps, and the same arithmetic as the custom backward of the serial network, so a one-level
layer-parallel run and back-propagation agree bit for bit (loop layout).

Dropout masks are frozen per training step (:class:`~mgritlab.nn.frozen.FrozenDropout`: one
step seed, masks drawn lazily per (site, layer)); within one forward/backward pair — and the
many re-evaluations of a layer inside MGRIT — each layer is one fixed function f ↦ Φ_l(f).
Plain ``model(x)`` in training mode draws the step seed from torch's global generator, so
``torch.manual_seed`` makes a run reproducible.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..linalg import shifted_solve
from ..nn.adjoint import StatePropagator
from ..nn.blocks import LayerStack, SerialODENet, _col
from ..nn.frozen import FrozenDropout
from ..nn.layer_parallel import LayerParallel
from .operators import GraphOperators

IMEX_CHOICES = ("none", "shared", "channel", "diffusion")
LAYOUTS = ("auto", "loop", "batched")


class PDEGCNBlock(LayerStack):
    """The L PDE-GCN-D layers f ↦ f − h M_l^{(ℓ)} r_l(f) (thesis eqs. 4.4, 4.16–4.23).

    Parameters: ``K`` (L, c, c), initialised I + init_noise·N(0, 1); ``alpha`` — α for
    'shared' (L,), 'channel' (L, c), k² for 'diffusion' (L,) — a parameter if ``learn_alpha``.

    ``level_alpha``: the IMEX term per MGRIT level. None: the layers' α on every level. A list
    with one entry per level: None (the layers' α, learnable or not), or a number (that α on
    every layer of the level; 0 means explicit there). E.g. ``[0.0, None, None]`` with
    ``imex='shared'`` is the explicit network whose coarse levels are IMEX (thesis fig. 5.10).
    The serial network is level 0.

    ``layout``: how a batch of layers is evaluated — 'loop' (one contiguous layer at a time:
    fastest on a CPU, and a layer's result never depends on its batch), 'batched' (all layers'
    channels side by side in one SpMM: pays on a GPU), 'auto' (loop on CPU, batched on CUDA).
    """

    def __init__(self, ops: GraphOperators, channels: int, layers: int, h: float, *,
                 dropout: float = 0.0, imex: str = "none", alpha: float = 0.0,
                 learn_alpha: bool = False, level_alpha=None, cg_tol: float = 1e-6,
                 cg_maxiter: int = 200, init_noise: float = 1e-3, layout: str = "auto",
                 generator: torch.Generator | None = None, dtype=None):
        if imex not in IMEX_CHOICES:
            raise ValueError(f"unknown imex={imex!r}: choose one of {', '.join(IMEX_CHOICES)}")
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout={layout!r}: choose one of {', '.join(LAYOUTS)}")
        if not (isinstance(layers, int) and layers >= 1 and isinstance(channels, int)
                and channels >= 1):
            raise ValueError(f"need layers >= 1 and channels >= 1, got {layers}, {channels}")
        if not (math.isfinite(h) and h > 0):
            raise ValueError(f"the step h must be positive, got {h!r}")
        super().__init__(layers, layers * float(h))
        self.ops, self.channels, self.step_h = ops, channels, float(h)
        self.imex, self.dropout, self.layout = imex, float(dropout), layout
        self.cg_tol, self.cg_maxiter = float(cg_tol), int(cg_maxiter)
        self.level_alpha = self._check_level_alpha(level_alpha, imex)
        dtype = dtype or ops.dtype
        eye = torch.eye(channels, dtype=dtype).expand(layers, channels, channels)
        noise = torch.randn(layers, channels, channels, generator=generator, dtype=dtype)
        self.K = nn.Parameter(eye + init_noise * noise)
        shape = (layers, channels) if imex == "channel" else (layers,)
        a = torch.full(shape, float(alpha), dtype=dtype)
        learn = learn_alpha and imex != "none"
        if learn:
            self.alpha = nn.Parameter(a)
        else:
            self.register_buffer("alpha", a)
        self.param_names = ("K", "alpha") if learn else ("K",)
        # an autograd vjp keeps ~5 (m, c) tensors per layer until it is done
        self.vjp_chunk = 8

    @property
    def h(self) -> float:
        return self.step_h

    @staticmethod
    def _check_level_alpha(level_alpha, imex):
        if level_alpha is None:
            return None
        if isinstance(level_alpha, (int, float)) or not hasattr(level_alpha, "__len__"):
            raise ValueError(f"level_alpha must be a list with one entry per MGRIT level (None "
                             f"or a number), got {level_alpha!r}")
        out = []
        for a in level_alpha:
            if a is not None and not (isinstance(a, (int, float)) and math.isfinite(a)
                                      and a >= 0):
                raise ValueError(f"level_alpha entries must be None (the layers' α) or a "
                                 f"number >= 0, got {a!r} in {list(level_alpha)}")
            out.append(None if a is None else float(a))
        if imex == "none" and any(a for a in out):
            raise ValueError("level_alpha sets an IMEX term on some level, but imex='none' says "
                             "which term none: pass imex='shared', 'channel' or 'diffusion' "
                             "(with alpha=0 and level_alpha=[0, a, ...] the fine level stays "
                             "explicit)")
        return out

    def check_levels(self, max_levels: int) -> None:
        if self.level_alpha is not None and len(self.level_alpha) != max_levels:
            raise ValueError(f"level_alpha has {len(self.level_alpha)} entries "
                             f"({self.level_alpha}) but the hierarchy has {max_levels} "
                             f"level(s): give one entry per level (None = the layers' α)")

    # -- the layer function --------------------------------------------------------------
    def _layout(self, device) -> str:
        if self.layout != "auto":
            return self.layout
        return "batched" if torch.device(device).type == "cuda" else "loop"

    def residual(self, f: torch.Tensor, k: torch.Tensor, K: torch.Tensor,
                 frozen=None) -> torch.Tensor:
        """r = Gᵀ σ(dropout(G f) K_lᵀ) K_l for a batch f (B, n, c) of layers k (B,)."""
        if self._layout(f.device) == "loop" or f.shape[0] == 1:
            return torch.stack([self._residual1(f[b], int(k[b]), K[b], frozen)
                                for b in range(f.shape[0])])
        B, n, c = f.shape
        g = self.ops.grad(f.transpose(0, 1).reshape(n, B * c)).view(-1, B, c)
        if frozen is not None:
            g = torch.stack([frozen.apply(g[:, b], "grad", int(k[b])) for b in range(B)], 1)
        z = torch.relu(torch.bmm(g.transpose(0, 1), K.transpose(1, 2)))  # (B, m, c)
        # Gᵀ (z K_l) = (Gᵀ z) K_l: multiply on the n nodes, not the m edges
        r = self.ops.div(z.transpose(0, 1).reshape(-1, B * c)).view(n, B, c)
        return torch.bmm(r.transpose(0, 1), K)

    def _residual1(self, f, k: int, K, frozen, ops: GraphOperators | None = None):
        ops = self.ops if ops is None else ops
        if torch.is_grad_enabled() and (f.requires_grad or K.requires_grad):
            return _LayerResidual.apply(f, K, ops, frozen, k)
        return _residual_forward(f, K, ops, frozen, k, adjoint=False)[0]

    def alpha_at(self, k: torch.Tensor, theta: dict, level: int):
        """α of the layers k on ``level`` (None where the level is explicit)."""
        if self.imex == "none":
            return None
        a = None if self.level_alpha is None else self.level_alpha[level]
        if a is not None:
            return None if a == 0 else torch.full((k.numel(),) + self.alpha.shape[1:], a,
                                                   dtype=self.alpha.dtype, device=k.device)
        return theta["alpha"] if "alpha" in theta else self.alpha[k]

    def imex_factor(self, r: torch.Tensor, a, h: torch.Tensor) -> torch.Tensor:
        """M r with M = (I + hA)^{-1} of the chosen IMEX variant; r (B, n, c), h (B,)."""
        if a is None:
            return r
        if self.imex == "shared":
            return r / _col(1.0 + h * a, r)
        if self.imex == "channel":
            return r / (1.0 + h[:, None] * a)[:, None, :]
        B, n, c = r.shape
        s = (h * a)[:, None].expand(B, c).reshape(B * c)
        y = shifted_solve(self.ops.lap, r.transpose(0, 1).reshape(n, B * c), s,
                          tol=self.cg_tol, maxiter=self.cg_maxiter, batch_dim=-1)
        return y.view(n, B, c).transpose(0, 1)

    def apply_M(self, r: torch.Tensor, k: torch.Tensor, theta: dict, h: torch.Tensor,
                level: int) -> torch.Tensor:
        """M_l^{(level)} r for a batch r (B, n, c) of layers k with steps h (B,). M is
        symmetric in every variant, so this is also Mᵀ (the adjoint step uses it)."""
        a = self.alpha_at(k, theta, level)
        if a is None:
            return r
        if self.imex == "diffusion" and self._layout(r.device) == "loop":
            # one CG per layer: a layer's result never depends on its batch
            return torch.stack([self.imex_factor(r[b : b + 1], a[b : b + 1], h[b : b + 1])[0]
                                for b in range(k.numel())])
        return self.imex_factor(r, a, h)

    def phi(self, x, k, theta, h, frozen=None, level=0):
        """f − h M_l^{(level)} r_l(f) for a batch f (B, n, c) of layers k with steps h."""
        h = torch.as_tensor(h, dtype=x.dtype, device=x.device).expand(k.numel())
        r = self.residual(x, k, theta["K"], frozen)
        return x - _col(h, x) * self.apply_M(r, k, theta, h, level)

    # -- the adjoint step in closed form ---------------------------------------------------
    def linearize(self, x, k, theta, frozen=None):
        """{'relu': σ'(z_k) as bytes (B, m, c), 'b': Gᵀσ(z_k) (B, n, c)}, z_k = dropout(G x_k)
        K_kᵀ: what every adjoint step of layer k reuses, on every level (z does not depend on
        the step h), and the design gradient."""
        K = theta["K"]
        d = torch.empty((x.shape[0], self.ops.num_edges, x.shape[-1]), dtype=torch.uint8,
                        device=x.device)
        b_ = torch.empty_like(x)
        for b in range(x.shape[0]):
            _, d[b], b_[b] = _residual_forward(x[b], K[b], self.ops, frozen, int(k[b]))
        return {"relu": d, "b": b_}

    def vjp_x(self, x, k, theta, h, frozen, v, lin=None, level=0):
        """(∂Φ/∂f)ᵀ v = v − h J_rᵀ M v with J_rᵀ w = Gᵀ D ((σ'(z) ⊙ G (w K_lᵀ)) K_l) (D the
        dropout mask; M is symmetric): two SpMMs and two c×c products per layer, without
        re-evaluating the layer as autograd's generic product does. Thesis eq. 3.15."""
        if lin is None:
            return super().vjp_x(x, k, theta, h, frozen, v, lin, level)
        h = torch.as_tensor(h, dtype=v.dtype, device=v.device).expand(k.numel())
        # the operations of autograd's backward through phi, in its order, so that the
        # serial network's back-propagation and this adjoint step agree bit for bit
        w = self.apply_M(-v * _col(h, v), k, theta, h, level)
        K, relu = theta["K"], lin["relu"]
        if self._layout(v.device) == "loop" or v.shape[0] == 1:
            out = torch.empty_like(v)
            for b in range(v.shape[0]):
                out[b] = _residual_vjp_f(w[b], K[b], relu[b], self.ops, frozen, int(k[b]))[0]
            return v + out
        else:
            B, n, c = v.shape
            wk = torch.bmm(w, K.transpose(1, 2))
            gw = self.ops.grad(wk.transpose(0, 1).reshape(n, B * c)).view(-1, B, c)
            q = gw.transpose(0, 1) * relu.to(v.dtype)
            q = torch.bmm(q, K)  # (B, m, c)
            if frozen is not None:
                q = torch.stack([frozen.apply(q[b], "grad", int(k[b])) for b in range(B)])
            out = self.ops.div(q.transpose(0, 1).reshape(-1, B * c)).view(n, B, c)
            return v + out.transpose(0, 1)

    def vjp_theta(self, x, k, theta, h, frozen, v, lin=None, level=0):
        """(∂Φ/∂K_l)ᵀ v = bᵀ w + (∂z)ᵀ D(G f) with w = M(−h v) (thesis eq. 3.17), by the
        arithmetic of the layer's backward; a learnable α goes through autograd."""
        if lin is None or set(theta) != {"K"} or self._layout(v.device) != "loop":
            return super().vjp_theta(x, k, theta, h, frozen, v, lin, level)
        h = torch.as_tensor(h, dtype=v.dtype, device=v.device).expand(k.numel())
        w = self.apply_M(-v * _col(h, v), k, theta, h, level)
        K, gK = theta["K"], torch.empty_like(theta["K"])
        for b in range(v.shape[0]):
            gz = _residual_gz(w[b], K[b], lin["relu"][b], self.ops)
            gK[b] = _design_K(x[b], w[b], gz, lin["b"][b], self.ops, frozen, int(k[b]))
        return {"K": gK}

    def draw_frozen(self, x0, generator=None):
        """The 'grad' dropout masks of one pair (when the block runs without its model)."""
        if not (self.training and self.dropout > 0):
            return None
        return FrozenDropout.draw({"grad": self.dropout}, generator)

    # -- what to do when a coarse level diverges -----------------------------------------
    @torch.no_grad()
    def spectral_radius(self, f: torch.Tensor, k: int = 0, frozen=None, iters: int = 20,
                        seed: int = 0) -> float:
        """ρ(∂r_k/∂f) at the state f (n, c), by power iteration on finite differences: the
        explicit layer's eigenvalues are about −ρ…0, so forward Euler needs h ≤ 2/ρ."""
        f = f.double()
        K = self.K[k].detach().double()
        ops = self.ops if self.ops.dtype == torch.float64 else self.ops.to(torch.float64)
        g = torch.Generator().manual_seed(seed)
        v = torch.randn(f.shape, generator=g, dtype=torch.float64)
        r0 = self._residual1(f, k, K, frozen, ops)
        rho = 0.0
        for _ in range(iters):
            v = v / v.norm()
            eps = 1e-6 * max(1.0, float(f.norm()))
            w = (self._residual1(f + eps * v, k, K, frozen, ops) - r0) / eps
            rho, v = float(w.norm()), w
        return rho

    def divergence_advice(self, x, k, h, level, frozen=None) -> str:
        """What the linearised layer at ``x`` says of ``level`` (step ``h``): the α it needs
        (eq. 4.10) where it is explicit or its 'shared' α is below that, else that it meets
        the bound — then the growth is no amplification of this level's own step."""
        from ..stability import min_alpha

        if x is None:
            return ""
        rho = self.spectral_radius(x, k, frozen)
        if rho <= 0:
            return ""
        a = min_alpha([-rho], h)
        now = self.level_alpha[level] if self.level_alpha is not None else None
        if self.imex in ("none", "shared"):
            have = 0.0 if self.imex == "none" else (
                now if now is not None else float(self.alpha.detach().min()))
            if have >= a:
                fine = self.level_alpha[0] if self.level_alpha is not None else None
                # more iterations are no remedy: short of N/cf they raised the forward's
                # error (experiment pdegcn-mgrit forward-error, results/pdegcn_mgrit)
                mixed = ("; the fine level is explicit, so this level's IMEX step is another "
                         "discretisation than the fine layers it stands for (α on the coarse "
                         "levels only, thesis fig. 5.10): put α on the fine level too (more "
                         "MGRIT iterations may not help: see experiment pdegcn-mgrit "
                         "forward-error)" if fine == 0 and have > 0 else "")
                return (f"α = {have:g} on this level meets the bound α ≥ {a:.3g} of the "
                        f"linearised layer (spectral radius ≈ {rho:.3g} at the input state; "
                        f"stability.min_alpha, eq. 4.10): its own step does not amplify{mixed}")
        cur = (f"α = {now:g} on this level" if now is not None else
               f"imex={self.imex!r}" + ("" if self.imex == "none" else
                                        f", α up to {float(self.alpha.max()):.3g}"))
        return (f"the layer's residual Jacobian has spectral radius ≈ {rho:.3g} (at the input "
                f"state), so an explicit step must be ≤ {2 / rho:.3g}; an IMEX 'shared' term "
                f"is stable for α ≥ {a:.3g} (stability.min_alpha, eq. 4.10) — now {cur}; set "
                f"e.g. imex='shared' with level_alpha giving this level α ≥ {a:.3g}")

    def extra_repr(self) -> str:
        la = "" if self.level_alpha is None else f", level_alpha={self.level_alpha}"
        return (f"layers={self.depth}, channels={self.channels}, h={self.h:g}, "
                f"imex={self.imex}{la}, layout={self.layout}")


def _residual_forward(f, K, ops: GraphOperators, frozen, k: int, adjoint: bool = True):
    """r = Gᵀ σ(D(G f) K_lᵀ) K_l for one layer (n, c), with what its adjoint needs:
    (r, σ'(z) as booleans, b = Gᵀ σ(z)); only r (and None, None) if not ``adjoint``."""
    g = ops.grad(f)
    if frozen is not None:
        g = frozen.apply(g, "grad", k)
    z = g @ K.t()
    b = ops.div(torch.relu(z))
    return (b @ K, z > 0, b) if adjoint else (b @ K, None, None)


def _residual_vjp_f(w, K, relu, ops: GraphOperators, frozen, k: int):
    """(J_rᵀ w, ∂r/∂z ᵀ w) for one layer: with r = b K_l, b = Gᵀ σ(z), z = D(G f) K_lᵀ,

        ∂b = w K_lᵀ,  ∂z = σ'(z) ⊙ G ∂b,  J_rᵀ w = Gᵀ D (∂z K_l).
    """
    gz = _residual_gz(w, K, relu, ops)
    q = gz @ K
    if frozen is not None:
        q = frozen.apply(q, "grad", k)
    return ops.div(q), gz


def _residual_gz(w, K, relu, ops: GraphOperators):
    """∂z = σ'(z) ⊙ G (w K_lᵀ): the edge sensitivities of one layer."""
    return ops.grad(w @ K.t()) * relu.to(w.dtype)


def _design_K(f, w, gz, b, ops: GraphOperators, frozen, k: int):
    """∂J/∂K_l = bᵀ w + (∂z)ᵀ D(G f) (r = b K_l, z = D(G f) K_lᵀ)."""
    g = ops.grad(f)
    if frozen is not None:
        g = frozen.apply(g, "grad", k)
    return b.t() @ w + gz.t() @ g


class _LayerResidual(torch.autograd.Function):
    """r_l(f) with its closed-form backward: keeps σ'(z) as one byte per edge and channel and
    b = Gᵀσ(z) (n × c), instead of autograd's float intermediates on the m edges; the same
    arithmetic as :meth:`PDEGCNBlock.vjp_x`, so that back-propagation through the serial
    network and the layer-parallel adjoint agree bit for bit.

    ∂J/∂K_l = bᵀ w + (∂z)ᵀ D(G f) for r = b K_l, z = D(G f) K_lᵀ.
    """

    @staticmethod
    def forward(ctx, f, K, ops, frozen, k):
        r, relu, b = _residual_forward(f, K, ops, frozen, k)
        ctx.save_for_backward(f, K, relu.to(torch.uint8), b)
        ctx.ops, ctx.frozen, ctx.k = ops, frozen, k
        return r

    @staticmethod
    def backward(ctx, w):
        f, K, relu, b = ctx.saved_tensors
        ops, frozen, k = ctx.ops, ctx.frozen, ctx.k
        gf, gz = None, None
        if ctx.needs_input_grad[0]:
            gf, gz = _residual_vjp_f(w, K, relu, ops, frozen, k)
        gK = None
        if ctx.needs_input_grad[1]:
            gz = _residual_gz(w, K, relu, ops) if gz is None else gz
            gK = _design_K(f, w, gz, b, ops, frozen, k)
        return gf, gK, None, None, None


class PDEGCN(nn.Module):
    """PDE-GCN-D (thesis eq. 4.4) with a selectable IMEX factor M (eqs. 4.16–4.23).

    ``alpha`` is α for 'shared'/'channel' and k² for 'diffusion'; ``learn_alpha`` makes it a
    parameter (one per layer, or per layer and channel for 'channel'); ``level_alpha`` the IMEX
    term per MGRIT level (see :class:`PDEGCNBlock`). ``h`` is the step size, ``dropout`` the
    probability used at every dropout site; ``input_dropout`` and ``open_dropout`` override it
    on the input features and after the opening map (the authors' code uses none there:
    ``open_dropout=0``).

    ``parallel=True`` runs the layers with :class:`~mgritlab.nn.LayerParallel` (``lp_options``
    are its keyword arguments: max_levels, cf, fwd_iters, bwd_iters, relax, exact, warm_start,
    partition, ...); ``parallel=False`` (default) runs them serially.
    """

    def __init__(
        self,
        ops: GraphOperators,
        in_features: int,
        num_classes: int,
        *,
        channels: int = 64,
        layers: int = 16,
        h: float = 2.0,
        dropout: float = 0.6,
        input_dropout: float | None = None,
        open_dropout: float | None = None,
        imex: str = "none",
        alpha: float = 0.0,
        learn_alpha: bool = False,
        level_alpha=None,
        cg_tol: float = 1e-6,
        cg_maxiter: int = 200,
        init_noise: float = 1e-3,
        layout: str = "auto",
        seed: int | None = None,
        parallel: bool = False,
        **lp_options,
    ):
        super().__init__()
        self.p = {"input": dropout if input_dropout is None else input_dropout,
                  "open": dropout if open_dropout is None else open_dropout,
                  "grad": dropout, "close": dropout}
        FrozenDropout(self.p, 0)  # validates the probabilities
        self.ops = ops
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        dtype = ops.dtype

        def glorot(rows, cols):
            a = math.sqrt(6.0 / (rows + cols))
            return (torch.rand(rows, cols, generator=gen, dtype=dtype) * 2 - 1) * a

        self.K_open = nn.Parameter(glorot(channels, in_features))
        self.K_close = nn.Parameter(glorot(num_classes, channels))
        self.block = PDEGCNBlock(ops, channels, layers, h, dropout=dropout, imex=imex,
                                 alpha=alpha, learn_alpha=learn_alpha, level_alpha=level_alpha,
                                 cg_tol=cg_tol, cg_maxiter=cg_maxiter, init_noise=init_noise,
                                 layout=layout, generator=gen, dtype=dtype)
        self.parallel = bool(parallel)
        if lp_options and not parallel:
            raise ValueError(f"layer-parallel options {sorted(lp_options)} given with "
                             f"parallel=False: pass parallel=True to use them")
        self.body = LayerParallel(self.block, **lp_options) if parallel \
            else SerialODENet(self.block)
        self.frozen: FrozenDropout | None = None

    # the layers' parameters, under the names the lessons use
    @property
    def K(self) -> torch.Tensor:
        return self.block.K

    @property
    def alpha(self) -> torch.Tensor:
        return self.block.alpha

    @property
    def num_layers(self) -> int:
        return self.block.depth

    @property
    def h(self) -> float:
        return self.block.h

    @property
    def imex(self) -> str:
        return self.block.imex

    # --- the network --------------------------------------------------------------------
    def open(self, x: torch.Tensor, frozen=None) -> torch.Tensor:
        """f_0 = dropout(relu(dropout(x) K_oᵀ)): (n, in) -> (n, c)."""
        frozen = self._frozen(frozen)
        if frozen is not None:
            x = frozen.apply(x, "input")
        f = torch.relu(x @ self.K_open.t())
        return f if frozen is None else frozen.apply(f, "open")

    def close(self, f: torch.Tensor, frozen=None) -> torch.Tensor:
        """log_softmax(dropout(f_L) K_cᵀ): (n, c) -> (n, classes) log-probabilities."""
        frozen = self._frozen(frozen)
        if frozen is not None:
            f = frozen.apply(f, "close")
        return F.log_softmax(f @ self.K_close.t(), dim=-1)

    def _frozen(self, frozen):
        if frozen is not None:
            return frozen
        return self.frozen if self.training else None

    def new_masks(self, seed: int | None = None) -> int:
        """Freeze fresh dropout masks for one training step (seed drawn from torch if None)."""
        self.frozen = (FrozenDropout(self.p, seed) if seed is not None
                       else FrozenDropout.draw(self.p))
        return self.frozen.seed

    def forward(self, x: torch.Tensor, mask_seed: int | None = None,
                keep_masks: bool = False) -> torch.Tensor:
        """Log-probabilities (n, classes). In training mode draws new frozen masks first,
        unless ``keep_masks`` (reuse the current step's masks)."""
        if self.training and not (keep_masks and self.frozen is not None):
            self.new_masks(mask_seed)
        frozen = self._frozen(None)
        return self.close(self.body(self.open(x, frozen), frozen), frozen)

    @torch.no_grad()
    def serial_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log-probabilities by the exact serial forward (evaluation mode, no dropout), also
        for a layer-parallel model (distributed over its ranks as a pipeline)."""
        was = self.training
        self.eval()
        try:
            f0 = self.open(x)
            fL = self.body.serial_forward(f0) if self.parallel else self.body(f0)
            return self.close(fL)
        finally:
            self.train(was)

    def layer_step(self, f: torch.Tensor, idx, h=None) -> torch.Tensor:
        """f_{l+1} = f_l − h M_l r_l(f_l) for a batch: f (B, n, c), idx (B,), h float or (B,)
        (default: the fine step), with the current training step's masks in training mode."""
        idx = torch.as_tensor(idx, dtype=torch.long, device=f.device).reshape(-1)
        if f.dim() != 3 or f.shape[0] != idx.numel():
            raise ValueError(f"layer_step needs f of shape (B, n, c) and idx (B,); got "
                             f"{tuple(f.shape)} and {tuple(idx.shape)}")
        if int(idx.min()) < 0 or int(idx.max()) >= self.num_layers:
            raise IndexError(f"layer index out of range 0..{self.num_layers - 1}: {idx.tolist()}")
        return self.block.step(f, idx, self.h if h is None else h, frozen=self._frozen(None))

    def residual(self, f: torch.Tensor, idx) -> torch.Tensor:
        """r_l(f) = Gᵀ σ(dropout(G f) K_lᵀ) K_l for a batch f (B, n, c) of layers idx (B,)."""
        idx = torch.as_tensor(idx, dtype=torch.long, device=f.device).reshape(-1)
        return self.block.residual(f, idx, self.K[idx], self._frozen(None))

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """f_0, …, f_L by the serial network (no masks are redrawn: evaluation mode, or the
        current step's masks)."""
        frozen = self._frozen(None)
        return list(SerialODENet(self.block).states(self.open(x, frozen), frozen).unbind(0))

    def parameter_groups(self, lr: float, weight_decay: float, lr_K: float,
                         weight_decay_K: float = 0.0) -> list[dict]:
        """Adam groups as in the authors' code: open/close maps with (lr, weight_decay);
        the layer weights K_l (and a learnable α) with (lr_K, weight_decay_K)."""
        layer = list(self.block.parameters())
        return [
            {"params": [self.K_open, self.K_close], "lr": lr, "weight_decay": weight_decay},
            {"params": layer, "lr": lr_K, "weight_decay": weight_decay_K},
        ]

    def propagator(self) -> StatePropagator:
        """The layers as an MGRIT propagator ``step(u, i, level)`` (layer of the fine index,
        the level's step and IMEX term), with the current step's masks in training mode."""
        return StatePropagator(self.block, self.block.layer_parameters(), self._frozen(None))

    def layer_parallel(self) -> LayerParallel:
        """The :class:`LayerParallel` body (for its ``stats``), or a clear error."""
        if not isinstance(self.body, LayerParallel):
            raise AttributeError("this PDEGCN runs serially (parallel=False); build it with "
                                 "parallel=True for MGRIT statistics")
        return self.body
