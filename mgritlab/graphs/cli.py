"""Command line for the graph networks.

    python -m mgritlab train pdegcn --dataset Cora --layers 64 --imex shared --alpha 1.0 \\
        --seeds 0 1 2 3 4 --out results/pdegcn --resume
    python -m mgritlab train gcn --dataset Cora --seeds 0 1 2 3 4 --out results/pdegcn
    python -m mgritlab experiment pdegcn-stability --quick --out results/pdegcn/stability

Options left out take the tuned defaults of ``train.preset(dataset, layers)``.
"""
from __future__ import annotations

import argparse


def _child_subparsers(subparsers, name: str, help: str):
    """The sub-command group ``name`` (e.g. 'train'), shared with other command modules."""
    parser = subparsers.choices.get(name)
    if parser is None:
        parser = subparsers.add_parser(name, help=help)
        parser.add_subparsers(dest=f"{name}_what", metavar="what")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise RuntimeError(f"command {name!r} exists without sub-commands; cannot add to it")


_TUNABLE = ("channels", "h", "dropout", "input_dropout", "open_dropout", "lr", "weight_decay",
            "lr_K", "weight_decay_K", "epochs", "cg_tol", "checkpoint_every", "hidden")


def register(subparsers) -> None:
    train = _child_subparsers(subparsers, "train", "train a network")
    for model in ("pdegcn", "gcn"):
        p = train.add_parser(model, help={"pdegcn": "PDE-GCN-D (+ IMEX) on a Planetoid graph",
                                          "gcn": "the 2-layer GCN baseline"}[model])
        p.add_argument("--dataset", default="Cora", help="Cora or CiteSeer (default Cora)")
        if model == "pdegcn":
            p.add_argument("--layers", type=int, default=64)
            p.add_argument("--imex", default="none",
                           choices=("none", "shared", "channel", "diffusion"))
            p.add_argument("--alpha", type=float, default=0.0,
                           help="α (shared/channel) or k² (diffusion)")
            p.add_argument("--learn-alpha", action="store_true")
        for name in _TUNABLE:
            if model == "gcn" and name in ("channels", "h", "lr_K", "weight_decay_K", "cg_tol",
                                           "input_dropout", "open_dropout"):
                continue
            typ = int if name in ("channels", "epochs", "checkpoint_every", "hidden") else float
            p.add_argument(f"--{name.replace('_', '-')}", dest=name, type=typ, default=None)
        p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
        p.add_argument("--out", default="runs/pdegcn", help="folder for JSON and checkpoints")
        p.add_argument("--resume", action="store_true", help="continue interrupted runs")
        p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
        p.add_argument("--no-progress", action="store_true")
        p.set_defaults(func=_train, model=model)

    exp = _child_subparsers(subparsers, "experiment", "run an experiment sweep")
    p = exp.add_parser("pdegcn-stability",
                       help="thesis §5.1: constant L·h, α ∈ {0,1,10}, IMEX variants")
    p.add_argument("--dataset", default="Cora")
    p.add_argument("--quick", action="store_true", help="few epochs, one seed (minutes)")
    p.add_argument("--seeds", type=int, nargs="+", default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--out", default="runs/pdegcn_stability")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=_stability)


def _train(args) -> int:
    from dataclasses import replace

    import torch

    from .train import preset, train_seeds

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = preset(args.dataset, getattr(args, "layers", 64), args.model)
    changes = {k: getattr(args, k) for k in _TUNABLE if getattr(args, k, None) is not None}
    if args.model == "pdegcn":
        changes.update(imex=args.imex, alpha=args.alpha, learn_alpha=args.learn_alpha)
    cfg = replace(cfg, **changes)
    try:
        s = train_seeds(cfg, args.seeds, out_dir=args.out, resume=args.resume,
                        progress=not args.no_progress)
    except KeyboardInterrupt as err:
        print(f"interrupted: {err or 'stopped'}; checkpoints are in {args.out}, continue with "
              "the same command and --resume")
        return 130
    print(f"{s['name']}: test accuracy at best validation accuracy "
          f"{100 * s['test_mean']:.2f} ± {100 * s['test_std']:.2f} % over seeds {s['seeds']} "
          f"(val {100 * s['val_mean']:.2f} %, {s['seconds_per_epoch']:.3f} s/epoch)")
    return 0


def _stability(args) -> int:
    import torch

    from .experiments import format_table, stability_sweep

    if args.threads:
        torch.set_num_threads(args.threads)
    rows = stability_sweep(dataset=args.dataset, quick=args.quick, seeds=args.seeds,
                           epochs=args.epochs, out_dir=args.out, resume=args.resume)
    print(format_table(rows))
    return 0
