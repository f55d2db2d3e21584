"""A small training loop for ODE-net classifiers, shared by the lessons and the benchmark.

The loop is :func:`mgritlab.nn.runner.run_epochs` (signals, progress bar, checkpoints), so a
run with ``checkpoint=PATH`` survives a kill and ``resume=True`` continues it exactly.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from .runner import finish_run, load_checkpoint, run_epochs, save_atomic


@dataclass
class History:
    """Per-epoch loss, training/validation accuracy and cumulative wall time (seconds)."""

    loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def extend(self, other: History) -> History:
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
          callback=None, checkpoint: str | Path | None = None, resume: bool = False,
          checkpoint_every: int = 10, progress: bool = False, agree=None) -> History:
    """Adam on the cross-entropy loss; mini-batches of ``batch_size`` (None: full batch).

    ``val`` = (x_val, y_val) for a validation accuracy; ``eval_model`` (default ``model``) is
    the network used for the accuracies, e.g. the exact serial network of a layer-parallel
    model. Accuracy evaluation is not counted in the wall time. ``callback(epoch, model)`` runs
    after every epoch (e.g. to record ``LayerParallel.stats``).

    ``checkpoint``: a file for model, optimizer, shuffling state and history every
    ``checkpoint_every`` epochs (``resume=True`` continues from it, the result equal to the
    uninterrupted run's). Ctrl-C finishes the epoch (and checkpoints) and raises
    KeyboardInterrupt with the history so far as ``partial_result``. ``agree(flag)``: the stop
    flag or-ed over MPI ranks (layer-parallel training stops every rank at the same epoch).
    """
    if int(epochs) != epochs or epochs < 0:
        raise ValueError(f"epochs={epochs!r}: give a whole number >= 0")
    if batch_size is not None and (int(batch_size) != batch_size or batch_size < 1):
        raise ValueError(f"batch_size={batch_size!r}: give a whole number >= 1, or None")
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    bs = n if batch_size is None else batch_size
    hist, start = History(), 0
    evaluate = eval_model if eval_model is not None else model
    path = Path(checkpoint) if checkpoint is not None else None
    if resume and path is not None and path.exists():
        ck = load_checkpoint(path, keys=("model", "optimizer", "generator", "history", "epoch"))
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        g.set_state(ck["generator"])
        hist, start = History(**ck["history"]), ck["epoch"]
    model.train()

    def step(epoch: int) -> dict:
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
        clock = hist.seconds[-1] if hist.seconds else 0.0
        hist.loss.append(total / n)
        hist.seconds.append(clock + time.perf_counter() - t0)
        hist.train_acc.append(accuracy(evaluate, x, y))
        if val is not None:
            hist.val_acc.append(accuracy(evaluate, *val))
        if callback is not None:
            callback(len(hist.loss), model)
        return {"loss": f"{hist.loss[-1]:.3f}"}

    def save(done: int) -> None:
        save_atomic({"model": model.state_dict(), "optimizer": opt.state_dict(),
                     "generator": g.get_state(), "history": asdict(hist), "epoch": done}, path)

    stopped = run_epochs(step, start=start, end=epochs, total=epochs,
                         checkpoint=save if path is not None else None, every=checkpoint_every,
                         agree=agree, desc="train", progress=progress)
    return finish_run(hist, stopped=stopped, what=f"stopped after epoch {len(hist.loss)}",
                      resume=f"resume=True from {path}" if path else None)
