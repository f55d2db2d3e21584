"""The graph-augmented MLP (GA-MLP) and its back-propagation baseline.

A GA-MLP (Wang et al. 2022 slides, "GA-MLP Training Problem: Feature Augmentation") moves the
graph out of the network: the node features are augmented once, before training, with the
multi-hop operators Ψ = {I, Â, Â², …, Â^{K−1}},

    X = [X₁; …; X_K],   X_k = Â^{k−1} H,

(Â = D̃^{-1/2}(A + I)D̃^{-1/2}, :func:`mgritlab.graphs.operators.normalized_adjacency`, the GCN
propagation matrix of thesis eq. 2.26), and a plain MLP with ReLU maps each node's row on its
own:

    z_l = p_l W_l + b_l,   p_{l+1} = f(z_l) = max(z_l, 0)   (l = 1, …, L−1),   p_1 = X,

with class scores z_L. Rows are nodes (the slides write the transpose, z_l = W_l p_l + b_l).
Because every node is independent once X is built, training touches only the labelled
training rows — the property pdADMM-G (:mod:`mgritlab.graphs.admm`) builds on.

:func:`train_adam` is the baseline of issue 15: the same network trained by back-propagation
with Adam, He-initialised (PyTorch's default initialisation leaves a 10-layer ReLU MLP on one
class), model selection by validation accuracy (:func:`mgritlab.nn.runner.update_best`).
"""
from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass

import torch

from ..nn.runner import no_best, update_best
from .operators import normalized_adjacency


@dataclass
class AugmentedGraph:
    """Augmented features ``x`` (n × K·d), labels ``y`` and the public split's index sets."""

    x: torch.Tensor
    y: torch.Tensor
    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    num_classes: int
    hops: int
    name: str = ""

    @property
    def num_features(self) -> int:
        return self.x.shape[1]


def augment(features: torch.Tensor, edge_index: torch.Tensor, hops: int, *,
            dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[H, ÂH, …, Â^{hops−1}H] side by side (n × hops·d), computed in float64."""
    if int(hops) != hops or hops < 1:
        raise ValueError(f"hops={hops!r}: give a whole number >= 1 (1 = the raw features)")
    n = features.shape[0]
    A = normalized_adjacency(edge_index, n, dtype=torch.float64)
    blocks = [features.to(torch.float64)]
    for _ in range(hops - 1):
        blocks.append(A @ blocks[-1])
    return torch.cat(blocks, 1).to(dtype)


def load_augmented(name: str = "Cora", hops: int = 5, *, dtype: torch.dtype = torch.float32,
                   root=None) -> AugmentedGraph:
    """A Planetoid graph (offline, public split) with augmented features."""
    from .datasets import load_planetoid

    data = load_planetoid(name, root)
    idx = [m.nonzero().flatten() for m in (data.train_mask, data.val_mask, data.test_mask)]
    x = augment(data.x, data.edge_index, hops, dtype=dtype)
    return AugmentedGraph(x, data.y.clone(), *idx, num_classes=int(data.num_classes),
                          hops=hops, name=data.name)


def widths(num_features: int, hidden: int, num_classes: int, layers: int) -> list[int]:
    """n_0, …, n_L: input, L−1 hidden widths, classes (a clear error for L < 2)."""
    if int(layers) != layers or layers < 2:
        raise ValueError(f"layers={layers!r}: a GA-MLP here has at least 2 layers (one hidden)")
    if hidden < 1:
        raise ValueError(f"hidden={hidden!r}: give a positive width")
    return [num_features] + [hidden] * (layers - 1) + [num_classes]


def init_weights(sizes: list[int], seed: int, *, dtype: torch.dtype = torch.float32,
                 identity_hidden: bool = False) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """He-normal weights W_l (n_{l−1} × n_l), zero biases; seeded.

    ``identity_hidden``: the square hidden-to-hidden layers start at W = I (then the deep
    network starts as the 2-layer one — the authors reach 10 layers by training 2 → 5 → 10 and
    inserting identity layers; this is that initialisation in one go).
    """
    g = torch.Generator().manual_seed(seed)
    out = []
    for l, (a, b) in enumerate(itertools.pairwise(sizes)):
        if identity_hidden and 0 < l < len(sizes) - 2 and a == b:
            W = torch.eye(a, dtype=torch.float64)
        else:
            W = torch.randn(a, b, generator=g, dtype=torch.float64) * math.sqrt(2.0 / a)
        out.append((W.to(dtype), torch.zeros(b, dtype=dtype)))
    return out


def forward(x: torch.Tensor, weights, *, all_layers: bool = False):
    """The GA-MLP: class scores z_L, or with ``all_layers`` the list [z_1, …, z_L]."""
    zs, h = [], x
    for l, (W, b) in enumerate(weights):
        z = h @ W + b
        zs.append(z)
        if l + 1 < len(weights):
            h = torch.relu(z)
    return zs if all_layers else zs[-1]


def accuracy(scores: torch.Tensor, y: torch.Tensor) -> float:
    return float((scores.argmax(1) == y).double().mean())


def evaluate(graph: AugmentedGraph, weights) -> dict:
    """Loss (mean cross-entropy on the training rows) and train/val/test accuracy (the forward
    pass on those rows only: every node is independent in a GA-MLP)."""
    ce = torch.nn.functional.cross_entropy
    out = {}
    with torch.no_grad():
        for key, idx in (("train", graph.train), ("val", graph.val), ("test", graph.test)):
            z, y = forward(graph.x[idx], weights), graph.y[idx]
            out[key] = (float(ce(z, y)), accuracy(z, y))
    return {"loss": out["train"][0], "val_loss": out["val"][0], "train_acc": out["train"][1],
            "val_acc": out["val"][1], "test_acc": out["test"][1]}


def train_adam(graph: AugmentedGraph, *, layers: int, hidden: int = 500, seed: int = 0,
               epochs: int = 200, lr: float = 1e-3, weight_decay: float = 5e-4,
               dropout: float = 0.0, identity_hidden: bool = False,
               progress: bool = False) -> dict:
    """Back-propagation with Adam on the training rows (full batch), the baseline of issue 15.

    Returns the per-epoch history, the best-validation selection and seconds per epoch.
    """
    from tqdm.auto import tqdm

    sizes = widths(graph.num_features, hidden, graph.num_classes, layers)
    torch.manual_seed(seed)
    params = [(W.clone().requires_grad_(), b.clone().requires_grad_())
              for W, b in init_weights(sizes, seed, dtype=graph.x.dtype,
                                       identity_hidden=identity_hidden)]
    opt = torch.optim.Adam([t for wb in params for t in wb], lr=lr, weight_decay=weight_decay)
    xt, yt = graph.x[graph.train], graph.y[graph.train]
    history, best, seconds = [], no_best(), 0.0
    for epoch in tqdm(range(epochs), desc=f"Adam {layers} layers", disable=not progress,
                      leave=False):
        t0 = time.perf_counter()
        h = xt
        for l, (W, b) in enumerate(params):
            h = h @ W + b
            if l + 1 < len(params):
                h = torch.nn.functional.dropout(torch.relu(h), dropout, training=True)
        loss = torch.nn.functional.cross_entropy(h, yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        seconds += time.perf_counter() - t0
        row = {"epoch": epoch + 1, **evaluate(graph, [(W.detach(), b.detach())
                                                      for W, b in params])}
        history.append(row)
        best = update_best(best, epoch + 1, row)
    return {"method": "adam", "layers": layers, "hidden": hidden, "seed": seed,
            "epochs": epochs, "lr": lr, "weight_decay": weight_decay,
            "identity_hidden": identity_hidden, "history": history,
            "best": best, "seconds_per_epoch": seconds / max(epochs, 1)}
