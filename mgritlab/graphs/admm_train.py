"""Training a GA-MLP with pdADMM-G / pdADMM-G-Q, with kept records (issue 15).

One run (:func:`train_admm`) is one :class:`ADMMRun` and one seed: the seeded He
initialisation of :mod:`mgritlab.graphs.gamlp`, then ``iterations`` pdADMM-G iterations on the
training rows. After every iteration: the residual sqrt(Σ‖p_{l+1} − q_l‖²), the relaxed
objective F and the augmented Lagrangian L_ρ, the GA-MLP's training loss and train/val/test
accuracy (a forward pass with the current W, b — pipelined over the ranks), ρ, the seconds of
the iteration alone, and the bytes of the layer-to-layer messages (:class:`admm.Traffic`).
Model selection: the test accuracy at the iteration of best validation accuracy
(:func:`mgritlab.nn.runner.update_best`). The loop is :func:`mgritlab.nn.runner.run_epochs`:
a progress bar, a checkpoint every few iterations and on Ctrl-C; ``resume=True`` continues
exactly (on P ranks each rank keeps its own layers' file).
"""
from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from ..mgrit.partition import Partition, SerialPartition
from ..mgrit.world import any_rank
from ..nn.runner import (
    finish_run,
    load_checkpoint,
    no_best,
    read_json,
    run_epochs,
    save_atomic,
    update_best,
    write_json_atomic,
)
from . import admm, gamlp

METHODS = ("pdadmm-g", "pdadmm-g-q")
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class ADMMRun:
    """What one pdADMM-G run trains and how (the defaults are the kept CORA runs)."""

    dataset: str = "Cora"
    hops: int = 5
    layers: int = 2
    hidden: int = 500
    method: str = "pdadmm-g"
    iterations: int = 60
    nu: float = 1e-3
    rho: float = 5e-3
    rho_max: float = 1.0
    adapt_rho: bool = True
    weight_decay: float = 0.0
    grid_lo: float = -1.0
    grid_hi: float = 2.0
    grid_levels: int = 256
    identity_hidden: bool = True
    stages: tuple[int, ...] = ()
    stage_iterations: int = 20
    batched: bool = True
    dtype: str = "float32"

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method={self.method!r}: choose one of {', '.join(METHODS)}")
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype={self.dtype!r}: choose float32 or float64")
        if int(self.iterations) != self.iterations or self.iterations < 1:
            raise ValueError(f"iterations={self.iterations!r}: give a whole number >= 1")
        gamlp.widths(1, self.hidden, 2, self.layers)  # the depth/width errors
        object.__setattr__(self, "stages", tuple(int(s) for s in self.stages))
        depths = self.stages + (self.layers,)
        if any(b <= a for a, b in itertools.pairwise(depths)) or any(s < 2 for s in self.stages):
            raise ValueError(f"stages={self.stages}: give increasing depths >= 2 below "
                             f"layers={self.layers}, e.g. (2, 5) for 2 → 5 → {self.layers}")
        if self.stages and (int(self.stage_iterations) != self.stage_iterations
                            or self.stage_iterations < 1):
            raise ValueError(f"stage_iterations={self.stage_iterations!r}: give a whole "
                             "number >= 1")
        self.admm()                                    # the hyperparameter errors

    def admm(self) -> admm.ADMMConfig:
        grid = (admm.Grid(self.grid_lo, self.grid_hi, self.grid_levels)
                if self.method == "pdadmm-g-q" else None)
        return admm.ADMMConfig(nu=self.nu, rho=self.rho, rho_max=self.rho_max,
                               adapt_rho=self.adapt_rho, weight_decay=self.weight_decay,
                               grid=grid)

    @property
    def torch_dtype(self) -> torch.dtype:
        return _DTYPES[self.dtype]

    @property
    def name(self) -> str:
        staged = "_staged" + "-".join(map(str, self.stages)) if self.stages else ""
        return f"{self.dataset.lower()}_L{self.layers}_{self.method}{staged}"

    @property
    def schedule(self) -> list[tuple[int, int]]:
        """(depth, iterations) of each stage, the final one last."""
        return [(d, self.stage_iterations) for d in self.stages] + [(self.layers,
                                                                     self.iterations)]

    @property
    def total_iterations(self) -> int:
        return sum(k for _, k in self.schedule)


def deepen(weights, layers: int):
    """Staged training (after the authors' 2 → 5 → 10 scripts): insert identity hidden layers
    (W = I, b = 0) before the trained output layer, so the deeper GA-MLP computes exactly what
    the trained shallower one did (ReLU of a non-negative input is itself). The authors keep
    the layers before the output layer and start a new output layer instead, which does not
    keep the function; keeping it is this package's choice."""
    W, b = weights[-2][0], weights[-2][1]
    width = W.shape[1]
    if weights[-1][0].shape[0] != width:
        raise ValueError("deepen: the hidden widths must be equal")
    eye = [(torch.eye(width, dtype=W.dtype), torch.zeros(width, dtype=b.dtype))
           for _ in range(layers - len(weights))]
    return [(w.clone(), c.clone()) for w, c in weights[:-1]] + eye + [
        (weights[-1][0].clone(), weights[-1][1].clone())]


def run_id(cfg: ADMMRun, seed: int) -> str:
    return f"{cfg.name}_seed{seed}"


def _adapt(rho: float, losses: list[float], cfg: admm.ADMMConfig) -> float:
    """The authors' adaptive ρ: ×``rho_factor`` (at most ``rho_max``) when the training loss
    has not fallen by ``adapt_tol`` in each of the last two iterations."""
    if (cfg.adapt_rho and len(losses) >= 3 and losses[-1] > losses[-2] - cfg.adapt_tol
            and losses[-2] > losses[-3] - cfg.adapt_tol):
        return min(rho * cfg.rho_factor, cfg.rho_max)
    return rho


def _metrics(st, graph: gamlp.AugmentedGraph, rows: torch.Tensor, part: Partition) -> dict:
    """Loss and accuracies of the current W, b, on every rank (the last rank computes them)."""
    scores = admm.forward_scores(st, graph.x[rows], part)
    owner = part.size - 1
    vals = None
    if scores is not None:
        ce = torch.nn.functional.cross_entropy
        pos = {int(r): i for i, r in enumerate(rows.tolist())}

        def at(idx):
            return torch.tensor([pos[int(i)] for i in idx])
        out = []
        for idx in (graph.train, graph.val, graph.test):
            z, y = scores[at(idx)], graph.y[idx]
            out += [float(ce(z.double(), y)), gamlp.accuracy(z, y)]
        vals = torch.tensor(out, dtype=torch.float64)
    vals = part.bcast_from_owner(vals, owner) if part.size > 1 else vals
    loss, train_acc, val_loss, val_acc, test_loss, test_acc = vals.tolist()
    return {"loss": loss, "train_acc": train_acc, "val_loss": val_loss, "val_acc": val_acc,
            "test_loss": test_loss, "test_acc": test_acc}


def train_admm(cfg: ADMMRun, seed: int = 0, *, out_dir: str | Path | None = None,
               resume: bool = False, progress: bool = False, checkpoint_every: int = 10,
               partition: Partition | None = None, graph: gamlp.AugmentedGraph | None = None
               ) -> dict:
    """Train one run; returns its record (rank 0 writes ``<run id>.json`` into ``out_dir``)."""
    part = SerialPartition() if partition is None else partition
    out = Path(out_dir) if out_dir is not None else None
    rid = run_id(cfg, seed)
    json_path = out / f"{rid}.json" if out else None
    suffix = "" if part.size == 1 else f".rank{part.rank}of{part.size}"
    ckpt = out / f"{rid}{suffix}.pt" if out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
        if resume:
            done = read_json(json_path)
            if done is not None and done.get("finished") and done.get("ranks") == part.size:
                return done
    if graph is None:
        graph = gamlp.load_augmented(cfg.dataset, cfg.hops, dtype=cfg.torch_dtype)
    elif graph.x.dtype != cfg.torch_dtype:
        graph = replace(graph, x=graph.x.to(cfg.torch_dtype))
    acfg = cfg.admm()
    sizes = gamlp.widths(graph.num_features, cfg.hidden, graph.num_classes, cfg.layers)
    weights = gamlp.init_weights(sizes, seed, dtype=cfg.torch_dtype,
                                 identity_hidden=cfg.identity_hidden)
    schedule = cfg.schedule
    first_depth = schedule[0][0]
    if first_depth < cfg.layers:
        weights = weights[:first_depth - 1] + [weights[-1]]
    xt, yt = graph.x[graph.train], graph.y[graph.train]
    st = admm.init_state(xt, yt, weights, acfg, partition=part, batched=cfg.batched)
    ends = [sum(k for _, k in schedule[:i + 1]) for i in range(len(schedule))]
    rows = torch.cat([graph.train, graph.val, graph.test])
    history: list[dict] = []
    best, start = no_best(), 0
    if resume and ckpt is not None and ckpt.exists():
        ck = load_checkpoint(ckpt, keys=("state", "history", "best", "iteration"))
        st, history, best, start = ck["state"], ck["history"], ck["best"], ck["iteration"]

    def step(it: int) -> dict:
        nonlocal best, st
        stage = next(i for i, e in enumerate(ends) if it < e)
        if stage > 0 and it == ends[stage - 1]:   # the first iteration of a deeper stage
            st = _deepened(st, schedule[stage][0], xt, yt, acfg, part, cfg.batched)
        traffic = admm.Traffic()
        t0 = time.perf_counter()
        info = admm.iterate(st, acfg, part, traffic)
        seconds = time.perf_counter() - t0
        row = {**info, **_metrics(st, graph, rows, part), "seconds": seconds,
               **traffic.as_dict()}
        row["layers"] = schedule[stage][0]
        history.append(row)
        if stage == len(schedule) - 1:  # model selection over the final depth only
            best = update_best(best, it + 1, row)
        st.loss_history.append(row["loss"])
        st.rho = _adapt(st.rho, st.loss_history, acfg)
        return {"res": f"{info['residual']:.2e}", "val": f"{row['val_acc']:.3f}"}

    def record(finished: bool) -> dict:
        h = history
        return {"id": rid, "config": asdict(cfg), "seed": seed, "finished": finished,
                "iterations_done": len(h), "ranks": part.size, "history": h, "best": best,
                "final": {k: h[-1][k] for k in ("train_acc", "val_acc", "test_acc", "loss",
                                                 "residual")} if h else None,
                "rho_bound": admm.rho_bound(cfg.nu), "rho_ok": cfg.rho > admm.rho_bound(cfg.nu),
                "seconds_per_iteration": sum(r["seconds"] for r in h) / max(len(h), 1),
                "interface_bytes_per_iteration": h[-1]["interface_bytes"] if h else 0,
                "torch": torch.__version__, "threads": torch.get_num_threads()}

    def save(done: int) -> None:
        if ckpt is None:
            return
        save_atomic({"state": st, "history": history, "best": best, "iteration": done}, ckpt)
        if part.rank == 0:
            write_json_atomic(record(False), json_path)

    total = cfg.total_iterations
    stopped = run_epochs(step, start=start, end=total, total=total,
                         checkpoint=save if ckpt is not None else None, every=checkpoint_every,
                         agree=lambda flag: any_rank(part, flag), desc=rid, progress=progress)
    rec = record(not stopped)
    return finish_run(rec, stopped=stopped, json_path=json_path, lead=part.rank == 0,
                      what=f"{rid} stopped after iteration {rec['iterations_done']}",
                      resume=f"resume=True ({ckpt})" if ckpt else None)


def _deepened(st, layers, xt, yt, acfg, part, batched):
    """The state of a deeper stage: the trained W, b with identity layers inserted, z/p/q
    from the forward pass, u = 0, the current ρ kept."""
    weights = _all_weights(st, part)
    new = admm.init_state(xt, yt, deepen(weights, layers), acfg, partition=part,
                          batched=batched)
    new.rho, new.loss_history = st.rho, list(st.loss_history)
    return new


def _all_weights(st, part):
    """Every layer's (W, b) on every rank, in layer order (for deepening)."""
    mine = [(W.clone(), b.clone()) for W, b in st.weights()]
    if part.size == 1:
        return mine
    return [wb for chunk in part.comm.allgather(mine) for wb in chunk]


def train_adam_run(dataset: str, layers: int, seed: int, *, hops: int = 5, hidden: int = 500,
                   epochs: int = 200, out_dir: str | Path | None = None, resume: bool = False,
                   graph: gamlp.AugmentedGraph | None = None, identity_hidden: bool = False
                   ) -> dict:
    """The Adam baseline on the same GA-MLP, kept as ``<dataset>_L<layers>_adam_seed<s>.json``
    (He initialisation; ``identity_hidden``: hidden-to-hidden layers start at W = I, as the
    deeper pdADMM-G stages do — ``…_adam-identity_…``)."""
    kind = "adam-identity" if identity_hidden else "adam"
    rid = f"{dataset.lower()}_L{layers}_{kind}_seed{seed}"
    path = Path(out_dir) / f"{rid}.json" if out_dir is not None else None
    if resume and path is not None:
        done = read_json(path)
        if done is not None and done.get("finished"):
            return done
    if graph is None:
        graph = gamlp.load_augmented(dataset, hops)
    rec = gamlp.train_adam(graph, layers=layers, hidden=hidden, seed=seed, epochs=epochs,
                           identity_hidden=identity_hidden)
    rec.update(id=rid, dataset=dataset, hops=hops, finished=True, torch=torch.__version__)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(rec, path)
    return rec

