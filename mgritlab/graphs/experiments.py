"""Stability of PDE-GCN-D under IMEX terms (thesis §5.1, figs. 5.1–5.5).

The final time T = L·h is kept fixed while the depth shrinks: (L, h) = (64, h₆₄), (16, 4h₆₄),
(4, 16h₆₄). On CORA λ_max(GᵀG) = 1. Every edge is stored in both directions, so with σ = ReLU
the two directions of an edge add up to K_lᵀK_l (Gf)_ij (ReLU(a) − ReLU(−a) = a): without
dropout the layer is exactly linear, f' = −½ GᵀG f K_lᵀK_l, and the explicit layer (α = 0) is
stable for h < 4/κ_max (κ the eigenvalues of K_lᵀK_l, ≈ 1 at initialisation); dropout on Gf
breaks the pairing during training (worst case h < 1.6/κ_max). The IMEX factor
M = (I + hA)^{-1} (eqs. 4.16–4.23) damps the large steps. :func:`stability_sweep` trains
every (depth, IMEX variant, α, seed) and returns tidy records (one dict per run);
:func:`plot_curves` draws the validation/test accuracy curves per configuration.

The kept sweep (``results/pdegcn/stability``, :data:`KEPT_SWEEP`) is what the command line
runs without ``--quick``; its 64-layer explicit runs are the kept reference-settings runs
(:func:`reference_records`), cut to the sweep's epoch budget, not trained again.
"""
from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

DEPTHS = ((64, 1), (16, 4), (4, 16))  # (L, h / h₆₄)
ALPHAS = (0.0, 1.0, 10.0)
VARIANTS = ("shared", "channel", "diffusion")

#: The kept full sweep: blocks of (depths, alphas, variants), seeds 0–2, 100 epochs. Sized to
#: about two hours of one core on the 2-core CI machine (measured per-epoch costs with one
#: thread: 64 layers ≈ 2 s, 16 layers ≈ 1.3 s, 'diffusion' 6–20 s from its CG solves):
#: 'shared' α ∈ {0, 1, 10} at every depth (figs. 5.1–5.5; α = 0 at 64 layers is the kept
#: reference), and the variants 'channel' (learnable α, starting at 1) and 'diffusion' (k² = 1)
#: only where the steps are large, 'diffusion' only at 4 layers (its CG makes it the dearest).
KEPT_SWEEP = (
    (DEPTHS, ALPHAS, ("shared",)),
    (DEPTHS[1:], (1.0,), ("channel",)),
    (DEPTHS[2:], (1.0,), ("diffusion",)),
)
KEPT_SEEDS = (0, 1, 2)
KEPT_EPOCHS = 100
REFERENCE = "tuning/reference_settings"  # under results/pdegcn: 64 layers, α = 0, seeds 0–4


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


def _record(cfg, r: dict, source: str = "sweep") -> dict:
    c = r["curves"]
    return {
        "dataset": cfg.dataset, "layers": cfg.layers, "h": cfg.h,
        "T": cfg.layers * cfg.h, "imex": cfg.imex, "alpha": cfg.alpha, "seed": int(cfg.seed),
        "best_val_acc": r["best_val_acc"], "test_acc_at_best_val": r["test_acc_at_best_val"],
        "best_epoch": r["best_epoch"], "final_train_loss": c["train_loss"][-1],
        "diverged": not bool(np.isfinite(c["train_loss"]).all()),
        "seconds_per_epoch": r["seconds_per_epoch"],
        "val_acc": c["val_acc"], "test_acc": c["test_acc"], "train_loss": c["train_loss"],
        "source": source,
    }


def truncate(r: dict, epochs: int) -> dict:
    """A finished run as if it had stopped after ``epochs`` epochs: curves cut, the model
    selection (test accuracy at the best validation accuracy, ties: lower validation loss)
    redone on the first ``epochs`` epochs."""
    from ..nn.runner import no_best, update_best

    c = r["curves"]
    if len(c["val_acc"]) < epochs:
        raise ValueError(f"the run has {len(c['val_acc'])} epochs, fewer than {epochs}")
    best = no_best()
    for e in range(epochs):
        best = update_best(best, e, {"val_acc": c["val_acc"][e], "val_loss": c["val_loss"][e],
                                     "test_acc": c["test_acc"][e]})
    out = dict(r, curves={k: v[:epochs] for k, v in c.items()}, epochs_run=epochs,
               best_epoch=best["epoch"], best_val_acc=best["val_acc"],
               test_acc_at_best_val=best["test_acc"])
    out["config"] = dict(r["config"], epochs=epochs)
    return out


def reference_records(epochs: int = KEPT_EPOCHS, seeds=KEPT_SEEDS, *, h64: float = 0.8,
                      folder=None) -> list[dict]:
    """The sweep's 64-layer explicit runs from the kept reference-settings runs, cut to
    ``epochs`` (:func:`truncate`); [] if they are not kept here. Raises ValueError if a kept
    run's configuration is not the sweep's (so the reference cannot silently drift)."""
    from ..results import results_dir
    from .train import _normalized

    if folder is None:
        root = results_dir("pdegcn")
        folder = None if root is None else root / REFERENCE
    if folder is None or not Path(folder).is_dir():
        return []
    (cfg,) = stability_configs("Cora", h64=h64, depths=DEPTHS[:1], alphas=(0.0,),
                               epochs=epochs)
    out = []
    for s in seeds:
        path = Path(folder) / f"{replace(cfg, seed=int(s)).name}_seed{int(s)}.json"
        if not path.exists():
            continue
        r = json.loads(path.read_text())
        mine = replace(cfg, seed=int(s))
        if not r.get("finished") or (_normalized({**r["config"], "epochs": epochs})
                                     != _normalized(asdict(mine))):
            raise ValueError(f"{path} is not the sweep's 64-layer explicit run (seed {s})")
        out.append(_record(mine, truncate(r, epochs), source=f"results/pdegcn/{REFERENCE}"))
    return out


def kept_configs(dataset: str = "Cora", *, h64: float = 0.8, epochs: int = KEPT_EPOCHS):
    """The TrainConfigs (seed 0) of :data:`KEPT_SWEEP`, the 64-layer explicit one included."""
    out = []
    for depths, alphas, variants in KEPT_SWEEP:
        out += stability_configs(dataset, h64=h64, depths=depths, alphas=alphas,
                                 variants=variants, epochs=epochs)
    return out


def stability_sweep(dataset: str = "Cora", *, quick: bool = False, seeds=None,
                    epochs: int | None = None, h64: float = 0.8, depths=None, alphas=None,
                    variants=None, out_dir=None, resume: bool = False,
                    progress: bool = False, graph=None, reference: bool | None = None
                    ) -> list[dict]:
    """Train the sweep; one record per run with its config, accuracies and curves.

    ``quick``: depths (16, 4h₆₄) and (4, 16h₆₄), 30 epochs, seed 0, variants shared and
    diffusion, α ∈ {0, 1, 10} — minutes on one core. Without ``quick`` and with none of
    ``depths``, ``alphas``, ``variants`` given: the kept sweep :data:`KEPT_SWEEP` (seeds 0–2,
    100 epochs; about two hours of one core), whose 64-layer explicit runs come from
    :func:`reference_records` (``reference``; default: on for the kept sweep on CORA with
    h₆₄ = 0.8) instead of being trained. Seeds are the outer loop, so an interrupted sweep has
    whole seeds done; records come in that order.
    """
    from .train import load_graph, train

    kept = not quick and depths is None and alphas is None and variants is None
    seeds = seeds if seeds is not None else ([0] if quick else list(KEPT_SEEDS))
    epochs = epochs or (30 if quick else KEPT_EPOCHS)
    if kept:
        cfgs = kept_configs(dataset, h64=h64, epochs=epochs)
    else:
        cfgs = stability_configs(
            dataset, h64=h64, depths=depths or (DEPTHS[1:] if quick else DEPTHS),
            alphas=alphas or ALPHAS,
            variants=variants or (("shared", "diffusion") if quick else VARIANTS),
            epochs=epochs)
    if reference is None:
        reference = kept and h64 == 0.8 and cfgs[0].dataset == "Cora"
    refs = {}
    if reference:
        refs = {r["seed"]: r for r in reference_records(epochs, seeds, h64=h64)}
    graph = graph if graph is not None else load_graph(dataset) if cfgs else None
    records = []
    for s in seeds:
        for cfg in cfgs:
            cfg = replace(cfg, seed=int(s))
            if cfg.layers == 64 and cfg.imex == "none" and int(s) in refs:
                records.append(refs[int(s)])
                continue
            r = train(cfg, graph=graph, out_dir=out_dir, resume=resume, progress=progress)
            records.append(_record(cfg, r))
    if out_dir is not None:
        from ..nn.runner import write_json_atomic

        Path(out_dir).mkdir(parents=True, exist_ok=True)
        write_json_atomic(records, Path(out_dir, "stability.json"))
    return records


def load_runs(folder) -> list[dict]:
    """Records of the finished runs in ``folder`` (its ``*_seed*.json``), for a sweep still
    running; the kept 64-layer reference (seeds 0–2 and any other seed found) is added as in
    :func:`stability_sweep`, cut to the runs' epochs."""
    from .train import TrainConfig

    records = []
    for path in sorted(Path(folder).glob("*_seed*.json")):
        r = json.loads(path.read_text())
        if r.get("finished"):
            records.append(_record(TrainConfig.from_dict(r["config"]), r))
    if records:
        epochs = len(records[0]["val_acc"])
        have = {r["seed"] for r in records if r["layers"] == 64 and r["imex"] == "none"}
        seeds = sorted(set(KEPT_SEEDS) | {r["seed"] for r in records})
        records += [r for r in reference_records(epochs, seeds) if r["seed"] not in have]
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
    """A printable table: test accuracy at best validation accuracy per configuration
    (N the number of layers, mean ± population std over the seeds)."""
    lines = [f"{'N':>3} {'h':>6} {'variant':<22} {'val %':>7} {'test %':>14} {'seeds':>5}"]
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
