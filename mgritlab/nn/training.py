"""A small training loop for ODE-net classifiers, shared by the lessons and the benchmark."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class History:
    """Per-epoch loss, training/validation accuracy and cumulative wall time (seconds)."""

    loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def extend(self, other: "History") -> "History":
        """This history followed by ``other`` (its times shifted to continue the clock)."""
        t0 = self.seconds[-1] if self.seconds else 0.0
        return History(self.loss + other.loss, self.train_acc + other.train_acc,
                       self.val_acc + other.val_acc, self.seconds + [t0 + s for s in other.seconds])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of correctly classified points (the model in eval mode, no gradient)."""
    was = model.training
    model.eval()
    with torch.no_grad():
        acc = float((model(x).argmax(dim=1) == y).double().mean())
    model.train(was)
    return acc


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int = 50,
          lr: float = 1e-2, batch_size: int | None = None, val=None, seed: int = 0,
          weight_decay: float = 0.0, eval_model: nn.Module | None = None,
          callback=None) -> History:
    """Adam on the cross-entropy loss; mini-batches of ``batch_size`` (None: full batch).

    ``val`` = (x_val, y_val) for a validation accuracy; ``eval_model`` (default ``model``) is
    the network used for the accuracies, e.g. the exact serial network of a layer-parallel
    model. Accuracy evaluation is not counted in the wall time. ``callback(epoch, model)`` runs
    after every epoch (e.g. to record ``LayerParallel.stats``).
    """
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    bs = n if batch_size is None else batch_size
    hist, clock = History(), 0.0
    evaluate = eval_model if eval_model is not None else model
    model.train()
    for _ in range(epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=g) if bs < n else torch.arange(n)
        total = 0.0
        for s in range(0, n, bs):
            idx = perm[s : s + bs]
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * idx.numel()
        clock += time.perf_counter() - t0
        hist.loss.append(total / n)
        hist.seconds.append(clock)
        hist.train_acc.append(accuracy(evaluate, x, y))
        if val is not None:
            hist.val_acc.append(accuracy(evaluate, *val))
        if callback is not None:
            callback(len(hist.loss), model)
    return hist
