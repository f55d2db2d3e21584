"""The kept §5.1 sweep: its configurations, the 64-layer reference cut to the sweep's epochs,
and loading a sweep that is still running (mgritlab.graphs.experiments)."""
import json
from dataclasses import asdict, replace

import pytest

from mgritlab.graphs import experiments as ex
from mgritlab.graphs.train import _normalized


def _run(val, test, loss=None):
    n = len(val)
    return {"finished": True, "config": {}, "best_epoch": 0, "best_val_acc": 0.0,
            "test_acc_at_best_val": 0.0, "seconds_per_epoch": 1.0,
            "curves": {"val_acc": val, "test_acc": test, "train_loss": [1.0] * n,
                       "val_loss": loss or [1.0] * n}}


def test_truncate_redoes_the_selection_on_the_first_epochs():
    r = _run([0.5, 0.7, 0.7, 0.9], [0.4, 0.6, 0.8, 0.95], loss=[1.0, 0.9, 0.8, 0.5])
    t = ex.truncate(r, 3)
    # best val 0.7 at epochs 1 and 2; the tie goes to the lower validation loss (epoch 2)
    assert (t["best_epoch"], t["best_val_acc"], t["test_acc_at_best_val"]) == (2, 0.7, 0.8)
    assert len(t["curves"]["val_acc"]) == 3 and t["config"]["epochs"] == 3
    assert len(r["curves"]["val_acc"]) == 4  # the original is not changed
    with pytest.raises(ValueError, match="fewer than 5"):
        ex.truncate(r, 5)


def test_kept_configs_are_the_sweep_of_the_readme():
    cfgs = ex.kept_configs()
    got = {(c.layers, c.h, c.imex, c.alpha, c.learn_alpha) for c in cfgs}
    assert len(got) == len(cfgs) == 12
    assert (64, 0.8, "none", 0.0, False) in got  # taken from the kept reference, not trained
    assert {(c.layers, c.alpha) for c in cfgs if c.imex == "shared"} == {
        (L, a) for L in (64, 16, 4) for a in (1.0, 10.0)}
    assert {c.layers for c in cfgs if c.imex == "channel"} == {16, 4}
    assert all(c.learn_alpha for c in cfgs if c.imex == "channel")
    assert {c.layers for c in cfgs if c.imex == "diffusion"} == {4}
    assert all(c.epochs == ex.KEPT_EPOCHS and c.layers * c.h == pytest.approx(51.2)
               for c in cfgs)


def test_reference_records_are_the_sweeps_explicit_64_layer_runs():
    refs = ex.reference_records(100)
    if not refs:
        pytest.skip("no kept results/pdegcn/tuning/reference_settings here")
    assert [r["seed"] for r in refs] == [0, 1, 2]
    for r in refs:
        assert (r["layers"], r["imex"], r["alpha"]) == (64, "none", 0.0)
        assert len(r["val_acc"]) == 100 and r["best_epoch"] < 100
        assert r["test_acc_at_best_val"] == r["test_acc"][r["best_epoch"]]
        assert r["best_val_acc"] == max(r["val_acc"])


def test_reference_with_another_configuration_is_refused(tmp_path):
    (cfg,) = ex.stability_configs(depths=ex.DEPTHS[:1], alphas=(0.0,), epochs=150)
    wrong = replace(cfg, lr=0.05)
    run = _run([0.5] * 150, [0.5] * 150)
    run["config"] = asdict(wrong)
    (tmp_path / f"{cfg.name}_seed0.json").write_text(json.dumps(run))
    with pytest.raises(ValueError, match="not the sweep's 64-layer explicit run"):
        ex.reference_records(100, [0], folder=tmp_path)
    run["config"] = asdict(cfg)
    (tmp_path / f"{cfg.name}_seed0.json").write_text(json.dumps(run))
    (r,) = ex.reference_records(100, [0], folder=tmp_path)
    assert len(r["val_acc"]) == 100
    assert _normalized(dict(run["config"], epochs=100)) == _normalized(
        asdict(replace(cfg, epochs=100)))


def test_load_runs_reads_finished_runs_only(tmp_path):
    (cfg,) = ex.stability_configs(depths=ex.DEPTHS[2:], alphas=(1.0,), variants=("shared",),
                                  epochs=3)
    done = _run([0.5, 0.6, 0.7], [0.5, 0.6, 0.65])
    done["config"] = asdict(cfg)
    (tmp_path / f"{cfg.name}_seed0.json").write_text(json.dumps(done))
    partial = dict(done, finished=False)
    (tmp_path / f"{cfg.name}_seed1.json").write_text(json.dumps(partial))
    recs = [r for r in ex.load_runs(tmp_path) if r["layers"] == 4]
    assert [(r["seed"], r["imex"], r["alpha"]) for r in recs] == [(0, "shared", 1.0)]
