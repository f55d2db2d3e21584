"""Training PDE-GCN-D (and the GCN baseline) on a Planetoid graph, semi-supervised.

Adam with the authors' parameter groups (opening/closing maps: lr, weight decay; layer
weights K_l: a smaller lr_K, no weight decay), full-batch, one step per epoch. Model selection
is honest: the reported accuracy is the **test accuracy at the epoch of best validation
accuracy** (ties broken by the lower validation loss), never the best test accuracy.

Runs are reproducible and resumable (the loop, checkpoints, signals and selection are those of
:mod:`mgritlab.nn.runner`): every ``checkpoint_every`` epochs the model, optimizer,
history and all RNG states (torch, numpy, random) are written atomically; a resumed run
reproduces the uninterrupted one exactly (the dropout masks are drawn from the saved torch
state). Results are JSON: per-epoch curves, best validation accuracy, test accuracy there,
seconds per epoch.

``layer_parallel=True`` trains PDE-GCN-D with MGRIT in depth (thesis §5.2; T₁ forward and T₂
backward iterations, the IMEX term per level): under ``mpiexec -n P`` the layers are split over
the P ranks (:class:`~mgritlab.mgrit.mpi.MPIPartition`), every rank trains in lockstep and
rank 0 writes the results. Each epoch then also records the wall seconds per phase (forward
MGRIT, adjoint MGRIT, gradient assembly, communication), the MGRIT residual histories, and the
validation/test accuracy both with the layer-parallel forward used in training and with the
exact serial forward. The MGRIT warm starts are part of the checkpoint (one file per rank), so
a resumed layer-parallel run equals the uninterrupted one.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..mgrit import MGRITDivergenceError
from ..mgrit.world import any_rank, world_partition
from ..nn.runner import (
    CheckpointError,
    RankCheckpointError,
    finish_run,
    load_checkpoint,
    no_best,
    read_json,
    rng_state,
    run_epochs,
    save_atomic,
    seed_all,
    set_rng_state,
    update_best,
    write_json_atomic,
)


@dataclass
class TrainConfig:
    """Everything a run depends on. The defaults are the reference 64-layer values of public
    code (h 0.8, dropout 0.6, lr 9e-3, weight decay 2.4e-4, lr_K 2e-5); :func:`preset` holds the
    tuned settings per dataset and depth."""

    dataset: str = "Cora"
    model: str = "pdegcn"  # a name in MODELS: 'pdegcn' or 'gcn'
    layers: int = 64
    channels: int = 64
    h: float = 0.8
    dropout: float = 0.6
    input_dropout: float | None = None
    open_dropout: float | None = None
    imex: str = "none"
    alpha: float = 0.0
    learn_alpha: bool = False
    lr: float = 9e-3  # opening/closing maps (GCN: all weights)
    weight_decay: float = 2.4e-4
    lr_K: float = 2e-5  # layer weights K_l (and a learnable α)
    weight_decay_K: float = 0.0
    epochs: int = 300
    seed: int = 0
    hidden: int = 16  # GCN only
    cg_tol: float = 1e-6
    cg_maxiter: int = 200
    init_noise: float = 1e-3
    # layer-parallel training (thesis §5.2): MGRIT in depth instead of the serial stack
    layer_parallel: bool = False
    levels: int = 3
    cf: int = 4
    fwd_iters: int = 2  # T₁
    bwd_iters: int = 1  # T₂
    relax: str = "auto"  # 'auto' (F fine, FCF coarse), one scheme, or 'F,FCF,FCF' per level
    cycle: str = "V"
    level_alpha: list | None = None  # IMEX α per level (None: the layers' α; 0: explicit)
    warm_start: bool = True
    layout: str = "auto"  # PDE-GCN-D batched layer steps: 'auto', 'loop' or 'batched'
    on_divergence: str = "raise"  # 'warn': train on through growing MGRIT residuals
    dtype: str = "float32"
    checkpoint_every: int = 25
    extra: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The run's file stem (without the seed)."""
        return model_kind(self.model).run_name(self)

    def lp_options(self, partition=None) -> dict:
        """The :class:`~mgritlab.graphs.pdegcn.PDEGCN` keyword arguments of a layer-parallel
        run (empty for a serial one)."""
        if not self.layer_parallel:
            return {}
        return dict(parallel=True, max_levels=self.levels, cf=self.cf,
                    fwd_iters=self.fwd_iters, bwd_iters=self.bwd_iters,
                    relax=_relax_option(self.relax, self.levels), cycle=self.cycle,
                    warm_start=self.warm_start, on_divergence=self.on_divergence,
                    partition=partition)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _relax_option(relax: str, levels: int):
    """'auto' -> None (LayerParallel's default), 'FCF' -> 'FCF', 'F,FCF,FCF' -> a list."""
    if relax == "auto":
        return None
    parts = [r.strip() for r in str(relax).split(",")]
    if len(parts) == 1:
        return parts[0]
    if len(parts) != levels:
        raise ValueError(f"relax={relax!r} names {len(parts)} schemes for {levels} levels: give "
                         f"one scheme for all levels, one per level, or 'auto'")
    return parts


def preset(dataset: str = "Cora", layers: int = 64, model: str = "pdegcn") -> TrainConfig:
    """Tuned defaults per dataset and depth (those used for results/pdegcn)."""
    from .datasets import canonical_name

    return model_kind(model).preset(canonical_name(dataset), layers)


def _pdegcn_preset(dataset: str, layers: int) -> TrainConfig:
    if layers <= 16:
        # h = 1, not 2: with dropout p = 0.6 the explicit layer is stable in training only for
        # h ≤ 4(1 − p)/κ_max ≈ 1.6 (κ_max ≈ 1.02, the largest eigenvalue of K_lᵀK_l at the
        # initial weights; lesson 09 §4), and at h = 2 the training loss oscillates
        return TrainConfig(dataset=dataset, layers=layers, h=1.0, dropout=0.6, lr=0.07,
                           weight_decay=5e-4, lr_K=5e-5, epochs=200)
    deep = TrainConfig(dataset=dataset, layers=layers, h=0.8 * 64 / layers, epochs=150)
    return replace(deep, **_DEEP_CORA) if dataset == "Cora" else deep


def _gcn_preset(dataset: str, layers: int) -> TrainConfig:
    return TrainConfig(dataset=dataset, model="gcn", layers=2, lr=0.01, weight_decay=5e-4,
                       dropout=0.5, epochs=200)


# Deep CORA (results/pdegcn/README.md, tuning table): the authors' CORA settings — no dropout
# after the opening map, p = 0.7 at the other sites, lr 0.07 with weight decay 5e-4, lr_K 5e-5 —
# and 300 epochs. CiteSeer keeps TrainConfig's reference values and 150 epochs (72.1 % over
# 5 seeds, target 71 %).
_DEEP_CORA = dict(open_dropout=0.0, dropout=0.7, lr=0.07, weight_decay=5e-4, lr_K=5e-5,
                  epochs=300)


def load_graph(dataset: str, dtype: torch.dtype = torch.float32):
    """(data, ops): the Planetoid graph and its operators G, Gᵀ, GᵀG."""
    from .datasets import load_planetoid
    from .operators import graph_operators

    data = load_planetoid(dataset)
    data.x = data.x.to(dtype)
    return data, graph_operators(data.edge_index, data.num_nodes, dtype=dtype)


@dataclass(frozen=True)
class ModelKind:
    """What the training loop needs to know about one model family: how to build it from a
    :class:`TrainConfig`, its Adam parameter groups, its run name, its tuned preset and what to
    change when its loss diverges."""

    build: Callable  # (cfg, data, ops, partition) -> nn.Module
    parameter_groups: Callable  # (cfg, model) -> Adam parameter groups
    run_name: Callable  # cfg -> file stem
    preset: Callable  # (dataset, layers) -> TrainConfig
    advice: Callable = lambda cfg: ""  # cfg -> what else to change on divergence


def _build_pdegcn(cfg: TrainConfig, data, ops, partition=None):
    from .pdegcn import PDEGCN

    return PDEGCN(ops, data.num_features, data.num_classes, channels=cfg.channels,
                  layers=cfg.layers, h=cfg.h, dropout=cfg.dropout,
                  input_dropout=cfg.input_dropout, open_dropout=cfg.open_dropout,
                  imex=cfg.imex, alpha=cfg.alpha,
                  learn_alpha=cfg.learn_alpha, level_alpha=cfg.level_alpha,
                  cg_tol=cfg.cg_tol, cg_maxiter=cfg.cg_maxiter, init_noise=cfg.init_noise,
                  layout=cfg.layout, seed=cfg.seed, **cfg.lp_options(partition))


def _build_gcn(cfg: TrainConfig, data, ops, partition=None):
    from .gcn import GCN

    return GCN(data.edge_index, data.num_nodes, data.num_features, data.num_classes,
               hidden=cfg.hidden, dropout=cfg.dropout, seed=cfg.seed,
               dtype=getattr(torch, cfg.dtype))


def _pdegcn_name(cfg: TrainConfig) -> str:
    a = "" if cfg.imex == "none" else f"_a{cfg.alpha:g}"
    lp = ""
    if cfg.layer_parallel:
        lp = f"_lp{cfg.levels}x{cfg.cf}_T{cfg.fwd_iters}-{cfg.bwd_iters}"
        if cfg.level_alpha is not None:
            lp += "_la" + "-".join("x" if v is None else f"{v:g}" for v in cfg.level_alpha)
    return f"{cfg.dataset.lower()}_pdegcn_L{cfg.layers}_h{cfg.h:g}_{cfg.imex}{a}{lp}"


def _pdegcn_advice(cfg: TrainConfig) -> str:
    msg = f" or the step size h={cfg.h:g}"
    if cfg.imex == "none":
        msg += ", or add an IMEX term (imex='shared', alpha > 0)"
    return msg


MODELS: dict[str, ModelKind] = {
    "pdegcn": ModelKind(
        build=_build_pdegcn,
        parameter_groups=lambda cfg, m: m.parameter_groups(cfg.lr, cfg.weight_decay, cfg.lr_K,
                                                           cfg.weight_decay_K),
        run_name=_pdegcn_name, preset=_pdegcn_preset, advice=_pdegcn_advice),
    "gcn": ModelKind(
        build=_build_gcn,
        parameter_groups=lambda cfg, m: m.parameter_groups(cfg.lr, cfg.weight_decay),
        run_name=lambda cfg: f"{cfg.dataset.lower()}_gcn", preset=_gcn_preset),
}


def model_kind(name: str) -> ModelKind:
    """The registered model family ``name`` (a ValueError lists the registered ones)."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}: use one of "
                         f"{', '.join(map(repr, MODELS))}") from None


def build_model(cfg: TrainConfig, data, ops, partition=None):
    """The model of ``cfg``; ``partition`` splits a layer-parallel body over MPI ranks."""
    return model_kind(cfg.model).build(cfg, data, ops, partition)


def build_optimizer(cfg: TrainConfig, model) -> torch.optim.Optimizer:
    """Adam with the model family's parameter groups."""
    return torch.optim.Adam(model_kind(cfg.model).parameter_groups(cfg, model))


def _accuracy(out: torch.Tensor, y: torch.Tensor) -> float:
    return float((out.argmax(-1) == y).float().mean())


CURVES = ("train_loss", "train_acc", "val_loss", "val_acc", "test_acc", "seconds")
# a layer-parallel run also records: the exact serial forward's evaluation, the seconds of the
# training step per phase (LayerParallel.seconds) and of the evaluation, and the residual
# histories of the training step's forward and adjoint MGRIT solves
LP_CURVES = ("val_loss_serial", "val_acc_serial", "test_acc_serial", "seconds_forward",
             "seconds_adjoint", "seconds_gradient", "seconds_communication", "seconds_eval",
             "residuals_forward", "residuals_backward")


def _new_history(layer_parallel: bool) -> dict:
    return {k: [] for k in CURVES + (LP_CURVES if layer_parallel else ())}


def _nonfinite_message(cfg: TrainConfig, loss: float, epoch: int) -> str:
    msg = (f"the training loss is {loss} at epoch {epoch + 1}: the optimisation diverged. "
           f"Lower the learning rates (lr={cfg.lr:g}, lr_K={cfg.lr_K:g})")
    msg += model_kind(cfg.model).advice(cfg)
    if cfg.layer_parallel:
        msg += (f"; layer-parallel: fewer levels (levels={cfg.levels}), a smaller cf (cf={cfg.cf}) "
                f"or an IMEX α on the coarse levels (level_alpha)")
    return msg + ". The last checkpoint and the partial results are kept."


def train_step(model, opt, data) -> tuple[torch.Tensor, torch.Tensor]:
    """One full-batch Adam step on the training nodes (training mode): (log-probabilities,
    loss) — the step of every epoch, and what the benchmarks time."""
    tr = data.train_mask
    model.train()
    opt.zero_grad(set_to_none=True)
    out = model(data.x)
    loss = F.nll_loss(out[tr], data.y[tr])
    if torch.isfinite(loss):
        loss.backward()
        opt.step()
    return out, loss


def _epoch(model, opt, data, hist: dict, epoch: int, cfg: TrainConfig) -> dict:
    """One Adam step on the training nodes, then evaluation; appends to ``hist`` and returns
    the epoch's row."""
    x, y = data.x, data.y
    tr, va, te = data.train_mask, data.val_mask, data.test_mask
    lp = model.layer_parallel() if cfg.layer_parallel else None
    t0 = time.perf_counter()
    if lp is not None:
        lp.reset_seconds()
    out, loss = train_step(model, opt, data)
    if not torch.isfinite(loss):
        raise FloatingPointError(_nonfinite_message(cfg, loss.item(), epoch))
    t1 = time.perf_counter()
    if lp is not None:
        phases, stats = lp.reset_seconds(), dict(lp.stats)
    model.eval()
    with torch.no_grad():
        ev = model(x)
        ev_serial = model.serial_forward(x) if lp is not None else None
    t2 = time.perf_counter()
    row = {"train_loss": float(loss.detach()), "train_acc": _accuracy(out[tr].detach(), y[tr]),
           "val_loss": float(F.nll_loss(ev[va], y[va])), "val_acc": _accuracy(ev[va], y[va]),
           "test_acc": _accuracy(ev[te], y[te]), "seconds": t2 - t0}
    if lp is not None:
        lp.reset_seconds()  # the evaluation's solves are timed as a whole
        row.update({"val_loss_serial": float(F.nll_loss(ev_serial[va], y[va])),
                    "val_acc_serial": _accuracy(ev_serial[va], y[va]),
                    "test_acc_serial": _accuracy(ev_serial[te], y[te]),
                    "seconds_eval": t2 - t1,
                    "residuals_forward": list(stats["forward"].residuals),
                    "residuals_backward": list(stats["backward"].residuals)})
        row.update({f"seconds_{k}": v for k, v in phases.items()})
    for k in hist:
        hist[k].append(row[k])
    return row


def _world(cfg: TrainConfig, partition):
    """(partition or None, rank, size) of this run: the given partition, or for a
    layer-parallel run under mpiexec an MPIPartition over MPI.COMM_WORLD."""
    if partition == "auto":
        partition = None
        if cfg.layer_parallel:
            partition = world_partition()[0]
    if partition is None or partition.size == 1:
        return partition, 0, 1
    if not cfg.layer_parallel:
        raise ValueError("a partition over several ranks needs layer_parallel=True")
    return partition, partition.rank, partition.size


def _barrier(partition) -> None:
    if partition is not None and partition.size > 1:
        partition.barrier()


def _warm_path(ckpt_path: Path, rank: int, size: int, epoch: int) -> Path:
    return ckpt_path.with_name(f"{ckpt_path.name[:-len('.ckpt.pt')]}.warm{rank}of{size}"
                               f".e{epoch}.pt")


def _load_rank_warm(path: Path, ckpt_path: Path, rank: int, size: int) -> dict:
    """Rank ``rank``'s MGRIT warm start of the checkpoint ``ckpt_path``."""
    if not path.exists():
        err = f"its MGRIT warm start {path} is missing"
    else:
        try:
            return load_checkpoint(path)
        except CheckpointError as e:
            err = str(e).split(";")[0]  # what is wrong; what to do follows
    stem = ckpt_path.name.removesuffix(".ckpt.pt")
    raise RankCheckpointError(
        f"rank {rank} of {size}: {err}; the run cannot resume from {ckpt_path} without it: "
        f"delete {ckpt_path} and its {stem}.warm*.pt files to train it again from the start")


def _recorded_error(done: dict, json_path: Path) -> Exception:
    """The divergence a result file records, raised again instead of retraining it."""
    err_type = (MGRITDivergenceError if done["diverged"]["error"] == "MGRITDivergenceError"
                else FloatingPointError)
    err = err_type(f"(recorded in {json_path}; delete it to train again) "
                   + done["diverged"]["message"])
    err.partial_result = done
    return err


_CHECKPOINT_KEYS = ("config", "model", "optimizer", "history", "best", "epoch", "rng")


def _validate(cfg: TrainConfig) -> None:
    model_kind(cfg.model)
    for name in ("epochs", "checkpoint_every"):
        v = getattr(cfg, name)
        if isinstance(v, bool) or int(v) != v or v < 1:
            raise ValueError(f"{name}={v!r}: give a whole number >= 1")


def train(
    cfg: TrainConfig,
    *,
    graph=None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
    partition="auto",
) -> dict:
    """Train one model (one seed); returns the result dict (also written as JSON to out_dir).

    ``graph`` = (data, ops) from :func:`load_graph` to share one load between runs;
    ``resume`` continues from ``out_dir``'s checkpoint (or returns a finished result; with a
    larger ``cfg.epochs`` a finished run is extended from its final checkpoint);
    ``stop_after`` stops after that many epochs in total, as a kill would: epochs after the
    last periodic checkpoint are redone on resume (tests). Ctrl-C or SIGTERM finishes the
    current epoch, checkpoints and raises KeyboardInterrupt. A diverging run (non-finite loss,
    or a layer-parallel MGRIT solve that diverges) writes its partial results and raises
    FloatingPointError / MGRITDivergenceError with what to change. A checkpoint that cannot
    be read raises :class:`~mgritlab.nn.runner.CheckpointError` naming it; a corrupt result
    JSON is ignored and rebuilt from the checkpoint.

    ``partition`` (layer-parallel runs): 'auto' splits the layers over MPI.COMM_WORLD when
    started under mpiexec; or an :class:`~mgritlab.mgrit.mpi.MPIPartition` (e.g. on
    ipyparallel engines), or None for one process. All ranks call :func:`train` alike; rank 0
    writes the JSON and the checkpoint, every rank its own MGRIT warm starts (resume on the
    same number of ranks). The result is the same on every rank.
    """
    _validate(cfg)
    partition, rank, size = _world(cfg, partition)
    lead = rank == 0
    dtype = getattr(torch, cfg.dtype)
    data, ops = graph if graph is not None else load_graph(cfg.dataset, dtype)
    out_dir = Path(out_dir) if out_dir is not None else None
    stem = f"{cfg.name}_seed{cfg.seed}"
    ckpt_path = out_dir / f"{stem}.ckpt.pt" if out_dir else None
    json_path = out_dir / f"{stem}.json" if out_dir else None
    if out_dir and lead:
        out_dir.mkdir(parents=True, exist_ok=True)
    _barrier(partition)

    seed_all(cfg.seed)
    model = build_model(cfg, data, ops, partition)
    lp = model.layer_parallel() if cfg.layer_parallel else None
    opt = build_optimizer(cfg, model)
    hist = _new_history(cfg.layer_parallel)
    best = no_best()
    start = 0

    done = read_json(json_path) if resume and json_path is not None else None
    if done is not None and _normalized(done.get("config", {})) == _normalized(asdict(cfg)):
        if done.get("finished"):
            return done
        if done.get("diverged") and done["epochs_run"] < cfg.epochs:
            raise _recorded_error(done, json_path)
    if resume and ckpt_path is not None and ckpt_path.exists():
        ck = load_checkpoint(ckpt_path, keys=_CHECKPOINT_KEYS)
        if _identity(_normalized(ck["config"])) != _identity(_normalized(asdict(cfg))):
            raise ValueError(f"checkpoint {ckpt_path} was written for a different configuration; "
                             "delete it or pass the same options as the interrupted run")
        if ck.get("ranks", 1) != size:
            raise ValueError(f"checkpoint {ckpt_path} was written by a run on {ck['ranks']} "
                             f"MPI rank(s), this one has {size}: resume it on "
                             f"{ck['ranks']} (mpiexec -n {ck['ranks']}, or --ranks), since "
                             f"each rank's MGRIT warm start is stored separately")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        hist, best, start = ck["history"], ck["best"], ck["epoch"]
        set_rng_state(ck["rng"])
        if lp is not None:
            lp.divergence_warning = ck.get("mgrit_warning")
            lp.load_warm_state(ck["warm"] if size == 1 else _load_rank_warm(
                _warm_path(ckpt_path, rank, size, start), ckpt_path, rank, size))

    def checkpoint(done: int) -> None:
        ck = {"config": asdict(cfg), "model": model.state_dict(),
              "optimizer": opt.state_dict(), "history": hist, "best": best,
              "epoch": done, "rng": rng_state(), "ranks": size}
        if lp is not None:
            ck["mgrit_warning"] = lp.divergence_warning
        if lp is not None and size == 1:
            ck["warm"] = lp.warm_state()
        elif lp is not None:  # each rank its own warm start, then the checkpoint that names it
            save_atomic(lp.warm_state(), _warm_path(ckpt_path, rank, size, done))
            _barrier(partition)
        if lead:
            save_atomic(ck, ckpt_path)
        if lp is not None and size > 1:
            _barrier(partition)
            for old in ckpt_path.parent.glob(f"{stem}.warm{rank}of{size}.e*.pt"):
                if old != _warm_path(ckpt_path, rank, size, done):
                    old.unlink(missing_ok=True)
            _barrier(partition)  # every rank's folder state is final when this returns

    def result(diverged: dict | None = None) -> dict:
        done = len(hist["val_acc"])
        r = {
            "name": cfg.name, "config": _jsonable(asdict(cfg)), "finished": done >= cfg.epochs,
            "epochs_run": done, "best_epoch": best["epoch"], "best_val_acc": best["val_acc"],
            "test_acc_at_best_val": best["test_acc"],
            "seconds_per_epoch": float(np.median(hist["seconds"])) if hist["seconds"] else None,
            "torch_threads": torch.get_num_threads(), "curves": hist, "diverged": diverged,
        }
        if cfg.learn_alpha and cfg.imex != "none":
            r["learned_alpha"] = _alpha_summary(model.block.alpha)
        if lp is not None:
            r["serial_test_acc_at_best_val"] = best.get("test_acc_serial", float("nan"))
            r["mgrit_warning"] = lp.divergence_warning  # on_divergence='warn': the first one
            r["ranks"] = size
            r["layers_per_rank"] = len(lp.local_layers())  # rank 0's share of the states
            r["held_bytes"] = {k: v.numel() * v.element_size()  # this rank's MGRIT blocks
                               for k, v in lp.warm_state().items()}
            r["seconds_per_epoch_by_phase"] = {  # medians; rank 0's clock
                k: float(np.median(hist[f"seconds_{k}"])) if hist[f"seconds_{k}"] else None
                for k in ("forward", "adjoint", "gradient", "communication", "eval")}
        if json_path is not None and lead:
            # the checkpoint is kept: a finished run can be extended with more --epochs
            write_json_atomic(r, json_path)
        return r

    keep = ("test_acc", "test_acc_serial") if lp is not None else ("test_acc",)

    def step(epoch: int) -> dict:
        nonlocal best
        row = _epoch(model, opt, data, hist, epoch, cfg)
        best = update_best(best, epoch, row, keep)
        return {"loss": f"{row['train_loss']:.3f}", "val": f"{row['val_acc']:.3f}",
                "test_at_best_val": f"{best['test_acc']:.3f}"}

    end = cfg.epochs if stop_after is None else min(cfg.epochs, stop_after)
    try:
        stopped = run_epochs(step, start=start, end=end, total=cfg.epochs,
                             checkpoint=checkpoint if ckpt_path is not None else None,
                             every=cfg.checkpoint_every, agree=lambda f: any_rank(partition, f),
                             desc=stem, progress=progress and lead)
    except (FloatingPointError, MGRITDivergenceError) as err:
        # recorded, so that a resumed sweep does not train the same divergence again
        diverged = {"epoch": len(hist["val_acc"]) + 1, "error": type(err).__name__,
                    "message": str(err)}
        err.partial_result = result(diverged)
        raise

    r = result()  # written by rank 0
    return finish_run(r, stopped=stopped, resume="--resume (resume=True)",
                      what=f"stopped after epoch {r['epochs_run']} (partial result written)")


def _alpha_summary(alpha: torch.Tensor) -> dict:
    """The learned IMEX coefficients at the end of a run ('shared' (L,), 'channel' (L, c),
    'diffusion' k² (L,)): mean, min, max, and the mean of each layer. Every rank holds all
    of them (the gradient allreduce keeps the copies equal)."""
    a = alpha.detach().double()
    return {"mean": float(a.mean()), "min": float(a.min()), "max": float(a.max()),
            "per_layer": a.reshape(a.shape[0], -1).mean(1).tolist()}


def _identity(cfg: dict) -> dict:
    """What a checkpoint must agree on: all but the epoch budget (runs may be extended)."""
    return {k: v for k, v in cfg.items() if k not in ("epochs", "checkpoint_every")}


def _normalized(cfg: dict) -> dict:
    """A stored configuration with the defaults of fields added since it was written."""
    return _jsonable(asdict(TrainConfig.from_dict(cfg)))


def _jsonable(d: dict) -> dict:
    return json.loads(json.dumps(d))


def summarize(results: list[dict]) -> dict:
    """Mean ± std (population std over seeds) of test accuracy at best validation accuracy."""
    test = np.array([r["test_acc_at_best_val"] for r in results])
    val = np.array([r["best_val_acc"] for r in results])
    spe = [r["seconds_per_epoch"] for r in results if r["seconds_per_epoch"]]
    cfg = dict(results[0]["config"])
    cfg.pop("seed", None)
    out = {
        "name": results[0]["name"], "config": cfg,
        "seeds": [r["config"]["seed"] for r in results],
        "test_acc_at_best_val": test.tolist(), "best_val_acc": val.tolist(),
        "test_mean": float(test.mean()), "test_std": float(test.std()),
        "val_mean": float(val.mean()), "val_std": float(val.std()),
        "seconds_per_epoch": float(np.median(spe)) if spe else None,
        "epochs_run": [r.get("epochs_run") for r in results],
        "finished": all(r.get("finished", True) for r in results),
    }
    if all("serial_test_acc_at_best_val" in r for r in results):
        serial = np.array([r["serial_test_acc_at_best_val"] for r in results])
        out.update(serial_test_acc_at_best_val=serial.tolist(),
                   serial_test_mean=float(serial.mean()), serial_test_std=float(serial.std()),
                   ranks=results[0].get("ranks", 1))
    return out


def train_seeds(cfg: TrainConfig, seeds, *, out_dir=None, resume: bool = False,
                progress: bool = True, partition="auto") -> dict:
    """Train one configuration for several seeds; writes ``<name>_summary.json`` to out_dir
    (on rank 0 of a layer-parallel run under MPI)."""
    graph = load_graph(cfg.dataset, getattr(torch, cfg.dtype))
    partition, rank, _ = _world(cfg, partition)
    results = [train(replace(cfg, seed=int(s)), graph=graph, out_dir=out_dir, resume=resume,
                     progress=progress, partition=partition) for s in seeds]
    summary = summarize(results)
    if out_dir is not None and rank == 0:
        write_json_atomic(summary, Path(out_dir, f"{cfg.name}_summary.json"), indent=1)
    return summary
