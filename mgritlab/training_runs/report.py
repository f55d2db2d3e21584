"""The README and figure of ``results/training_runs`` from the kept records: agreement with
the paper per table, the tables themselves, the potential speedup (Schroder 2022 §3.4.4,
figs. 6–8) and the measured scaling run. ``write_report(folder)`` fills the ``{{…}}`` fields of
``folder/README.in.md`` (the prose) and writes ``README.md`` and ``speedup.png``."""
from __future__ import annotations

import json
import math
from pathlib import Path

from .paper import TABLES, table
from .tables import agreement, format_table, iteration_gap, load


def agreement_table(records: list[dict]) -> str:
    """Markdown: per table, the N₀ run, how many within ±2 of the paper, the largest gap."""
    rows = ["| table | problem | solver | cycle | N0 run | within ±2 of the paper | largest gap |",
            "|---:|:---|:---|:---|:---|:---:|---:|"]
    by: dict[int, list[dict]] = {}
    for r in records:
        by.setdefault(r["table"], []).append(r)
    for t in TABLES:
        group = sorted(by.get(t["table"], []), key=lambda r: r["steps"])
        if not group:
            continue
        ns = (f"{group[0]['steps']}–{group[-1]['steps']}" if len(group) > 1
              else str(group[0]["steps"]))
        gap = max(iteration_gap(r) for r in group)
        rows.append(f"| {t['table']} | {t['problem']} | {t['solver']} | {t['cycle']} | {ns} | "
                    f"{len(group) - len(agreement(group))} of {len(group)} | "
                    f"{'50+ vs converged' if gap == math.inf else gap} |")
    return "\n".join(rows)


SPEEDUP_TABLES = (3, 4, 8, 15, 16, 18, 19)  # the tables behind the paper's figs. 6–8


def speedup_table(records: list[dict]) -> str:
    """Markdown: N₀/σ (paper's count) and the critical-path model at N₀/2 ranks per run."""
    rows = ["| table | solver | cycle | N0 | iterations | N0/σ (paper eqs. 18–19) | "
            "model, N0/2 ranks |", "|---:|:---|:---|---:|---:|---:|---:|"]
    for r in sorted(records, key=lambda r: (r["table"], r["steps"])):
        if r["table"] in SPEEDUP_TABLES and r["converged"]:
            rows.append(f"| {r['table']} | {r['solver']} | {r['cycle']} | {r['steps']} | "
                        f"{r['iterations']} | {r['paper_speedup']:.2f} | "
                        f"{r['model_speedup']:.2f} |")
    return "\n".join(rows)


def scaling_table(folder: Path) -> str:
    """Markdown: the kept ``scaling_P*.json`` runs side by side."""
    runs = sorted((json.loads(p.read_text()) for p in Path(folder).glob("scaling_P*.json")),
                  key=lambda r: r["size"])
    if not runs:
        return "(not yet run)"
    one = runs[0]
    lines = [f"Four-layer problem, {one['solver']}, α_b = {one['alpha_b']}, α_max = "
             f"{one['alpha_max']}, coarse examples '{one['coarse_examples']}', N0 = "
             f"{one['steps']}, {one['cycle']}-cycles, {one['levels']} levels, one torch thread "
             "per rank, best of 2 solves, on the 2-core machine while other experiments ran:",
             "", "| ranks | iterations | seconds | vs 1 rank | model vs 1 rank | "
             "model vs serial training | residuals |", "|---:|---:|---:|---:|---:|---:|:---|"]
    for r in runs:
        same = "identical to 1 rank" if r["residuals"] == one["residuals"] else "DIFFERENT"
        lines.append(f"| {r['size']} | {r['iterations']} | {r['seconds']:.2f} | "
                     f"{one['seconds'] / r['seconds']:.2f}x | "
                     f"{r['model_speedup'] / one['model_speedup']:.2f}x | "
                     f"{r['model_speedup']:.3f}x | {same} |")
    return "\n".join(lines)


def speedup_figure(records: list[dict], path: Path) -> None:
    """The paper's figs. 6–8 recomputed: N₀/σ from its printed counts beside the reruns."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plots import paper_speedups, plot_speedup, record_speedups

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, numbers, title in ((axes[0], (3, 4, 8), "three-layer XOR (fig. 6)"),
                               (axes[1], (15, 16, 18, 19),
                                "four-layer binary addition (figs. 7–8)")):
        curves = {}
        for n in numbers:
            t = table(n)
            curves[f"paper T{n} ({t['solver']}, {t['cycle']})"] = paper_speedups(n)
            mine = [r for r in records if r["table"] == n]
            if mine:
                curves[f"rerun T{n}"] = record_speedups(mine)
        plot_speedup(ax, curves)
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(folder: str | Path) -> str:
    """Fill ``folder/README.in.md`` from the kept records; write README.md and speedup.png."""
    folder = Path(folder)
    template = folder / "README.in.md"
    if not template.exists():
        raise FileNotFoundError(f"{template} is missing: the report fills that template")
    recs = load(folder)
    scaled = [r for r in recs if r.get("scale_tol", True)]
    unscaled = [r for r in recs if not r.get("scale_tol", True)]
    fields = {
        "SUMMARY_SCALED": agreement_table(scaled),
        "SUMMARY_UNSCALED": agreement_table(unscaled) if unscaled else "(not yet run)",
        "TABLES_SCALED": format_table(scaled),
        "TABLES_UNSCALED": format_table(unscaled) if unscaled else "(not yet run)",
        "SPEEDUPS": speedup_table(scaled),
        "SCALING": scaling_table(folder),
        "COUNT": f"{len(recs)} records ({len(scaled)} at 10⁻⁹·√N₀, {len(unscaled)} at 10⁻⁹)",
    }
    text = template.read_text()
    for key, value in fields.items():
        text = text.replace("{{" + key + "}}", value)
    (folder / "README.md").write_text(text)
    speedup_figure(scaled, folder / "speedup.png")
    return text
