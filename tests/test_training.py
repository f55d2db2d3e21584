"""Training PDE-GCN-D on CORA: a short run learns; an interrupted run resumes exactly."""
import json
from dataclasses import asdict, replace
from pathlib import Path

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
    # 7 classes (chance 0.14); 30 epochs of this small model give 0.69-0.74 over seeds 0-3
    assert r["test_acc_at_best_val"] > 0.68


def test_gcn_baseline_learns_cora(cora):
    r = train(replace(preset("Cora", model="gcn"), epochs=40), graph=cora, progress=False)
    assert r["test_acc_at_best_val"] > 0.70


def test_models_can_be_deep_copied(cora):
    import copy

    from mgritlab.graphs.train import build_model

    data, ops = cora
    for m in (build_model(preset("Cora", model="gcn"), data, ops),
              build_model(replace(SMALL, layers=2), data, ops)):
        c = copy.deepcopy(m).eval()
        assert all(p is not q for p, q in zip(c.parameters(), m.parameters()))
        torch.testing.assert_close(c(data.x), m.eval()(data.x))


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
        train(replace(cfg, lr=0.03), graph=cora, out_dir=tmp_path / "cut2", progress=False,
              stop_after=3)
        train(replace(cfg, lr=0.04), graph=cora, out_dir=tmp_path / "cut2", resume=True,
              progress=False)


def test_results_written_before_a_new_option_are_still_recognised(cora, tmp_path):
    cfg = replace(SMALL, epochs=2, layers=2)
    first = train(cfg, graph=cora, out_dir=tmp_path, progress=False)
    path = tmp_path / f"{cfg.name}_seed0.json"
    old = json.loads(path.read_text())
    del old["config"]["open_dropout"]  # as written before the option existed
    path.write_text(json.dumps(old))
    again = train(cfg, graph=cora, out_dir=tmp_path, progress=False, resume=True)
    assert again["curves"]["seconds"] == first["curves"]["seconds"]  # not retrained
    ck_path = tmp_path / f"{cfg.name}_seed0.ckpt.pt"
    ck = torch.load(ck_path, weights_only=False)
    del ck["config"]["open_dropout"]
    torch.save(ck, ck_path)
    longer = train(replace(cfg, epochs=3), graph=cora, out_dir=tmp_path, progress=False,
                   resume=True)  # extends the old checkpoint instead of refusing it
    assert longer["epochs_run"] == 3
    assert longer["curves"]["val_acc"][:2] == first["curves"]["val_acc"]


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


def test_ctrl_c_finishes_the_epoch_and_resumes_exactly(cora, tmp_path, monkeypatch):
    import os
    import signal

    from mgritlab.graphs import train as train_mod

    cfg = replace(SMALL, epochs=5, checkpoint_every=100, seed=4, layers=2)
    full = train(cfg, graph=cora, progress=False)
    calls = []
    real_epoch = train_mod._epoch

    def epoch_then_ctrl_c(*a):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)  # arrives in the middle of epoch 2
        return real_epoch(*a)

    monkeypatch.setattr(train_mod, "_epoch", epoch_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt, match=r"after epoch 2.*--resume") as stop:
        train(cfg, graph=cora, out_dir=tmp_path, progress=False)
    monkeypatch.setattr(train_mod, "_epoch", real_epoch)
    partial = json.loads((tmp_path / f"{cfg.name}_seed4.json").read_text())
    assert partial["epochs_run"] == 2 and not partial["finished"]
    assert stop.value.partial_result["epochs_run"] == 2
    resumed = train(cfg, graph=cora, out_dir=tmp_path, progress=False, resume=True)
    assert resumed["curves"]["val_loss"] == full["curves"]["val_loss"]


def test_stability_sweep_records_and_plot(cora, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from mgritlab.graphs.experiments import format_table, plot_curves, stability_sweep

    recs = stability_sweep(depths=((2, 1), (1, 2)), alphas=(0.0, 1.0), variants=("shared",),
                           epochs=2, seeds=[0], h64=1.0, out_dir=tmp_path, graph=cora)
    assert len(recs) == 4
    assert {(r["layers"], r["h"], r["imex"]) for r in recs} == {
        (2, 1.0, "none"), (2, 1.0, "shared"), (1, 2.0, "none"), (1, 2.0, "shared")}
    assert all(len(r["val_acc"]) == 2 for r in recs)
    assert "shared α=1" in format_table(recs)
    axes = plot_curves(recs)
    assert len(axes) == 2
    assert (tmp_path / "stability.json").exists()


RESULTS = Path(__file__).resolve().parent.parent / "results" / "pdegcn"


@pytest.mark.parametrize("dataset, model, target", [("Cora", "pdegcn", 0.82),
                                                    ("CiteSeer", "pdegcn", 0.71),
                                                    ("Cora", "gcn", None)])
def test_kept_results_are_those_of_the_cli_defaults(dataset, model, target):
    """results/pdegcn holds what `python -m mgritlab train <model> --dataset <d>` produces with
    its defaults (the preset); changing the preset without rerunning fails here."""
    from mgritlab.graphs.train import _normalized

    cfg = preset(dataset, 64, model)
    runs = [json.loads(p.read_text()) for p in sorted(RESULTS.glob(f"{cfg.name}_seed*.json"))]
    assert [r["config"]["seed"] for r in runs] == [0, 1, 2, 3, 4]
    for r in runs:
        assert r["finished"] and r["epochs_run"] == cfg.epochs
        seeded = replace(cfg, seed=r["config"]["seed"])
        assert _normalized(r["config"]) == _normalized(asdict(seeded))
        assert r["test_acc_at_best_val"] == r["curves"]["test_acc"][r["best_epoch"]]
    s = summarize(runs)
    assert s == json.loads((RESULTS / f"{cfg.name}_summary.json").read_text())
    if target is not None:
        assert s["test_mean"] >= target


# ---- corrupt and concurrent files (issue 11, robustness) ---------------------------------------
@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", "truncated"])
def test_an_unreadable_checkpoint_is_named_with_what_to_do(cora, tmp_path, content):
    from mgritlab.nn.runner import CheckpointError

    cfg = replace(SMALL, epochs=3, layers=2, checkpoint_every=1)
    train(cfg, graph=cora, out_dir=tmp_path, progress=False, stop_after=2)
    ck = tmp_path / f"{cfg.name}_seed0.ckpt.pt"
    data = ck.read_bytes()
    ck.write_bytes(data[: len(data) // 2] if content == "truncated" else content)
    before = ck.read_bytes()
    with pytest.raises(CheckpointError, match=f"checkpoint {ck}.*delete it.*without --resume"):
        train(cfg, graph=cora, out_dir=tmp_path, progress=False, resume=True)
    assert ck.read_bytes() == before  # nothing is lost or overwritten


def test_a_truncated_result_json_is_rebuilt_from_the_checkpoint(cora, tmp_path):
    cfg = replace(SMALL, epochs=3, layers=2)
    full = train(cfg, graph=cora, out_dir=tmp_path, progress=False)
    js = tmp_path / f"{cfg.name}_seed0.json"
    js.write_text(js.read_text()[:100])  # killed while writing, before it was atomic
    with pytest.warns(RuntimeWarning, match="not valid JSON"):
        again = train(cfg, graph=cora, out_dir=tmp_path, progress=False, resume=True)
    assert again["curves"] == full["curves"] and again["finished"]
    assert json.loads(js.read_text())["curves"] == full["curves"]


def test_two_runs_into_one_folder_do_not_share_a_temporary_file(cora, tmp_path):
    cfg = replace(SMALL, epochs=1, layers=2)
    stem = f"{cfg.name}_seed0"
    # the temporary a second run (same --out) is writing at this moment
    other = {tmp_path / f"{stem}.ckpt.pt.tmp": b"other", tmp_path / f"{stem}.json.tmp": b"other"}
    for p, b in other.items():
        p.write_bytes(b)
    train(cfg, graph=cora, out_dir=tmp_path, progress=False)
    assert all(p.read_bytes() == b for p, b in other.items())
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp") and p not in other]


def test_bad_epoch_counts_say_what_to_change(cora):
    for bad in (dict(epochs=0), dict(checkpoint_every=0), dict(epochs=2.5)):
        with pytest.raises(ValueError, match="whole number >= 1"):
            train(replace(SMALL, **bad), graph=cora, progress=False)
    with pytest.raises(ValueError, match=r"unknown model 'mlp'.*'pdegcn', 'gcn'"):
        train(replace(SMALL, model="mlp"), graph=cora, progress=False)


def test_a_second_ctrl_c_says_what_was_lost():
    import os
    import signal

    from mgritlab.nn.runner import run_epochs

    def step(epoch):
        os.kill(os.getpid(), signal.SIGINT)
        if epoch == 0:
            os.kill(os.getpid(), signal.SIGINT)  # impatient: a second one in the same epoch

    with pytest.raises(KeyboardInterrupt, match=r"second interrupt.*since the last checkpoint"):
        run_epochs(step, start=0, end=3, total=3, progress=False)


def test_finish_run_writes_on_the_lead_rank_and_a_stopped_run_carries_its_record(tmp_path):
    from mgritlab.nn.runner import finish_run

    rec = {"epochs_done": 3}
    assert finish_run(rec, stopped=False, what="x", json_path=tmp_path / "a.json") is rec
    assert json.loads((tmp_path / "a.json").read_text()) == rec
    finish_run(rec, stopped=False, what="x", json_path=tmp_path / "b.json", lead=False)
    assert not (tmp_path / "b.json").exists()  # only rank 0 writes
    with pytest.raises(KeyboardInterrupt, match=r"^run stopped; continue with resume=True \(c\)$"
                       ) as stop:
        finish_run(rec, stopped=True, what="run stopped", resume="resume=True (c)")
    assert stop.value.partial_result is rec
    with pytest.raises(KeyboardInterrupt, match="no checkpoint was written"):
        finish_run(rec, stopped=True, what="run stopped")


def test_a_learned_alpha_is_reported_as_the_model_ends_with_it(cora, tmp_path):
    cfg = replace(SMALL, imex="channel", alpha=0.5, learn_alpha=True, lr_K=0.05, epochs=4)
    r = train(cfg, graph=cora, out_dir=tmp_path, progress=False)
    la = r["learned_alpha"]
    # the independent copy: α in the checkpoint's model state, (layers, channels)
    (ckpt,) = tmp_path.glob("*.ckpt.pt")
    state = torch.load(ckpt, weights_only=False)
    alpha = next(v for k, v in state["model"].items() if k.endswith("alpha")).double()
    assert alpha.shape == (4, 16) and not torch.allclose(alpha, torch.full_like(alpha, 0.5))
    assert la["per_layer"] == pytest.approx(alpha.mean(1).tolist())
    assert (la["min"], la["max"]) == pytest.approx((alpha.min().item(), alpha.max().item()))
    saved = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert saved["learned_alpha"] == la
    assert "learned_alpha" not in train(replace(SMALL, epochs=1), graph=cora, progress=False)
