"""Layer-parallel training from graphs.train and the command line (one process; the MPI runs
are in tests/mpi/test_pdegcn_mpi.py)."""
import json
from dataclasses import replace

import pytest

from mgritlab.graphs.train import TrainConfig, load_graph, train
from mgritlab.mgrit import MGRITDivergenceError

LP = TrainConfig(layers=8, channels=8, h=0.5, dropout=0.5, lr=0.05, weight_decay=5e-4,
                 lr_K=1e-4, epochs=3, seed=0, imex="shared", alpha=1.0, layer_parallel=True,
                 levels=3, cf=2)


@pytest.fixture(scope="module")
def cora():
    return load_graph("Cora")


def test_a_layer_parallel_run_records_phases_residuals_and_both_accuracies(cora, tmp_path):
    r = train(LP, graph=cora, out_dir=tmp_path, progress=False)
    c = r["curves"]
    assert r["finished"] and r["ranks"] == 1 and r["layers_per_rank"] == 8
    assert "_lp3x2_T2-1" in r["name"]
    for phase in ("forward", "adjoint", "gradient", "communication", "eval"):
        assert len(c[f"seconds_{phase}"]) == 3
        assert r["seconds_per_epoch_by_phase"][phase] >= 0
    assert all(s > 0 for s in c["seconds_forward"] + c["seconds_adjoint"])
    # T1 = 2 forward and T2 = 1 adjoint iterations per training step
    assert [len(x) for x in c["residuals_forward"]] == [2, 2, 2]
    assert [len(x) for x in c["residuals_backward"]] == [1, 1, 1]
    # the exact serial forward is evaluated beside the layer-parallel one, and differs from it
    # (2 MGRIT iterations are not converged)
    assert c["val_loss_serial"] != c["val_loss"]
    assert r["serial_test_acc_at_best_val"] == c["test_acc_serial"][r["best_epoch"]]
    saved = json.loads((tmp_path / f"{LP.name}_seed0.json").read_text())
    assert saved["curves"]["residuals_forward"] == c["residuals_forward"]


def test_one_level_layer_parallel_training_is_serial_training_bit_for_bit(cora):
    serial = train(replace(LP, layer_parallel=False), graph=cora, progress=False)
    one = train(replace(LP, levels=1), graph=cora, progress=False)
    for k in ("train_loss", "val_loss", "val_acc", "test_acc"):
        assert one["curves"][k] == serial["curves"][k], k
    assert one["curves"]["val_loss_serial"] == one["curves"]["val_loss"]


def test_per_level_imex_trains_where_explicit_coarse_levels_diverge(cora, tmp_path):
    # explicit layers, h = 0.5: the fine level is stable, the coarse steps 2 and 8 are not
    bad = TrainConfig(layers=16, channels=8, h=0.5, dropout=0.5, lr=0.05, epochs=3, seed=0,
                      init_noise=0.3, layer_parallel=True, levels=3, cf=4)
    with pytest.raises(MGRITDivergenceError) as err:
        train(bad, graph=cora, out_dir=tmp_path, progress=False)
    msg = str(err.value)
    assert "level 1 (step 2)" in msg and "level 2 (step 8)" in msg
    assert "α ≥" in msg and "level_alpha" in msg
    partial = json.loads((tmp_path / f"{bad.name}_seed0.json").read_text())
    assert partial["epochs_run"] == 0 and not partial["finished"]
    # the advice taken: explicit on the fine level, an IMEX term on the coarse levels
    good = replace(bad, imex="shared", alpha=0.0, level_alpha=[0.0, 3.0, 3.0])
    r = train(good, graph=cora, progress=False)
    assert r["finished"] and "_la0-3-3" in r["name"]
    for res in r["curves"]["residuals_forward"]:
        assert res[1] < res[0]


def test_a_non_finite_loss_stops_with_advice(cora, tmp_path, monkeypatch):
    import torch.nn.functional as F

    from mgritlab.graphs import train as train_mod

    real = F.nll_loss
    calls = []

    def nan_on_second_step(out, y, *a, **k):
        loss = real(out, y, *a, **k)
        if out.requires_grad:  # the training loss, not an evaluation
            calls.append(1)
            if len(calls) == 2:
                return loss * float("nan")
        return loss

    monkeypatch.setattr(train_mod.F, "nll_loss", nan_on_second_step)
    with pytest.raises(FloatingPointError, match=r"epoch 2.*lr=0.05.*level_alpha"):
        train(LP, graph=cora, out_dir=tmp_path, progress=False)
    partial = json.loads((tmp_path / f"{LP.name}_seed0.json").read_text())
    assert partial["epochs_run"] == 1


def test_bad_layer_parallel_options_say_what_to_change(cora):
    with pytest.raises(ValueError, match="multiple of 4"):
        train(replace(LP, layers=6), graph=cora, progress=False)
    with pytest.raises(ValueError, match="3 schemes for 2 levels"):
        train(replace(LP, levels=2, relax="F,FCF,FCF"), graph=cora, progress=False)
    with pytest.raises(ValueError, match="T1, T2 >= 1"):
        train(replace(LP, fwd_iters=0), graph=cora, progress=False)
    with pytest.raises(ValueError, match="level_alpha"):
        train(replace(LP, level_alpha=[0.0, 1.0]), graph=cora, progress=False)


def test_cli_trains_layer_parallel(tmp_path, capsys):
    from mgritlab.__main__ import main

    rc = main(["train", "pdegcn", "--layers", "8", "--channels", "8", "--epochs", "2",
               "--imex", "shared", "--alpha", "1", "--layer-parallel", "--levels", "3", "--cf",
               "2", "--level-alpha", "0", "x", "x", "--seeds", "0", "--out", str(tmp_path),
               "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "exact serial forward" in out and "1 rank(s)" in out
    r = json.loads(next(tmp_path.glob("*_seed0.json")).read_text())
    assert r["config"]["level_alpha"] == [0.0, None, None]
    assert r["config"]["fwd_iters"] == 2 and r["config"]["bwd_iters"] == 1


@pytest.mark.parametrize("argv, match", [
    (["--levels", "2"], "without --layer-parallel"),
    (["--ranks", "2"], "add --layer-parallel"),
    (["--layer-parallel", "--level-alpha", "0", "y"], "neither a number nor 'x'"),
])
def test_cli_rejects_inconsistent_options(tmp_path, argv, match):
    from mgritlab.__main__ import main

    with pytest.raises(SystemExit, match=match):
        main(["train", "pdegcn", "--layers", "8", "--epochs", "1", "--out", str(tmp_path),
              "--no-progress", *argv])
