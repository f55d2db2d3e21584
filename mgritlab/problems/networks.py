"""Small fully connected sigmoid networks and their data: the model problems of Schroder
(2022), "Parallelizing over artificial neural network training runs with multigrid" (§2.1
and §3.5; full reference in REFERENCES.md).

A network with node counts n^[0], ..., n^[L] has weight matrices W_j of shape
(n^[j], n^[j+1]) and no biases; its s = Σ_j n^[j] n^[j+1] weights are stored flat, W_0 first,
each matrix row by row (numpy's ``ravel``). The forward pass is a_{j+1} = σ(a_j W_j) with the
sigmoid σ(v) = 1/(1 + e^{−v}) on every layer, the loss on a set of K examples

    ℓ(w; X, Y) = ½ Σ_k ‖Y_k − a_L(X_k)‖²                                   (sum, not mean)

and its gradient is the closed-form back-propagation of the paper's Appendix A:
δ_L = (a_L − Y) ⊙ a_L(1 − a_L), δ_j = (δ_{j+1} W_jᵀ) ⊙ a_j(1 − a_j), ∂ℓ/∂W_j = a_jᵀ δ_{j+1}.

The paper prints its threshold function (eq. 3) as v/(1 + e^{−v}); its text ("a standard
sigmoid") and the code it reproduces (Appendix A, ``nonlin``) use 1/(1 + e^{−v}), and only
that reading gives the derivative a(1 − a) the code uses — so this module uses the sigmoid.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


def sigmoid(v: torch.Tensor) -> torch.Tensor:
    """σ(v) = 1 / (1 + e^{−v}): the threshold of Schroder (2022) Appendix A (see the module
    docstring for the misprinted eq. 3)."""
    # not torch.sigmoid: its vectorised and scalar (array tail) paths round differently, so a
    # state's value would depend on where it sits in the batch
    return 1.0 / (1.0 + torch.exp(-v))


_STATE_PRODUCT = 1 << 13  # multiply-adds of one state's product above which it gets its own


def state_matmul(x: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """x_b W_b for every state b: x (M, R) shared or (B, M, R), W (B, R, C) -> (B, M, C).

    Each state's product is computed on its own, the same way whatever else is in the batch
    (batch independence, DESIGN.md; a batched BLAS product rounds a state differently
    depending on the batch size): a product of ``_STATE_PRODUCT`` multiply-adds or more is
    one ``torch.mm`` per state, a smaller one the sum over r of x[..., r] W[:, r, :] in a
    fixed order, vectorised over the batch. Which one depends on the shapes, never on B.
    """
    B, R, C = W.shape
    M = x.shape[-2]
    if M * R * C >= _STATE_PRODUCT:
        return torch.stack([torch.mm(x if x.ndim == 2 else x[b], W[b]) for b in range(B)])
    xs = x.unsqueeze(-1).unbind(-2)  # R views (..., M, 1)
    Ws = W.unsqueeze(1).unbind(-2)  # R views (B, 1, C)
    out = xs[0] * Ws[0]
    for r in range(1, R):
        out += xs[r] * Ws[r]  # a product, then a sum: no fused multiply-add
    return out


@dataclass(frozen=True)
class SigmoidMLP:
    """A bias-free fully connected network with sigmoid layers, node counts ``sizes``.

    All methods take a batch of flat weight vectors ``w`` (B, s) and data ``x`` of shape
    (K, n^[0]) shared by the batch or (B, K, n^[0]) per state; ``y`` likewise.
    """

    sizes: tuple[int, ...]
    _shapes: tuple[tuple[int, int], ...] = field(init=False, repr=False)

    def __post_init__(self):
        sizes = tuple(self.sizes)
        if len(sizes) < 2 or any(isinstance(n, bool) or int(n) != n or n < 1 for n in sizes):
            raise ValueError(f"sizes={self.sizes!r}: give at least two positive node counts, "
                             "e.g. (3, 4, 1)")
        object.__setattr__(self, "sizes", tuple(int(n) for n in sizes))
        object.__setattr__(self, "_shapes", tuple(zip(self.sizes[:-1], self.sizes[1:])))

    @property
    def size(self) -> int:
        """s, the number of weights."""
        return sum(a * b for a, b in self._shapes)

    def check_weights(self, w: torch.Tensor) -> None:
        """ValueError unless ``w`` is (B, s) for this network."""
        if w.ndim != 2 or w.shape[-1] != self.size:
            raise ValueError(f"weights of shape {tuple(w.shape)}: this {self.sizes} network "
                             f"has s = {self.size} weights, so give (B, {self.size}) (one flat "
                             "vector per state, W_0 first, row by row)")

    def unflatten(self, w: torch.Tensor) -> list[torch.Tensor]:
        """The weight matrices W_j (B, n^[j], n^[j+1]) of the flat vectors ``w`` (B, s)."""
        self.check_weights(w)
        out, k = [], 0
        for a, b in self._shapes:
            out.append(w[:, k : k + a * b].reshape(-1, a, b))
            k += a * b
        return out

    @staticmethod
    def flatten(mats) -> torch.Tensor:
        """The flat vectors (B, s) of weight matrices [(B, n^[j], n^[j+1]), ...]."""
        return torch.cat([m.reshape(m.shape[0], -1) for m in mats], dim=1)

    def activations(self, w: torch.Tensor, x: torch.Tensor) -> list[torch.Tensor]:
        """a_0 = x, a_{j+1} = σ(a_j W_j): each (B, K, n^[j]) (a_0 as given)."""
        return self._activations(self.unflatten(w), x)

    @staticmethod
    def _activations(mats, x):
        a = [x]
        for W in mats:
            a.append(sigmoid(state_matmul(a[-1], W)))
        return a

    def output(self, w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """a_L (B, K, n^[L])."""
        return self.activations(w, x)[-1]

    def loss(self, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """ℓ(w; X, Y) = ½ Σ_k ‖Y_k − a_L(X_k)‖² per state: (B,)."""
        r = self.output(w, x) - y
        return 0.5 * (r * r).sum(dim=(1, 2))

    def gradient(self, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """∇_w ℓ (B, s) by closed-form back-propagation (module docstring)."""
        mats = self.unflatten(w)
        a = self._activations(mats, x)
        out = a[-1]
        delta = (out - y) * out * (1 - out)
        grads = [None] * len(mats)
        for j in range(len(mats) - 1, -1, -1):
            grads[j] = state_matmul(a[j].transpose(-1, -2), delta)
            if j:
                delta = state_matmul(delta, mats[j].transpose(1, 2)) * a[j] * (1 - a[j])
        return self.flatten(grads)


@dataclass(frozen=True)
class TrainingData:
    """A network, its K training examples (x (K, n^[0]), y (K, n^[L])) and initial weights
    w_0 (s,): what a training-step propagator needs."""

    network: SigmoidMLP
    x: torch.Tensor
    y: torch.Tensor
    w0: torch.Tensor
    name: str = ""

    def __post_init__(self):
        n = self.network
        if self.x.ndim != 2 or self.x.shape[1] != n.sizes[0]:
            raise ValueError(f"x has shape {tuple(self.x.shape)}; the network takes "
                             f"(K, {n.sizes[0]})")
        if self.y.shape != (self.x.shape[0], n.sizes[-1]):
            raise ValueError(f"y has shape {tuple(self.y.shape)}; need "
                             f"({self.x.shape[0]}, {n.sizes[-1]}) (one row per example)")
        if self.w0.shape != (n.size,):
            raise ValueError(f"w0 has shape {tuple(self.w0.shape)}; the network has "
                             f"s = {n.size} weights")

    @property
    def examples(self) -> int:
        """K, the number of training examples."""
        return int(self.x.shape[0])


def xor_problem(dtype: torch.dtype = torch.float64) -> TrainingData:
    """The three-layer XOR network of Schroder (2022) §2.1, eq. (2) and Appendix A: 3-4-1
    nodes (s = 16), the four examples of eq. (2) (the third input is a constant 1), and the
    appendix's initial weights ``np.random.seed(1)``, ``2*np.random.random((3,4)) - 1``, then
    ``2*np.random.random((4,1)) - 1``."""
    x = torch.tensor([[0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=dtype)
    y = torch.tensor([[0], [1], [1], [0]], dtype=dtype)
    rng = np.random.RandomState(1)  # the legacy generator np.random.seed(1) seeds
    w_in = 2 * rng.random_sample((3, 4)) - 1
    w_out = 2 * rng.random_sample((4, 1)) - 1
    w0 = torch.as_tensor(np.concatenate([w_in.ravel(), w_out.ravel()]), dtype=dtype)
    return TrainingData(SigmoidMLP((3, 4, 1)), x, y, w0, name="xor")


def binary_addition_problem(pairs: int = 500, bits: int = 12, hidden=(128, 64), seed: int = 0,
                            dtype: torch.dtype = torch.float64) -> TrainingData:
    """The four-layer binary-addition network of Schroder (2022) §3.5: two ``bits``-bit
    numbers in (2·bits inputs, most significant bit first), their ``bits``-bit sum out;
    24-128-64-12 nodes (s = 12,032) by default and ``pairs`` examples.

    The paper's data come from a random generator it does not give, so these are synthetic
    and seeded: both summands are drawn uniformly from [0, 2^(bits−1)) so that the sum fits in
    ``bits`` bits, and the initial weights are N(0, 0.2²) − 0.1, the initialisation of the
    "plain vanilla" network the paper's example follows (Trask 2017). Numbers from this
    problem are this package's, not the paper's.
    """
    if pairs < 1 or bits < 2:
        raise ValueError(f"need pairs >= 1 and bits >= 2, got pairs={pairs}, bits={bits}")
    rng = np.random.default_rng(seed)
    left = rng.integers(0, 2 ** (bits - 1), size=pairs)
    right = rng.integers(0, 2 ** (bits - 1), size=pairs)

    def to_bits(v):
        return ((v[:, None] >> np.arange(bits - 1, -1, -1)[None, :]) & 1).astype(np.float64)

    x = np.concatenate([to_bits(left), to_bits(right)], axis=1)
    y = to_bits(left + right)
    net = SigmoidMLP((2 * bits, *hidden, bits))
    w0 = rng.normal(0.0, 0.2, size=net.size) - 0.1
    return TrainingData(net, torch.as_tensor(x, dtype=dtype), torch.as_tensor(y, dtype=dtype),
                        torch.as_tensor(w0, dtype=dtype), name="binary_addition")
