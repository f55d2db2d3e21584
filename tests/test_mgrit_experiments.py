"""The thesis's MGRIT experiments (§5.2) as functions, on a tiny configuration."""
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

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


def test_the_main_readme_headline_is_the_kept_results():
    # README.md's highlights quote the kept runs; they go stale when a best α moves
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    kept = root / "results" / "pdegcn_mgrit"
    recs, timing = mx.load(kept), mx.load_timing(kept)
    if not sorted(kept.glob("*_seed*.json")):
        pytest.skip("no kept MGRIT results yet")
    readme = " ".join((root / "README.md").read_text().split())
    # the sweep's depth only: a 256-layer run at another α (kept beside the protocol's) must
    # not compete for the best α
    best = mx.best_alpha(mx.sweep_runs(recs))
    rows = {(r["levels"], r["cf"], r["alpha"]): r
            for r in mx.aggregate([r for r in mx.sweep_runs(mx.ended(recs))
                                   if r["experiment"] in ("serial", "alpha")])}
    serial = rows[(1, None, 0.0)]["test_mean"]
    pct = [100 * rows[(*k, a)]["test_mean"] / serial for k, a in best.items()]
    assert f"{min(pct):.1f}–{max(pct):.1f} % of the serial" in readme, (
        "README.md highlights: restate the kept best-α accuracy range "
        f"{min(pct):.1f}–{max(pct):.1f} % (results/pdegcn_mgrit)")
    timed = mx.timed_alpha(timing, 256)  # the α the kept timing was measured at, as report
    if (3, 4) in timed:
        row = next(r for r in mx.wall_time_table(recs, timing, timed, layers=256, ranks=64)
                   if (r["levels"], r["cf"]) == (3, 4))
        quoted = (f"{row['speedup']:.1f}x over serial at 64 ranks by the critical-path model "
                  f"and {row['step_1'] / row['step_2']:.2f}x measured from 1 to 2 ranks")
        assert quoted in readme, f"README.md highlights: restate the kept timing: {quoted}"


def test_the_readme_table_is_the_kept_records():
    from pathlib import Path

    kept = Path(__file__).resolve().parents[1] / "results" / "pdegcn_mgrit"
    if not sorted(kept.glob("*_seed*.json")):
        pytest.skip("no kept MGRIT results yet")
    assert mx.format_table(mx.load(kept)) in (kept / "README.md").read_text(), (
        "results/pdegcn_mgrit/README.md: run `python -m mgritlab experiment pdegcn-mgrit "
        "report --readme --out results/pdegcn_mgrit` (it rewrites the table)")
    # the wall-time tables of figs. 5.11-5.13, once the timing is kept, are report's
    timing = mx.load_timing(kept)
    for block in mx.report_blocks(mx.load(kept), timing=timing,
                                  forward=mx.load_forward_error(kept))[2:]:
        assert block in (kept / "README.md").read_text(), (
            "results/pdegcn_mgrit/README.md: run `python -m mgritlab experiment pdegcn-mgrit "
            "report --readme --out results/pdegcn_mgrit` (it rewrites the wall-time tables)")
    # the figures the README shows are there (report --figures draws them)
    names = ["alpha_sweep.png", "accuracy_vs_time_64.png"]
    names += ["coarse_only.png"] * any(r["experiment"] == "coarse_only"
                                       for r in mx.ended(mx.load(kept)))
    for name in names:
        assert f"]({name})" in (kept / "README.md").read_text()
        assert (kept / name).stat().st_size > 10_000, f"run report --figures: {name}"


# -- figs. 5.10-5.13: the time axis, the wall-time table and the plots ----------------------
def _rec(exp, layers, lv, cf, a, acc, curve, coarse_only=False):
    return {"experiment": exp, "layers": layers, "levels": lv, "cf": cf, "alpha": a,
            "coarse_only": coarse_only, "finished": True, "diverged": None,
            "test_acc_at_best_val": acc, "serial_test_acc_at_best_val": acc,
            "best_epoch": len(curve) - 1, "best_val_acc": acc, "mgrit_warning": None,
            "seed": 0, "test_acc": curve, "val_acc": curve}


def _synthetic():
    costs = {"step": 0.01, "vjp_x": 0.02, "linearize": 0.005, "vjp_theta": 0.004}
    timing = [
        {"ranks": 1, "layers": 64, "levels": 1, "cf": None, "alpha": 0.0, "step_s": 2.0},
        {"ranks": 1, "layers": 64, "levels": 3, "cf": 4, "alpha": 2.5, "step_s": 6.0,
         "other_s": 0.3, "layer_costs": costs},
        {"ranks": 2, "layers": 64, "levels": 3, "cf": 4, "alpha": 2.5, "step_s": 3.5},
        # another α of the same hierarchy, timed earlier: must not be mixed in
        {"ranks": 1, "layers": 64, "levels": 3, "cf": 4, "alpha": 5.0, "step_s": 60.0,
         "other_s": 3.0, "layer_costs": costs},
    ]
    records = [_rec("serial", 64, 1, None, 0.0, 0.80, [0.5, 0.7, 0.8]),
               _rec("serial", 64, 1, None, 0.0, 0.82, [0.5, 0.7, 0.82]),
               _rec("alpha", 64, 3, 4, 2.5, 0.79, [0.4, 0.6, 0.79]),
               _rec("alpha", 64, 3, 4, 5.0, 0.70, [0.3, 0.5, 0.70]),
               _rec("coarse_only", 64, 3, 4, 2.5, 0.75, [0.3, 0.6, 0.75], coarse_only=True)]
    return records, timing, costs


def test_wall_time_table_uses_the_measured_steps_and_the_model_elsewhere():
    from mgritlab.nn.cost_model import epoch_model

    records, timing, costs = _synthetic()
    best = {(3, 4): 2.5}
    rows = mx.wall_time_table(records, timing, best, layers=64, ranks=2, epochs=150)
    serial, lp = rows
    assert (serial["config"], serial["step_P"], serial["time_to_epochs"]) == ("serial", 2.0, 300)
    assert serial["test_acc"] == pytest.approx(0.81) and serial["seeds"] == 2
    # 2 ranks were measured: no model, and the α = 5 row is not mixed in
    assert (lp["step_1"], lp["step_2"], lp["step_P"], lp["modelled"]) == (6.0, 3.5, 3.5, False)
    assert lp["speedup"] == pytest.approx(300 / (3.5 * 150)) and lp["test_acc"] == 0.79
    # 32 ranks: the critical-path model from the one-rank costs (by hand below)
    lp32 = mx.wall_time_table(records, timing, best, layers=64, ranks=32)[1]
    sigma_first, sigma = (epoch_model(costs, 64, 32, levels=3, cf=4)[k]
                          for k in ("sigma_first", "sigma"))
    by_hand = (0.3 + (sigma_first + sigma) * 0.01 + sigma_first * 0.02
               + 2 * (0.005 + 0.004))  # T1 = 2, T2 = 1; ⌈64/32⌉ = 2 layers per rank
    assert lp32["modelled"] and lp32["step_P"] == pytest.approx(by_hand)
    assert 0.3 < lp32["step_P"] < mx.modelled_step_seconds(timing[1], 2)
    text = mx.format_wall_time(rows, layers=64, ranks=2)
    assert "3 levels, cf 4" in text and "to 150 ep. s" in text
    # measured once: the 2-rank speedup 6 / 3.5 without a range
    assert lp["two_rank_speedup"] == (pytest.approx(6.0 / 3.5), None)
    assert f"{6.0 / 3.5:.2f} " in text and "[" not in text.split("\n", 2)[2]
    # repeated: the paired ratios' range (6/4, 5.4/3.5, 7/3) beside the medians' ratio
    timing[1] |= {"step_s_runs": [6.0, 5.4, 7.0]}
    timing[2] |= {"step_s_runs": [4.0, 3.5, 3.0]}
    lp = mx.wall_time_table(records, timing, best, layers=64, ranks=2)[1]
    assert lp["two_rank_speedup"] == (pytest.approx(6.0 / 3.5),
                                      (pytest.approx(1.5), pytest.approx(7.0 / 3.0)))
    text = mx.format_wall_time([lp], layers=64, ranks=2)
    assert "1.71 [1.50, 2.33]" in text
    # a hierarchy timed but not yet trained: its accuracy is '-' with 0 seeds, not nan
    untrained = [r for r in records if r["experiment"] != "alpha"]
    lp = mx.wall_time_table(untrained, timing, best, layers=64, ranks=2)[1]
    last = mx.format_wall_time([lp], layers=64, ranks=2).splitlines()[-1]
    assert lp["seeds"] == 0 and "nan" not in last and last.split()[-2:] == ["-", "0"]


def test_wall_time_table_says_what_is_missing():
    records, timing, _ = _synthetic()
    with pytest.raises(ValueError, match="no serial timing at 256 layers"):
        mx.wall_time_table(records, timing, {(3, 4): 2.5}, layers=256, ranks=64)
    with pytest.raises(ValueError, match=r"lacks.*layer_costs"):
        mx.modelled_step_seconds(timing[2] | {"ranks": 1}, 32)


def test_plots_of_figs_5_10_to_5_13():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records, timing, _ = _synthetic()
    ax = mx.plot_accuracy_vs_time(records, timing, {(3, 4): 2.5}, layers=64, ranks=32,
                                  until=100.0)
    serial, lp = ax.get_lines()
    assert list(serial.get_xdata()) == [2.0, 4.0, 6.0]  # epochs × the serial step
    assert list(serial.get_ydata()) == pytest.approx([0.5, 0.7, 0.81])
    assert "model, 32 rank(s)" in lp.get_label() and ax.get_xlim() == (0.0, 100.0)
    # the legend says how many seeds each mean has (the synthetic serial network has two)
    assert serial.get_label() == "serial, α = 0 (1 process, 2 seeds)"
    assert lp.get_label() == "3 levels, cf 4, α = 2.5 (model, 32 rank(s), 1 seed)"
    # 2 ranks were measured: the time axis is the measured 2-rank step
    ax = mx.plot_accuracy_vs_time(records, timing, {(3, 4): 2.5}, layers=64, ranks=2)
    assert "measured, 2 rank(s)" in ax.get_lines()[1].get_label()
    assert list(ax.get_lines()[1].get_xdata()) == [3.5, 7.0, 10.5]
    assert ax.get_xscale() == "linear" and not ax.texts  # the thesis's times: 256 layers
    # at 256 layers the thesis's 150-epoch times are marked, on a log axis that shows both
    # them and this machine's far shorter times; not where the axis is cut short of them
    deep = ([r | {"layers": 256} for r in records], [t | {"layers": 256} for t in timing])
    ax = mx.plot_accuracy_vs_time(*deep, {(3, 4): 2.5}, layers=256, ranks=64)
    assert ax.get_xscale() == "log" and "log scale" in ax.get_xlabel()
    assert sorted(t.get_text() for t in ax.texts) == ["thesis: 3 lv, cf 4", "thesis: serial"]
    assert ax.get_xlim()[1] > mx.THESIS_256["serial_s"]
    ax = mx.plot_accuracy_vs_time(*deep, {(3, 4): 2.5}, layers=256, ranks=64, until=10.0)
    assert ax.get_xscale() == "linear" and not ax.texts and ax.get_xlim() == (0.0, 10.0)
    ax = mx.plot_accuracy_vs_time(records, None, {(3, 4): 2.5}, layers=64, x="epoch")
    assert [list(ln.get_xdata()) for ln in ax.get_lines()] == [[1, 2, 3]] * 2
    with pytest.raises(ValueError, match="x must be 'time' or 'epoch'"):
        mx.plot_accuracy_vs_time(records, timing, {}, layers=64, x="seconds")
    ax = mx.plot_coarse_only(records, {(3, 4): 2.5})
    assert [ln.get_label() for ln in ax.get_lines()] == [
        "3 levels, cf 4: α = 2.5 on coarse levels only (1 seed)",
        "3 levels, cf 4: α = 2.5 on all levels (1 seed)"]
    # a seed that only the all-levels runs have is left out of both curves
    more = records + [_rec("alpha", 64, 3, 4, 2.5, 0.5, [0.1, 0.1, 0.1]) | {"seed": 1}]
    ax = mx.plot_coarse_only(more, {(3, 4): 2.5})
    assert list(ax.get_lines()[1].get_ydata()) == pytest.approx([0.4, 0.6, 0.79])
    assert "(1 seed)" in ax.get_lines()[1].get_label()
    plt.close("all")


def test_parallel_timing_times_serial_and_layer_parallel_steps_and_report_shows_them(
        cora, tmp_path):
    torch.manual_seed(123)
    np.random.seed(123)  # noqa: NPY002
    rows = mx.parallel_timing({(2, 2): 1.0}, layers_list=(16,), quick=True, graph=cora,
                              ranks=(1,), epochs=2, repeats=1)
    # the timed runs seed the global generators; the caller's next draws are its own
    draws = (torch.rand(3), np.random.rand(3))  # noqa: NPY002
    assert torch.equal(draws[0], torch.rand(3, generator=torch.Generator().manual_seed(123)))
    assert np.array_equal(draws[1], np.random.RandomState(123).rand(3))
    serial, lp = rows
    assert (serial["levels"], serial["cf"], serial["ranks"]) == (1, None, 1)
    assert (lp["levels"], lp["cf"], lp["alpha"], lp["ranks"]) == (2, 2, 1.0, 1)
    assert serial["step_s"] > 0 and lp["step_s"] > lp["other_s"] >= 0
    assert set(lp["layer_costs"]) == {"step", "vjp_x", "linearize", "vjp_theta"}
    mx.save(rows, tmp_path / mx.TIMING_FILE)
    assert mx.load_timing(tmp_path) == rows and mx.load_timing(tmp_path / "none") == []
    recs = [_rec("serial", 16, 1, None, 0.0, 0.7, [0.7]), _rec("alpha", 16, 2, 2, 1.0, 0.6, [0.6])]
    text = mx.report(recs, timing=rows)
    assert "16 layers: seconds per training step" in text and "2 levels, cf 2" in text


def test_parallel_timing_repeats_every_measurement_interleaved_and_keeps_the_median(
        cora, monkeypatch):
    calls = []

    def timed(cfg, P, *, epochs, graph):
        calls.append((cfg.layer_parallel, P))
        n = len(calls)
        return {"ranks": P, "layers": cfg.layers, "levels": 2 if cfg.layer_parallel else 1,
                "step_s": float(n), "forward_s": 10.0 * n}

    monkeypatch.setattr(mx, "epoch_seconds_on_ranks", timed)
    monkeypatch.setattr(mx, "layer_costs_of", lambda cfg, graph: {"step": 1.0})
    rows = mx.parallel_timing({(2, 2): 1.0}, layers_list=(16,), quick=True, graph=cora,
                              ranks=(1, 2), repeats=3)
    # serial, LP on 1 rank, LP on 2 ranks; then all three again, twice
    assert calls == [(False, 1), (True, 1), (True, 2)] * 3
    assert [r["step_s_runs"] for r in rows] == [[1.0, 4.0, 7.0], [2.0, 5.0, 8.0],
                                                [3.0, 6.0, 9.0]]
    assert [r["step_s"] for r in rows] == [4.0, 5.0, 6.0]
    assert [r["forward_s"] for r in rows] == [40.0, 50.0, 60.0]
    assert [("layer_costs" in r) for r in rows] == [False, True, False]
    with pytest.raises(ValueError, match="repeats must be at least 1"):
        mx.parallel_timing({(2, 2): 1.0}, layers_list=(16,), quick=True, graph=cora, repeats=0)


def test_a_corrupt_timing_file_is_named_with_what_to_do(tmp_path):
    (tmp_path / mx.TIMING_FILE).write_text('{"ranks": 1')
    with pytest.raises(ValueError, match="delete it and run experiment pdegcn-mgrit parallel"):
        mx.load_timing(tmp_path)


@pytest.fixture(scope="module")
def stable_rows(cora):
    return mx.stable_alpha(graph=cora)


def test_the_readme_stable_alpha_table_is_computed_beside_the_kept_best_alpha(stable_rows):
    from pathlib import Path

    kept = Path(__file__).resolve().parents[1] / "results" / "pdegcn_mgrit"
    if not sorted(kept.glob("*_seed*.json")):
        pytest.skip("no kept MGRIT results yet")
    table = mx.format_stable_alpha(stable_rows, mx.load(kept))
    assert table in (kept / "README.md").read_text(), (
        "results/pdegcn_mgrit/README.md: run `python -m mgritlab experiment pdegcn-mgrit "
        "report --readme --out results/pdegcn_mgrit` (it rewrites the stable-α table)")


def test_update_readme_rewrites_the_computed_blocks_from_the_finished_runs(stable_rows,
                                                                          tmp_path):
    import shutil
    from pathlib import Path

    kept = Path(__file__).resolve().parents[1] / "results" / "pdegcn_mgrit"
    runs = sorted(kept.glob("*_seed*.json"))  # a partial one is left out by update_readme
    if not runs:
        pytest.skip("no kept MGRIT results yet")
    for p in [*runs, kept / mx.TIMING_FILE, kept / mx.FORWARD_ERROR_FILE, kept / "README.md"]:
        if p.exists():
            shutil.copy(p, tmp_path)
    readme = tmp_path / "README.md"
    want = readme.read_text()
    mx.update_readme(tmp_path, stable_rows=stable_rows)
    assert readme.read_text() == want, (
        "results/pdegcn_mgrit/README.md is stale: run experiment pdegcn-mgrit report --readme "
        "--out results/pdegcn_mgrit")
    # stale blocks: an old status line, a table short of a row, an old stable-α row
    table = mx.format_table(mx.ended(mx.load(tmp_path)))
    stale = (want.replace(table, "\n".join(table.split("\n")[:-1]))
             .replace("at 64 layers: serial 3 of 3", "at 64 layers: serial 1 of 3")
             .replace("| 2 | 2 | 0.502 |", "| 2 | 2 | 0.111 |")
             .replace("| 256 | 0.2 | 3 | 4 | 1→2 (FCF) | 16 |",
                      "| 256 | 0.2 | 3 | 4 | 1→2 (FCF) | 99 |")
             .replace("| 2 | 2 | 1 | coarse | ", "| 2 | 2 | 1 | coarse | 9"))
    assert stale != want
    readme.write_text(stale)
    mx.update_readme(tmp_path, stable_rows=stable_rows)
    assert readme.read_text() == want
    # a README without the table's fence: a clear error, the file as it was
    readme.write_text(want.replace(table, "the table was here"))
    with pytest.raises(ValueError, match="0 fenced blocks begin with 'experiment"):
        mx.update_readme(tmp_path, stable_rows=stable_rows)
    assert readme.read_text() == want.replace(table, "the table was here")


def test_linear_forward_error_steps_each_level_with_its_own_alpha():
    from mgritlab.mgrit.linear import diagonal_errors

    rows = mx.linear_forward_error(0.5, {(3, 4): 2.5}, layers=64, iterations=3, points=51)
    assert [(r["where"], r["alpha"]) for r in rows] == [("all", 2.5), ("coarse", 2.5),
                                                        ("-", 0.0)]
    lam = -np.linspace(0.0, 0.5, 51)
    # coarse only: level 0 explicit (h = 0.8), levels 1, 2 IMEX with steps 3.2 and 12.8
    want = diagonal_errors([1 + 0.8 * lam, 1 + 3.2 * lam / (1 + 3.2 * 2.5),
                            1 + 12.8 * lam / (1 + 12.8 * 2.5)], 4, 64, 3)
    np.testing.assert_allclose(rows[1]["error"], want, rtol=1e-12)
    assert rows[1]["error"][1] > rows[1]["error"][0]
    assert rows[0]["error"][2] < rows[1]["error"][2]   # α on all levels: a smaller error
    # beside the measured evaluation-mode rows (mean over seeds); '-' where none was kept
    measured = [dict(layers=64, levels=3, cf=4, alpha=2.5, where="coarse", mode=m,
                     error=[e, 2 * e, 3 * e, 4 * e, 5 * e, 6 * e, 7 * e, 8 * e])
                for m, e in (("eval", 0.1), ("eval", 0.3), ("train", 9.0))]
    table = mx.format_linear_forward_error(rows, measured).split("\n")
    assert table[0].startswith(mx.LINEAR_HEAD) and len(table) == 5
    assert table[3].endswith("| 0.200 | 0.400 | 0.800 | 1.600 |")
    assert table[2].endswith("| - | - | - | - |") and "| 3 | 4 | 2.5 | coarse |" in table[3]


def test_the_readme_s_linear_model_numbers_are_the_model_s():
    # the hand-written prose quotes the model's edge and its 256-layer α ordering
    from pathlib import Path

    from scipy.optimize import brentq

    from mgritlab.mgrit.linear import diagonal_errors
    from mgritlab.stability import R_imex

    readme = (Path(__file__).resolve().parents[1] / "results" / "pdegcn_mgrit" / "README.md")
    text = " ".join(readme.read_text().split())
    lam, h = -np.linspace(0, 0.502, 201), 0.8

    def growth(Ha, cf):  # e_8 / e_1, two levels, α on the coarse level only
        e = diagonal_errors([1 + h * lam, R_imex(cf * h * lam, Ha)], cf, 64, 8)
        return np.log(e[-1] / e[0])

    edge = [brentq(growth, 0.8, 6, args=(cf,)) for cf in (2, 4)]
    assert f"H·α ≈ {edge[0]:.2f} for cf 2 and ≈ {edge[1]:.2f} for cf 4" in text
    e4 = [mx.linear_forward_error(0.502, {(3, 4): a}, layers=256, iterations=4)[0]["error"][3]
          for a in (0.5, 1, 2.5, 5, 10)]
    assert "e_4 = " + ", ".join(f"{e:.3g}" if e >= 1 else f"{e:.2f}" for e in e4) in text


def test_pair_bounds_take_each_level_pair_s_steps_and_relaxation():
    from mgritlab.stability import R_imex, two_level_bounds

    rows = mx.pair_bounds({"eval": 0.5, "train": 3.3}, hierarchies=((2, 2), (3, 4)),
                          alphas=(1.0, 2.5), points=401)
    # 64 layers: (2,2) one pair, (3,4) two; 256 layers the same: 6 pairs × 2 α × 2 modes
    assert len(rows) == 24
    r = next(r for r in rows if (r["layers"], r["levels"], r["cf"], r["pair"], r["alpha"],
                                 r["mode"]) == (256, 3, 4, 2, 2.5, "eval"))
    # level 1 of 256 layers steps 4 h = 0.8, level 2 takes 256/16 = 16 steps of 3.2, FCF
    assert (r["h"], r["n_c"], r["relax"]) == (0.2, 16, "FCF")
    lam = -np.linspace(0.0, 0.5, 401)
    assert r["bound"] == two_level_bounds(R_imex(0.8 * lam, 0.8 * 2.5),
                                          R_imex(3.2 * lam, 3.2 * 2.5), 4, 16)[1]
    fine = next(r for r in rows if (r["layers"], r["levels"], r["cf"], r["pair"], r["alpha"],
                                    r["mode"]) == (64, 2, 2, 1, 1.0, "train"))
    assert (fine["h"], fine["n_c"], fine["relax"]) == (0.8, 32, "F")
    lam = -np.linspace(0.0, 3.3, 401)
    assert fine["bound"] == two_level_bounds(R_imex(0.8 * lam, 0.8), R_imex(1.6 * lam, 1.6),
                                             2, 32)[0]
    text = mx.format_pair_bounds(rows)
    assert text.count("\n") == 1 + 6 and "| α = 1 | α = 2.5 |" in text
    assert "| 256 | 0.2 | 3 | 4 | 1→2 (FCF) | 16 | " in text
    assert f"{r['bound']:.2f} / " in text.split("1→2 (FCF) | 16 |")[1].split("\n")[0]


def test_forward_ratio_and_the_depths_with_more_than_one_alpha():
    assert mx.forward_ratio([[2.0, 1.0], [4.0, 5.0], [3.0], [0.0, 0.0]])[:2] == [0.5, 1.25]
    assert all(np.isnan(q) for q in mx.forward_ratio([[3.0], [0.0, 0.0]]))
    assert mx.forward_ratio(None) is None and mx.forward_ratio([]) is None
    recs = [_rec("alpha", 256, 3, 4, a, 0.8, [0.8]) for a in (1.0, 2.5)]
    recs += [_rec("alpha", 256, 2, 2, 1.0, 0.8, [0.8]),  # one α: nothing to compare
             _rec("alpha", 64, 2, 2, 1.0, 0.8, [0.8]), _rec("alpha", 64, 2, 2, 5.0, 0.8, [0.8]),
             _rec("alpha", 256, 2, 4, 1.0, 0.8, [0.8]),
             _rec("alpha", 256, 2, 4, 5.0, 0.8, [0.8]) | {"finished": False}]
    # the sweep's depth has its own figure; a partial run does not count
    assert mx.depth_alpha_keys(recs) == [(256, 3, 4)]


def test_format_stable_alpha_names_the_sweep_s_best_alpha_and_its_seeds():
    rows = [{"levels": 2, "cf": 4, "rho_eval": 0.5, "rho_train": 3.3,
             "alpha_train_per_level": {1: 1.35}, "alpha_train": 1.35}]
    recs = [_rec("alpha", 64, 2, 4, a, 0.8, [0.8]) | {"best_val_acc": v, "seed": s}
            for a, v, s in ((1.0, 0.9, 0), (2.5, 0.8, 0), (2.5, 0.8, 1))]
    recs[0]["mgrit_warning"] = "level 1 grew"  # unstable: not a recommendation
    # a 256-layer run at the best α (figs. 5.11-5.13), however good, is not the sweep's
    deep = _rec("alpha", 256, 2, 4, 1.0, 0.99, [0.99]) | {"seed": 0}
    text = mx.format_stable_alpha(rows, recs + [deep])
    assert "| 2 | 4 | 0.500 | 3.300 | ℓ1: 1.35 | 1.35 | 2.5 (2) | 2.5 |" in text
    status = mx.report_blocks(recs + [deep, deep | {"alpha": 2.5}])[0]
    assert "best α at 2 levels, cf 4: 2.5 (2 seed(s))" in status
    assert "| - | 2.5 |" in mx.format_stable_alpha(rows, [])


def test_parallel_waits_for_the_whole_alpha_sweep_unless_told(tmp_path, capsys, monkeypatch):
    from mgritlab.__main__ import main

    recs = [_rec("alpha", 64, lv, cf, 2.5, 0.8, [0.8]) for lv, cf in mx.HIERARCHIES]
    assert mx.sweep_progress(recs) == (4, 72)
    assert mx.sweep_progress(recs, seeds=(0,)) == (4, 24)
    full = [r | {"alpha": a, "seed": s} for r in recs for a in mx.ALPHAS for s in (0, 1, 2)]
    assert mx.sweep_progress(full) == (72, 72)
    # a kept sweep with a best α for every hierarchy, but 4 of its 72 runs
    monkeypatch.setattr(mx, "load", lambda out: recs)
    rc = main(["experiment", "pdegcn-mgrit", "parallel", "--out", str(tmp_path)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "4 of 72 runs finished" in err and "--partial-sweep" in err


def test_report_writes_the_figures_of_what_out_holds(cora, tmp_path, capsys):
    from mgritlab.__main__ import main

    tiny = dict(TINY, layers=16, h=0.5)  # coarse steps of 1: stable, no warning
    mx.alpha_sweep(hierarchies=((2, 2),), alphas=(1.0,), graph=cora, out_dir=tmp_path, **tiny)
    assert mx.write_figures(tmp_path) == []  # figs. 5.6-5.9 are of 64 layers
    # a second α at this depth (not the sweep's): the two side by side, with the forward's
    # residual ratio per epoch
    mx.alpha_sweep(hierarchies=((2, 2),), alphas=(0.5,), graph=cora, out_dir=tmp_path, **tiny)
    assert mx.write_figures(tmp_path) == [tmp_path / "alpha_16_2x2.png"]
    recs = mx.load(tmp_path)
    assert all(len(r["forward_ratio"]) == r["epochs_run"] and 0 < r["forward_ratio"][0] < 1
               for r in recs)
    mx.coarse_only_sweep({(2, 2): 1.0}, graph=cora, out_dir=tmp_path, **tiny)
    mx.serial_reference(graph=cora, out_dir=tmp_path,
                        **{k: v for k, v in tiny.items() if k != "h"})
    # the timing of 16 layers: a synthetic one-rank row with costs for the model
    costs = {"step": 0.01, "vjp_x": 0.02, "linearize": 0.005, "vjp_theta": 0.004}
    mx.save([{"ranks": 1, "layers": 16, "levels": 1, "cf": None, "alpha": 0.0, "step_s": 0.2},
             {"ranks": 1, "layers": 16, "levels": 2, "cf": 2, "alpha": 1.0, "step_s": 0.5,
              "other_s": 0.05, "layer_costs": costs},
             {"ranks": 1, "layers": 32, "levels": 1, "cf": None, "alpha": 0.0, "step_s": 0.4}],
            tmp_path / mx.TIMING_FILE)
    assert main(["experiment", "pdegcn-mgrit", "report", "--out", str(tmp_path),
                 "--figures"]) == 0
    out = capsys.readouterr().out
    for name in ("coarse_only.png", "accuracy_vs_time_16.png"):
        assert f"wrote {tmp_path / name}" in out and (tmp_path / name).stat().st_size > 1000
    assert not (tmp_path / "accuracy_vs_time_32.png").exists()  # timed, no runs: no empty plot
    assert "16 layers: seconds per training step" in out


@pytest.mark.parametrize("text", ["3", "3x1", "1x4", "3x", "x4", "2.5x4", "3X4"])
def test_hierarchies_refuse_what_is_not_levels_x_cf(text, capsys):
    from mgritlab.__main__ import main

    with pytest.raises(SystemExit) as stop:
        main(["experiment", "pdegcn-mgrit", "coarse", "--hierarchies", "2x2", text])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"{text!r} is not a hierarchy: give LEVELSxCF" in err and "e.g. 3x4" in err


def _full_sweep(key, val_of):
    """Finished 64-layer α runs of hierarchy ``key``: every α and seed, validation accuracy
    ``val_of(alpha, seed)``."""
    return [_rec("alpha", 64, *key, a, val_of(a, s), [val_of(a, s)]) | {"seed": s}
            for a in mx.ALPHAS for s in (0, 1, 2)]


def test_coarse_takes_the_best_alpha_of_every_kept_seed_not_of_seeds(tmp_path, capsys,
                                                                     monkeypatch):
    from mgritlab.__main__ import main

    # seed 0 alone would pick α = 1; the mean over the three seeds picks 2.5
    val = {(1.0, 0): 0.83, (1.0, 1): 0.70, (1.0, 2): 0.70, (2.5, 0): 0.80, (2.5, 1): 0.80,
           (2.5, 2): 0.80}
    kept = _full_sweep((3, 2), lambda a, s: val.get((a, s), 0.5))
    given = {}
    monkeypatch.setattr(mx, "load", lambda out: kept)
    monkeypatch.setattr(mx, "alpha_sweep", lambda **kw: given.setdefault("alpha", kw) and [])
    monkeypatch.setattr(mx, "coarse_only_sweep",
                        lambda best, **kw: given.setdefault("best", best) and [])
    rc = main(["experiment", "pdegcn-mgrit", "coarse", "--seeds", "0", "--hierarchies", "3x2",
               "--out", str(tmp_path)])
    assert rc == 0, capsys.readouterr().err
    assert given["alpha"]["hierarchies"] == [(3, 2)] and given["alpha"]["seeds"] == [0]
    assert given["best"] == {(3, 2): 2.5}


def test_coarse_waits_for_the_alpha_sweep_of_its_hierarchies_unless_told(tmp_path, capsys,
                                                                        monkeypatch):
    from mgritlab.__main__ import main

    kept = _full_sweep((2, 2), lambda a, s: 0.8 - abs(a - 1.0) / 100)
    kept += [r for r in _full_sweep((3, 4), lambda a, s: 0.7) if r["seed"] != 2]
    given = []
    monkeypatch.setattr(mx, "load", lambda out: kept)
    monkeypatch.setattr(mx, "alpha_sweep", lambda **kw: [])
    monkeypatch.setattr(mx, "coarse_only_sweep", lambda best, **kw: given.append(best) or [])
    argv = ["experiment", "pdegcn-mgrit", "coarse", "--out", str(tmp_path), "--hierarchies"]
    assert main(argv + ["2x2"]) == 0 and given == [{(2, 2): 1.0}]  # its own sweep is complete
    assert main(argv + ["2x2", "3x4"]) == 2
    err = capsys.readouterr().err
    assert "30 of 36 runs finished" in err and "--partial-sweep" in err and len(given) == 1
    assert main(argv + ["2x2", "3x4", "--partial-sweep"]) == 0
    assert given[-1] == {(2, 2): 1.0, (3, 4): 0.0}
    # a hierarchy without any finished stable run has no best α to go on with
    assert main(argv + ["2x4", "--partial-sweep"]) == 2
    assert "no best α for [(2, 4)] yet" in capsys.readouterr().err


def test_parallel_with_hierarchies_trains_those_only_and_leaves_the_timing(tmp_path, capsys,
                                                                          monkeypatch):
    from mgritlab.__main__ import main

    kept = [r for key in mx.HIERARCHIES
            for r in _full_sweep(key, lambda a, s: 0.8 - abs(a - 2.5) / 100)]
    calls = []
    monkeypatch.setattr(mx, "load", lambda out: kept)
    monkeypatch.setattr(mx, "parallel_sweep", lambda best, **kw: calls.append((best, kw)) or [])
    monkeypatch.setattr(mx, "parallel_timing", lambda *a, **kw: calls.append("timed") or [])
    argv = ["experiment", "pdegcn-mgrit", "parallel", "--out", str(tmp_path)]
    assert main(argv + ["--hierarchies", "3x4"]) == 0
    assert calls == [({(3, 4): 2.5}, calls[0][1])] and calls[0][1]["serial"] is False
    out = capsys.readouterr().out
    assert "serial --layers L" in out and "parallel without --hierarchies" in out
    assert not (tmp_path / mx.TIMING_FILE).exists()
    assert main(argv) == 0  # all four, the serial reference and the timing side by side
    assert calls[1][0] == dict.fromkeys(mx.HIERARCHIES, 2.5) and calls[1][1]["serial"]
    assert calls[2] == "timed"


# -- fig. 5.10's question: the layer-parallel forward's error against MGRIT iterations --------
def test_forward_error_is_the_layer_parallel_forward_s_and_exact_after_n_over_cf(cora):
    """e_k is the error of LayerParallel's forward with T₁ = k (cold start) against the serial
    network's forward (SerialODENet, another code path), and with F-relaxation MGRIT is exact
    after N/cf iterations (Falgout et al. 2014; lesson 03): 8 layers, cf 2 -> k = 4."""
    import warnings

    cfg = mx.lp_config(2, 2, 1.0, layers=8, channels=8, h=2.0, coarse_only=True)
    rows = mx.forward_error(cfg, iterations=5, graph=cora)
    assert [(r["mode"], r["where"], r["levels"], r["cf"], r["alpha"], r["seed"])
            for r in rows] == [("eval", "coarse", 2, 2, 1.0, 0), ("train", "coarse", 2, 2, 1.0, 0)]
    model, f0, frozen = mx._initial_layer_inputs(cfg, cora, 1)
    lp = model.layer_parallel()
    lp.warm_start = False
    for r, fr in zip(rows, (None, frozen)):
        assert len(r["error"]) == len(r["residual"]) == 5
        with torch.no_grad():
            exact = lp.serial(fr)(f0)
            for k in (1, 2):
                lp.fwd_iters = k
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # 'warn': a residual grew
                    x = lp(f0, fr)
                want = float((x - exact).norm() / exact.norm())
                assert r["error"][k - 1] == pytest.approx(want, rel=1e-5), (r["mode"], k)
        assert r["error"][0] > 1e-2  # one iteration is not the exact forward...
        assert max(r["error"][3:]) < 1e-5  # ...N/cf = 4 iterations are (float32)
    with pytest.raises(ValueError, match="positive number of MGRIT iterations"):
        lp.forward_iterates(f0, None, 0)


def test_forward_error_sweep_takes_all_levels_coarse_only_and_no_imex(cora):
    rows = mx.forward_error_sweep({(2, 2): 1.0}, layers=8, channels=8, seeds=(0, 1),
                                  iterations=2, graph=cora)
    assert [(r["seed"], r["where"], r["alpha"], r["mode"]) for r in rows] == [
        (s, w, a, m) for s in (0, 1) for w, a in (("all", 1.0), ("coarse", 1.0), ("-", 0.0))
        for m in ("eval", "train")]
    # the table: means over the seeds, beside the trained runs' accuracy where there are any
    trained = [_rec("coarse_only", 8, 2, 2, 1.0, 0.5, [0.5], coarse_only=True)]
    for r in trained:
        r["parallel"] = True
    text = mx.format_forward_error(rows, trained)
    lines = text.split("\n")
    assert lines[0].startswith("relative error of the layer-parallel forward")
    assert "k=1" in lines[1] and "k=2" in lines[1] and "k=4" not in lines[1]
    coarse_train = [ln for ln in lines if " coarse train " in ln]
    assert len(coarse_train) == 1 and coarse_train[0].split()[-1] == "50.0"
    mean = np.mean([r["error"][1] for r in rows if (r["where"], r["mode"]) == ("coarse", "train")])
    assert f"{mean:.3f}" in coarse_train[0] and coarse_train[0].split()[-2] == "2"
    assert [ln.split()[-1] for ln in lines if " all " in ln] == ["-", "-"]


def test_cli_forward_error_quick_writes_the_rows_report_shows(tmp_path, capsys):
    from mgritlab.__main__ import main

    argv = ["experiment", "pdegcn-mgrit", "forward-error", "--quick", "--iterations", "2",
            "--out", str(tmp_path)]
    assert main(argv) == 0
    rows = mx.load_forward_error(tmp_path)
    assert {(r["layers"], r["levels"], r["cf"]) for r in rows} == {(16, 2, 2), (16, 3, 4)}
    assert len(rows) == 2 * 3 * 2 and all(len(r["error"]) == 2 for r in rows)
    assert capsys.readouterr().out.startswith("relative error of the layer-parallel forward")
    assert main(["experiment", "pdegcn-mgrit", "report", "--out", str(tmp_path)]) == 0
    assert mx.format_forward_error(rows) in capsys.readouterr().out
    (tmp_path / mx.FORWARD_ERROR_FILE).write_text('[{"layers": 16')
    with pytest.raises(ValueError, match="delete it and run experiment pdegcn-mgrit forward-e"):
        mx.load_forward_error(tmp_path)


def test_kept_forward_errors_are_what_the_cli_computes(cora):
    """results/pdegcn_mgrit/mgrit_forward_error.json is `experiment pdegcn-mgrit forward-error`
    at the kept sweep's best α: the configurations it plans, and one row recomputed."""
    from pathlib import Path

    kept = Path(__file__).resolve().parents[1] / "results" / "pdegcn_mgrit"
    rows = mx.load_forward_error(kept)
    if not rows:
        pytest.skip("no kept forward-error rows yet")
    best = mx.best_alpha(mx.sweep_runs(mx.load(kept)))
    plan = {(lv, cf, a, w, s, m) for (lv, cf), al in best.items()
            for a, w in ((al, "all"), (al, "coarse"), (0.0, "-")) for s in (0, 1, 2)
            for m in ("eval", "train")}
    assert {(r["levels"], r["cf"], r["alpha"], r["where"], r["seed"], r["mode"])
            for r in rows} == plan and len(rows) == len(plan)
    assert all(len(r["error"]) == mx.FORWARD_ERROR_ITERATIONS and r["layers"] == mx.SWEEP_LAYERS
               for r in rows)
    lv, cf = 2, 4
    again = mx.forward_error(mx.lp_config(lv, cf, best[(lv, cf)], coarse_only=True),
                             iterations=2, graph=cora)
    for new in again:
        old = next(r for r in rows if (r["levels"], r["cf"], r["where"], r["seed"], r["mode"])
                   == (lv, cf, "coarse", 0, new["mode"]))
        np.testing.assert_allclose(new["error"], old["error"][:2], rtol=1e-3)
