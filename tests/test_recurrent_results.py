"""results/gru holds what the README's commands produce, and its tables are the records'."""
import json
from dataclasses import replace
from pathlib import Path

from mgritlab.recurrent.scaling import format_scaling
from mgritlab.recurrent.train import GRUConfig, format_summary, run_id, summary

ROOT = Path(__file__).resolve().parents[1] / "results" / "gru"


def _records(folder: Path, pattern: str = "*.json") -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob(pattern))]


def test_kept_gru_runs_are_the_cli_defaults_finished():
    recs = _records(ROOT, "basicmotions_*.json")
    base = GRUConfig(data="basicmotions", steps=96, epochs=60, hidden=32)  # the CLI defaults
    want = {run_id(c, s) for s in (0, 1, 2) for c in (
        replace(base, scheme="classic"), replace(base, scheme="implicit"),
        replace(base, scheme="implicit", parallel=True))}
    assert {r["id"] for r in recs} == want
    for r in recs:
        assert r["finished"] and r["epochs_done"] == 60, r["id"]
        assert GRUConfig(**r["config"]) in {replace(base, scheme="classic"),
                                             replace(base, scheme="implicit"),
                                             replace(base, scheme="implicit", parallel=True)}
        c = r["curves"]
        e = r["best"]["epoch"]
        assert r["best"]["test_acc"] == c["test_acc"][e - 1]
        assert c["val_acc"][e - 1] == max(c["val_acc"])
    readme = (ROOT / "README.md").read_text()
    assert format_summary(summary(recs)) in readme


def test_kept_scaling_runs_cover_the_lengths_and_match_the_readme():
    recs = _records(ROOT / "scaling")
    assert {(r["steps"], r["size"]) for r in recs} == {
        (n, p) for n in (128, 256, 512, 1024, 2048, 4096) for p in (1, 2)}
    by = {(r["steps"], r["size"]): r for r in recs}
    for n in (128, 256, 512, 1024, 2048, 4096):
        assert by[n, 1]["fwd_residuals"] == by[n, 2]["fwd_residuals"]   # the same iterates
    assert format_scaling(recs) in (ROOT / "README.md").read_text()


def test_kept_coarse_comparison_is_what_the_command_computes():
    from mgritlab.recurrent.coarse import basic_motions_comparison

    kept = json.loads((ROOT / "coarse.json").read_text())
    fresh = basic_motions_comparison()
    assert kept["schemes"]["classic"]["diverged"] and fresh["schemes"]["classic"]["diverged"]
    a, b = kept["schemes"]["implicit"], fresh["schemes"]["implicit"]
    assert not a["diverged"] and len(a["residuals"]) == len(b["residuals"])
    # relative to each residual, plus the rounding floor: residuals near 1e-12 of the first
    # carry the last bits of the CPU's kernels (AVX-512 machines differ from AVX2 ones there)
    floor = 1e-14 * b["residuals"][0]
    for x, y in zip(a["residuals"], b["residuals"]):
        assert abs(x - y) <= 1e-6 * y + floor
