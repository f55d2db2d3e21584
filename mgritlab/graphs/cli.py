r"""Command line for the graph networks.

    python -m mgritlab train pdegcn --dataset Cora --layers 64 --imex shared --alpha 1.0 \
        --seeds 0 1 2 3 4 --out results/pdegcn --resume
    python -m mgritlab train gcn --dataset Cora --seeds 0 1 2 3 4 --out results/pdegcn
    python -m mgritlab experiment pdegcn-stability --out results/pdegcn/stability \
        --resume --threads 1
    python -m mgritlab experiment pdegcn-stability --quick --out results/pdegcn/stability_quick

Layer-parallel training (MGRIT in depth, thesis §5.2), on one process or split over MPI ranks:

    python -m mgritlab train pdegcn --layers 64 --imex shared --alpha 1 --layer-parallel \
        --levels 3 --cf 4 --fwd-iters 2 --bwd-iters 1 --level-alpha 0 x x --seeds 0
    mpiexec -n 2 python -m mgritlab train pdegcn --layer-parallel ...   # or: --ranks 2

Options left out take the tuned defaults of ``train.preset(dataset, layers)``.
"""
from __future__ import annotations

import argparse
import os
import sys

from ..mgrit.cli import (
    UsageError,
    nonnegative_float,
    positive_float,
    positive_int,
    probability,
    usage_error,
)

# the TrainConfig fields a command line may change, with their argparse types
_TUNABLE = {"channels": positive_int, "h": positive_float, "dropout": probability,
            "input_dropout": probability, "open_dropout": probability, "lr": positive_float,
            "weight_decay": nonnegative_float, "lr_K": nonnegative_float,
            "weight_decay_K": nonnegative_float, "epochs": positive_int,
            "cg_tol": positive_float, "checkpoint_every": positive_int, "hidden": positive_int}
_GCN_UNUSED = ("channels", "h", "lr_K", "weight_decay_K", "cg_tol", "input_dropout",
               "open_dropout")
_MODEL_HELP = {"pdegcn": "PDE-GCN-D (+ IMEX) on a Planetoid graph",
               "gcn": "the 2-layer GCN baseline"}


def _level_alpha(values: list[str] | None, show: bool = True):
    """The --level-alpha values: numbers >= 0, or 'x' (None: the layers' own α)."""
    if values is None:
        return None
    out = []
    for v in values:
        if v.lower() in ("x", "none"):
            out.append(None)
            continue
        try:
            value = float(v)
        except ValueError:
            value = float("nan")
        if not value >= 0:
            _refuse(f"--level-alpha: {v!r} is neither a number nor 'x' (the layers' own α); "
                    "give one value >= 0 per MGRIT level, e.g. 0 x x", show)
        out.append(value)
    return out


def _refuse(message: str, show: bool = True):
    usage_error(message, show=show)
    raise UsageError(message)


def register(subparsers) -> None:
    from .train import MODELS

    # this module owns the 'train' command (argparse refuses a second one)
    train = subparsers.add_parser("train", help="train a network").add_subparsers(
        dest="train_what", metavar="what")
    for model in MODELS:
        p = train.add_parser(model, help=_MODEL_HELP.get(model))
        p.add_argument("--dataset", default="Cora", help="Cora or CiteSeer (default Cora)")
        if model == "pdegcn":
            p.add_argument("--layers", type=positive_int, default=64)
            p.add_argument("--imex", default="none",
                           choices=("none", "shared", "channel", "diffusion"))
            p.add_argument("--alpha", type=nonnegative_float, default=0.0,
                           help="α (shared/channel) or k² (diffusion)")
            p.add_argument("--learn-alpha", action="store_true")
            lp = p.add_argument_group("layer-parallel training (MGRIT in depth)")
            lp.add_argument("--layer-parallel", action="store_true",
                            help="train with MGRIT forward and backward instead of serially")
            lp.add_argument("--levels", type=positive_int, default=None,
                            help="MGRIT levels (3)")
            lp.add_argument("--cf", type=_cf, default=None, help="coarsening factor (4)")
            lp.add_argument("--fwd-iters", type=positive_int, default=None,
                            help="T1: forward MGRIT iterations per step (2)")
            lp.add_argument("--bwd-iters", type=positive_int, default=None,
                            help="T2: adjoint MGRIT iterations per step (1)")
            lp.add_argument("--relax", default=None,
                            help="'auto' (F fine, FCF coarse), one scheme, or 'F,FCF,FCF'")
            lp.add_argument("--cycle", default=None, choices=("V", "F"))
            lp.add_argument("--level-alpha", nargs="+", default=None, metavar="A",
                            help="IMEX α per level, 'x' for the layers' own α, 0 for none "
                                 "(e.g. 0 x x: explicit fine level, α on the coarse ones)")
            lp.add_argument("--no-warm-start", dest="warm_start", action="store_false",
                            default=None, help="start every MGRIT solve from zeros")
            lp.add_argument("--layout", default=None, choices=("auto", "loop", "batched"),
                            help="how a batch of layers is stepped")
            lp.add_argument("--ranks", type=positive_int, default=None,
                            help="relaunch under mpiexec -n RANKS (the layers split over ranks)")
        for name, typ in _TUNABLE.items():
            if model == "gcn" and name in _GCN_UNUSED:
                continue
            p.add_argument(f"--{name.replace('_', '-')}", dest=name, type=typ, default=None)
        p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
        p.add_argument("--out", default="runs/pdegcn", help="folder for JSON and checkpoints")
        p.add_argument("--resume", action="store_true", help="continue interrupted runs")
        p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
        p.add_argument("--no-progress", action="store_true")
        p.set_defaults(func=_train, model=model)



def register_experiments(exp) -> None:
    """The graph experiments under ``python -m mgritlab experiment``."""
    p = exp.add_parser("pdegcn-stability",
                       help="thesis §5.1: constant L·h, α ∈ {0,1,10}, IMEX variants")
    p.add_argument("--dataset", default="Cora")
    p.add_argument("--quick", action="store_true", help="few epochs, one seed (minutes)")
    p.add_argument("--seeds", type=int, nargs="+", default=None)
    p.add_argument("--epochs", type=positive_int, default=None)
    p.add_argument("--out", default="runs/pdegcn_stability")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--threads", type=positive_int, default=None)
    p.set_defaults(func=_stability)

    p = exp.add_parser("pdegcn-mgrit",
                       help="thesis §5.2: PDE-GCN-D trained with MGRIT, α per (levels, cf)")
    p.add_argument("what", nargs="?", default="all",
                   choices=("alpha", "coarse", "serial", "all", "parallel", "forward-error",
                            "report"),
                   help="alpha: figs. 5.6-5.9; coarse: fig. 5.10 (α on the coarse levels "
                        "only, at the best α of the alpha sweep); serial: the reference; all: "
                        "these three; parallel: figs. 5.11-5.13 (64 and 256 layers at the best "
                        "α of the finished alpha sweep in --out, timed on 1 and 2 ranks, with "
                        "the per-layer costs of the critical-path model); forward-error: "
                        "fig. 5.10's question, the error of the layer-parallel forward after "
                        "k = 1..--iterations MGRIT iterations for the initial networks at the "
                        "best α (minutes, no training); report: what --out holds (finished "
                        "runs, best α, the tables)")
    p.add_argument("--dataset", default="Cora")
    p.add_argument("--quick", action="store_true", help="16 layers, 6 epochs, one seed (minutes)")
    p.add_argument("--layers", type=positive_int, default=None)
    p.add_argument("--seeds", type=int, nargs="+", default=None)
    p.add_argument("--epochs", type=positive_int, default=None)
    p.add_argument("--alphas", type=nonnegative_float, nargs="+", default=None)
    p.add_argument("--hierarchies", type=_hierarchy, nargs="+", default=None,
                   metavar="LEVELSxCF",
                   help="only these (levels, cf), e.g. 2x2 3x4 (default: the thesis's four): "
                        "two processes can share a sweep by taking different hierarchies")
    p.add_argument("--iterations", type=positive_int, default=None,
                   help="forward-error: the MGRIT iterations k to go to (default 8; quick 4)")
    p.add_argument("--out", default="runs/pdegcn_mgrit")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--threads", type=positive_int, default=None)
    p.add_argument("--progress", action="store_true", help="a progress bar per run")
    p.add_argument("--figures", action="store_true",
                   help="report: also write the figures (PNG) of the finished runs into --out")
    p.add_argument("--readme", action="store_true",
                   help="report: also rewrite the computed blocks of --out/README.md (status, "
                        "tables) from the finished runs; its prose is left as it is")
    p.add_argument("--partial-sweep", action="store_true",
                   help="parallel: use the best α of an unfinished alpha sweep (it may still "
                        "change; without this flag parallel waits for the whole sweep)")
    p.set_defaults(func=_mgrit_experiment)

    p = exp.add_parser("admm", help="Wang et al.: pdADMM-G, pdADMM-G-Q and Adam on a GA-MLP "
                                    "(CORA, CiteSeer; 2 and 10 layers)")
    p.add_argument("what", nargs="?", default="compare", choices=("compare", "report"),
                   help="compare: train every run into --out (finished runs are kept); "
                        "report: the table of the finished runs in --out")
    p.add_argument("--datasets", nargs="+", default=["Cora", "CiteSeer"])
    p.add_argument("--depths", type=_depth, nargs="+", default=[2, 10])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--quick", action="store_true", help="a few iterations, one seed")
    p.add_argument("--unstaged", action="store_true",
                   help="train the deeper nets in one stage (identity hidden layers from the "
                        "start) instead of the authors' 2 → 5 → L")
    p.add_argument("--out", default="runs/admm")
    p.add_argument("--threads", type=positive_int, default=None)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_admm_experiment)


def _depth(text: str) -> int:
    value = positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"{text!r}: a GA-MLP here has at least 2 layers")
    return value


def _admm_experiment(args) -> int:
    import torch

    from .admm_experiments import (
        byte_savings,
        comparison,
        format_summary,
        load_records,
        summary,
    )

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.what == "compare":
        seeds = args.seeds[:1] if args.quick else args.seeds
        comparison(datasets=args.datasets, depths=args.depths, seeds=seeds, out=args.out,
                   quick=args.quick, progress=not args.no_progress, unstaged=args.unstaged)
    rows = summary(load_records(args.out))
    if not rows:
        print(f"no finished runs in {args.out}: run `experiment admm compare --out {args.out}`")
        return 1
    print(format_summary(rows))
    for s in byte_savings(rows):
        print(f"{s['dataset']}, {s['layers']} layers, {s['method']}: the -Q variant sends "
              f"{100 * s['saving']:.0f} % fewer bytes, test accuracy "
              f"{s['accuracy_change']:+.1f} points")
    return 0


_LP_OPTIONS = ("levels", "cf", "fwd_iters", "bwd_iters", "relax", "cycle", "warm_start",
               "layout")


def _hierarchy(text: str) -> tuple[int, int]:
    levels, sep, cf = text.partition("x")
    if sep and levels.isdigit() and cf.isdigit() and int(levels) >= 2 and int(cf) >= 2:
        return int(levels), int(cf)
    raise argparse.ArgumentTypeError(f"{text!r} is not a hierarchy: give LEVELSxCF with whole "
                                     "numbers >= 2, e.g. 3x4 (3 levels, coarsening factor 4)")


def _swept_best(mx, args, hierarchies) -> tuple[dict, str | None]:
    """The best α per (levels, cf) of ``hierarchies`` from the finished alpha runs kept in
    --out (every seed there, whatever --seeds says: one seed's best α is not the sweep's),
    and why not where the sweep cannot give it yet (None: it can)."""
    layers = args.layers or (mx.QUICK["layers"] if args.quick else 64)
    kept = [r for r in mx.load(args.out) if r["layers"] == layers]
    best = {k: a for k, a in mx.best_alpha(kept).items() if k in hierarchies}
    if args.quick:
        return best, None
    missing = [k for k in hierarchies if k not in best]
    if missing:
        return best, (f"the alpha sweep in {args.out} has no best α for {missing} yet (no "
                      "finished, stable run): finish it first (experiment pdegcn-mgrit alpha "
                      "--resume)")
    # the protocol's seeds: a best α resting on fewer may still change
    seeds = sorted({0, 1, 2} | set(args.seeds or ()))
    done, total = mx.sweep_progress(kept, seeds=seeds, layers=layers, hierarchies=hierarchies)
    if done < total and not args.partial_sweep:
        return best, (f"the alpha sweep in {args.out} has {done} of {total} runs finished, so "
                      f"its best α {best} may still change: finish it (experiment pdegcn-mgrit "
                      "alpha --resume), or add --partial-sweep to go on at this α")
    return best, None


def _cf(text: str) -> int:
    value = positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"{text!r} is not a coarsening factor: give a whole "
                                         "number >= 2")
    return value


def _relaunch(args, argv: list[str]) -> int:
    from ..cluster import run_mpi

    i = argv.index("--ranks")
    argv = argv[:i] + argv[i + 2:]
    try:
        proc = run_mpi([sys.executable, "-m", "mgritlab", *argv], args.ranks, timeout=None,
                       capture=False)
    except KeyboardInterrupt:
        print(f"killed; the last checkpoints are in {args.out}, continue with --resume")
        return 130
    return proc.returncode


def _train(args) -> int:
    from dataclasses import replace

    import torch

    from ..mgrit.world import launcher_env

    rank, size = launcher_env() or (0, 1)
    lead = rank == 0
    ranks = getattr(args, "ranks", None)
    if ranks and ranks > 1 and size == 1:
        if not args.layer_parallel:
            _refuse("--ranks splits the layers over MPI ranks: add --layer-parallel")
        return _relaunch(args, args.argv)
    if size > 1 and not getattr(args, "layer_parallel", False):
        msg = (f"started on {size} MPI ranks without --layer-parallel: every rank would train "
               "the same serial model. Add --layer-parallel, or run without mpiexec")
        _refuse(msg, lead)

    from ..mgrit import MGRITDivergenceError
    from ..nn.runner import CheckpointError, RankCheckpointError
    from .datasets import DatasetError
    from .train import preset, train_seeds

    if args.threads:
        torch.set_num_threads(args.threads)
    elif size > 1:  # ranks share the cores
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // size))
    try:
        cfg = preset(args.dataset, getattr(args, "layers", 64), args.model)
    except ValueError as err:  # an unknown dataset: the message lists the choices
        return usage_error(err, show=lead)
    changes = {k: getattr(args, k) for k in _TUNABLE if getattr(args, k, None) is not None}
    if args.model == "pdegcn":
        changes.update(imex=args.imex, alpha=args.alpha, learn_alpha=args.learn_alpha)
        changes.update({k: getattr(args, k) for k in _LP_OPTIONS
                        if getattr(args, k) is not None})
        if args.level_alpha is not None:
            changes["level_alpha"] = _level_alpha(args.level_alpha, lead)
        if args.layer_parallel:
            changes["layer_parallel"] = True
        elif any(k in changes for k in ("levels", "cf", "fwd_iters", "bwd_iters", "relax",
                                        "cycle", "warm_start")):
            _refuse("MGRIT options given without --layer-parallel: add it to train "
                    "layer-parallel, or drop them", lead)
    cfg = replace(cfg, **changes)
    try:
        s = train_seeds(cfg, args.seeds, out_dir=args.out, resume=args.resume,
                        progress=not args.no_progress)
    except KeyboardInterrupt as err:
        if lead:
            print(f"interrupted: {str(err) or 'stopped'}; checkpoints are in {args.out}, "
                  "continue with the same command and --resume")
        return 130
    except (FloatingPointError, MGRITDivergenceError) as err:
        # a diverged run: the message says what to change; the partial results are kept
        if lead:
            print(f"error: {err}", file=sys.stderr)
        return 1
    except (ValueError, CheckpointError, DatasetError) as err:
        # a bad option or an unusable file: the message says what to change (a file only this
        # rank reads: this rank says it, since its exit aborts the job)
        return usage_error(err, show=lead or isinstance(err, RankCheckpointError))
    if not lead:
        return 0
    line = (f"{s['name']}: test accuracy at best validation accuracy "
            f"{100 * s['test_mean']:.2f} ± {100 * s['test_std']:.2f} % over seeds {s['seeds']} "
            f"(val {100 * s['val_mean']:.2f} %, {s['seconds_per_epoch'] or float('nan'):.3f} "
            "s/epoch")
    if "serial_test_mean" in s:
        line += (f"; exact serial forward: test {100 * s['serial_test_mean']:.2f} ± "
                 f"{100 * s['serial_test_std']:.2f} %; {s['ranks']} rank(s)")
    print(line + ")")
    return 0


def _stability(args) -> int:
    import torch

    from .experiments import format_table, stability_sweep

    if args.threads:
        torch.set_num_threads(args.threads)
    from ..nn.runner import CheckpointError
    from .datasets import DatasetError

    try:
        rows = stability_sweep(dataset=args.dataset, quick=args.quick, seeds=args.seeds,
                               epochs=args.epochs, out_dir=args.out, resume=args.resume)
    except KeyboardInterrupt:
        print(f"interrupted; the runs so far are in {args.out}: continue with --resume")
        return 130
    except (ValueError, CheckpointError, DatasetError) as err:
        return usage_error(err)
    print(format_table(rows))
    return 0


def _mgrit_experiment(args) -> int:
    from pathlib import Path

    import torch

    from ..nn.runner import CheckpointError
    from . import mgrit_experiments as mx
    from .datasets import DatasetError
    from .train import load_graph

    if args.threads:
        torch.set_num_threads(args.threads)
    common = dict(quick=args.quick, layers=args.layers, epochs=args.epochs, seeds=args.seeds,
                  dataset=args.dataset, out_dir=args.out, resume=args.resume,
                  progress=args.progress)
    if args.what == "report":
        print(mx.report(mx.load(args.out), timing=mx.load_timing(args.out),
                        forward=mx.load_forward_error(args.out)))
        if args.figures:
            for path in mx.write_figures(args.out):
                print(f"wrote {path}")
        if args.readme:
            try:
                print(f"updated {mx.update_readme(args.out, graph=load_graph(args.dataset))}")
            except ValueError as e:
                return usage_error(str(e))
        return 0
    records = []
    hierarchies = tuple(args.hierarchies
                        or (mx.QUICK["hierarchies"] if args.quick else mx.HIERARCHIES))
    try:
        graph = load_graph(args.dataset)
        if args.what == "parallel":
            best, why = _swept_best(mx, args, hierarchies)
            if why:
                return usage_error(why)
            best = best or {(2, 2): 1.0}
            depths = (16, 64) if args.quick else (64, 256)
            records += mx.parallel_sweep(best, layers_list=depths, graph=graph,
                                         serial=not args.hierarchies,
                                         **{k: v for k, v in common.items() if k != "layers"})
            if args.hierarchies:
                # the timing compares all hierarchies measured side by side in one run
                print("--hierarchies: trained the layer-parallel runs of "
                      f"{sorted(best)} only. Left to do: the serial reference (experiment "
                      "pdegcn-mgrit serial --layers L) and the timing: parallel without "
                      "--hierarchies, alone on the machine (--resume reuses these runs)")
            else:
                mx.save(mx.parallel_timing(best, layers_list=depths, quick=args.quick,
                                           dataset=args.dataset, graph=graph,
                                           repeats=1 if args.quick else 3),
                        Path(args.out) / mx.TIMING_FILE)
        if args.what == "forward-error":
            best, why = _swept_best(mx, args, hierarchies)
            if why:
                return usage_error(why)
            best = best or {k: mx.THESIS_BEST_ALPHA.get(k, 1.0) for k in hierarchies}
            rows = mx.forward_error_sweep(best, quick=args.quick, layers=args.layers,
                                          seeds=args.seeds, iterations=args.iterations,
                                          dataset=args.dataset, graph=graph,
                                          progress=args.progress)
            mx.save(rows, Path(args.out) / mx.FORWARD_ERROR_FILE)
            print(mx.format_forward_error(rows, mx.load(args.out)))
            return 0
        if args.what in ("serial", "all"):
            records += mx.serial_reference(graph=graph, **common)
        if args.what in ("alpha", "coarse", "all"):
            records += mx.alpha_sweep(graph=graph, alphas=args.alphas,
                                      hierarchies=args.hierarchies, **common)
        if args.what in ("coarse", "all"):
            best, why = _swept_best(mx, args, hierarchies)
            if why:
                mx.save(records, Path(args.out) / f"mgrit_{args.what}.json")
                return usage_error(why)
            print("best α per (levels, cf) by validation accuracy:", best)
            records += mx.coarse_only_sweep(best, graph=graph, **common)
    except KeyboardInterrupt:
        print(f"interrupted; the runs so far are in {args.out}: continue with --resume")
        return 130
    except (ValueError, CheckpointError, DatasetError) as err:
        return usage_error(err)
    mx.save(records, Path(args.out) / f"mgrit_{args.what}.json")
    print(mx.format_table(records))
    return 0
