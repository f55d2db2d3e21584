"""Stability of PDE-GCN-D under IMEX terms (thesis §5.1, figs. 5.1–5.5).

The final time T = L·h is kept fixed while the depth shrinks: (L, h) = (64, h₆₄), (16, 4h₆₄),
(4, 16h₆₄). On CORA λ_max(GᵀG) = 1. Every edge is stored in both directions, so with σ = ReLU
the two directions of an edge add up to K_lᵀK_l (Gf)_ij (ReLU(a) − ReLU(−a) = a): without
dropout the layer is exactly linear, f' = −½ GᵀG f K_lᵀK_l, and the explicit layer (α = 0) is
stable for h < 4/κ_max (κ the eigenvalues of K_lᵀK_l, ≈ 1 at initialisation); dropout on Gf
breaks the pairing during training (worst case h < 1.6/κ_max). The IMEX factor
M = (I + hA)^{-1} (eqs. 4.17–4.23) damps the large steps. :func:`stability_sweep` trains
every (depth, IMEX variant, α, seed) and returns tidy records (one dict per run);
:func:`plot_curves` draws the validation/test accuracy curves per configuration.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

DEPTHS = ((64, 1), (16, 4), (4, 16))  # (L, h / h₆₄)
ALPHAS = (0.0, 1.0, 10.0)
VARIANTS = ("shared", "channel", "diffusion")


def stability_configs(dataset: str = "Cora", *, h64: float = 0.8, depths=DEPTHS,
                      alphas=ALPHAS, variants=VARIANTS, epochs: int = 200):
    """The TrainConfigs of the sweep (seed 0); α = 0 appears once, as imex='none'.

    The optimiser settings are TrainConfig's reference values for every depth and variant,
    fixed so that the sweep compares time steppers, not tunings."""
    from .datasets import canonical_name
    from .train import TrainConfig

    out = []
    for L, factor in depths:
        base = TrainConfig(dataset=canonical_name(dataset), layers=L, h=h64 * factor,
                           epochs=epochs)
        for a in alphas:
            for v in (("none",) if a == 0 else variants):
                # a fixed channel-wise α equal on all channels is 'shared'; learn it instead
                out.append(replace(base, imex=v, alpha=float(a), learn_alpha=v == "channel"))
    return out


def stability_sweep(dataset: str = "Cora", *, quick: bool = False, seeds=None,
                    epochs: int | None = None, h64: float = 0.8, depths=None, alphas=ALPHAS,
                    variants=None, out_dir=None, resume: bool = False,
                    progress: bool = False, graph=None) -> list[dict]:
    """Train the sweep; one record per run with its config, accuracies and curves.

    ``quick``: depths (16, 4h₆₄) and (4, 16h₆₄), 30 epochs, seed 0, variants shared and
    diffusion — minutes on one core. The full sweep (3 depths, 200 epochs, seeds 0–2, all
    variants; 'channel' with learnable α) is hours on a CPU.
    """
    from .train import load_graph, train

    depths = depths or (DEPTHS[1:] if quick else DEPTHS)
    variants = variants or (("shared", "diffusion") if quick else VARIANTS)
    seeds = seeds if seeds is not None else ([0] if quick else [0, 1, 2])
    epochs = epochs or (30 if quick else 200)
    graph = graph if graph is not None else load_graph(dataset)
    records = []
    for cfg in stability_configs(dataset, h64=h64, depths=depths, alphas=alphas,
                                 variants=variants, epochs=epochs):
        for s in seeds:
            r = train(replace(cfg, seed=int(s)), graph=graph, out_dir=out_dir, resume=resume,
                      progress=progress)
            c = r["curves"]
            records.append({
                "dataset": cfg.dataset, "layers": cfg.layers, "h": cfg.h,
                "T": cfg.layers * cfg.h, "imex": cfg.imex, "alpha": cfg.alpha, "seed": int(s),
                "best_val_acc": r["best_val_acc"], "test_acc_at_best_val":
                    r["test_acc_at_best_val"], "best_epoch": r["best_epoch"],
                "final_train_loss": c["train_loss"][-1],
                "diverged": not bool(np.isfinite(c["train_loss"]).all()),
                "seconds_per_epoch": r["seconds_per_epoch"],
                "val_acc": c["val_acc"], "test_acc": c["test_acc"],
                "train_loss": c["train_loss"],
            })
    if out_dir is not None:
        from ..nn.runner import write_json_atomic

        Path(out_dir).mkdir(parents=True, exist_ok=True)
        write_json_atomic(records, Path(out_dir, "stability.json"))
    return records


def label(r: dict) -> str:
    return "explicit (α=0)" if r["imex"] == "none" else f"{r['imex']} α={r['alpha']:g}"


def aggregate(records: list[dict]) -> list[dict]:
    """Mean/std over seeds per (layers, h, imex, alpha): the table of the sweep."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["layers"], r["h"], r["imex"], r["alpha"]), []).append(r)
    rows = []
    for (L, h, imex, a), rs in groups.items():
        t = np.array([r["test_acc_at_best_val"] for r in rs])
        v = np.array([r["best_val_acc"] for r in rs])
        rows.append({"layers": L, "h": h, "imex": imex, "alpha": a, "seeds": len(rs),
                     "test_mean": float(t.mean()), "test_std": float(t.std()),
                     "val_mean": float(v.mean()),
                     "diverged": sum(r["diverged"] for r in rs)})
    return rows


def format_table(records: list[dict]) -> str:
    """A printable table: test accuracy at best validation accuracy per configuration."""
    lines = [f"{'L':>3} {'h':>6} {'variant':<22} {'val %':>7} {'test %':>14} {'seeds':>5}"]
    for r in aggregate(records):
        lines.append(f"{r['layers']:>3} {r['h']:>6.2f} {label(r):<22} "
                     f"{100 * r['val_mean']:>7.2f} {100 * r['test_mean']:>7.2f} ± "
                     f"{100 * r['test_std']:<4.2f} {r['seeds']:>5}")
    return "\n".join(lines)


def plot_curves(records: list[dict], metric: str = "val_acc", axes=None):
    """One panel per depth (fixed L·h), one curve (mean over seeds) per IMEX configuration.

    ``axes``: a sequence of Axes (one per depth) or one Axes for records of a single depth."""
    import matplotlib.pyplot as plt

    depths = sorted({(r["layers"], r["h"]) for r in records}, reverse=True)
    if axes is None:
        _, axes = plt.subplots(1, len(depths), figsize=(4.2 * len(depths), 3.4),
                                 sharey=True, squeeze=False)
        axes = axes[0]
    elif hasattr(axes, "plot"):  # one Axes: all depths drawn into it
        axes = [axes] * len(depths)
    for ax, (L, h) in zip(axes, depths):
        curves: dict[str, list] = {}
        for r in records:
            if (r["layers"], r["h"]) == (L, h):
                curves.setdefault(label(r), []).append(np.asarray(r[metric], dtype=float))
        for name, cs in curves.items():
            n = min(len(c) for c in cs)
            ax.plot(np.mean([c[:n] for c in cs], axis=0), label=name)
        ax.set_title(f"L = {L}, h = {h:g}")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(metric.replace("_", " "))
    axes[-1].legend(fontsize=8)
    return axes
