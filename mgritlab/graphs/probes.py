"""Probes and plots for lesson 09: over-smoothing measures, a linear probe, training curves.

What each function computes (f ∈ R^{n×c} node features, rows = nodes):

* :func:`dirichlet` — the normalised Dirichlet energy tr(fᵀ(I − Â)f) / ‖f‖_F² with the GCN
  propagation matrix Â = D̃^{-1/2}(A + I)D̃^{-1/2} (thesis eq. 2.26); equal to
  Σ_{undirected (i,j)} ‖f_i/√d̃_i − f_j/√d̃_j‖² / ‖f‖_F² (d̃ = degree + 1);
* :func:`gradient_energy` — ‖G f‖_F² / ‖f‖_F² with the weighted graph gradient G of thesis
  eq. 4.2 (both directions of every edge, so twice the sum over undirected edges);
* :func:`mean_cosine` — the mean cosine similarity of the features of given node pairs;
* :func:`linear_probe` — logistic regression on fixed features, trained on the training
  nodes; the test accuracy at the evaluation with the best validation accuracy;
* :func:`smoothing_table` — the three measures on Â^k X for several depths k (SGC features,
  Wu et al. 2019);
* :func:`kept_runs` — the finished runs kept under ``results/<name>/``, grouped by run name;
* :func:`plot_run`, :func:`plot_losses` — a :func:`~mgritlab.graphs.train.train` result's
  accuracy and loss curves on a matplotlib axis.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from .operators import spmm

__all__ = ["dirichlet", "gradient_energy", "mean_cosine", "linear_probe", "smoothing_table",
           "kept_runs", "plot_run", "plot_losses"]


def dirichlet(f: torch.Tensor, A_hat: torch.Tensor) -> float:
    """Normalised Dirichlet energy tr(fᵀ(I − Â)f) / ‖f‖_F² of node features f (n, c).

    ``A_hat`` is the CSR matrix Â = D̃^{-1/2}(A + I)D̃^{-1/2}
    (:func:`~mgritlab.graphs.operators.normalized_adjacency`). The value lies in [0, 2); it is
    0 exactly when every column of f is a multiple of D̃^{1/2}1 on each connected component.
    """
    return float((f * (f - spmm(A_hat, A_hat, f))).sum() / (f * f).sum())


def gradient_energy(f: torch.Tensor, ops) -> float:
    """‖G f‖_F² / ‖f‖_F² for the weighted gradient G of ``ops``
    (:class:`~mgritlab.graphs.operators.GraphOperators`, thesis eq. 4.2)."""
    return float((ops.grad(f) ** 2).sum() / (f ** 2).sum())


def mean_cosine(f: torch.Tensor, pairs: torch.Tensor) -> float:
    """Mean of cos(f_i, f_j) over the node pairs ``pairs`` (2, P) (a zero row counts as 0)."""
    fn = F.normalize(f, dim=1)
    return float((fn[pairs[0]] * fn[pairs[1]]).sum(1).mean())


def linear_probe(f: torch.Tensor, data, *, steps: int = 200, lr: float = 0.2,
                 weight_decay: float = 5e-5, every: int = 10) -> float:
    """Test accuracy of a logistic regression on the fixed features f, model-selected honestly.

    A weight matrix W (c × classes, no bias, starting at 0, so the result is deterministic) is
    trained by full-batch Adam on the cross-entropy of ``f[train_mask] @ W``; every ``every``
    steps the validation and test accuracies are evaluated, and the test accuracy at the first
    evaluation with the best validation accuracy is returned. ``data`` needs ``y``,
    ``num_classes`` and the boolean ``train_mask``, ``val_mask``, ``test_mask``.
    """
    W = torch.zeros(f.shape[1], data.num_classes, dtype=f.dtype, requires_grad=True)
    opt = torch.optim.Adam([W], lr=lr, weight_decay=weight_decay)
    best = (-1.0, 0.0)
    tr, y = data.train_mask, data.y
    for it in range(steps):
        opt.zero_grad()
        F.cross_entropy(f[tr] @ W, y[tr]).backward()
        opt.step()
        if (it + 1) % every == 0:
            with torch.no_grad():
                pred = (f @ W).argmax(1)
                va = float((pred[data.val_mask] == y[data.val_mask]).float().mean())
                te = float((pred[data.test_mask] == y[data.test_mask]).float().mean())
            if va > best[0]:
                best = (va, te)
    return best[1]


def smoothing_table(A_hat: torch.Tensor, X: torch.Tensor, depths, data, pairs: torch.Tensor,
                    **probe_options) -> list[tuple[int, float, float, float]]:
    """Rows (k, dirichlet, mean_cosine, linear_probe) of the features Â^k X for the sorted
    ``depths`` (non-negative ints), computed by repeated sparse products."""
    depths = sorted(int(k) for k in depths)
    if depths and depths[0] < 0:
        raise ValueError(f"depths must be >= 0, got {depths}")
    rows, f, done = [], X, 0
    for k in depths:
        while done < k:
            f = spmm(A_hat, A_hat, f)
            done += 1
        rows.append((k, dirichlet(f, A_hat), mean_cosine(f, pairs),
                     linear_probe(f, data, **probe_options)))
    return rows


def kept_runs(name: str = "pdegcn", pattern: str = "cora_*_seed*.json") -> dict[str, list[dict]]:
    """The finished runs (``"finished": true``) kept in ``results/<name>/`` (found by
    :func:`mgritlab.results.results_dir`), grouped by their ``name`` field; {} if none."""
    from ..results import results_dir

    folder = results_dir(name)
    runs: dict[str, list[dict]] = {}
    if folder is None:
        return runs
    for path in sorted(Path(folder).glob(pattern)):
        run = json.loads(path.read_text())
        if run.get("finished"):
            runs.setdefault(run["name"], []).append(run)
    return runs


def plot_run(res: dict, ax, title: str = ""):
    """Training, validation and test accuracy per epoch of a ``train`` result on ``ax``, with
    the epoch of best validation accuracy marked (and the test accuracy there in the legend)."""
    c = res["curves"]
    for key in ["train_acc", "val_acc", "test_acc"]:
        ax.plot(c[key], label=key.replace("_", " "))
    ax.axvline(res["best_epoch"], color="k", ls=":", lw=1,
               label=f"best val (test {res['test_acc_at_best_val']:.3f})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return ax


def plot_losses(res: dict, ax, title: str = "losses", log: bool = True):
    """Training loss (the training step's, with dropout) and validation loss per epoch."""
    c = res["curves"]
    ax.plot(c["train_loss"], label="training loss (with dropout)")
    ax.plot(c["val_loss"], label="validation loss")
    ax.set_xlabel("epoch")
    if log:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax
