"""Training GRU classifiers — classic, implicit, layer-parallel implicit — with kept records.

One run (:func:`train`) is one :class:`GRUConfig` and one seed: Adam on the cross-entropy in
mini-batches, every epoch the loss, the validation and test accuracy by **serial inference**
(the exact recurrence) and, for a layer-parallel run, by **parallel inference** too (T₁ MGRIT
iterations forward, as the seed compares: Cyr slides, "Classic/Implicit/Parallel GRU
Comparisons"), the MGRIT residuals and the seconds of training. Model selection: the test
accuracy at the epoch of best validation accuracy (:func:`mgritlab.nn.runner.update_best`),
for each inference. The loop is :func:`mgritlab.nn.runner.run_epochs`: a progress bar, a
checkpoint every few epochs and on Ctrl-C, ``resume=True`` continues exactly.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn

from ..mgrit.world import any_rank
from ..nn.runner import (
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
from .datasets import SequenceData, load_basic_motions, synthetic_sequences
from .model import GRUClassifier

DATASETS = ("basicmotions", "adding", "pattern")


@dataclass(frozen=True)
class GRUConfig:
    """What one training run is (the record's identity; the seed is separate)."""

    data: str = "basicmotions"
    steps: int = 96
    samples: int = 512              # synthetic tasks: training sequences (val, test: a quarter)
    hidden: int = 32
    num_layers: int = 1
    scheme: str = "implicit"        # 'classic' or 'implicit'
    parallel: bool = False
    levels: int = 3
    cf: int = 4
    fwd_iters: int = 2
    bwd_iters: int = 1
    epochs: int = 60
    lr: float = 1e-2
    batch_size: int = 8
    dtype: str = "float32"

    def __post_init__(self):
        if self.data not in DATASETS:
            raise ValueError(f"data must be one of {DATASETS}, got {self.data!r}")
        if self.scheme not in ("classic", "implicit"):
            raise ValueError(f"scheme must be 'classic' or 'implicit', got {self.scheme!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        for name in ("steps", "samples", "hidden", "num_layers", "epochs", "batch_size",
                     "fwd_iters", "bwd_iters"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if self.parallel:
            GRUClassifier.check_length(self.steps, self.levels, self.cf)

    @property
    def name(self) -> str:
        kind = (f"lp{self.levels}x{self.cf}_T{self.fwd_iters}{self.bwd_iters}"
                if self.parallel else "serial")
        return f"{self.data}_N{self.steps}_{self.scheme}_{kind}_H{self.hidden}L{self.num_layers}"


def load_data(cfg: GRUConfig, seed: int = 0) -> SequenceData:
    """The data of ``cfg`` (the synthetic tasks drawn with ``seed``; BasicMotions is fixed)."""
    dtype = getattr(torch, cfg.dtype)
    if cfg.data == "basicmotions":
        return load_basic_motions(steps=cfg.steps, dtype=dtype)
    return synthetic_sequences(cfg.samples, cfg.steps, task=cfg.data, seed=seed, dtype=dtype)


def build_model(cfg: GRUConfig, data: SequenceData, seed: int, partition=None) -> GRUClassifier:
    lp = dict(max_levels=cfg.levels, cf=cfg.cf, fwd_iters=cfg.fwd_iters,
              bwd_iters=cfg.bwd_iters)
    if partition is not None:
        lp["partition"] = partition
    return GRUClassifier(data.channels, cfg.hidden, data.num_classes, cfg.steps,
                         num_layers=cfg.num_layers, scheme=cfg.scheme, parallel=cfg.parallel,
                         seed=seed, dtype=getattr(torch, cfg.dtype),
                         **(lp if cfg.parallel else {}))


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(loss, accuracy) of ``model`` on (x, y), in eval mode."""
    was = model.training
    model.eval()
    out = model(x)
    model.train(was)
    loss = float(nn.functional.cross_entropy(out, y))
    return loss, float((out.argmax(dim=1) == y).double().mean())


def run_id(cfg: GRUConfig, seed: int) -> str:
    key = json.dumps({**asdict(cfg), "seed": seed}, sort_keys=True)
    return f"{cfg.name}_seed{seed}_{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def train(cfg: GRUConfig, seed: int = 0, *, out_dir: str | Path | None = None,
          resume: bool = False, progress: bool = False, checkpoint_every: int = 5,
          partition=None) -> dict:
    """Train one run; returns its record (and writes ``<run id>.json`` into ``out_dir``).

    With ``out_dir`` a checkpoint ``<run id>.pt`` is kept every ``checkpoint_every`` epochs;
    ``resume=True`` returns a finished record as it is and continues an unfinished one from
    its checkpoint, with the same result as an uninterrupted run.
    """
    out = Path(out_dir) if out_dir is not None else None
    rid = run_id(cfg, seed)
    json_path = out / f"{rid}.json" if out else None
    ckpt = out / f"{rid}.pt" if out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
        if resume:
            done = read_json(json_path)
            if done is not None and done.get("finished"):
                return done
    seed_all(seed)
    data = load_data(cfg, seed)
    model = build_model(cfg, data, seed, partition)
    serial = model.serial()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    g = torch.Generator().manual_seed(seed)
    keys = ["train_loss", "val_loss", "val_acc", "test_acc", "seconds"]
    if cfg.parallel:
        keys += ["val_acc_parallel", "test_acc_parallel", "fwd_residual", "bwd_residual"]
    curves = {k: [] for k in keys}
    best = {"serial": no_best(), "parallel": no_best()}
    start = 0
    if resume and ckpt is not None and ckpt.exists():
        ck = load_checkpoint(ckpt, keys=("model", "optimizer", "generator", "curves", "best",
                                         "epoch", "rng"))
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        g.set_state(ck["generator"])
        curves, best, start = ck["curves"], ck["best"], ck["epoch"]
        set_rng_state(ck["rng"])
    n = data.x_train.shape[0]
    model.train()

    def step(epoch: int) -> dict:
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=g)
        total = 0.0
        for s in range(0, n, cfg.batch_size):
            idx = perm[s: s + cfg.batch_size]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * idx.numel()
        clock = curves["seconds"][-1] if curves["seconds"] else 0.0
        curves["seconds"].append(clock + time.perf_counter() - t0)
        curves["train_loss"].append(total / n)
        if not all(map(torch.isfinite, (p.detach().sum() for p in model.parameters()))):
            raise FloatingPointError(f"{cfg.name}: the parameters became non-finite in epoch "
                                     f"{epoch + 1}; lower lr={cfg.lr}")
        vl, va = evaluate(serial, data.x_val, data.y_val)
        _, ta = evaluate(serial, data.x_test, data.y_test)
        curves["val_loss"].append(vl)
        curves["val_acc"].append(va)
        curves["test_acc"].append(ta)
        best["serial"] = update_best(best["serial"], epoch + 1,
                                     {"val_acc": va, "val_loss": vl, "test_acc": ta})
        shown = {"loss": f"{total / n:.3f}", "val": f"{va:.3f}"}
        if cfg.parallel:
            lp = model.layer_parallel()
            curves["fwd_residual"].append(lp.stats["forward"].residuals[-1])
            curves["bwd_residual"].append(lp.stats["backward"].residuals[-1])
            pvl, pva = evaluate(model, data.x_val, data.y_val)
            _, pta = evaluate(model, data.x_test, data.y_test)
            curves["val_acc_parallel"].append(pva)
            curves["test_acc_parallel"].append(pta)
            best["parallel"] = update_best(best["parallel"], epoch + 1,
                                           {"val_acc": pva, "val_loss": pvl, "test_acc": pta})
        return shown

    def record(finished: bool) -> dict:
        return {"id": rid, "config": asdict(cfg), "seed": seed, "finished": finished,
                "epochs_done": len(curves["train_loss"]), "curves": curves,
                "best": best["serial"], "best_parallel": best["parallel"] if cfg.parallel
                else None, "ranks": partition.size if partition is not None else 1,
                "torch": torch.__version__, "threads": torch.get_num_threads()}

    def save(done: int) -> None:
        if ckpt is None or (partition is not None and partition.rank != 0):
            return
        save_atomic({"model": model.state_dict(), "optimizer": opt.state_dict(),
                     "generator": g.get_state(), "curves": curves, "best": best,
                     "epoch": done, "rng": rng_state()}, ckpt)
        write_json_atomic(record(False), json_path)

    stopped = run_epochs(step, start=start, end=cfg.epochs, total=cfg.epochs,
                         checkpoint=save if ckpt is not None else None, every=checkpoint_every,
                         agree=lambda flag: any_rank(partition, flag), desc=cfg.name,
                         progress=progress)
    rec = record(not stopped)
    return finish_run(rec, stopped=stopped, json_path=json_path,
                      lead=partition is None or partition.rank == 0,
                      what=f"{cfg.name} stopped after epoch {rec['epochs_done']}",
                      resume=f"resume=True ({ckpt})" if ckpt else None)


def comparison(data: str = "basicmotions", *, quick: bool = False, seeds=(0, 1, 2),
               out_dir=None, resume: bool = False, progress: bool = False, **overrides
               ) -> list[dict]:
    """Classic vs implicit vs layer-parallel implicit GRU (3 levels, c_f 4, T₁ = 2, T₂ = 1),
    one record per (configuration, seed). ``quick``: 6 epochs, one seed (for the lesson's CI
    run)."""
    base = GRUConfig(data=data, **overrides)
    if quick:
        base, seeds = replace(base, epochs=min(base.epochs, 6)), tuple(seeds)[:1]
    configs = [replace(base, scheme="classic"), replace(base, scheme="implicit"),
               replace(base, scheme="implicit", parallel=True)]
    return [train(c, s, out_dir=out_dir, resume=resume, progress=progress)
            for s in seeds for c in configs]


def summary(records: list[dict]) -> list[dict]:
    """Mean and spread over seeds per configuration: test accuracy at best validation by
    serial (and parallel) inference, seconds per epoch."""
    import statistics as st

    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault(GRUConfig(**r["config"]).name, []).append(r)
    rows = []
    for name, rs in groups.items():
        acc = [r["best"]["test_acc"] for r in rs]
        row = {"config": name, "seeds": len(rs), "test_acc": st.mean(acc),
               "test_acc_sd": st.pstdev(acc),
               "seconds_per_epoch": st.mean(r["curves"]["seconds"][-1] / r["epochs_done"]
                                            for r in rs)}
        if rs[0]["best_parallel"] is not None:
            row["test_acc_parallel"] = st.mean(r["best_parallel"]["test_acc"] for r in rs)
        rows.append(row)
    return rows


def format_summary(rows: list[dict]) -> str:
    """The summary as a Markdown table."""
    lines = ["| configuration | seeds | test acc. (serial inference) | test acc. (parallel "
             "inference) | s/epoch |", "|---|---|---|---|---|"]
    for r in rows:
        par = f"{100 * r['test_acc_parallel']:.1f} %" if "test_acc_parallel" in r else "—"
        lines.append(f"| {r['config']} | {r['seeds']} | {100 * r['test_acc']:.1f} % ± "
                     f"{100 * r['test_acc_sd']:.1f} | {par} | {r['seconds_per_epoch']:.2f} |")
    return "\n".join(lines)
