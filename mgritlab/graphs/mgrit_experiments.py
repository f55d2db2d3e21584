"""PDE-GCN-D trained with MGRIT on CORA: the thesis's §5.2–5.3 experiments as functions.

Every run is layer-parallel training (:func:`~mgritlab.graphs.train.train` with
``layer_parallel=True``) with the thesis's MGRIT settings — T₁ = 2 forward and T₂ = 1 backward
iterations, warm starts, F-relaxation on the fine level and FCF on the coarse levels — and the
tuned serial hyperparameters of :func:`~mgritlab.graphs.train.preset` (64-layer CORA: the
authors' settings). The experiments:

* :func:`alpha_sweep` — figs. 5.6–5.9: 64 layers, (levels, cf) ∈ {(2,2), (2,4), (3,2), (3,4)},
  a shared IMEX term α ∈ {0, 0.1, 1, 2.5, 5, 10} on every level. The thesis finds the best α
  1.0, 2.5, 2.5, 5.0 ("grows with the number of levels and cf").
* :func:`coarse_only_sweep` — fig. 5.10: the same α on the coarse levels only (explicit fine
  level, ``level_alpha=[0, α, …]``) beside α on all levels; the thesis found no advantage.
* :func:`serial_reference` — the serial network (α = 0) that every accuracy is compared with.
* :func:`parallel_sweep` and :func:`parallel_timing` — figs. 5.11–5.13: 64 and 256 layers at
  the best α per hierarchy, and the time axis: the measured training step on 1 and 2 ranks,
  and the critical-path model's at 32 and 64 ranks from the measured per-layer costs
  (:func:`wall_time_table`, :func:`plot_accuracy_vs_time`; :func:`plot_coarse_only` draws
  fig. 5.10).
* :func:`stable_alpha` — the analysis the thesis left open (§6.2): the smallest α per level
  from the linearised layer's spectrum, to set beside the best α of the sweep;
  :func:`pair_bounds` — the two-level MGRIT bound of each level pair for the same spectrum,
  at 64 and 256 layers (a stable level is not yet a convergent hierarchy).
* :func:`forward_error_sweep` — fig. 5.10's open question (would more MGRIT iterations help
  α on the coarse levels only?): the error of the layer-parallel forward after k iterations
  against the exact one, for the initial networks.

An explicit coarse level past its stability limit makes the MGRIT residual grow. As the
thesis's α = 0 curves (shown to the last epoch) suggest its runs did, the sweeps train on
through it (``on_divergence='warn'``) and keep
the solver's first warning — which names the level and the α that would stabilise it — in the
record; a run whose states turn non-finite, or one trained with ``on_divergence='raise'``, is
recorded as diverged at that epoch, with the curves up to there.
Records are tidy dicts (one per run); model selection as everywhere in the package: the test
accuracy at the epoch of best validation accuracy, measured with the layer-parallel forward and
with the exact serial forward.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np

HIERARCHIES = ((2, 2), (2, 4), (3, 2), (3, 4))  # (levels, cf)
ALPHAS = (0.0, 0.1, 1.0, 2.5, 5.0, 10.0)
THESIS_BEST_ALPHA = {(2, 2): 1.0, (2, 4): 2.5, (3, 2): 2.5, (3, 4): 5.0}  # figs. 5.6–5.9
EPOCHS = 150  # §5.3
SWEEP_LAYERS = 64  # the depth of the α sweep (figs. 5.6–5.10), where the best α is chosen
# fig. 5.12's caption: 256 layers, 3 levels, cf 4, 64 processes, 150 epochs
THESIS_256 = dict(layers=256, levels=3, cf=4, ranks=64, serial_s=7000.0, parallel_s=2000.0)

QUICK = dict(layers=16, channels=16, epochs=6, hierarchies=((2, 2), (3, 4)),
             alphas=(0.0, 1.0, 5.0), seeds=(0,))


def lp_config(levels: int, cf: int, alpha: float, *, layers: int = SWEEP_LAYERS,
              epochs: int = EPOCHS, coarse_only: bool = False, dataset: str = "Cora", seed: int = 0,
              channels: int | None = None, on_divergence: str = "warn",
              h: float | None = None):
    """The TrainConfig of one MGRIT run: the tuned serial settings, MGRIT with (levels, cf),
    T₁ = 2, T₂ = 1, and a shared α on all levels (or on the coarse levels only).

    ``on_divergence='warn'`` (default here) trains on through a growing MGRIT residual, as the
    thesis's α = 0 curves (shown to the last epoch) suggest its runs did; the record keeps the
    solver's first warning. 'raise' stops such a run at once (a recorded divergence). ``h``: the
    layer step (default the preset's for this depth: 0.8 at 64 layers)."""
    from .train import preset

    base = preset(dataset, layers)
    if channels is not None:
        base = replace(base, channels=channels)
    if h is not None:
        base = replace(base, h=float(h))
    if coarse_only and alpha == 0:
        raise ValueError("coarse_only with alpha=0 is the explicit network: use alpha > 0")
    level_alpha = [0.0] + [float(alpha)] * (levels - 1) if coarse_only else None
    return replace(base, epochs=epochs, seed=int(seed), layer_parallel=True, levels=levels,
                   cf=cf, fwd_iters=2, bwd_iters=1, relax="auto", cycle="V", warm_start=True,
                   imex="none" if alpha == 0 else "shared", alpha=float(alpha),
                   level_alpha=level_alpha, on_divergence=on_divergence)


def run(cfg, *, graph=None, out_dir=None, resume: bool = False, progress: bool = False,
        experiment: str = "") -> dict:
    """Train one configuration; a diverging MGRIT solve is a result, not an error."""
    from ..mgrit import MGRITDivergenceError
    from .train import train

    try:
        r = train(cfg, graph=graph, out_dir=out_dir, resume=resume, progress=progress)
    except MGRITDivergenceError as err:
        r = err.partial_result
    return record(r, experiment)


def record(r: dict, experiment: str = "") -> dict:
    """The tidy record of a result dict of :func:`~mgritlab.graphs.train.train`."""
    cfg, c = r["config"], r["curves"]
    la = cfg.get("level_alpha")
    return {
        "experiment": experiment, "layers": cfg["layers"],
        "parallel": bool(cfg.get("layer_parallel")),
        "levels": cfg.get("levels") if cfg.get("layer_parallel") else 1,
        "cf": cfg.get("cf") if cfg.get("layer_parallel") else None,
        "alpha": cfg["alpha"] if cfg["imex"] != "none" else 0.0,
        "coarse_only": la is not None and la[0] == 0.0, "seed": cfg["seed"],
        "epochs_run": r["epochs_run"], "finished": r["finished"],
        "diverged": r.get("diverged"),
        "mgrit_warning": r.get("mgrit_warning"),
        "best_epoch": r["best_epoch"], "best_val_acc": r["best_val_acc"],
        "test_acc_at_best_val": r["test_acc_at_best_val"],
        "serial_test_acc_at_best_val": r.get("serial_test_acc_at_best_val",
                                             r["test_acc_at_best_val"]),
        "seconds_per_epoch": r["seconds_per_epoch"],
        "seconds_per_epoch_by_phase": r.get("seconds_per_epoch_by_phase"),
        "ranks": r.get("ranks", 1),
        "val_acc": c["val_acc"], "test_acc": c["test_acc"],
        "test_acc_serial": c.get("test_acc_serial", c["test_acc"]),
        "train_loss": c["train_loss"], "seconds": c["seconds"],
        "forward_ratio": forward_ratio(c.get("residuals_forward")),
    }


def forward_ratio(residuals) -> list[float] | None:
    """Per epoch, the forward MGRIT solve's second residual over its first (T₁ = 2: how much
    the last iteration gained; at or above 1 it gained nothing), nan for an epoch without two
    residuals; None for a run without residual histories (the serial network)."""
    if not residuals:
        return None
    return [r[1] / r[0] if len(r) > 1 and r[0] > 0 else float("nan") for r in residuals]


def _options(quick: bool, **given) -> dict:
    full = dict(layers=SWEEP_LAYERS, channels=None, epochs=EPOCHS, hierarchies=HIERARCHIES,
                alphas=ALPHAS, seeds=(0, 1, 2))
    opts = dict(QUICK if quick else full)
    opts.update({k: v for k, v in given.items() if v is not None})
    return opts


def _seed_major(configs, seeds):
    """Seed 0 of every configuration first: an interrupted sweep covers all of them early."""
    return [(replace(cfg, seed=int(s)), s) for s in seeds for cfg in configs]


def serial_reference(*, quick: bool = False, layers=None, channels=None, epochs=None,
                     seeds=None, dataset: str = "Cora", graph=None, out_dir=None,
                     resume: bool = False, progress: bool = False) -> list[dict]:
    """The serial network (α = 0, the tuned settings) for the same epochs and seeds."""
    from .train import load_graph, preset

    o = _options(quick, layers=layers, channels=channels, epochs=epochs, seeds=seeds)
    graph = graph if graph is not None else load_graph(dataset)
    base = replace(preset(dataset, o["layers"]), epochs=o["epochs"])
    if o["channels"] is not None:
        base = replace(base, channels=o["channels"])
    return [run(cfg, graph=graph, out_dir=out_dir, resume=resume, progress=progress,
                experiment="serial") for cfg, _ in _seed_major([base], o["seeds"])]


def alpha_sweep(*, quick: bool = False, layers=None, channels=None, epochs=None,
                hierarchies=None, alphas=None, seeds=None, dataset: str = "Cora", graph=None,
                out_dir=None, resume: bool = False, progress: bool = False,
                h: float | None = None) -> list[dict]:
    """Figs. 5.6–5.9: every (levels, cf) × α, the shared α on all levels.

    ``quick``: 16 layers, 16 channels, 6 epochs, (2,2) and (3,4), α ∈ {0, 1, 5}, seed 0 —
    about a minute; the full sweep (64 layers, 150 epochs, 24 configurations × 3 seeds) is
    about a day on one core (run it in the background with ``resume``)."""
    from .train import load_graph

    o = _options(quick, layers=layers, channels=channels, epochs=epochs,
                 hierarchies=hierarchies, alphas=alphas, seeds=seeds)
    graph = graph if graph is not None else load_graph(dataset)
    configs = [lp_config(lv, cf, a, layers=o["layers"], epochs=o["epochs"], dataset=dataset,
                         channels=o["channels"], h=h) for lv, cf in o["hierarchies"]
               for a in o["alphas"]]
    return [run(cfg, graph=graph, out_dir=out_dir, resume=resume, progress=progress,
                experiment="alpha") for cfg, _ in _seed_major(configs, o["seeds"])]


def coarse_only_sweep(best: dict, *, quick: bool = False, layers=None, channels=None,
                      epochs=None, seeds=None, dataset: str = "Cora", graph=None,
                      out_dir=None, resume: bool = False, progress: bool = False,
                      h: float | None = None) -> list[dict]:
    """Fig. 5.10: for each (levels, cf) in ``best`` ({(levels, cf): α}), α on the coarse
    levels only (the explicit network on the fine level). Compare with the α-on-all-levels
    runs of :func:`alpha_sweep` (the same files: resume reuses them)."""
    from .train import load_graph

    o = _options(quick, layers=layers, channels=channels, epochs=epochs, seeds=seeds)
    graph = graph if graph is not None else load_graph(dataset)
    configs = [lp_config(lv, cf, a, layers=o["layers"], epochs=o["epochs"], dataset=dataset,
                         channels=o["channels"], coarse_only=True, h=h)
               for (lv, cf), a in best.items() if a > 0]
    return [run(cfg, graph=graph, out_dir=out_dir, resume=resume, progress=progress,
                experiment="coarse_only") for cfg, _ in _seed_major(configs, o["seeds"])]


# -- figs. 5.11–5.13: accuracy against wall time ---------------------------------------------
def parallel_sweep(best: dict, *, layers_list=(64, 256), epochs=None, seeds=None,
                   quick: bool = False, dataset: str = "Cora", graph=None, out_dir=None,
                   resume: bool = False, progress: bool = False,
                   serial: bool = True) -> list[dict]:
    """Figs. 5.11–5.13: for each depth, the serial network (unless not ``serial``) and every
    (levels, cf) in ``best`` at its α (on all levels), trained for 150 epochs (one process:
    the accuracies are the same on any number of ranks). Pair with
    :func:`epoch_seconds_on_ranks` for the time axis."""
    from .train import load_graph

    o = _options(quick, epochs=epochs, seeds=seeds)
    graph = graph if graph is not None else load_graph(dataset)
    out = []
    for L in layers_list:
        if serial:
            out += serial_reference(layers=L, channels=o["channels"], epochs=o["epochs"],
                                    seeds=o["seeds"], dataset=dataset, graph=graph,
                                    out_dir=out_dir, resume=resume, progress=progress)
        configs = [lp_config(lv, cf, a, layers=L, epochs=o["epochs"], dataset=dataset,
                             channels=o["channels"]) for (lv, cf), a in best.items()
                   if L % cf ** (lv - 1) == 0]
        out += [run(cfg, graph=graph, out_dir=out_dir, resume=resume, progress=progress,
                    experiment="alpha") for cfg, _ in _seed_major(configs, o["seeds"])]
    return out


def epoch_seconds_on_ranks(cfg, ranks: int, *, epochs: int = 3, timeout: float = 3600.0,
                           graph=None) -> dict:
    """Wall seconds of the training step (median over ``epochs`` after the first) of ``cfg``
    on ``ranks`` MPI ranks, by phase (rank 0's clock): ``tasks.train_pdegcn_layer_parallel``
    under ``mpiexec -n ranks`` (one torch thread per rank); where ``ranks`` is 1 the same
    training in this process, on one thread. The evaluation is not part of the step.

    A serial ``cfg`` (``layer_parallel=False``; ``ranks`` 1) times ``train.train_step`` —
    forward, loss, backward, Adam — the step the serial curves of figs. 5.11–5.13 stand on.
    A layer-parallel run on one rank also returns ``other_s`` (the step less its MGRIT
    phases: opening/closing maps, loss, Adam), which :func:`modelled_step_seconds` needs."""
    from dataclasses import asdict

    from ..cluster import mpi_call
    from .train import TrainConfig, train

    row = {"ranks": int(ranks), "layers": cfg.layers,
           "levels": cfg.levels if cfg.layer_parallel else 1,
           "cf": cfg.cf if cfg.layer_parallel else None,
           "alpha": float(cfg.alpha) if cfg.imex != "none" else 0.0}
    if not cfg.layer_parallel:
        if ranks != 1:
            raise ValueError(f"the serial network runs on one process: ranks=1, not {ranks}")
        return {**row, "step_s": _serial_step_seconds(cfg, epochs, graph)}
    config = dict(asdict(cfg), epochs=epochs)
    if ranks == 1:
        with _timed_in_process():
            rec = train(TrainConfig.from_dict(config), graph=graph, progress=False)
    else:
        rec = mpi_call("mgritlab.tasks:train_pdegcn_layer_parallel", ranks, timeout=timeout,
                       config=config)
    c = rec["curves"]
    step = [t - e for t, e in zip(c["seconds"], c["seconds_eval"])][1:] or c["seconds"]
    row["step_s"] = float(np.median(step))
    for ph in PHASES:
        xs = c[f"seconds_{ph}"][1:] or c[f"seconds_{ph}"]
        row[f"{ph}_s"] = float(np.median(xs))
    if ranks == 1:
        row["other_s"] = max(row["step_s"] - sum(row[f"{ph}_s"] for ph in PHASES), 0.0)
    return row


PHASES = ("forward", "adjoint", "gradient", "communication")


@contextmanager
def _timed_in_process():
    """One torch thread (as each rank of an mpiexec run); afterwards the caller's thread count
    and global random generators as they were (a timed run seeds and draws from them)."""
    import torch

    from ..nn.runner import rng_state, set_rng_state

    threads, state = torch.get_num_threads(), rng_state()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        set_rng_state(state)


def _serial_step_seconds(cfg, steps: int, graph=None) -> float:
    import time

    from ..nn.runner import seed_all
    from .train import build_model, build_optimizer, load_graph, train_step

    data, ops = graph if graph is not None else load_graph(cfg.dataset)
    with _timed_in_process():
        seed_all(cfg.seed)
        model = build_model(cfg, data, ops)
        opt = build_optimizer(cfg, model)
        times = []
        for _ in range(max(int(steps), 2)):
            t0 = time.perf_counter()
            train_step(model, opt, data)
            times.append(time.perf_counter() - t0)
    return float(np.median(times[1:]))


TIMING_FILE = "mgrit_parallel_timing.json"
WALL_TIME_RANKS = {64: 32, 256: 64}  # figs. 5.11 (64 layers, 32 processes) and 5.12–5.13


def wall_time_ranks(layers: int) -> int:
    """The ranks of the thesis's time axis at ``layers`` layers (half the depth elsewhere)."""
    return WALL_TIME_RANKS.get(layers, max(layers // 2, 1))


def parallel_timing(best: dict, *, layers_list=(64, 256), quick: bool = False,
                    dataset: str = "Cora", graph=None, ranks=(1, 2), epochs: int = 3,
                    repeats: int = 3) -> list[dict]:
    """The time axis of figs. 5.11–5.13: per depth, the serial step and each (levels, cf) of
    ``best`` at its α on ``ranks`` (:func:`epoch_seconds_on_ranks`), the one-rank rows with
    the per-layer costs of :func:`layer_costs_of` for the critical-path model. A rank count
    is left out where a rank would hold less than one coarsest interval.

    Every (configuration, ranks) is measured ``repeats`` times, interleaved (all of them once,
    then all again), so that a slow spell of a shared machine falls on every configuration
    rather than on one; a row keeps each repetition's step in ``step_s_runs`` and the median
    of the repetitions in ``step_s`` and each phase."""
    from .train import load_graph, preset

    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    graph = graph if graph is not None else load_graph(dataset)
    jobs = []  # (config, ranks), in the order of the rows
    channels = QUICK["channels"] if quick else None
    for L in layers_list:
        serial = preset(dataset, L)
        if channels is not None:
            serial = replace(serial, channels=channels)
        jobs.append((serial, 1))
        for (lv, cf), a in sorted(best.items()):
            if L % cf ** (lv - 1):
                continue
            cfg = lp_config(lv, cf, a, layers=L, channels=channels, dataset=dataset)
            jobs += [(cfg, P) for P in ranks if L // cf ** (lv - 1) >= P]
    runs = [[epoch_seconds_on_ranks(cfg, P, epochs=epochs, graph=graph) for cfg, P in jobs]
            for _ in range(int(repeats))]
    rows = []
    for j, (cfg, P) in enumerate(jobs):
        each = [rep[j] for rep in runs]
        row = {k: (float(np.median([r[k] for r in each])) if k.endswith("_s") else v)
               for k, v in each[0].items()}
        row["step_s_runs"] = [r["step_s"] for r in each]
        if P == 1 and cfg.layer_parallel:
            row["layer_costs"] = layer_costs_of(cfg, graph=graph)
        rows.append(row)
    return rows


def timed_alpha(timing: list[dict], layers: int) -> dict:
    """{(levels, cf): α} that :func:`parallel_timing` timed at ``layers`` layers."""
    return {(t["levels"], t["cf"]): t["alpha"] for t in timing
            if t["layers"] == layers and t["cf"] is not None}


def _load_rows(path: Path, what: str, remake: str) -> list[dict]:
    """The list of rows kept in ``path`` ([] when it does not exist yet); a file that is no
    such list raises a ValueError naming it and the command (``remake``) that writes it."""
    import json

    if not path.exists():
        return []
    try:
        rows = json.loads(path.read_text())
    except ValueError as err:
        rows = err
    if not isinstance(rows, list):
        raise ValueError(f"{path} is not a list of {what} rows ({rows}); delete it and run "
                         f"{remake}")
    return rows


def load_timing(out_dir) -> list[dict]:
    """The rows of :func:`parallel_timing` kept in ``out_dir`` ([] when not measured yet)."""
    return _load_rows(Path(out_dir) / TIMING_FILE, "timing",
                      "experiment pdegcn-mgrit parallel --resume to measure them again")


def layer_costs_of(cfg, *, graph=None, reps: int = 5, mask_seed: int = 1) -> dict:
    """Seconds per layer of ``cfg``'s layer step, adjoint step, linearisation and design
    gradient (``nn.cost_model.layer_costs``) at the initial network's opening state, with one
    draw of the training-mode dropout masks, on one thread: the costs the critical-path model
    of figs. 5.11–5.13 multiplies."""
    from ..nn.cost_model import layer_costs

    with _timed_in_process():
        model, f0, frozen = _initial_layer_inputs(cfg, graph, mask_seed)
        return layer_costs(model.block, f0, frozen, reps=reps)


def _initial_layer_inputs(cfg, graph, mask_seed: int):
    """The initial network of ``cfg`` (evaluation mode), its opening map's output on the
    graph's features, and one draw (``mask_seed``) of the frozen training-mode dropout masks
    of the layers: what a layer is linearised or timed at before training."""
    import torch

    from ..nn.frozen import FrozenDropout
    from .train import build_model, load_graph

    data, ops = graph if graph is not None else load_graph(cfg.dataset)
    model = build_model(cfg, data, ops).eval()
    with torch.no_grad():
        f0 = model.open(data.x)
    return model, f0, FrozenDropout({"grad": cfg.dropout}, mask_seed)


def modelled_step_seconds(one_rank: dict, ranks: int, *, fwd_iters: int = 2,
                          bwd_iters: int = 1) -> float:
    """The critical-path model's training step on ``ranks`` ranks (``nn.cost_model.
    epoch_model``, XBraid's per-level split, no communication) from a one-rank row of
    :func:`epoch_seconds_on_ranks` that carries ``layer_costs`` (:func:`layer_costs_of`) and
    ``other_s``."""
    from ..nn.cost_model import epoch_model

    missing = [k for k in ("layer_costs", "other_s") if k not in one_rank]
    if one_rank.get("ranks") != 1 or missing:
        raise ValueError("modelled_step_seconds needs the one-rank timing row of a "
                         "layer-parallel run with 'layer_costs' and 'other_s' (experiment "
                         f"pdegcn-mgrit parallel writes it); this row lacks {missing or 'ranks=1'}")
    return epoch_model(one_rank["layer_costs"], one_rank["layers"], ranks,
                       levels=one_rank["levels"], cf=one_rank["cf"], fwd_iters=fwd_iters,
                       bwd_iters=bwd_iters, other=one_rank["other_s"])["total"]


def wall_time_table(records: list[dict], timing: list[dict], best: dict, *, layers: int,
                    ranks: int, epochs: int = EPOCHS) -> list[dict]:
    """Figs. 5.11–5.13 as numbers: for the serial network and each (levels, cf) of ``best``
    at its α, at ``layers`` layers — the measured seconds per training step on 1 and 2 ranks,
    the model's at ``ranks`` (measured where ``timing`` has that rank count), the training
    time to ``epochs`` epochs at ``ranks`` (the serial network: one process), its speedup
    over the serial network, and the test accuracy at best validation (mean over the
    finished seeds). Evaluation time is left out of every time."""
    def steps(lv, cf, a=0.0):
        return {t["ranks"]: t for t in timing if t["layers"] == layers
                and (t["levels"], t["cf"], t["alpha"]) == (lv, cf, a)}

    def accuracy(pred):
        rs = [r for r in ended(records) if r["layers"] == layers and pred(r)]
        acc = [r["test_acc_at_best_val"] for r in rs]
        return (float(np.mean(acc)) if acc else float("nan")), len(rs)

    serial = steps(1, None).get(1)
    if serial is None:
        raise ValueError(f"no serial timing at {layers} layers: run experiment pdegcn-mgrit "
                         "parallel (it times the serial step too)")
    acc, n = accuracy(lambda r: r["experiment"] == "serial")
    t_serial = serial["step_s"] * epochs
    rows = [{"config": "serial", "levels": 1, "cf": None, "alpha": 0.0, "step_1": serial["step_s"],
             "step_2": None, "two_rank_speedup": None, "step_P": serial["step_s"],
             "modelled": False,
             "time_to_epochs": t_serial, "speedup": 1.0, "test_acc": acc, "seeds": n}]
    for (lv, cf), a in sorted(best.items()):
        t = steps(lv, cf, a)
        if 1 not in t:
            continue  # not timed at this depth (the depth does not fit the hierarchy)
        measured = ranks in t
        step_P = t[ranks]["step_s"] if measured else modelled_step_seconds(t[1], ranks)
        acc, n = accuracy(lambda r, lv=lv, cf=cf, a=a: r["experiment"] == "alpha"
                          and (r["levels"], r["cf"], r["alpha"]) == (lv, cf, a))
        rows.append({"config": f"{lv} levels, cf {cf}", "levels": lv, "cf": cf, "alpha": a,
                     "step_1": t[1]["step_s"], "step_2": t[2]["step_s"] if 2 in t else None,
                     "two_rank_speedup": _paired_ratios(t[1], t.get(2)),
                     "step_P": step_P, "modelled": not measured,
                     "time_to_epochs": step_P * epochs,
                     "speedup": t_serial / (step_P * epochs), "test_acc": acc, "seeds": n})
    return rows


def _paired_ratios(one: dict, two: dict | None) -> tuple | None:
    """(1-rank step / 2-rank step of the medians, and the smallest and largest of the ratios
    of the repetitions, paired in order — None where the rows lack ``step_s_runs``), or None
    without a 2-rank row."""
    if two is None:
        return None
    a, b = one.get("step_s_runs"), two.get("step_s_runs")
    paired = [x / y for x, y in zip(a, b)] if a and b and len(a) == len(b) > 1 else None
    return (one["step_s"] / two["step_s"],
            (min(paired), max(paired)) if paired else None)


def format_wall_time(rows: list[dict], *, layers: int, ranks: int,
                     epochs: int = EPOCHS) -> str:
    """:func:`wall_time_table` as text."""
    def s(x):
        return "-" if x is None else f"{x:.3f}"

    def x2(sp):
        if sp is None:
            return "-"
        ratio, spread = sp
        return f"{ratio:.2f}" + ("" if spread is None else f" [{spread[0]:.2f}, {spread[1]:.2f}]")

    lines = [f"{layers} layers: seconds per training step, and the training time to {epochs} "
             f"epochs on {ranks} ranks (m: the critical-path model; serial: one process; "
             f"2/1: the 1-rank step over the 2-rank one, [its range over the repetitions])",
             f"{'configuration':<18} {'α':>4} {'1 rank':>7} {'2 ranks':>7} {'2/1':>17} "
             f"{f'{ranks} ranks':>9} {'to ' + str(epochs) + ' ep. s':>11} {'speedup':>7} "
             f"{'test %':>6} {'seeds':>5}"]
    for r in rows:
        p = f"{r['step_P']:.3f}" + ("m" if r["modelled"] else " ")
        acc = "-" if not r["seeds"] else f"{100 * r['test_acc']:.2f}"  # no run kept yet
        lines.append(f"{r['config']:<18} {r['alpha']:>4g} {s(r['step_1']):>7} "
                     f"{s(r['step_2']):>7} {x2(r.get('two_rank_speedup')):>17} {p:>9} "
                     f"{r['time_to_epochs']:>11.0f} {r['speedup']:>7.2f} "
                     f"{acc:>6} {r['seeds']:>5}")
    return "\n".join(lines)


# -- the analysis the thesis left open (§6.2) ------------------------------------------------
def stable_alpha(hierarchies=HIERARCHIES, *, layers: int = SWEEP_LAYERS, dataset: str = "Cora",
                 graph=None, seed: int = 0, mask_seed: int = 1) -> list[dict]:
    """The smallest shared α that makes every coarse level's explicit-part step stable, from
    the spectrum of the linearised layer of the *initial* network (thesis §6.2 asks how α
    should be chosen; lesson 08's analysis, ``stability.min_alpha``).

    ρ is the spectral radius of ∂r_l/∂f at the opening map's output, largest over the first,
    middle and last layer, in evaluation mode (no dropout) and in training mode (one draw of
    the frozen masks, p of the preset). Level ℓ steps H = cf^ℓ·h; α_ℓ = min_alpha([−ρ], H).
    Returns one record per (levels, cf) with the α each mode needs (the largest over levels).
    """
    from ..stability import min_alpha
    from .train import preset

    cfg = replace(preset(dataset, layers), seed=seed)
    model, f0, frozen = _initial_layer_inputs(cfg, graph, mask_seed)
    ks = sorted({0, layers // 2, layers - 1})
    rho = {"eval": max(model.block.spectral_radius(f0, k) for k in ks),
           "train": max(model.block.spectral_radius(f0, k, frozen) for k in ks)}
    out = []
    for levels, cf in hierarchies:
        rec = {"levels": levels, "cf": cf, "layers": layers, "h": cfg.h,
               "rho_eval": rho["eval"], "rho_train": rho["train"]}
        for mode in ("eval", "train"):
            per = {lv: min_alpha([-rho[mode]], cf ** lv * cfg.h) for lv in range(1, levels)}
            rec[f"alpha_{mode}_per_level"] = per
            rec[f"alpha_{mode}"] = max(per.values())
        out.append(rec)
    return out


# how the README's two computed tables begin: the formatters write these, update_readme finds
# the tables by them
STABLE_HEAD = "| levels | cf | ρ eval |"
PAIR_HEAD = "| layers | h | levels | cf | pair (relaxation) |"
LINEAR_HEAD = "| levels | cf | α | where |"


def format_stable_alpha(rows: list[dict], records: list[dict] | None = None) -> str:
    """:func:`stable_alpha` as a markdown table, beside the best α of the finished sweep in
    ``records`` (:func:`best_alpha`, with the seeds it rests on) and the thesis's."""
    runs = sweep_runs(ended(records or []))
    best = best_alpha(runs)
    lines = [STABLE_HEAD + " ρ train | α per level (train) | α needed (train) | "
             "sweep's best α (seeds) | thesis best α |",
             "|---:|---:|---:|---:|---|---:|---:|---:|"]
    for r in rows:
        key = (r["levels"], r["cf"])
        per = ", ".join(f"ℓ{lv}: {a:.2f}" for lv, a in sorted(r["alpha_train_per_level"].items()))
        a = best.get(key)
        found = "-" if a is None else f"{a:g} ({_alpha_seeds(runs, key, a)})"
        lines.append(f"| {key[0]} | {key[1]} | {r['rho_eval']:.3f} | {r['rho_train']:.3f} | "
                     f"{per} | {r['alpha_train']:.2f} | {found} | "
                     f"{THESIS_BEST_ALPHA.get(key, float('nan')):g} |")
    return "\n".join(lines)


PAIR_BOUND_ALPHAS = (0.5, 1.0, 2.5, 5.0, 10.0)
PAIR_BOUND_DEPTHS = (64, 256)


def pair_bounds(rho: dict, hierarchies=HIERARCHIES, alphas=PAIR_BOUND_ALPHAS,
                depths=PAIR_BOUND_DEPTHS, *, dataset: str = "Cora",
                points: int = 2001) -> list[dict]:
    """The two-level bound (:func:`mgritlab.stability.two_level_bounds`, Dobrev et al. 2017)
    of each level pair ℓ−1 → ℓ of every hierarchy, for the linearised layer with eigenvalues
    on [−ρ, 0] and a shared α on all levels. In evaluation mode they are real: ∂r/∂f =
    (K⊗G)ᵀ S (K⊗G) with S = diag(σ') ≥ 0. A dropout mask between K and G breaks that
    symmetry; the training-mode rows assume real eigenvalues as :func:`stable_alpha` does.

    On level ℓ−1 the step is h_ℓ−1 = cf^(ℓ−1)·h (h from :func:`~mgritlab.graphs.train.preset`
    at each depth) with the factor R = 1 + h_ℓ−1 λ/(1 + h_ℓ−1 α) of the IMEX step f − h M r(f)
    (``stability.R_imex``), and level ℓ takes N/cf^ℓ steps of cf·h_ℓ−1. The fine level relaxes
    with F, the coarser ones with FCF, so pair 1 gets the F bound and the others the FCF bound.
    The pairs are bounded one at a time (each with an exact solve below it): a reading of the
    hierarchy, not a bound on it. ``rho``: {'eval': ρ, 'train': ρ} (:func:`stable_alpha`).
    One record per (layers, levels, cf, pair, α, mode)."""
    from ..stability import R_imex, two_level_bounds
    from .train import preset

    out = []
    for layers in depths:
        h = preset(dataset, layers).h
        for levels, cf in hierarchies:
            for lv in range(1, levels):
                h_f, n_c = cf ** (lv - 1) * h, layers // cf ** lv
                for mode, r in rho.items():
                    lam = -np.linspace(0.0, float(r), points)
                    for a in alphas:
                        b = two_level_bounds(R_imex(h_f * lam, h_f * a),
                                             R_imex(cf * h_f * lam, cf * h_f * a), cf, n_c)
                        out.append(dict(layers=layers, h=h, levels=levels, cf=cf, pair=lv,
                                        relax="F" if lv == 1 else "FCF", n_c=n_c, alpha=a,
                                        mode=mode, rho=float(r),
                                        bound=b[0] if lv == 1 else b[1]))
    return out


def format_pair_bounds(rows: list[dict]) -> str:
    """:func:`pair_bounds` as a markdown table: one row per (layers, hierarchy, pair), one
    column per α, each cell 'evaluation mode / training mode' (above 100: '>100')."""
    alphas = sorted({r["alpha"] for r in rows})
    cell = {(r["layers"], r["levels"], r["cf"], r["pair"], r["alpha"], r["mode"]): r
            for r in rows}
    keys = sorted({(r["layers"], r["levels"], r["cf"], r["pair"]) for r in rows})

    def num(b):
        return ">100" if b > 100 else f"{b:.2f}"

    lines = [PAIR_HEAD + " N_c | "
             + " | ".join(f"α = {a:g}" for a in alphas) + " |",
             "|---:|---:|---:|---:|---|---:|" + "---:|" * len(alphas)]
    for L, lv, cf, pair in keys:
        first = cell[(L, lv, cf, pair, alphas[0], "eval")]
        vals = [f"{num(cell[(L, lv, cf, pair, a, 'eval')]['bound'])} / "
                f"{num(cell[(L, lv, cf, pair, a, 'train')]['bound'])}" for a in alphas]
        lines.append(f"| {L} | {first['h']:g} | {lv} | {cf} | {pair - 1}→{pair} "
                     f"({first['relax']}) | {first['n_c']} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


# -- fig. 5.10: do more MGRIT iterations help? -----------------------------------------------
FORWARD_ERROR_FILE = "mgrit_forward_error.json"
FORWARD_ERROR_ITERATIONS = 8
FORWARD_ERROR_SHOWN = (1, 2, 4, 8)  # the columns of format_forward_error


def forward_error(cfg, *, iterations: int = FORWARD_ERROR_ITERATIONS, graph=None,
                  mask_seed: int = 1) -> list[dict]:
    """The relative error e_k = ‖x_N^(k) − x_N‖ / ‖x_N‖ of the layer-parallel forward after
    k = 1 … ``iterations`` MGRIT iterations from zero against the exact serial forward x_N,
    for the *initial* network of ``cfg`` (its seed), at the opening map's output: one record
    in evaluation mode and one with a draw (``mask_seed``) of the training-mode dropout masks.

    The thesis (§5.2, on fig. 5.10) says α on the coarse levels only "can potentially be
    different if more MGRIT iterations are performed"; its runs, and the sweep here, take
    T₁ = 2. With F-relaxation on the fine level the solve is exact after N/cf iterations at
    most (the exact front moves one coarse interval per iteration; Falgout et al. 2014,
    lesson 03), so ``iterations`` well below N/cf is the question: e_k for the k training can
    afford. Each record keeps the residual history too (it is not the error: it measures the
    fine equations at the C-points)."""
    import torch

    model, f0, frozen = _initial_layer_inputs(cfg, graph, mask_seed)
    lp = model.layer_parallel()
    la = cfg.level_alpha
    where = "coarse" if la is not None and la[0] == 0.0 else ("all" if cfg.alpha else "-")
    out = []
    for mode, fr in (("eval", None), ("train", frozen)):
        exact = lp.serial_forward(f0, fr)
        errors: list[float] = []

        def error(k, x, exact=exact, errors=errors):
            errors.append(float(torch.linalg.vector_norm(x - exact)
                                / torch.linalg.vector_norm(exact)))

        residuals = lp.forward_iterates(f0, fr, iterations, callback=error)
        out.append({"layers": cfg.layers, "levels": cfg.levels, "cf": cfg.cf, "h": cfg.h,
                    "alpha": cfg.alpha if cfg.imex != "none" else 0.0, "where": where,
                    "seed": cfg.seed, "mask_seed": mask_seed, "mode": mode,
                    "error": errors, "residual": [float(r) for r in residuals]})
    return out


def forward_error_sweep(best: dict, *, quick: bool = False, layers=None, channels=None,
                        seeds=None, iterations: int | None = None, dataset: str = "Cora",
                        graph=None, progress: bool = False) -> list[dict]:
    """:func:`forward_error` for each (levels, cf) of ``best`` ({(levels, cf): α}): α on all
    levels, α on the coarse levels only (fig. 5.10) and no IMEX term (α = 0), on ``seeds``
    (default 0–2; quick: 16 layers, 16 channels, seed 0, 4 iterations). A few minutes at 64
    layers on one core: no training, one forward solve per record."""
    from .train import load_graph

    o = _options(quick, layers=layers, channels=channels, seeds=seeds)
    iterations = iterations or (4 if quick else FORWARD_ERROR_ITERATIONS)
    graph = graph if graph is not None else load_graph(dataset)
    configs = []
    for (lv, cf), a in best.items():
        variants = [(a, False), (a, True), (0.0, False)] if a > 0 else [(0.0, False)]
        configs += [lp_config(lv, cf, al, layers=o["layers"], dataset=dataset,
                              channels=o["channels"], coarse_only=co) for al, co in variants]
    todo = _seed_major(configs, o["seeds"])
    if progress:
        from tqdm.auto import tqdm
        todo = tqdm(todo, desc="forward error", unit="network")
    return [row for cfg, _ in todo
            for row in forward_error(cfg, iterations=iterations, graph=graph)]


def load_forward_error(out_dir) -> list[dict]:
    """The rows of :func:`forward_error_sweep` kept in ``out_dir`` ([] when not run yet)."""
    return _load_rows(Path(out_dir) / FORWARD_ERROR_FILE, "forward-error",
                      "experiment pdegcn-mgrit forward-error to compute them again")


def format_forward_error(rows: list[dict], records: list[dict] | None = None) -> str:
    """:func:`forward_error_sweep` as a table: the mean over seeds of e_k at k = 1, 2, 4, 8
    per (levels, cf, α, where α acts, mode), beside the test accuracy of the trained runs of
    the same configuration in ``records`` (mean at best validation; '-' where none)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        key = (r["layers"], r["levels"], r["cf"], r["alpha"], r["where"], r["mode"])
        groups.setdefault(key, []).append(r)
    acc = {(a["layers"], a["levels"], a["cf"], a["alpha"],
            "coarse" if a["coarse_only"] else ("all" if a["alpha"] else "-")): a["test_mean"]
           for a in aggregate([r for r in ended(records or []) if r["parallel"]])}
    ks = [k for k in FORWARD_ERROR_SHOWN
          if any(len(r["error"]) >= k for r in rows)]
    lines = ["relative error of the layer-parallel forward after k MGRIT iterations from zero, "
             "initial networks (mean over seeds; T₁ = 2 in training):",
             f"{'L':>3} {'lv':>2} {'cf':>2} {'α':>4} {'where':<6} {'mode':<5} "
             + " ".join(f"{'k=' + str(k):>8}" for k in ks)
             + f" {'seeds':>5} {'trained test %':>14}"]
    order = {"all": 0, "coarse": 1, "-": 2}
    for key in sorted(groups, key=lambda k: (k[0], k[1], k[2], order[k[4]], k[5])):
        L, lv, cf, a, where, mode = key
        rs = groups[key]
        e = [np.mean([r["error"][k - 1] for r in rs]) if all(len(r["error"]) >= k for r in rs)
             else float("nan") for k in ks]
        t = acc.get((L, lv, cf, a, where))
        lines.append(f"{L:>3} {lv:>2} {cf:>2} {a:>4g} {where:<6} {mode:<5} "
                     + " ".join(f"{x:>8.3f}" for x in e)
                     + f" {len(rs):>5} {'-' if t is None else f'{100 * t:.1f}':>14}")
    return "\n".join(lines)


def linear_forward_error(rho: float, best: dict, *, layers: int = SWEEP_LAYERS,
                         dataset: str = "Cora", iterations: int = FORWARD_ERROR_ITERATIONS,
                         points: int = 201) -> list[dict]:
    """The linear model of :func:`forward_error_sweep` in evaluation mode: e_k of the
    layer-parallel forward for the diagonal problem with one mode per eigenvalue λ on
    [−ρ, 0] (the linearised layer's real spectrum, as in :func:`pair_bounds`), every mode
    weighted alike, level ℓ stepping by R = 1 + h_ℓλ/(1 + h_ℓα_ℓ) (``stability.R_imex``,
    h_ℓ = cf^ℓ·h), run by the package's MGRIT (:func:`mgritlab.mgrit.linear.diagonal_errors`:
    zero guess, F fine, FCF coarse). For each (levels, cf) of ``best`` ({(levels, cf): α}):
    α on all levels, on the coarse levels only (α_0 = 0, fig. 5.10) and none. A model, not
    a fit: no ReLU, no weights, no dropout, and the network's modes are not weighted alike.
    One record per (levels, cf, where); a few seconds."""
    from ..mgrit.linear import diagonal_errors
    from ..stability import R_imex
    from .train import preset

    h = preset(dataset, layers).h
    lam = -np.linspace(0.0, float(rho), points)
    out = []
    for (levels, cf), a in sorted(best.items()):
        for where, alphas in (("all", [a] * levels), ("coarse", [0.0] + [a] * (levels - 1)),
                              ("-", [0.0] * levels)):
            factors = [np.real(R_imex(cf ** lv * h * lam, cf ** lv * h * al))
                       for lv, al in enumerate(alphas)]
            out.append(dict(layers=layers, h=h, levels=levels, cf=cf,
                            alpha=a if where != "-" else 0.0, where=where, rho=float(rho),
                            error=diagonal_errors(factors, cf, layers, iterations)))
    return out


def format_linear_forward_error(rows: list[dict], measured: list[dict] | None = None) -> str:
    """:func:`linear_forward_error` as a markdown table: e_k of the linear model at k = 1, 2,
    4, 8 beside the measured evaluation-mode e_k of the initial networks (mean over seeds of
    ``measured``, :func:`forward_error_sweep`'s rows; '-' where none)."""
    groups: dict[tuple, list[dict]] = {}
    for r in measured or []:
        if r["mode"] == "eval":
            groups.setdefault((r["layers"], r["levels"], r["cf"], r["alpha"], r["where"]),
                              []).append(r)
    ks = FORWARD_ERROR_SHOWN
    lines = [LINEAR_HEAD + " " + " | ".join(f"model k={k}" for k in ks) + " | "
             + " | ".join(f"measured k={k}" for k in ks) + " |",
             "|---:|---:|---:|---|" + "---:|" * (2 * len(ks))]
    order = {"all": 0, "coarse": 1, "-": 2}
    for r in sorted(rows, key=lambda r: (r["layers"], r["levels"], r["cf"], order[r["where"]])):
        rs = groups.get((r["layers"], r["levels"], r["cf"], r["alpha"], r["where"]), [])
        meas = [f"{np.mean([m['error'][k - 1] for m in rs]):.3f}"
                if rs and all(len(m["error"]) >= k for m in rs) else "-" for k in ks]
        model = [f"{r['error'][k - 1]:.3f}" if len(r["error"]) >= k else "-" for k in ks]
        lines.append(f"| {r['levels']} | {r['cf']} | {r['alpha']:g} | {r['where']} | "
                     + " | ".join(model + meas) + " |")
    return "\n".join(lines)


# -- summaries --------------------------------------------------------------------------------
def aggregate(records: list[dict]) -> list[dict]:
    """Mean/std over seeds per (experiment, layers, levels, cf, α, coarse_only)."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        key = (r["experiment"], r["layers"], r["levels"], r["cf"], r["alpha"], r["coarse_only"])
        groups.setdefault(key, []).append(r)
    rows = []
    for (exp, L, lv, cf, a, co), rs in groups.items():
        ok = [r for r in rs if r["best_epoch"] >= 0]  # runs with at least one evaluated epoch
        t = np.array([r["test_acc_at_best_val"] for r in ok])
        ts = np.array([r["serial_test_acc_at_best_val"] for r in ok])
        v = np.array([r["best_val_acc"] for r in ok])
        nan = float("nan")
        rows.append({"experiment": exp, "layers": L, "levels": lv, "cf": cf, "alpha": a,
                     "coarse_only": co, "seeds": len(rs),
                     "test_mean": float(t.mean()) if ok else nan,
                     "test_std": float(t.std()) if ok else nan,
                     "serial_test_mean": float(ts.mean()) if ok else nan,
                     "val_mean": float(v.mean()) if ok else nan,
                     "diverged": sum(bool(r["diverged"]) for r in rs),
                     "warned": sum(bool(r.get("mgrit_warning")) for r in rs),
                     "finished": sum(bool(r["finished"]) for r in rs)})
    return rows


def best_alpha(records: list[dict], *, allow_unstable: bool = False) -> dict:
    """{(levels, cf): α} with the highest mean validation accuracy at its best epoch (the
    honest choice: test accuracy does not select), among configurations none of whose runs
    diverged and — unless ``allow_unstable`` — none of whose runs was unstable (an MGRIT
    residual grew and training went on, ``on_divergence='warn'``).

    Unstable runs are left out because an α at which a coarse level amplifies is no setting to
    recommend, even where one seed's accuracy happens to be high (seed 0 of 2 levels, cf 4,
    α = 1 in ``results/pdegcn_mgrit``); a hierarchy with no stable α is then absent. The
    thesis does not say how it treated such runs; ``allow_unstable=True`` selects among them.
    A partial run (stopped before its last epoch, e.g. one still training in ``--out``) is
    left out: its best validation accuracy so far is no measure of the configuration.
    Give the runs of one depth (the sweep's): the rows of every depth in ``records`` compete.
    """
    best: dict[tuple, tuple] = {}
    for row in aggregate([r for r in ended(records) if r["experiment"] == "alpha"]):
        if row["diverged"] or (row["warned"] and not allow_unstable):
            continue
        key = (row["levels"], row["cf"])
        if key not in best or row["val_mean"] > best[key][1]:
            best[key] = (row["alpha"], row["val_mean"])
    return {k: v[0] for k, v in sorted(best.items())}


def format_table(records: list[dict]) -> str:
    """Test accuracy at best validation accuracy per configuration (mean ± std over seeds),
    with the layer-parallel forward and the exact serial forward; 'unstable' counts the runs
    whose MGRIT residual grew (on_divergence='warn'), 'diverged' those that stopped, and
    'partial' those still short of their last epoch (their best so far is in the means)."""
    lines = [f"{'experiment':<12} {'L':>3} {'lv':>2} {'cf':>2} {'α':>5} {'where':<7} "
             f"{'val %':>6} {'test % (LP fwd)':>16} {'serial fwd':>10} {'seeds':>5} "
             f"{'unstable':>8} {'diverged':>8} {'partial':>7}"]
    order = {"serial": 0, "alpha": 1, "coarse_only": 2}
    rows = sorted(aggregate(records), key=lambda r: (r["layers"], order.get(r["experiment"], 3),
                                                     r["levels"], r["cf"] or 0, r["alpha"]))
    for r in rows:
        where = "coarse" if r["coarse_only"] else ("all" if r["alpha"] else "-")
        lines.append(
            f"{r['experiment']:<12} {r['layers']:>3} {r['levels']:>2} {r['cf'] or '-':>2} "
            f"{r['alpha']:>5g} {where:<7} {100 * r['val_mean']:>6.2f} "
            f"{100 * r['test_mean']:>8.2f} ± {100 * r['test_std']:<5.2f} "
            f"{100 * r['serial_test_mean']:>10.2f} {r['seeds']:>5} {r['warned']:>8} "
            f"{r['diverged']:>8} {r['seeds'] - r['finished'] - r['diverged']:>7}")
    return "\n".join(lines)


def sweep_progress(records: list[dict], *, seeds=(0, 1, 2), layers: int = SWEEP_LAYERS,
                   hierarchies=HIERARCHIES) -> tuple[int, int]:
    """(finished, planned) runs of the α sweep of figs. 5.6–5.9 at ``layers`` layers: every
    (levels, cf) of ``hierarchies`` × α of the protocol for each of ``seeds``."""
    plan = {(lv, cf, a, s) for lv, cf in hierarchies for a in ALPHAS for s in seeds}
    done = {(r["levels"], r["cf"], r["alpha"], r["seed"]) for r in ended(records)
            if r["experiment"] == "alpha" and r["layers"] == layers}
    return len(plan & done), len(plan)


def report(records: list[dict], *, seeds=(0, 1, 2), timing: list[dict] | None = None,
           forward: list[dict] | None = None) -> str:
    """What a kept sweep holds: the blocks of :func:`report_blocks`, one blank line apart."""
    return "\n\n".join(report_blocks(records, seeds=seeds, timing=timing, forward=forward))


def report_blocks(records: list[dict], *, seeds=(0, 1, 2),
                  timing: list[dict] | None = None,
                  forward: list[dict] | None = None) -> list[str]:
    """The blocks of :func:`report`, each one fenced block of the results README: the status
    (finished runs of the serial reference, the α sweep and fig. 5.10 against the full
    protocol of ``seeds``; the best α per (levels, cf) from the finished runs, with the seeds
    it rests on, beside the thesis's), :func:`format_table`, with ``forward``
    (:func:`load_forward_error`) :func:`format_forward_error`, and with ``timing``
    (:func:`load_timing`) one block of :func:`format_wall_time` tables, one per timed depth."""
    runs = ended(records)
    n = len(seeds)

    def count(exp, layers=SWEEP_LAYERS):
        return sum(r["experiment"] == exp and r["layers"] == layers for r in runs)

    partial = len(records) - len(runs)
    done, planned = sweep_progress(runs, seeds=seeds)
    lines = [f"finished at 64 layers: serial {count('serial')} of {n}, α sweep "
             f"{done} of {planned}, α on the coarse levels "
             f"only (fig. 5.10) {count('coarse_only')} of {len(HIERARCHIES) * n}"
             + (f"; {partial} partial run(s) left out" if partial else "")]
    sweep = sweep_runs(runs)  # the 256-layer runs at its best α must not count
    best = best_alpha(sweep)
    for key, thesis in THESIS_BEST_ALPHA.items():
        a = best.get(key)
        found = ("none stable yet" if a is None
                 else f"{a:g} ({_alpha_seeds(sweep, key, a)} seed(s))")
        lines.append(f"best α at {key[0]} levels, cf {key[1]}: {found}; thesis {thesis:g}")
    blocks = ["\n".join(lines), format_table(runs)]
    if forward:
        blocks.append(format_forward_error(forward, runs))
    walls = []
    for L in sorted({t["layers"] for t in timing or []}):
        P = wall_time_ranks(L)
        walls.append(format_wall_time(wall_time_table(runs, timing, timed_alpha(timing, L),
                                                      layers=L, ranks=P), layers=L, ranks=P))
    return blocks + (["\n\n".join(walls)] if walls else [])


def update_readme(out_dir, *, stable_rows: list[dict] | None = None, graph=None) -> Path:
    """Rewrite the computed parts of ``out_dir``/README.md from the finished runs kept there:
    the fenced blocks :func:`report` prints (status, table, forward-error and wall-time
    tables; a block is found by the start of its first line) and, where the README has it,
    the table of :func:`format_stable_alpha` (from ``stable_rows``, else
    :func:`stable_alpha` on ``graph``), the table of :func:`format_pair_bounds` for its ρ and
    that of :func:`format_linear_forward_error` for its evaluation-mode ρ.
    The prose around them is left as it is. Raises ValueError, changing nothing, where a
    block is missing or repeated."""
    import re

    path = Path(out_dir) / "README.md"
    if not path.exists():
        raise ValueError(f"{path} does not exist: write the README (commands and prose) first; "
                         "update_readme only rewrites its computed blocks")
    runs = ended(load(out_dir))
    text = old = path.read_text()
    for new in report_blocks(runs, timing=load_timing(out_dir),
                             forward=load_forward_error(out_dir)):
        # a block is known by the start of its first line (up to a colon, else its first
        # word), not the whole line: counts and column headings change
        line = new.split("\n", 1)[0]
        first = line.split(":", 1)[0] if ":" in line else line.split(None, 1)[0]
        pattern = re.compile(r"```\n" + re.escape(first) + r"[^\n]*\n.*?```", re.S)
        found = pattern.findall(text)
        if len(found) != 1:
            raise ValueError(f"{path}: {len(found)} fenced blocks begin with {first!r} (need "
                             "one): paste report's block there once, then update again")
        text = pattern.sub(lambda m, new=new: "```\n" + new + "\n```", text)
    if STABLE_HEAD in text:
        rows = stable_rows if stable_rows is not None else stable_alpha(graph=graph)
        text = _replace_table(text, STABLE_HEAD, format_stable_alpha(rows, runs))
        rho = {"eval": rows[0]["rho_eval"], "train": rows[0]["rho_train"]}
        text = _replace_table(text, PAIR_HEAD, format_pair_bounds(pair_bounds(rho)))
        if LINEAR_HEAD in text:
            linear = linear_forward_error(rho["eval"], best_alpha(sweep_runs(runs)))
            text = _replace_table(text, LINEAR_HEAD, format_linear_forward_error(
                linear, load_forward_error(out_dir)))
    if text != old:
        path.write_text(text)
    return path


def _replace_table(text: str, head: str, table: str) -> str:
    """``text`` with the markdown table that begins with ``head`` (up to the next blank line)
    replaced by ``table``; as it was where it has no such table."""
    if head not in text:
        return text
    start = text.index(head)
    end = text.find("\n\n", start)
    end = len(text) if end < 0 else end
    return text[:start] + table.rstrip("\n") + text[end:]


def ended(records: list[dict]) -> list[dict]:
    """The runs of ``records`` that reached their last epoch or stopped diverged (a partial
    run's best validation accuracy so far is no measure of its configuration)."""
    return [r for r in records if r["finished"] or r["diverged"]]


def sweep_runs(records: list[dict]) -> list[dict]:
    """The runs of ``records`` at the α sweep's depth (:data:`SWEEP_LAYERS`): give these to
    :func:`best_alpha`, which ranks the rows of every depth it is given."""
    return [r for r in records if r["layers"] == SWEEP_LAYERS]


def _alpha_seeds(records: list[dict], key: tuple, alpha: float) -> int:
    """How many α-sweep runs of ``records`` the α ``alpha`` of (levels, cf) ``key`` rests on."""
    return sum(r["experiment"] == "alpha" and (r["levels"], r["cf"], r["alpha"]) == (*key, alpha)
               for r in records)


def load(out_dir) -> list[dict]:
    """The records of every run kept in ``out_dir`` (finished or diverged, or partial), as
    :func:`run` returns them — e.g. the full sweep in ``results/pdegcn_mgrit``."""
    from ..nn.runner import read_json

    records = []
    for path in sorted(Path(out_dir).glob("*_seed*.json")):
        r = read_json(path)  # a corrupt file: a warning, and its run is left out
        if r is None:
            continue
        cfg = r["config"]
        if cfg.get("model", "pdegcn") != "pdegcn":
            continue
        la = cfg.get("level_alpha")
        exp = ("serial" if not cfg.get("layer_parallel") else
               "coarse_only" if la is not None and la[0] == 0.0 else "alpha")
        records.append(record(r, exp))
    return records


def save(records: list[dict], path) -> None:
    from ..nn.runner import write_json_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(records, path)  # a unique temporary: two sweeps may share --out


def _mean_curve(rs: list[dict], metric: str) -> np.ndarray:
    cs = [np.asarray(r[metric], dtype=float) for r in rs]
    n = min(len(c) for c in cs)
    return np.mean([c[:n] for c in cs], axis=0)


def plot_alpha_curves(records: list[dict], levels: int, cf: int, metric: str = "test_acc",
                      ax=None, serial: list[dict] | None = None):
    """One panel of figs. 5.6–5.9: ``metric`` per epoch (mean over seeds) for every α."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.4))
    runs: dict[float, list] = {}
    for r in records:
        if (r["experiment"], r["levels"], r["cf"]) == ("alpha", levels, cf):
            runs.setdefault(r["alpha"], []).append(r)
    for a, rs in sorted(runs.items()):
        y = _mean_curve(rs, metric)
        ax.plot(np.arange(1, len(y) + 1), y, label=f"α = {a:g}")
    if serial:
        y = _mean_curve(serial, metric)
        ax.plot(np.arange(1, len(y) + 1), y, "k--", label="serial, α = 0")
    ax.set_title(f"{levels} levels, cf = {cf}")
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric.replace("_", " "))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return ax


def write_figures(out_dir) -> list[Path]:
    """The figures of what ``out_dir`` holds, as PNG files beside the runs: ``alpha_sweep.png``
    (figs. 5.6–5.9), ``coarse_only.png`` (fig. 5.10, once such runs exist),
    ``alpha_<L>_<levels>x<cf>.png`` (:func:`plot_depth_alpha`, for :func:`depth_alpha_keys`)
    and, with the
    timing of ``experiment pdegcn-mgrit parallel``, for each timed depth with finished runs,
    ``accuracy_vs_time_<L>.png`` (figs. 5.11–5.13: against epoch, against the training time
    on the model's ranks, and — fig. 5.13 — up to the time the fastest run needs for its
    epochs)."""
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    records = ended(load(out_dir))
    timing = load_timing(out_dir)
    written = []

    def save(fig, name):
        fig.savefig(out_dir / name, dpi=90)
        plt.close(fig)
        written.append(out_dir / name)

    if any(r["experiment"] == "alpha" for r in sweep_runs(records)):
        save(plot_alpha_sweep(records), "alpha_sweep.png")
    coarse = {(r["levels"], r["cf"]): r["alpha"] for r in records
              if r["experiment"] == "coarse_only"}
    if coarse:
        fig, ax = plt.subplots(figsize=(7, 4))
        plot_coarse_only(records, coarse, ax=ax)
        fig.tight_layout()
        save(fig, "coarse_only.png")
    for L, lv, cf in depth_alpha_keys(records):
        save(plot_depth_alpha(records, L, lv, cf), f"alpha_{L}_{lv}x{cf}.png")
    for L in sorted({t["layers"] for t in timing}):
        if not any(r["layers"] == L for r in records):
            continue  # timed, not trained yet: nothing to draw
        P, timed = wall_time_ranks(L), timed_alpha(timing, L)
        rows = wall_time_table(records, timing, timed, layers=L, ranks=P)
        fastest = min(r["time_to_epochs"] for r in rows)
        fig, axes = plt.subplots(1, 3, figsize=(16, 4), sharey=True)
        plot_accuracy_vs_time(records, timing, timed, layers=L, x="epoch", ax=axes[0])
        plot_accuracy_vs_time(records, timing, timed, layers=L, ranks=P, ax=axes[1])
        plot_accuracy_vs_time(records, timing, timed, layers=L, ranks=P, until=fastest,
                              ax=axes[2])
        fig.tight_layout()
        save(fig, f"accuracy_vs_time_{L}.png")
    return written


def plot_alpha_sweep(records: list[dict], *, layers: int = SWEEP_LAYERS, metric: str = "test_acc",
                     hierarchies=HIERARCHIES):
    """Figs. 5.6–5.9 in one figure: :func:`plot_alpha_curves` for each (levels, cf), with the
    serial network of the same depth dashed; curves are means over the seeds in ``records``."""
    import matplotlib.pyplot as plt

    rs = [r for r in records if r["layers"] == layers]
    serial = [r for r in rs if r["experiment"] == "serial"]
    rows = (len(hierarchies) + 1) // 2
    fig, axes = plt.subplots(rows, 2, figsize=(11, 3.5 * rows), sharey=True, squeeze=False)
    for ax, (lv, cf) in zip(axes.flat, hierarchies):
        plot_alpha_curves(rs, lv, cf, metric=metric, ax=ax, serial=serial or None)
    for ax in list(axes.flat)[len(hierarchies):]:
        ax.set_visible(False)
    fig.suptitle(f"{layers} layers: {metric.replace('_', ' ')} per epoch for each shared α "
                 "(figs. 5.6–5.9)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_depth_alpha(records: list[dict], layers: int, levels: int, cf: int):
    """The α of (levels, cf) at a depth other than the sweep's, side by side: test accuracy
    and training loss per epoch (the serial network of that depth dashed) and the forward
    solve's :func:`forward_ratio` — a best-validation number can hide a training that does
    not work (256 layers, 3 levels, cf 4: α = 2.5 from the 64-layer sweep against α = 1)."""
    import matplotlib.pyplot as plt

    rs = [r for r in records if r["layers"] == layers]
    serial = [r for r in rs if r["experiment"] == "serial"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    plot_alpha_curves(rs, levels, cf, "test_acc", ax=axes[0], serial=serial or None)
    plot_alpha_curves(rs, levels, cf, "train_loss", ax=axes[1], serial=serial or None)
    ax = axes[2]
    for a in sorted({r["alpha"] for r in rs if r["experiment"] == "alpha"
                     and (r["levels"], r["cf"]) == (levels, cf)}):
        runs = [r for r in rs if r["experiment"] == "alpha" and r["forward_ratio"]
                and (r["levels"], r["cf"], r["alpha"]) == (levels, cf, a)]
        if runs:
            y = _mean_curve(runs, "forward_ratio")
            ax.plot(np.arange(1, len(y) + 1), y, label=f"α = {a:g} ({len(runs)} seed(s))")
    ax.axhline(1.0, color="gray", ls=":", lw=1)
    ax.set_title("forward solve: 2nd residual / 1st")
    ax.set_xlabel("epoch")
    ax.set_ylabel("ratio")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.suptitle(f"{layers} layers, {levels} levels, cf {cf}: each α tried at this depth")
    fig.tight_layout()
    return fig


def depth_alpha_keys(records: list[dict]) -> list[tuple]:
    """(layers, levels, cf) away from the sweep's depth with finished runs at two or more α:
    the configurations :func:`plot_depth_alpha` draws."""
    alphas: dict[tuple, set] = {}
    for r in ended(records):
        if r["experiment"] == "alpha" and r["layers"] != SWEEP_LAYERS:
            alphas.setdefault((r["layers"], r["levels"], r["cf"]), set()).add(r["alpha"])
    return sorted(k for k, a in alphas.items() if len(a) > 1)


def plot_coarse_only(records: list[dict], best: dict, metric: str = "test_acc", ax=None):
    """Fig. 5.10: ``metric`` per epoch with α on the coarse levels only (solid) and the same
    α on all levels (markers), for each (levels, cf) of ``best`` — both the mean over the
    seeds that both have (a curve of three seeds beside one of one would mix seed noise
    into the comparison)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.6))
    for i, ((lv, cf), a) in enumerate(sorted(best.items())):
        color = f"C{i}"
        runs = {exp: {r["seed"]: r for r in records if r["experiment"] == exp
                      and (r["levels"], r["cf"], r["alpha"]) == (lv, cf, a)}
                for exp in ("coarse_only", "alpha")}
        seeds = sorted(set(runs["coarse_only"]) & set(runs["alpha"]))
        if not seeds:
            continue
        for exp, style in (("coarse_only", "-"), ("alpha", "o--")):
            y = _mean_curve([runs[exp][s] for s in seeds], metric)
            where = "coarse levels only" if exp == "coarse_only" else "all levels"
            ax.plot(np.arange(1, len(y) + 1), y, style, color=color, ms=3,
                    markevery=max(len(y) // 15, 1),
                    label=f"{lv} levels, cf {cf}: α = {a:g} on {where} "
                          f"({len(seeds)} seed{'s' * (len(seeds) > 1)})")
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title("α on the coarse levels only vs on all levels (fig. 5.10)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    return ax


def plot_accuracy_vs_time(records: list[dict], timing: list[dict] | None, best: dict, *,
                          layers: int, ranks: int = 1, metric: str = "test_acc",
                          until: float | None = None, x: str = "time", ax=None):
    """Figs. 5.11–5.13: ``metric`` (mean over seeds; the legend says how many) of the serial
    network and each (levels, cf) of ``best`` at its α, against the training time — epoch ×
    the seconds per step of :func:`wall_time_table`: measured where ``timing`` has ``ranks``
    (1 process, 2 ranks), else the critical-path model's (32, 64 ranks); the serial network
    on one process — or, with ``x='epoch'``, against the epoch (``timing`` not needed).
    ``until`` cuts the time axis (fig. 5.13: the same training time for every curve); at 256
    layers, without ``until``, the thesis's 150-epoch times (fig. 5.12: ≈ 2000 s for 3
    levels, cf 4 on 64 processes, ≈ 7000 s serial) are marked on a logarithmic time axis."""
    import matplotlib.pyplot as plt

    if x not in ("time", "epoch"):
        raise ValueError(f"x must be 'time' or 'epoch', not {x!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.6))
    if x == "time":
        rows = wall_time_table(records, timing or [], best, layers=layers, ranks=ranks)
    else:
        rows = [{"cf": None, "step_P": 1.0}] + [
            {"config": f"{lv} levels, cf {cf}", "levels": lv, "cf": cf, "alpha": a,
             "step_P": 1.0} for (lv, cf), a in sorted(best.items())]
    for row in rows:
        if row["cf"] is None:
            rs = [r for r in records if r["experiment"] == "serial" and r["layers"] == layers]
            style, label, notes = "k-", "serial, α = 0", ["1 process"] if x == "time" else []
        else:
            rs = [r for r in records if r["experiment"] == "alpha" and r["layers"] == layers
                  and (r["levels"], r["cf"], r["alpha"]) == (row["levels"], row["cf"],
                                                              row["alpha"])]
            style = "-"
            label = f"{row['config']}, α = {row['alpha']:g}"
            notes = ([f"{'model' if row['modelled'] else 'measured'}, {ranks} rank(s)"]
                     if x == "time" else [])
        if not rs:
            continue
        # curves of one seed beside curves of three: say so
        label += f" ({', '.join([*notes, f'{len(rs)} seed' + 's' * (len(rs) > 1)])})"
        y = _mean_curve(rs, metric)
        ax.plot(np.arange(1, len(y) + 1) * row["step_P"], y, style, label=label,
                marker="o" if len(y) < 3 else None)  # a short run is still seen
    thesis = x == "time" and layers == THESIS_256["layers"] and until is None
    if thesis:
        for key, text in (("serial_s", "thesis: serial"), ("parallel_s", "thesis: 3 lv, cf 4")):
            ax.axvline(THESIS_256[key], color="gray", ls=":", lw=1)
            ax.annotate(text, (THESIS_256[key], 0.02), xycoords=("data", "axes fraction"),
                        rotation=90, fontsize=6, color="gray")
        # the thesis's times are 10-25x this machine's: a linear axis squeezes our
        # curves into its first tenth
        ax.set_xscale("log")
    if until is not None:
        ax.set_xlim(0, until)
    ax.set_xlabel(("training time, s (evaluation left out" + (", log scale)" if thesis else ")"))
                  if x == "time" else "epoch")
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(f"{layers} layers" + (f", up to {until:.0f} s" if until else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    return ax
