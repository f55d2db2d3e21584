"""The thesis's MGRIT experiments (§5.2) as functions, on a tiny configuration."""
import json
from dataclasses import replace

import pytest

from mgritlab.graphs import mgrit_experiments as mx
from mgritlab.graphs.train import load_graph

# h = 2 (not the 8-layer preset's 1): coarse steps of 4 and 8, unstable without α
TINY = dict(layers=8, channels=8, epochs=2, seeds=(0,), h=2.0)


@pytest.fixture(scope="module")
def cora():
    return load_graph("Cora")


def test_alpha_sweep_records_every_configuration_and_divergence(cora, tmp_path):
    # h = 2: the explicit (α = 0) coarse levels are unstable, which the runs report and survive
    with pytest.warns(RuntimeWarning, match=r"(?s)did not converge.*on_divergence='warn'"):
        recs = mx.alpha_sweep(hierarchies=((2, 2), (3, 2)), alphas=(0.0, 1.0), graph=cora,
                              out_dir=tmp_path, **TINY)
    assert [(r["levels"], r["cf"], r["alpha"]) for r in recs] == [
        (2, 2, 0.0), (2, 2, 1.0), (3, 2, 0.0), (3, 2, 1.0)]
    assert all("level 1 (step 4)" in r["mgrit_warning"] for r in recs if r["alpha"] == 0)
    for r in recs:
        assert r["experiment"] == "alpha" and r["parallel"] and r["layers"] == 8
        assert len(r["val_acc"]) == r["epochs_run"]
        assert r["diverged"] or (r["finished"] and r["epochs_run"] == 2)
        # both accuracies: the layer-parallel forward used in training and the exact one
        assert r["test_acc_at_best_val"] == r["test_acc"][r["best_epoch"]]
        assert r["serial_test_acc_at_best_val"] == r["test_acc_serial"][r["best_epoch"]]
    # the runs are kept and a resumed sweep returns them without training again
    again = mx.alpha_sweep(hierarchies=((2, 2), (3, 2)), alphas=(0.0, 1.0), graph=cora,
                           out_dir=tmp_path, resume=True, **TINY)
    assert [r["seconds"] for r in again] == [r["seconds"] for r in recs]
    assert len(list(tmp_path.glob("*_seed0.json"))) == 4


def test_a_diverging_configuration_is_a_recorded_result(cora, tmp_path):
    # explicit layers, h = 0.5 and cf 4: coarse steps of 2 and 8 are unstable (test_lp_training)
    cfg = mx.lp_config(3, 4, 0.0, layers=16, epochs=3, channels=8, on_divergence="raise")
    cfg = replace(cfg, h=0.5, init_noise=0.3)
    r = mx.run(cfg, graph=cora, out_dir=tmp_path)
    assert r["diverged"]["error"] == "MGRITDivergenceError" and not r["finished"]
    assert "level_alpha" in r["diverged"]["message"]
    saved = json.loads(next(tmp_path.glob("*_seed0.json")).read_text())
    assert saved["diverged"] == r["diverged"]
    again = mx.run(cfg, graph=cora, out_dir=tmp_path, resume=True)  # not trained again
    assert again["diverged"]["epoch"] == r["diverged"]["epoch"]
    assert mx.best_alpha([{**r, "experiment": "alpha"}]) == {}


def test_best_alpha_selects_by_validation_not_test():
    def rec(a, val, test):
        return {"experiment": "alpha", "layers": 8, "levels": 2, "cf": 2, "alpha": a,
                "coarse_only": False, "seed": 0, "best_val_acc": val,
                "test_acc_at_best_val": test, "serial_test_acc_at_best_val": test,
                "diverged": None, "finished": True, "best_epoch": 3}
    assert mx.best_alpha([rec(1.0, 0.80, 0.70), rec(2.5, 0.78, 0.90)]) == {(2, 2): 1.0}
    # an unstable run (MGRIT's residual grew, training went on) is no candidate by default
    unstable = {**rec(1.0, 0.80, 0.70), "mgrit_warning": "the forward solve did not converge"}
    assert mx.best_alpha([unstable, rec(2.5, 0.78, 0.90)]) == {(2, 2): 2.5}
    assert mx.best_alpha([unstable, rec(2.5, 0.78, 0.90)], allow_unstable=True) == {(2, 2): 1.0}
    assert mx.best_alpha([unstable]) == {}
    # a run still training (a partial record in --out) does not count, whatever it shows
    partial = {**rec(2.5, 0.95, 0.95), "seed": 1, "finished": False}
    assert mx.best_alpha([rec(1.0, 0.80, 0.70), rec(2.5, 0.78, 0.90), partial]) == {(2, 2): 1.0}
    low = {**rec(1.0, 0.10, 0.10), "seed": 1, "finished": False}
    assert mx.best_alpha([rec(1.0, 0.80, 0.70), rec(2.5, 0.78, 0.90), low]) == {(2, 2): 1.0}


def test_report_counts_the_finished_runs_and_names_the_best_alpha():
    def rec(exp, lv, cf, a, val, seed=0, finished=True):
        return {"experiment": exp, "layers": 64, "levels": lv, "cf": cf, "alpha": a,
                "coarse_only": False, "seed": seed, "best_val_acc": val,
                "test_acc_at_best_val": val, "serial_test_acc_at_best_val": val,
                "diverged": None, "finished": finished, "best_epoch": 3}
    recs = [rec("serial", 1, None, 0.0, 0.80), rec("alpha", 2, 2, 1.0, 0.81),
            rec("alpha", 2, 2, 2.5, 0.79), rec("alpha", 2, 2, 2.5, 0.99, seed=1, finished=False)]
    text = mx.report(recs)
    assert "serial 1 of 3, α sweep 2 of 72, α on the coarse levels only (fig. 5.10) 0 of 12" \
        in text
    assert "1 partial run(s) left out" in text
    assert "best α at 2 levels, cf 2: 1 (1 seed(s)); thesis 1" in text
    assert "best α at 3 levels, cf 4: none stable yet; thesis 5" in text
    assert "99.00" not in text  # the partial run is in no mean


def test_coarse_only_runs_put_alpha_on_the_coarse_levels_only(cora, tmp_path):
    # α = 1 is below the 1.13 that level 2 (step 8) needs: reported, training goes on
    with pytest.warns(RuntimeWarning, match=r"(?s)level 2 \(step 8\).*α ≥ 1\.13"):
        recs = mx.coarse_only_sweep({(3, 2): 1.0, (2, 2): 0.0}, graph=cora, out_dir=tmp_path,
                                    **TINY)
    assert len(recs) == 1 and recs[0]["coarse_only"] and recs[0]["levels"] == 3
    cfg = json.loads(next(tmp_path.glob("*_seed0.json")).read_text())["config"]
    assert cfg["level_alpha"] == [0.0, 1.0, 1.0] and cfg["imex"] == "shared"
    with pytest.raises(ValueError, match="alpha > 0"):
        mx.lp_config(2, 2, 0.0, coarse_only=True)


def test_cli_quick_sweep(tmp_path, capsys):
    from mgritlab.__main__ import main

    rc = main(["experiment", "pdegcn-mgrit", "alpha", "--quick", "--epochs", "1", "--alphas",
               "1", "--out", str(tmp_path)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "test % (LP fwd)" in out
    recs = json.loads((tmp_path / "mgrit_alpha.json").read_text())
    assert [(r["layers"], r["levels"], r["cf"], r["alpha"]) for r in recs] == [
        (16, 2, 2, 1.0), (16, 3, 4, 1.0)]


def test_load_reads_back_what_the_sweep_kept(cora, tmp_path):
    recs = mx.alpha_sweep(hierarchies=((2, 2),), alphas=(1.0,), graph=cora, out_dir=tmp_path,
                          **TINY)
    recs += mx.serial_reference(graph=cora, out_dir=tmp_path,
                                **{k: v for k, v in TINY.items() if k != "h"})
    back = sorted(mx.load(tmp_path), key=lambda r: r["experiment"])
    assert [r["experiment"] for r in back] == ["alpha", "serial"]
    assert back[0]["val_acc"] == recs[0]["val_acc"] and back[1]["seconds"] == recs[1]["seconds"]
    # a result file cut short by a kill: named in a warning and left out, the others load
    (tmp_path / "cora_pdegcn_L8_h1_none_seed7.json").write_text('{"name": "cora_pd')
    with pytest.warns(RuntimeWarning, match="seed7.json is not valid JSON"):
        assert len(mx.load(tmp_path)) == 2
    # another sweep's temporary beside the summary is not touched
    other = tmp_path / "mgrit_all.json.tmp"
    other.write_text("another sweep's half-written file")
    mx.save(back, tmp_path / "mgrit_all.json")
    assert other.read_text() == "another sweep's half-written file"
    assert json.loads((tmp_path / "mgrit_all.json").read_text())[0]["experiment"] == "alpha"


def test_warn_mode_trains_through_an_unstable_coarse_level_and_keeps_the_warning(cora, tmp_path):
    cfg = replace(mx.lp_config(3, 4, 0.0, layers=16, epochs=3, channels=8), h=0.5,
                  init_noise=0.3)
    assert cfg.on_divergence == "warn"
    with pytest.warns(RuntimeWarning, match="training goes on"):
        r = mx.run(cfg, graph=cora, out_dir=tmp_path)
    assert r["finished"] and not r["diverged"] and r["epochs_run"] == 3
    assert "level 2 (step 8)" in r["mgrit_warning"] and "α ≥" in r["mgrit_warning"]


def test_stable_alpha_grows_with_the_coarse_step_and_matches_min_alpha(cora):
    from mgritlab.stability import min_alpha

    recs = mx.stable_alpha(((2, 2), (3, 4)), layers=16, graph=cora)
    a = {(r["levels"], r["cf"]): r for r in recs}
    r = a[(3, 4)]
    # level 2 steps 16 h: it needs more than level 1 (4 h), and training (dropout) more than eval
    assert r["alpha_train_per_level"][2] > r["alpha_train_per_level"][1] > 0
    assert r["alpha_train"] >= r["alpha_eval"]
    assert a[(3, 4)]["alpha_train"] > a[(2, 2)]["alpha_train"]
    H = 16 * r["h"]
    assert abs(r["alpha_train_per_level"][2] - min_alpha([-r["rho_train"]], H)) < 1e-12
    # an independent check of the bound: |1 - Hρ/(1 + Hα)| = 1 at the smallest α
    a2 = r["alpha_train_per_level"][2]
    assert abs(abs(1 - H * r["rho_train"] / (1 + H * a2)) - 1) < 1e-9


def test_kept_results_are_what_the_cli_produces():
    """results/pdegcn_mgrit holds runs of `experiment pdegcn-mgrit all` (in progress across
    sessions): every kept run's configuration is the one the CLI builds for it."""
    from dataclasses import asdict
    from pathlib import Path

    from mgritlab.graphs.train import _normalized, preset

    kept = Path(__file__).resolve().parents[1] / "results" / "pdegcn_mgrit"
    files = sorted(kept.glob("*_seed*.json"))
    if not files:
        pytest.skip("no kept MGRIT results yet")
    for path in files:
        r = json.loads(path.read_text())
        cfg = r["config"]
        if cfg["layer_parallel"]:
            la = cfg.get("level_alpha")
            want = mx.lp_config(cfg["levels"], cfg["cf"], cfg["alpha"], layers=cfg["layers"],
                                seed=cfg["seed"], coarse_only=la is not None and la[0] == 0.0)
        else:
            want = replace(preset("Cora", cfg["layers"]), epochs=mx.EPOCHS, seed=cfg["seed"])
        assert _normalized(cfg) == _normalized(asdict(want)), path.name
        assert r["finished"] or r["diverged"], f"{path.name}: only finished runs are kept"


def test_parallel_sweep_trains_serial_and_each_hierarchy_per_depth(cora, tmp_path):
    recs = mx.parallel_sweep({(2, 2): 1.0, (3, 4): 2.5}, layers_list=(8, 16), epochs=1,
                             quick=True, graph=cora, out_dir=tmp_path)  # 16 channels
    got = [(r["layers"], r["experiment"], r["levels"], r["cf"], r["alpha"]) for r in recs]
    # (3, 4) needs a depth divisible by 16: not at 8 layers
    assert got == [(8, "serial", 1, None, 0.0), (8, "alpha", 2, 2, 1.0),
                   (16, "serial", 1, None, 0.0), (16, "alpha", 2, 2, 1.0),
                   (16, "alpha", 3, 4, 2.5)]


def test_the_readme_table_is_the_kept_records():
    from pathlib import Path

    kept = Path(__file__).resolve().parents[1] / "results" / "pdegcn_mgrit"
    if not sorted(kept.glob("*_seed*.json")):
        pytest.skip("no kept MGRIT results yet")
    assert mx.format_table(mx.load(kept)) in (kept / "README.md").read_text(), (
        "results/pdegcn_mgrit/README.md: paste the table of `python -m mgritlab experiment "
        "pdegcn-mgrit report --out results/pdegcn_mgrit`")
