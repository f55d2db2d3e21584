"""PDE-GCN-D: the diffusion graph network as forward Euler (or IMEX) steps on a graph.

Thesis eq. 4.4 (Eliasof, Haber, Treister, NeurIPS 2021, eq. 9): with f ∈ R^{n×c} the node
features, G the weighted graph gradient (``operators.py``) and K_l ∈ R^{c×c},

    x  ← dropout(x)                       (input)
    f  ← dropout(relu(K_o x))             (opening 1×1 map; ``open_dropout=0``: none, as the
                                           authors' code and the CORA preset have it)
    f  ← f − h · M_l Gᵀ K_lᵀ σ(K_l dropout(G f)),   l = 0 … L−1,  σ = ReLU
    y  = log_softmax(K_c dropout(f))      (closing 1×1 map)

M_l is the IMEX factor. Splitting the right-hand side as −(r(f) − Af) − Af and taking the
stabilising term Af implicitly gives f ← f − h (I + hA)^{-1} r(f), so M = (I + hA)^{-1}:

    'none'       A = 0                          M = I            (explicit, α = 0)
    'shared'     A = α_l I                      M = 1 / (1 + hα_l)        (thesis eq. 4.17)
    'channel'    A = diag(α_l) over channels    M = diag(1 / (1 + hα_lc)) (eqs. 4.18–4.19)
    'diffusion'  A = k² GᵀG                     M = (I + hk² GᵀG)^{-1}    (eq. 4.23), by CG

Layers are batched: the K_l are one tensor (L, c, c) and :meth:`PDEGCN.layer_step` advances a
batch f (B, n, c) through the layers idx (B,) with one SpMM on the (n, B·c) matrix of all their
channels. :class:`PDEGCNPropagator` wraps it as an MGRIT propagator ``step(u, i, level)``.

Dropout masks are frozen per training step: :class:`DropoutMasks` draws one mask per
(site, layer) from a step seed, once, and reuses it until the next step. Within one
forward/backward pair — or the many re-evaluations of a layer inside MGRIT — each layer is
therefore one fixed function f ↦ Φ_l(f). Plain ``model(x)`` in training mode draws the step
seed from torch's global generator, so ``torch.manual_seed`` makes a run reproducible.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .operators import GraphOperators

IMEX_CHOICES = ("none", "shared", "channel", "diffusion")
_SITES = {"input": 1, "open": 2, "grad": 3, "close": 4}


class DropoutMasks:
    """Seedable inverted-dropout masks, one per (site, layer), fixed for one training step."""

    def __init__(self, p: float):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = float(p)
        self.seed: int | None = None
        self._cache: dict[tuple, torch.Tensor] = {}

    def new_step(self, seed: int) -> None:
        """Start a training step: masks are drawn afresh (lazily) from ``seed``."""
        self.seed = int(seed)
        self._cache.clear()

    def clear(self) -> None:
        self.seed = None
        self._cache.clear()

    def mask(self, site: str, layer: int, shape: tuple, dtype=torch.float32,
             device=None) -> torch.Tensor:
        """Scaled keep-mask (0 or 1/(1−p)) of ``shape`` for (site, layer); fixed until
        :meth:`new_step`."""
        if self.seed is None:
            raise RuntimeError("no dropout step seed: call masks.new_step(seed) before a "
                               "training-mode layer evaluation (model(x) does it for you)")
        key = (site, int(layer), tuple(shape), dtype)
        m = self._cache.get(key)
        if m is None:
            # one reproducible PCG64 stream per (step, site, layer); 16-bit uniforms are
            # ~20x faster to draw than torch.rand on CPU (p is quantised to 2^-16)
            rng = np.random.default_rng([self.seed, _SITES[site], int(layer)])
            u = np.frombuffer(rng.bytes(2 * math.prod(shape)), dtype=np.uint16)
            keep = torch.from_numpy(u >= round(self.p * 65536)).reshape(shape)
            m = keep.to(device=device, dtype=dtype).mul_(1.0 / (1.0 - self.p))
            self._cache[key] = m
        return m

    def apply(self, x: torch.Tensor, site: str, layer: int = 0) -> torch.Tensor:
        if self.p == 0.0:
            return x
        return x * self.mask(site, layer, tuple(x.shape), x.dtype, x.device)

    def apply_layers(self, g: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """g (m, B, c): multiply slice b by the 'grad' mask of layer idx[b]."""
        if self.p == 0.0:
            return g
        shape = (g.shape[0], g.shape[2])
        ms = [self.mask("grad", int(l), shape, g.dtype, g.device) for l in idx.tolist()]
        return g * (ms[0][:, None] if len(ms) == 1 else torch.stack(ms, 1))


def cg_solve(matvec, b: torch.Tensor, *, tol: float = 1e-6, maxiter: int = 200) -> torch.Tensor:
    """Conjugate gradients for SPD A, all columns of b (k, C) at once, column-wise step sizes.

    Stops when every column has ‖b − Ax‖ ≤ tol ‖b‖ or after ``maxiter`` iterations.
    """
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rs = (r * r).sum(0)
    stop = (tol * tol) * rs
    for _ in range(maxiter):
        if bool((rs <= stop).all()):
            break
        Ap = matvec(p)
        pAp = (p * Ap).sum(0)
        a = torch.where(pAp > 0, rs / pAp.clamp_min(torch.finfo(b.dtype).tiny), 0.0)
        x = x + a * p
        r = r - a * Ap
        rs_new = (r * r).sum(0)
        beta = torch.where(rs > 0, rs_new / rs.clamp_min(torch.finfo(b.dtype).tiny), 0.0)
        p = r + beta * p
        rs = rs_new
    return x


class _ShiftedLaplaceSolve(torch.autograd.Function):
    """y = (I + s GᵀG)^{-1} r column-wise (s: (C,)); backward by one more CG solve (A = Aᵀ)."""

    @staticmethod
    def forward(ctx, r, s, L, tol, maxiter):
        def A(v):
            return v + s * torch.sparse.mm(L, v)
        y = cg_solve(A, r, tol=tol, maxiter=maxiter)
        ctx.save_for_backward(y, s)
        ctx.L, ctx.tol, ctx.maxiter = L, tol, maxiter
        return y

    @staticmethod
    def backward(ctx, gy):
        y, s = ctx.saved_tensors
        L = ctx.L

        def A(v):
            return v + s * torch.sparse.mm(L, v)
        lam = cg_solve(A, gy, tol=ctx.tol, maxiter=ctx.maxiter)
        gs = -(lam * torch.sparse.mm(L, y)).sum(0) if ctx.needs_input_grad[1] else None
        return lam, gs, None, None, None


def diffusion_solve(ops: GraphOperators, r: torch.Tensor, s: torch.Tensor, *,
                    tol: float = 1e-6, maxiter: int = 200) -> torch.Tensor:
    """(I + s_j GᵀG)^{-1} applied to each column j of r (n, C), by batched CG (eq. 4.23)."""
    s = torch.as_tensor(s, dtype=r.dtype, device=r.device).expand(r.shape[1])
    return _ShiftedLaplaceSolve.apply(r, s, ops.GtG, tol, maxiter)


class PDEGCN(nn.Module):
    """PDE-GCN-D (thesis eq. 4.4) with a selectable IMEX factor M (eqs. 4.17–4.23).

    ``alpha`` is α for 'shared'/'channel' and k² for 'diffusion'; ``learn_alpha`` makes it a
    parameter (one per layer, or per layer and channel for 'channel'). ``h`` is the step size,
    ``dropout`` the probability used at every dropout site; ``input_dropout`` and
    ``open_dropout`` override it on the input features and after the opening map (the
    authors' code uses none there: ``open_dropout=0``).
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
        cg_tol: float = 1e-6,
        cg_maxiter: int = 200,
        init_noise: float = 1e-3,
        seed: int | None = None,
    ):
        super().__init__()
        if imex not in IMEX_CHOICES:
            raise ValueError(f"unknown imex={imex!r}: choose one of {', '.join(IMEX_CHOICES)}")
        if layers < 1 or channels < 1:
            raise ValueError(f"need layers >= 1 and channels >= 1, got {layers}, {channels}")
        self.ops = ops
        self.num_layers, self.channels, self.h = int(layers), int(channels), float(h)
        self.imex, self.cg_tol, self.cg_maxiter = imex, float(cg_tol), int(cg_maxiter)
        self.masks = DropoutMasks(dropout)
        self.input_masks = DropoutMasks(dropout if input_dropout is None else input_dropout)
        self.open_masks = (self.masks if open_dropout is None or open_dropout == dropout
                           else DropoutMasks(open_dropout))
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        dtype = ops.dtype

        def glorot(rows, cols):
            a = math.sqrt(6.0 / (rows + cols))
            return (torch.rand(rows, cols, generator=gen, dtype=dtype) * 2 - 1) * a

        self.K_open = nn.Parameter(glorot(channels, in_features))
        self.K_close = nn.Parameter(glorot(num_classes, channels))
        eye = torch.eye(channels, dtype=dtype).expand(layers, channels, channels)
        noise = torch.randn(layers, channels, channels, generator=gen, dtype=dtype)
        self.K = nn.Parameter(eye + init_noise * noise)
        shape = {"none": (layers,), "shared": (layers,), "diffusion": (layers,),
                 "channel": (layers, channels)}[imex]
        a = torch.full(shape, float(alpha), dtype=dtype)
        if learn_alpha and imex != "none":
            self.alpha = nn.Parameter(a)
        else:
            self.register_buffer("alpha", a)

    # --- the layer function -------------------------------------------------------------
    def residual(self, f: torch.Tensor, idx: torch.Tensor,
                 K: torch.Tensor | None = None) -> torch.Tensor:
        """r = Gᵀ K_lᵀ σ(K_l dropout(G f)) for a batch f (B, n, c) of layers idx (B,);
        ``K`` (B, c, c) overrides ``self.K[idx]``."""
        B, n, c = f.shape
        K = self.K[idx] if K is None else K
        g = self.ops.grad(f.transpose(0, 1).reshape(n, B * c)).view(-1, B, c)
        if self.training:
            g = self.masks.apply_layers(g, idx)
        z = torch.relu(torch.bmm(g.transpose(0, 1), K.transpose(1, 2)))  # K_l g_e, (B, m, c)
        # Gᵀ (K_lᵀ z) = (Gᵀ z) K_l acting on channels: multiply on the n nodes, not the m edges
        r = self.ops.div(z.transpose(0, 1).reshape(-1, B * c)).view(n, B, c)
        return torch.bmm(r.transpose(0, 1), K)

    def imex_factor(self, r: torch.Tensor, idx: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """M r with M = (I + hA)^{-1} of the chosen IMEX variant; r (B, n, c), h (B,)."""
        if self.imex == "none":
            return r
        a = self.alpha[idx]
        if self.imex == "shared":
            return r / (1.0 + h * a)[:, None, None]
        if self.imex == "channel":
            return r / (1.0 + h[:, None] * a)[:, None, :]
        B, n, c = r.shape
        s = (h * a)[:, None].expand(B, c).reshape(B * c)
        y = diffusion_solve(self.ops, r.transpose(0, 1).reshape(n, B * c), s,
                            tol=self.cg_tol, maxiter=self.cg_maxiter)
        return y.view(n, B, c).transpose(0, 1)

    def layer_step(self, f: torch.Tensor, idx, h=None, K: torch.Tensor | None = None
                   ) -> torch.Tensor:
        """f_{l+1} = f_l − h M_l r_l(f_l) for a batch: f (B, n, c), idx (B,), h float or (B,).

        ``K`` (B, c, c) may pass the layers' weights already selected (see :meth:`forward`)."""
        idx = torch.as_tensor(idx, dtype=torch.long, device=f.device).reshape(-1)
        if f.dim() != 3 or f.shape[0] != idx.numel():
            raise ValueError(f"layer_step needs f of shape (B, n, c) and idx (B,); got "
                             f"{tuple(f.shape)} and {tuple(idx.shape)}")
        if int(idx.min()) < 0 or int(idx.max()) >= self.num_layers:
            raise IndexError(f"layer index out of range 0..{self.num_layers - 1}: {idx.tolist()}")
        h = self.h if h is None else h
        h = torch.as_tensor(h, dtype=f.dtype, device=f.device).expand(idx.numel())
        r = self.imex_factor(self.residual(f, idx, K), idx, h)
        return f - h[:, None, None] * r

    # --- the network --------------------------------------------------------------------
    def open(self, x: torch.Tensor) -> torch.Tensor:
        """f_0 = dropout(relu(K_o dropout(x))): (n, in) -> (n, c)."""
        if self.training:
            x = self.input_masks.apply(x, "input")
        f = torch.relu(x @ self.K_open.t())
        return self.open_masks.apply(f, "open") if self.training else f

    def close(self, f: torch.Tensor) -> torch.Tensor:
        """log_softmax(K_c dropout(f_L)): (n, c) -> (n, classes) log-probabilities."""
        if self.training:
            f = self.masks.apply(f, "close")
        return F.log_softmax(f @ self.K_close.t(), dim=-1)

    def new_masks(self, seed: int | None = None) -> int:
        """Freeze fresh dropout masks for one training step (seed drawn from torch if None)."""
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)))
        self.masks.new_step(seed)
        self.input_masks.new_step(seed + 1)
        if self.open_masks is not self.masks:
            self.open_masks.new_step(seed + 2)
        return seed

    def forward(self, x: torch.Tensor, mask_seed: int | None = None,
                keep_masks: bool = False) -> torch.Tensor:
        """Log-probabilities (n, classes). In training mode draws new frozen masks first,
        unless ``keep_masks`` (reuse the current step's masks)."""
        if self.training and not keep_masks:
            self.new_masks(mask_seed)
        return self.close(self.features(x)[-1])

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """f_0, …, f_L (no dropout masks are redrawn; evaluation or current step's masks)."""
        fs = [self.open(x)]
        # split K once: indexing K[l] per layer would make a full (L, c, c) gradient per layer
        Ks = self.K.unbind(0)
        for l in range(self.num_layers):
            fs.append(self.layer_step(fs[-1][None], torch.tensor([l]), K=Ks[l][None])[0])
        return fs

    def parameter_groups(self, lr: float, weight_decay: float, lr_K: float,
                         weight_decay_K: float = 0.0) -> list[dict]:
        """Adam groups as in the authors' code: open/close maps with (lr, weight_decay);
        the layer weights K_l (and a learnable α) with (lr_K, weight_decay_K)."""
        layer = [self.K] + ([self.alpha] if isinstance(self.alpha, nn.Parameter) else [])
        return [
            {"params": [self.K_open, self.K_close], "lr": lr, "weight_decay": weight_decay},
            {"params": layer, "lr": lr_K, "weight_decay": weight_decay_K},
        ]

    def propagator(self) -> "PDEGCNPropagator":
        return PDEGCNPropagator(self)


class PDEGCNPropagator:
    """The PDE-GCN-D layers as an MGRIT propagator: ``step(u, i, level)``.

    u (B, n, c) are states at the level's points i (B,); the layer weights are those of the
    finest-grid layer ``level.fine_index(i)`` and the step is ``level.dt`` (coarse levels
    re-discretise with cf·h). Call ``model.new_masks(seed)`` once per training step so that
    every evaluation of a layer uses the same dropout mask.
    """

    def __init__(self, model: PDEGCN):
        self.model = model

    def step(self, u: torch.Tensor, i: torch.Tensor, level) -> torch.Tensor:
        idx = level.fine_index(torch.as_tensor(i, dtype=torch.long))
        h = level.dt if level.dt is not None else level.h(i)
        return self.model.layer_step(u, idx, h)
