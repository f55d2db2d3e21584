"""results/admm holds what its README's commands produce, and its tables are the records'."""
import json
from pathlib import Path

import pytest

from mgritlab.graphs.admm_experiments import format_summary, run_config, summary
from mgritlab.graphs.admm_train import METHODS, ADMMRun, run_id

ROOT = Path(__file__).resolve().parents[1] / "results" / "admm"


def _records(pattern="*_seed*.json"):
    return [json.loads(p.read_text()) for p in sorted(ROOT.glob(pattern))]


def test_kept_runs_are_the_cli_defaults_finished():
    recs = _records()
    staged = [r for r in recs if r.get("method") != "adam" and
              (r["config"]["layers"] == 2 or r["config"]["stages"])]
    want = {run_id(run_config(d, L, m), s) for d in ("Cora", "CiteSeer") for L in (2, 10)
            for m in METHODS for s in (0, 1, 2)}
    assert {r["id"] for r in staged} == want
    adam = {r["id"] for r in recs if r.get("method") == "adam"}
    assert adam == {f"{d}_L{L}_adam_seed{s}" for d in ("cora", "citeseer") for L in (2, 10)
                    for s in (0, 1, 2)} | {f"{d}_L10_adam-identity_seed{s}"
                                           for d in ("cora", "citeseer") for s in (0, 1, 2)}
    for r in recs:
        assert r["finished"], r["id"]
        if r.get("method") == "adam":
            h = r["history"]
            assert len(h) == r["epochs"] == 200
        else:
            cfg = ADMMRun(**{**r["config"], "stages": tuple(r["config"]["stages"])})
            h = r["history"]
            assert len(h) == cfg.total_iterations, r["id"]
            final = [x for x in h if x["layers"] == cfg.layers]
            assert len(final) == cfg.iterations
            assert r["rho_ok"]
            # model selection: the test accuracy at the best validation of the final depth
            top = max(x["val_acc"] for x in final)
            assert r["best"]["val_acc"] == top
            assert r["best"]["test_acc"] in [x["test_acc"] for x in final if x["val_acc"] == top]
        best = h[r["best"]["epoch"] - 1]
        assert best["test_acc"] == r["best"]["test_acc"]


def test_the_readme_table_is_the_records():
    readme = (ROOT / "README.md").read_text()
    assert format_summary(summary(_records())) in readme


def test_the_targets_the_readme_reports():
    rows = {(r["dataset"], r["layers"], r["method"]): r for r in summary(_records())}
    for L, target in ((2, 78.0), (10, 77.0)):
        for m in ("pdadmm-g", "pdadmm-g-q"):
            key = ("Cora", L, m if L == 2 else f"{m} staged 2→5→10")
            assert rows[key]["test_at_best_val"][0] >= target, (key, rows[key])
    for L in (2, 10):
        suffix = "" if L == 2 else " staged 2→5→10"
        g, q = rows[("Cora", L, "pdadmm-g" + suffix)], rows[("Cora", L, "pdadmm-g-q" + suffix)]
        assert q["bytes_per_iteration"] <= 0.75 * g["bytes_per_iteration"]
        assert q["test_at_best_val"][0] >= g["test_at_best_val"][0] - 1.0


@pytest.mark.parametrize("name", ["README.md"])
def test_readme_names_the_commands(name):
    text = (ROOT / name).read_text()
    assert "python -m mgritlab experiment admm compare --out results/admm" in text
