"""Training PDE-GCN-D on CORA: a short run learns; an interrupted run resumes exactly."""
import json
from dataclasses import replace

import pytest
import torch

from mgritlab.graphs.train import TrainConfig, load_graph, preset, summarize, train

SMALL = TrainConfig(layers=4, channels=16, h=1.0, dropout=0.5, lr=0.05, weight_decay=5e-4,
                    lr_K=1e-4, epochs=30, seed=0)


@pytest.fixture(scope="module")
def cora():
    return load_graph("Cora")


def test_short_training_run_learns_cora(cora):
    r = train(SMALL, graph=cora, progress=False)
    assert r["finished"] and r["epochs_run"] == 30
    # honest model selection: the test accuracy of the best-validation epoch
    assert r["test_acc_at_best_val"] == r["curves"]["test_acc"][r["best_epoch"]]
    assert r["best_val_acc"] == max(r["curves"]["val_acc"])
    assert r["test_acc_at_best_val"] > 0.70


def test_gcn_baseline_learns_cora(cora):
    r = train(replace(preset("Cora", model="gcn"), epochs=40), graph=cora, progress=False)
    assert r["test_acc_at_best_val"] > 0.70


def test_resume_reproduces_uninterrupted_run(cora, tmp_path):
    cfg = replace(SMALL, epochs=8, checkpoint_every=3, seed=3)
    full = train(cfg, graph=cora, out_dir=tmp_path / "full", progress=False)
    # killed after 5 epochs: the checkpoint holds 3, epochs 4-5 are redone on resume
    part = train(cfg, graph=cora, out_dir=tmp_path / "cut", progress=False, stop_after=5)
    assert not part["finished"]
    ck = torch.load(tmp_path / "cut" / f"{cfg.name}_seed3.ckpt.pt", weights_only=False)
    assert ck["epoch"] == 3
    torch.manual_seed(1234)  # whatever happened in between must not matter
    resumed = train(cfg, graph=cora, out_dir=tmp_path / "cut", progress=False, resume=True)
    assert resumed["finished"]
    for k in ("train_loss", "train_acc", "val_loss", "val_acc", "test_acc"):
        assert resumed["curves"][k] == full["curves"][k], k
    assert resumed["best_epoch"] == full["best_epoch"]
    assert resumed["test_acc_at_best_val"] == full["test_acc_at_best_val"]
    saved = json.loads((tmp_path / "cut" / f"{cfg.name}_seed3.json").read_text())
    assert saved["curves"]["val_acc"] == full["curves"]["val_acc"]
    # a finished run is not trained again
    again = train(cfg, graph=cora, out_dir=tmp_path / "cut", progress=False, resume=True)
    assert again["curves"]["seconds"] == saved["curves"]["seconds"]
    with pytest.raises(ValueError, match="different configuration"):
        train(replace(cfg, epochs=9), graph=cora, out_dir=tmp_path / "cut2", progress=False,
              stop_after=3)
        train(replace(cfg, epochs=10), graph=cora, out_dir=tmp_path / "cut2", resume=True,
              progress=False)


def test_summary_and_cli(tmp_path, capsys):
    from mgritlab.__main__ import main

    rc = main(["train", "pdegcn", "--layers", "2", "--channels", "8", "--epochs", "3",
               "--seeds", "0", "1", "--out", str(tmp_path), "--no-progress"])
    assert rc == 0
    assert "test accuracy at best validation accuracy" in capsys.readouterr().out
    s = json.loads(next(tmp_path.glob("*_summary.json")).read_text())
    assert s["seeds"] == [0, 1] and len(s["test_acc_at_best_val"]) == 2
    assert summarize([{"test_acc_at_best_val": 0.8, "best_val_acc": 0.7, "config": {"seed": 0},
                       "seconds_per_epoch": 1.0, "name": "x"}])["test_mean"] == 0.8
