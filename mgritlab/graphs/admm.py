"""pdADMM-G and pdADMM-G-Q: layer-parallel training of a GA-MLP without back-propagation.

Wang et al. 2022 (slides "pdADMM-G: Problem Relaxation" and "The Augmented Lagrangian"; paper
arXiv:2105.09837) relax the layer coupling of the GA-MLP (:mod:`mgritlab.graphs.gamlp`): each
layer's input p_{l+1} becomes a variable of its own, tied to the previous layer's output q_l
only by a constraint,

    min  F = R(z_L; y) + ν/2 ( Σ_{l=1}^{L} ‖z_l − p_l W_l − b_l‖² + Σ_{l=1}^{L−1} ‖q_l − f(z_l)‖² )
    s.t. p_{l+1} = q_l,

with the augmented Lagrangian

    L_ρ = F + Σ_{l=1}^{L−1} ( ⟨u_l, p_{l+1} − q_l⟩ + ρ/2 ‖p_{l+1} − q_l‖² ).

Every block of variables is then updated for **all layers at once** — p, W, b, z, q, u — each
layer using only its own variables and its neighbours' p_{l+1}, q_{l−1}, u_{l−1} from the
previous step (slides, "pdADMM-G: Pseudocode"). The subproblems, as the authors' code solves
them (``pdADMM_G_serial/common.py``; rows are nodes here):

- p_l (l ≥ 2): ν/2‖z_l − p W_l − b_l‖² + ⟨u_{l−1}, p − q_{l−1}⟩ + ρ/2‖p − q_{l−1}‖², one
  quadratic-approximation step p − ∇/τ, τ doubled (×η) until the approximation majorises
  (backtracking; after ``max_backtracks`` failures p stays);
- W_l: ν/2‖z_l − p_l W − b_l‖² (+ λ/2‖W‖² with ``weight_decay`` λ), the same kind of step;
- b_l: closed form, the mean over nodes of z_l − p_l W_l;
- z_l (l < L): ν/2‖z − a‖² + ν/2‖q_l − f(z)‖² + ν/2‖z − z_l^k‖² (a = p_l W_l + b_l; the
  proximal term is the authors'), element by element in closed form: the better of the
  minimisers on z ≤ 0 and z ≥ 0;
- z_L: R(z; y) + ν/2‖z − a‖² by FISTA (a few inner iterations; the best iterate is kept, so the
  Lagrangian never increases here);
- q_l: closed form (ν f(z_l) + u_l + ρ p_{l+1}) / (ν + ρ);
- u_l ← u_l + ρ (p_{l+1} − q_l).

Here a step's τ starts from the previous iteration's τ / η (the authors restart from a fixed
20, which only suits their scale ν = ρ = 1e-5).

**Convergence** (slides, "Theorem (Convergence of the pdADMM-G algorithm)"): for f Lipschitz with
constant S (ReLU: S = 1) and ρ > max(4νS², (√17 + 1)ν/2), every limit point is a stationary
point of L_ρ; :func:`check_rho` warns when ρ is below that bound. Adaptive ρ (the authors'
rule): when the training loss has not fallen by ``adapt_tol`` for two iterations, ρ ← 10ρ
(at most ``rho_max``) — it only grows, so the bound stays satisfied.

**pdADMM-G-Q** (slides, "Quantized GA-MLP Training Problem"): p_l ∈ Δ = {δ_1, …, δ_m}. Here Δ is
a uniform :class:`Grid`; the p step projects onto Δ (nearest point) inside the backtracking,
and q_l (= p_{l+1} at convergence) is projected too (exact: its subproblem is an isotropic
quadratic). Layers then send each other grid *codes* (one byte for m ≤ 256) instead of
floats.

**Parallel layout.** Layers are split in contiguous blocks over the ranks of a
:class:`mgritlab.mgrit.partition.Partition` (the serial one or MPI, one code path as for MGRIT).
Per iteration a rank sends its first p to the left neighbour and its last q to the right one —
nothing else (u_{l−1} is kept by both sides: it is computed from p_l and q_{l−1}, which both
hold). :class:`Traffic` counts the bytes of every interface message (the wire format: floats, or
codes under quantisation) and separately those that crossed ranks. Within a rank, the layers of
equal shape are one group and each update is one batched call over the group (``batched``); the
per-layer loop is the same code with groups of one.
"""
from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass, field

import torch

from ..mgrit.partition import Partition, SerialPartition


# ---- the quantisation set Δ --------------------------------------------------------------------
@dataclass(frozen=True)
class Grid:
    """Δ = {lo, lo + δ, …, hi}: ``levels`` equally spaced values (pdADMM-G-Q's quantisation set)."""

    lo: float = -1.0
    hi: float = 2.0
    levels: int = 256

    def __post_init__(self):
        if not (math.isfinite(self.lo) and math.isfinite(self.hi) and self.hi > self.lo):
            raise ValueError(f"Grid({self.lo}, {self.hi}): give finite lo < hi")
        if int(self.levels) != self.levels or not 2 <= self.levels <= 32767:
            raise ValueError(f"Grid levels={self.levels!r}: give a whole number in 2..32767")

    @property
    def step(self) -> float:
        return (self.hi - self.lo) / (self.levels - 1)

    @property
    def code_dtype(self) -> torch.dtype:
        """The smallest integer type that holds a code: uint8 up to 256 levels, else int16."""
        return torch.uint8 if self.levels <= 256 else torch.int16

    def values(self, dtype=torch.float64) -> torch.Tensor:
        return torch.linspace(self.lo, self.hi, self.levels, dtype=torch.float64).to(dtype)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The index of the nearest grid value of every entry (ties: the upper one)."""
        k = torch.floor((x.double() - self.lo) / self.step + 0.5)
        return k.clamp_(0, self.levels - 1).to(self.code_dtype)

    def decode(self, codes: torch.Tensor, dtype) -> torch.Tensor:
        return self.values(dtype)[codes.long()]

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """The nearest point of Δ, entry by entry."""
        return self.decode(self.encode(x), x.dtype)


# ---- configuration -----------------------------------------------------------------------------
@dataclass
class ADMMConfig:
    """pdADMM-G's hyperparameters (``grid`` set: pdADMM-G-Q)."""

    nu: float = 1e-3
    rho: float = 5e-3
    adapt_rho: bool = True
    rho_factor: float = 10.0
    rho_max: float = 1.0
    adapt_tol: float = 1e-3
    weight_decay: float = 0.0
    tau0: float = 1.0
    eta: float = 2.0
    max_backtracks: int = 10
    zl_iters: int = 20
    zl_tol: float = 1e-6
    grid: Grid | None = None
    lipschitz: float = 1.0  # S of the activation (ReLU: 1)

    def __post_init__(self):
        for name in ("nu", "rho", "rho_max", "tau0"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name}={v!r}: give a positive finite number")
        if self.eta <= 1:
            raise ValueError(f"eta={self.eta!r}: the backtracking factor must exceed 1")
        if self.rho_factor < 1:
            raise ValueError(f"rho_factor={self.rho_factor!r}: adaptive ρ only grows (>= 1)")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay={self.weight_decay!r}: give a number >= 0")

    @property
    def quantized(self) -> bool:
        return self.grid is not None


def rho_bound(nu: float, lipschitz: float = 1.0) -> float:
    """max(4νS², (√17 + 1)ν/2): the theorem's lower bound on ρ (slides, "Convergence")."""
    return max(4 * nu * lipschitz ** 2, (math.sqrt(17) + 1) * nu / 2)


def check_rho(cfg: ADMMConfig) -> bool:
    """True when ρ > the bound; otherwise a RuntimeWarning that says what to change."""
    bound = rho_bound(cfg.nu, cfg.lipschitz)
    if cfg.rho > bound:
        return True
    warnings.warn(
        f"rho={cfg.rho:g} is not above max(4·nu·S², (√17+1)·nu/2) = {bound:g} for nu={cfg.nu:g}, "
        f"S={cfg.lipschitz:g}: the convergence theorem does not apply and the augmented "
        f"Lagrangian may grow; raise rho above {bound:g} or lower nu below "
        f"{cfg.rho / (bound / cfg.nu):g}", RuntimeWarning, stacklevel=2)
    return False


# ---- the subproblems, batched over a group of layers (leading dimension B) -----------------------
def _bsum(t: torch.Tensor) -> torch.Tensor:
    """Σ over all but the leading (layer) dimension."""
    return t.reshape(t.shape[0], -1).sum(1)


def _bview(s: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return s.reshape(-1, *([1] * (like.dim() - 1)))


def linear_residual(p, W, b, z):
    """z − p W − b for a group: p (B, n, a), W (B, a, c), b (B, c), z (B, n, c)."""
    return z - torch.baddbmm(b.unsqueeze(1), p, W)


def p_objective(p, W, b, z, q_prev, u_prev, nu, rho):
    """ν/2‖z − pW − b‖² + ⟨u, p − q⟩ + ρ/2‖p − q‖², per layer."""
    r, d = linear_residual(p, W, b, z), p - q_prev
    return nu / 2 * _bsum(r * r) + _bsum((u_prev + rho / 2 * d) * d)


def p_gradient(p, W, b, z, q_prev, u_prev, nu, rho):
    r = linear_residual(p, W, b, z)
    return -nu * torch.bmm(r, W.transpose(1, 2)) + u_prev + rho * (p - q_prev)


def W_objective(p, W, b, z, nu, weight_decay):
    r = linear_residual(p, W, b, z)
    return nu / 2 * _bsum(r * r) + weight_decay / 2 * _bsum(W * W)


def W_gradient(p, W, b, z, nu, weight_decay):
    return -nu * torch.bmm(p.transpose(1, 2), linear_residual(p, W, b, z)) + weight_decay * W


def p_curvature(d, W, nu, rho):
    """½ dᵀ∇²φ_p d = ν/2‖d W‖² + ρ/2‖d‖² (φ_p is quadratic)."""
    dW = torch.bmm(d, W)
    return nu / 2 * _bsum(dW * dW) + rho / 2 * _bsum(d * d)


def W_curvature(d, p, nu, weight_decay):
    """½ dᵀ∇²φ_W d = ν/2‖p d‖² + λ/2‖d‖²."""
    pd = torch.bmm(p, d)
    return nu / 2 * _bsum(pd * pd) + weight_decay / 2 * _bsum(d * d)


def quadratic_step(x, grad, curvature, tau, eta, max_backtracks, project=None):
    """One majorised step per layer: x⁺ = proj(x − ∇/τ) with τ ← ητ until the quadratic
    approximation majorises,

        φ(x⁺) ≤ φ(x) + ⟨∇φ(x), x⁺ − x⟩ + τ/2 ‖x⁺ − x‖²;

    a layer whose τ fails ``max_backtracks`` times keeps x. φ is quadratic here, so
    φ(x⁺) − φ(x) − ⟨∇φ, d⟩ = ½ dᵀ∇²φ d exactly (d = x⁺ − x): the test is evaluated in that
    form, ``curvature(d)`` ≤ τ/2‖d‖², which is the same inequality without the cancellation
    of two nearly equal objective values (in float32 that cancellation fails the test for
    small steps and stalls the layer). Each layer backtracks on its own (masked), so a
    layer's result does not depend on the others in the batch. Returns (x⁺, τ).
    """
    tau = tau.clone()
    proj = (lambda t: t) if project is None else project
    for _ in range(max_backtracks + 1):
        cand = proj(x - grad / _bview(tau, x).to(x.dtype))
        d = cand - x
        ok = curvature(d) <= tau / 2 * _bsum(d * d)
        if bool(ok.all()):
            break
        tau = torch.where(ok, tau, tau * eta)
    else:
        cand = torch.where(_bview(ok, x), cand, x)
    return cand, tau


def update_b(p, W, z):
    """argmin_b ‖z − pW − b‖²: the mean over nodes of z − pW."""
    return (z - torch.bmm(p, W)).mean(1)


def z_objective(z, a, q, z_old, nu):
    """ν/2 (z − a)² + ν/2 (q − f(z))² + ν/2 (z − z_old)², entry by entry (f = ReLU)."""
    return nu / 2 * ((z - a) ** 2 + (q - torch.relu(z)) ** 2 + (z - z_old) ** 2)


def update_z(a, q, z_old, nu):
    """The exact minimiser of :func:`z_objective`: on z ≤ 0 it is min((a + z_old)/2, 0), on
    z ≥ 0 max((a + z_old + q)/3, 0); keep the better."""
    neg = torch.clamp((a + z_old) / 2, max=0.0)
    pos = torch.clamp((a + z_old + q) / 3, min=0.0)
    better = z_objective(pos, a, q, z_old, nu) < z_objective(neg, a, q, z_old, nu)
    return torch.where(better, pos, neg)


def cross_entropy_sum(z, y):
    """R(z; y) = Σ_nodes −log softmax(z)_y, per layer of the group: z (B, n, C), y (n,)."""
    logp = torch.log_softmax(z, -1)
    return -logp.gather(-1, y.expand(z.shape[0], -1).unsqueeze(-1)).squeeze(-1).sum(-1)


def zl_objective(z, a, y, nu):
    return cross_entropy_sum(z, y) + nu / 2 * _bsum((z - a) ** 2)


def update_zl(a, y, z_old, nu, iters, tol):
    """argmin R(z; y) + ν/2‖z − a‖² by FISTA from z_old, step 1/(1/2 + ν) (1/2 bounds the
    softmax cross-entropy's Hessian per node), at most ``iters`` steps, stopping when the
    largest gradient entry is ≤ ``tol``; returns the best iterate (never worse than z_old).
    """
    onehot = torch.nn.functional.one_hot(y, a.shape[-1]).to(a.dtype)
    step = 1.0 / (0.5 + nu)
    best, fbest = z_old, zl_objective(z_old, a, y, nu)
    x, v, t = z_old, z_old, 1.0
    for _ in range(iters):
        grad = torch.softmax(v, -1) - onehot + nu * (v - a)
        if float(grad.abs().max()) <= tol:
            break
        x_new = v - step * grad
        t_new = (1 + math.sqrt(1 + 4 * t * t)) / 2
        v = x_new + (t - 1) / t_new * (x_new - x)
        x, t = x_new, t_new
        f = zl_objective(x, a, y, nu)
        improved = f < fbest  # FISTA is not monotone: keep the best iterate
        best = torch.where(_bview(improved, x), x, best)
        fbest = torch.where(improved, f, fbest)
    return best


def update_q(fz, u, p_next, nu, rho):
    """argmin_q ν/2‖q − f(z)‖² − ⟨u, q⟩ + ρ/2‖p_{l+1} − q‖² = (ν f(z) + u + ρ p_{l+1})/(ν + ρ)."""
    return (nu * fz + u + rho * p_next) / (nu + rho)


# ---- the state of one rank ---------------------------------------------------------------------
@dataclass
class Group:
    """Layers ``first .. first+B−1`` of equal shapes, stacked along dim 0."""

    first: int
    W: torch.Tensor
    b: torch.Tensor
    z: torch.Tensor
    p: torch.Tensor | None          # None for layer 1 (its input is X)
    q: torch.Tensor | None          # None for layer L
    u: torch.Tensor | None          # u_l (multiplier of p_{l+1} = q_l); None for layer L
    tau_p: torch.Tensor
    tau_W: torch.Tensor

    @property
    def size(self) -> int:
        return self.W.shape[0]

    @property
    def layers(self) -> range:
        return range(self.first, self.first + self.size)


@dataclass
class Traffic:
    """Bytes of the messages between layers, counted from the tensors sent."""

    interface: int = 0     # every p_{l+1} and q_l that crosses a layer boundary
    ranks: int = 0         # the part of it that went to another MPI rank
    messages: int = 0

    def as_dict(self) -> dict:
        return {"interface_bytes": self.interface, "rank_bytes": self.ranks,
                "messages": self.messages}


@dataclass
class ADMMState:
    """One rank's layers (global 0-based indices [lo, hi) of L) and the ghosts it keeps."""

    L: int
    lo: int
    hi: int
    groups: list[Group]
    x: torch.Tensor | None            # p_1 = X (training rows), on the rank owning layer 1
    y: torch.Tensor | None            # training labels, on the rank owning layer L
    q_ghost: torch.Tensor | None      # q_{lo−1} of the left neighbour
    u_ghost: torch.Tensor | None      # u_{lo−1}, kept here too
    rho: float
    iteration: int = 0
    loss_history: list[float] = field(default_factory=list)

    def weights(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """This rank's (W_l, b_l) in layer order."""
        return [(g.W[i], g.b[i]) for g in self.groups for i in range(g.size)]


def layer_block(L: int, rank: int, size: int) -> tuple[int, int]:
    """[lo, hi): rank ``rank`` of ``size`` owns layers L·r//P … L·(r+1)//P − 1."""
    if size > L:
        raise ValueError(f"{size} processes but only {L} layers: at most {L} processes fit "
                         f"(one layer each); use fewer processes or more layers")
    return L * rank // size, L * (rank + 1) // size


def _groups_of(lo: int, hi: int, L: int, batched: bool) -> list[range]:
    """Runs of layers of equal shape: layer 1, the hidden ones, layer L (or single layers)."""
    if not batched:
        return [range(l, l + 1) for l in range(lo, hi)]
    cuts = sorted({lo, hi} | {c for c in (1, L - 1) if lo < c < hi})
    return [range(a, b) for a, b in itertools.pairwise(cuts)]


def init_state(x: torch.Tensor, y: torch.Tensor, weights, cfg: ADMMConfig, *,
               partition: Partition | None = None, batched: bool = True) -> ADMMState:
    """The pdADMM-G state for ``weights`` [(W_1, b_1), …, (W_L, b_L)] (the GA-MLP's) on the
    training rows ``x`` (n × n_0), labels ``y``: z, p, q from the forward pass, u = 0.

    Every rank passes the same x, y and weights (the seeded initialisation) and keeps its own
    layers. Quantised: p and q start on the grid.
    """
    part = SerialPartition() if partition is None else partition
    L = len(weights)
    if L < 2:
        raise ValueError("pdADMM-G needs at least 2 layers (one hidden)")
    check_rho(cfg)
    lo, hi = layer_block(L, part.rank, part.size)
    with torch.no_grad():
        zs, h, inputs = [], x, []
        for W, b in weights:
            inputs.append(h)
            zs.append(h @ W + b)
            h = torch.relu(zs[-1])
            if cfg.quantized:
                h = cfg.grid.project(h)
    groups = []
    for r in _groups_of(lo, hi, L, batched):
        def stack(ts):
            return torch.stack([t.clone() for t in ts])
        ls = list(r)
        has_p, has_q = ls[0] > 0, ls[-1] < L - 1
        q = None
        if has_q:
            q = stack([torch.relu(zs[l]) for l in ls])
            q = cfg.grid.project(q) if cfg.quantized else q
        groups.append(Group(
            first=ls[0], W=stack([weights[l][0] for l in ls]), b=stack([weights[l][1] for l in ls]),
            z=stack([zs[l] for l in ls]), p=stack([inputs[l] for l in ls]) if has_p else None,
            q=q, u=torch.zeros_like(q) if has_q else None,
            tau_p=torch.full((len(ls),), cfg.tau0, dtype=torch.float64),
            tau_W=torch.full((len(ls),), cfg.tau0, dtype=torch.float64)))
    st = ADMMState(L=L, lo=lo, hi=hi, groups=groups, x=x if lo == 0 else None,
                   y=y if hi == L else None, q_ghost=None, u_ghost=None, rho=cfg.rho)
    hidden_like = torch.zeros(x.shape[0], weights[0][0].shape[1], dtype=x.dtype)
    st.q_ghost = _exchange_q(st, part, hidden_like, None, cfg)
    st.u_ghost = None if st.q_ghost is None else torch.zeros_like(st.q_ghost)
    return st


# ---- the exchanges -----------------------------------------------------------------------------
def _wire(t: torch.Tensor, cfg: ADMMConfig) -> torch.Tensor:
    return cfg.grid.encode(t) if cfg.quantized else t


def _unwire(t: torch.Tensor, like_dtype, cfg: ADMMConfig) -> torch.Tensor:
    return cfg.grid.decode(t, like_dtype) if cfg.quantized else t


def _exchange_q(st: ADMMState, part: Partition, like: torch.Tensor, traffic: Traffic | None,
                cfg: ADMMConfig):
    """Send my last q right, receive q_{lo−1} from the left (the wire format of ``cfg``)."""
    qs = [g.q for g in st.groups if g.q is not None]
    last = qs[-1][-1] if qs else torch.zeros_like(like)
    msg = _wire(last, cfg)
    got = part.ghost(msg.unsqueeze(0))
    if traffic is not None and qs and part.right is not None:
        traffic.ranks += msg.numel() * msg.element_size()
    return None if got is None else _unwire(got, like.dtype, cfg)


def _exchange_p(st: ADMMState, part: Partition, like: torch.Tensor, traffic: Traffic | None,
                cfg: ADMMConfig):
    """Send my first p left, receive p_{hi} (the right neighbour's first p)."""
    ps = [g.p for g in st.groups if g.p is not None]
    first = ps[0][0] if ps else torch.zeros_like(like)
    msg = _wire(first, cfg)
    got = part.recv_from_right_first(msg.unsqueeze(0))
    if traffic is not None and ps and part.rank > 0:
        traffic.ranks += msg.numel() * msg.element_size()
    return None if got is None else _unwire(got, like.dtype, cfg)


def _count_interfaces(st: ADMMState, traffic: Traffic, cfg: ADMMConfig) -> None:
    """Every p_{l+1} (l ≥ 1) goes to layer l and every q_l to layer l+1: count them all."""
    for g in st.groups:
        for t in (g.p, g.q):
            if t is not None:
                msg = _wire(t[0], cfg)
                traffic.interface += g.size * msg.numel() * msg.element_size()
                traffic.messages += g.size


# ---- one iteration -----------------------------------------------------------------------------
def iterate(st: ADMMState, cfg: ADMMConfig, part: Partition | None = None,
            traffic: Traffic | None = None) -> dict:
    """One pdADMM-G(-Q) iteration on this rank's layers; returns its residual and objectives.

    The residual is sqrt(Σ_l ‖p_{l+1} − q_l‖²) over all layers, ``F`` the relaxed objective and
    ``lagrangian`` L_ρ (exact sums over ranks: the same floats on any rank count).
    """
    part = SerialPartition() if part is None else part
    nu, rho = cfg.nu, st.rho
    proj = cfg.grid.project if cfg.quantized else None
    # every rank owns a p (layers ≥ 2) or a q (layers < L): the shape of one message
    like = next(t for g in st.groups for t in (g.p, g.q) if t is not None)[0]
    with torch.no_grad():
        # q_{l-1}, u_{l-1} for every layer l that has an input variable (the previous iterate)
        q_prev = [st.q_ghost] if st.q_ghost is not None else []
        u_prev = [st.u_ghost] if st.u_ghost is not None else []
        for g in st.groups:
            if g.q is not None:
                q_prev += list(g.q)
                u_prev += list(g.u)
        # 1. p (all layers l >= 2 at once)
        k = 0
        for g in st.groups:
            if g.p is None:
                continue
            qp, up = torch.stack(q_prev[k:k + g.size]), torch.stack(u_prev[k:k + g.size])
            k += g.size
            g.p, g.tau_p = quadratic_step(
                g.p, p_gradient(g.p, g.W, g.b, g.z, qp, up, nu, rho),
                lambda d, g=g: p_curvature(d, g.W, nu, rho),
                g.tau_p / cfg.eta, cfg.eta, cfg.max_backtracks, proj)
        p_right = _exchange_p(st, part, like, traffic, cfg)
        # 2.–4. W, b, z
        for g in st.groups:
            p = g.p if g.p is not None else st.x.unsqueeze(0)
            g.W, g.tau_W = quadratic_step(
                g.W, W_gradient(p, g.W, g.b, g.z, nu, cfg.weight_decay),
                lambda d, p=p: W_curvature(d, p, nu, cfg.weight_decay),
                g.tau_W / cfg.eta, cfg.eta, cfg.max_backtracks)
            g.b = update_b(p, g.W, g.z)
            a = torch.baddbmm(g.b.unsqueeze(1), p, g.W)
            if g.q is not None:
                g.z = update_z(a, g.q, g.z, nu)
            else:
                g.z = update_zl(a, st.y, g.z, nu, cfg.zl_iters, cfg.zl_tol)
        # 5.–6. q and u: layer l needs p_{l+1} (mine, or the right neighbour's first)
        owned_p = [t for g in st.groups if g.p is not None for t in g.p]
        # owned p are layers max(lo,1)..hi-1; p_{l+1} for my q-layers l = lo..min(hi,L-1)-1
        start = 0 if st.lo == 0 else 1
        p_next = owned_p[start:] + ([p_right] if p_right is not None else [])
        sq = []
        k = 0
        for g in st.groups:
            if g.q is None:
                continue
            pn = torch.stack(p_next[k:k + g.size])
            k += g.size
            q = update_q(torch.relu(g.z), g.u, pn, nu, rho)
            g.q = cfg.grid.project(q) if cfg.quantized else q
            r = pn - g.q
            g.u = g.u + rho * r
            sq += _bsum(r * r).tolist()
        if traffic is not None:
            _count_interfaces(st, traffic, cfg)
        q_ghost = _exchange_q(st, part, like, traffic, cfg)
        if q_ghost is not None:
            p_lo = owned_p[0]
            st.u_ghost = st.u_ghost + rho * (p_lo - q_ghost)
            st.q_ghost = q_ghost
        st.iteration += 1
        terms = objective_terms(st, cfg)
    return {"iteration": st.iteration, "rho": rho,
            "residual": part.norm(torch.tensor(sq, dtype=torch.float64)),
            "F": part.fsum(terms["F"]), "lagrangian": part.fsum(terms["F"] + terms["dual"])}


def objective_terms(st: ADMMState, cfg: ADMMConfig) -> dict[str, list[float]]:
    """This rank's terms of F and of L_ρ − F (lists, to be summed exactly across ranks)."""
    nu, rho = cfg.nu, st.rho
    F, dual = [], []
    owned_p = [t for g in st.groups if g.p is not None for t in g.p]
    q_ghost = [st.q_ghost] if st.q_ghost is not None else []
    q_all = q_ghost + [t for g in st.groups if g.q is not None for t in g.q]
    u_all = ([st.u_ghost] if st.u_ghost is not None else []) + \
        [t for g in st.groups if g.u is not None for t in g.u]
    for g in st.groups:
        p = g.p if g.p is not None else st.x.unsqueeze(0)
        r = linear_residual(p, g.W, g.b, g.z)
        F += (nu / 2 * _bsum(r * r)).tolist()
        if cfg.weight_decay:
            F += (cfg.weight_decay / 2 * _bsum(g.W * g.W)).tolist()
        if g.q is not None:
            d = g.q - torch.relu(g.z)
            F += (nu / 2 * _bsum(d * d)).tolist()
        else:
            F += cross_entropy_sum(g.z, st.y).tolist()
    # ⟨u_{l-1}, p_l − q_{l-1}⟩ + ρ/2‖p_l − q_{l-1}‖² is counted by the rank that owns p_l;
    # q_all/u_all hold layers lo−1 (the ghost) or lo onwards
    first_p = max(st.lo, 1)
    shift = 1 if st.lo > 0 else 0
    for i, p in enumerate(owned_p):
        j = first_p + i - 1 - st.lo + shift
        d = p - q_all[j]
        dual.append(float((u_all[j] * d).sum() + rho / 2 * (d * d).sum()))
    return {"F": F, "dual": dual}


# ---- the rank-parallel forward pass (evaluation) -----------------------------------------------
def forward_scores(st: ADMMState, x: torch.Tensor, part: Partition | None = None
                   ) -> torch.Tensor | None:
    """The GA-MLP's class scores for rows ``x`` with the current W, b: pipelined through the
    ranks (each applies its layers and passes the activations on); the last rank returns them,
    the others None."""
    part = SerialPartition() if part is None else part
    if st.lo == 0:
        h = x
    else:
        h = part.recv_left(torch.empty(x.shape[0], st.groups[0].W.shape[1], dtype=x.dtype))
    with torch.no_grad():
        for layer, (W, b) in enumerate(st.weights(), start=st.lo):
            h = torch.addmm(b, h, W)
            if layer < st.L - 1:
                h = torch.relu(h)
    if st.hi < st.L:
        part.send_right(h)
        return None
    return h
