"""Training runs of GRU classifiers: records, honest selection, exact resume, the CLI."""
import os
import signal

import pytest
import torch

from mgritlab.recurrent import train as gtrain
from mgritlab.recurrent.train import GRUConfig, summary, train

SMALL = dict(data="pattern", steps=16, samples=32, hidden=4, epochs=4, batch_size=8,
             levels=2, cf=4, dtype="float64")


@pytest.mark.parametrize("parallel", [False, True])
def test_a_run_records_its_curves_and_selects_at_best_validation(tmp_path, parallel):
    cfg = GRUConfig(**SMALL, parallel=parallel)
    rec = train(cfg, 0, out_dir=tmp_path)
    c = rec["curves"]
    assert rec["finished"] and rec["epochs_done"] == 4 and len(c["val_acc"]) == 4
    e = rec["best"]["epoch"]
    assert c["val_acc"][e - 1] == max(c["val_acc"])
    assert rec["best"]["test_acc"] == c["test_acc"][e - 1]
    if parallel:
        assert len(c["test_acc_parallel"]) == 4 and rec["best_parallel"]["epoch"] >= 1
        assert all(r > 0 for r in c["fwd_residual"])
    assert (tmp_path / f"{rec['id']}.json").exists()
    assert summary([rec])[0]["seeds"] == 1


def test_an_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    cfg = GRUConfig(**SMALL, parallel=True)
    whole = train(cfg, 1)
    calls = {"n": 0}
    real = gtrain.evaluate

    def interrupting(*a, **k):
        calls["n"] += 1
        if calls["n"] == 5:          # during epoch 2 (four evaluations per epoch)
            os.kill(os.getpid(), signal.SIGINT)
        return real(*a, **k)

    monkeypatch.setattr(gtrain, "evaluate", interrupting)
    with pytest.raises(KeyboardInterrupt, match="resume=True"):
        train(cfg, 1, out_dir=tmp_path, checkpoint_every=1)
    monkeypatch.setattr(gtrain, "evaluate", real)
    resumed = train(cfg, 1, out_dir=tmp_path, resume=True)
    for k in ("train_loss", "val_acc", "test_acc", "test_acc_parallel", "fwd_residual"):
        assert resumed["curves"][k] == whole["curves"][k], k


def test_bad_configurations_say_what_to_change():
    with pytest.raises(ValueError, match="multiple of cf"):
        GRUConfig(steps=100, parallel=True)
    with pytest.raises(ValueError, match="scheme must be"):
        GRUConfig(scheme="explicit")
    with pytest.raises(ValueError, match="data must be one of"):
        GRUConfig(data="mnist")


def test_cli_runs_the_comparison(tmp_path, capsys):
    from mgritlab.__main__ import main

    torch.manual_seed(0)
    assert main(["experiment", "gru", "--data", "pattern", "--steps", "16", "--hidden", "4",
                 "--epochs", "2", "--seeds", "0", "--out", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "pattern_N16_implicit_lp3x4_T21_H4L1" in out and "pattern_N16_classic_serial" in out
    assert len(list(tmp_path.glob("*.json"))) == 3


def test_step_timing_and_its_model_on_one_process():
    from mgritlab.recurrent.scaling import format_scaling, step_run

    rec = step_run(steps=64, batch=4, hidden=4, repeat=1, model_ranks=(2, 16))
    assert rec["size"] == 1 and rec["seconds"] > 0 and rec["serial_seconds"] > 0
    m = rec["model_seconds"]
    assert m["1"] > m["2"] > m["16"] > 0      # the critical path shrinks with ranks
    assert rec["model_speedup"]["16"] == rec["serial_seconds"] / m["16"]
    assert "| 64 |" in format_scaling([rec])


@pytest.mark.mpi
def test_step_timing_runs_under_mpiexec(tmp_path):
    from mgritlab.recurrent.scaling import format_scaling, scaling

    recs = scaling((32,), (1, 2), out=tmp_path, timeout=120, batch=4, hidden=4, repeat=1)
    assert [r["size"] for r in recs] == [1, 2]
    assert recs[0]["fwd_residuals"] == recs[1]["fwd_residuals"]   # the same solve
    assert "| 32 |" in format_scaling(recs)
