"""``python -m mgritlab experiment training-runs``: Schroder (2022) Tables 1–20, the potential
speedup (figs. 6–8) and a strong-scaling run on MPI ranks."""
from __future__ import annotations

import argparse

from ..mgrit.cli import positive_int


def _table_number(text: str) -> int:
    value = positive_int(text)
    if value > 20:
        raise argparse.ArgumentTypeError(f"{text!r}: the paper has Tables 1-20")
    return value


def register_experiments(exp) -> None:
    p = exp.add_parser("training-runs",
                       help="Schroder 2022: MGRIT over training steps, Tables 1-20")
    p.add_argument("what", nargs="?", default="tables", choices=("tables", "scaling", "report"),
                   help="tables: rerun the paper's tables beside its numbers; scaling: the "
                        "four-layer problem (Solver 3, F-cycles) on 1 and 2 MPI ranks; "
                        "report: README.md and speedup.png in --out from its records and "
                        "README.in.md")
    p.add_argument("--tables", type=_table_number, nargs="+", default=None,
                   help="table numbers (default: all 20)")
    p.add_argument("--max-steps", type=positive_int, default=None,
                   help="skip N0 above this (default: all the paper's N0)")
    p.add_argument("--quick", action="store_true", help="N0 <= 400 only (a minute)")
    p.add_argument("--coarse-examples", choices=("level", "fine"), default=None,
                   help="which example a coarse point trains on (default: the reading each "
                        "table reproduces with, see results/training_runs/README.md)")
    p.add_argument("--tol-unscaled", action="store_true",
                   help="halt at 1e-9 instead of the paper's stated 1e-9*sqrt(N0)")
    p.add_argument("--steps", type=positive_int, default=1600, help="scaling: N0")
    p.add_argument("--ranks", type=positive_int, nargs="+", default=[1, 2],
                   help="scaling: rank counts")
    p.add_argument("--out", default="runs/training_runs")
    p.add_argument("--resume", action="store_true", help="keep finished records in --out")
    p.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads")
    p.set_defaults(func=_run)


def _run(args) -> int:
    import torch

    torch.set_num_threads(args.threads)
    if args.what == "report":
        from .report import write_report

        write_report(args.out)
        print(f"wrote {args.out}/README.md and {args.out}/speedup.png")
        return 0
    if args.what == "scaling":
        from .scaling import strong_scaling

        recs = strong_scaling(tuple(args.ranks), out=args.out, steps=args.steps,
                              threads=args.threads)
        first = recs[0]
        for r in recs:
            same = r["residuals"] == first["residuals"]
            print(f"{r['size']} rank(s): {r['iterations']} iterations, {r['seconds']:.2f} s, "
                  f"{first['seconds'] / r['seconds']:.2f}x the {first['size']}-rank solve "
                  f"(model {r['model_speedup'] / first['model_speedup']:.2f}x; model vs serial "
                  f"training {r['model_speedup']:.3f}x), residuals "
                  f"{'identical to' if same else 'DIFFERENT from'} {first['size']} rank(s)")
        return 0

    from .tables import ALL_TABLES, agreement, format_table, run_table

    max_steps = 400 if args.quick else args.max_steps
    records = []
    for number in args.tables or ALL_TABLES:
        recs = run_table(number, out=args.out, resume=args.resume, max_steps=max_steps,
                         coarse_examples=args.coarse_examples,
                         scale_tol=not args.tol_unscaled,
                         progress=lambda r: print(f"  table {r['table']}, N0 = {r['steps']}: "
                                                  f"{r['iterations']} iterations"
                                                  f"{'' if r['converged'] else '+'}, "
                                                  f"{r['seconds']:.1f} s", flush=True))
        records += recs
        print(format_table(recs), flush=True)
    off = agreement(records)
    print(f"{len(records) - len(off)} of {len(records)} entries within ±2 iterations of the "
          f"paper's")
    return 0
