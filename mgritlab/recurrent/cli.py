"""``python -m mgritlab experiment gru``: classic vs implicit vs layer-parallel implicit GRU."""
from __future__ import annotations

from ..mgrit.cli import positive_int


def register_experiments(exp) -> None:
    p = exp.add_parser("gru", help="Moon & Cyr 2022: classic, implicit and layer-parallel "
                                   "implicit GRUs (3 levels, cf 4, T1 = 2, T2 = 1)")
    p.add_argument("what", nargs="?", default="compare", choices=("compare", "coarse", "scaling"),
                   help="compare: classic vs implicit vs layer-parallel training; coarse: the "
                        "MGRIT residuals of the classic and implicit coarse steps "
                        "(OUT/coarse.json); scaling: seconds per training step against "
                        "sequence length on 1 and 2 MPI ranks (OUT/scaling/)")
    p.add_argument("--data", default="basicmotions", choices=("basicmotions", "adding",
                                                               "pattern"))
    p.add_argument("--steps", type=positive_int, default=96, help="sequence length")
    p.add_argument("--epochs", type=positive_int, default=60)
    p.add_argument("--hidden", type=positive_int, default=32)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--quick", action="store_true", help="6 epochs, one seed")
    p.add_argument("--out", default="runs/gru")
    p.add_argument("--resume", action="store_true", help="keep finished runs in --out")
    p.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_run)


def _run(args) -> int:
    import torch

    from .train import comparison, format_summary, summary

    torch.set_num_threads(args.threads)
    if args.what == "coarse":
        from pathlib import Path

        from ..nn.runner import write_json_atomic
        from .coarse import basic_motions_comparison

        rec = basic_motions_comparison(hidden=args.hidden)
        Path(args.out).mkdir(parents=True, exist_ok=True)
        write_json_atomic(rec, Path(args.out) / "coarse.json", indent=1)
        for scheme, r in rec["schemes"].items():
            state = "diverged" if r["diverged"] else "did not diverge"
            print(f"{scheme}: {state}; residuals of {len(r['residuals'])} iterations: "
                  + ", ".join(f"{v:.2e}" for v in r["residuals"]))
        return 0
    if args.what == "scaling":
        from .scaling import format_scaling, scaling

        recs = scaling(out=f"{args.out}/scaling", resume=args.resume)
        print(format_scaling(recs))
        return 0
    recs = comparison(args.data, quick=args.quick, seeds=tuple(args.seeds), out_dir=args.out,
                      resume=args.resume, progress=not args.no_progress, steps=args.steps,
                      epochs=args.epochs, hidden=args.hidden)
    print(format_summary(summary(recs)))
    print(f"records in {args.out}")
    return 0
