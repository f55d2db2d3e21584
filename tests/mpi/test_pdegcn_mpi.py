"""Layer-parallel PDE-GCN-D training is bitwise the same on 1, 2 and 3 MPI ranks."""
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.mpi

SCRIPT = Path(__file__).with_name("pdegcn_ranks.py")


def test_losses_and_parameters_identical_on_1_2_3_ranks(same_on_ranks):
    same_on_ranks(SCRIPT, (1, 2, 3), timeout=150)


TRAIN = Path(__file__).with_name("train_lp.py")


def test_layer_parallel_training_resumes_exactly_and_is_the_same_on_1_and_2_ranks(
        mpirun, tmp_path):
    digests = {}
    for n in (1, 2):
        out = mpirun(TRAIN, n, tmp_path, timeout=240)
        assert any(line.strip() == "OK" for line in out.splitlines()), out
        digests[n] = re.search(r"digest=(\w+)", out).group(1)
    assert digests[1] == digests[2], digests


def test_cli_trains_layer_parallel_under_mpiexec_and_with_ranks(tmp_path):
    import json
    import subprocess
    import sys

    from mgritlab.__main__ import main
    from mgritlab.cluster import run_mpi

    args = ["train", "pdegcn", "--layers", "8", "--channels", "8", "--epochs", "3",
            "--imex", "shared", "--alpha", "1", "--layer-parallel", "--levels", "3", "--cf", "2",
            "--seeds", "0", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    proc = run_mpi([sys.executable, "-m", "mgritlab", *args, "--out", str(tmp_path / "two")],
                   2, timeout=120)
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout.count("test accuracy at best validation accuracy") == 1  # rank 0 only
    assert "2 rank(s)" in proc.stdout
    relaunched = subprocess.run([sys.executable, "-m", "mgritlab", *args, "--out",
                                 str(tmp_path / "ranks"), "--ranks", "2"],
                                capture_output=True, text=True, timeout=120)
    assert relaunched.returncode == 0, relaunched.stdout + relaunched.stderr
    curves = {}
    for d in ("one", "two", "ranks"):
        r = json.loads(next((tmp_path / d).glob("*_seed0.json")).read_text())
        curves[d] = r["curves"]["train_loss"], r["curves"]["val_loss_serial"], r["ranks"]
    assert curves["one"][:2] == curves["two"][:2] == curves["ranks"][:2]
    assert (curves["one"][2], curves["two"][2], curves["ranks"][2]) == (1, 2, 2)


def test_the_engine_task_trains_identically_on_1_and_2_engines():
    from dataclasses import asdict

    from mgritlab.cluster import start_engines
    from mgritlab.graphs.train import TrainConfig
    from mgritlab.tasks import train_pdegcn_layer_parallel

    cfg = asdict(TrainConfig(layers=16, channels=8, h=0.5, dropout=0.5, lr=0.05, epochs=2,
                             imex="shared", alpha=1.0, layer_parallel=True, levels=3, cf=2))
    one = train_pdegcn_layer_parallel(cfg)
    with start_engines(2, timeout=90, fallback=False) as engines:
        two = engines.run(train_pdegcn_layer_parallel, cfg, timeout=240)
    assert [r["rank"] for r in two] == [0, 1] and one["size"] == 1
    for r in two:
        assert r["curves"]["train_loss"] == one["curves"]["train_loss"]
        assert r["curves"]["val_loss_serial"] == one["curves"]["val_loss_serial"]
    assert sum(r["layers_held"] for r in two) == one["layers_held"] == 16
    assert all(r["held_bytes"]["state"] < one["held_bytes"]["state"] for r in two)


def test_epoch_seconds_on_ranks_times_the_same_training_on_2_ranks():
    from mgritlab.graphs import mgrit_experiments as mx

    cfg = mx.lp_config(3, 2, 1.0, layers=16, epochs=2, channels=8)
    one = mx.epoch_seconds_on_ranks(cfg, 1, epochs=2)
    two = mx.epoch_seconds_on_ranks(cfg, 2, epochs=2, timeout=300)
    assert one["ranks"] == 1 and two["ranks"] == 2
    for r in (one, two):
        assert r["step_s"] > 0 and r["forward_s"] > 0 and r["adjoint_s"] > 0
        assert r["step_s"] >= r["forward_s"] + r["adjoint_s"]


def test_a_rank_that_cannot_read_its_warm_start_stops_every_rank_with_the_file_named(tmp_path):
    """Each rank resumes from its own MGRIT warm-start file: one unreadable file must stop the
    whole run at once (not leave the other ranks waiting in a collective)."""
    import sys

    from mgritlab.cluster import MPITimeout, run_mpi

    args = [sys.executable, "-m", "mgritlab", "train", "pdegcn", "--layers", "8", "--channels",
            "8", "--imex", "shared", "--alpha", "1", "--layer-parallel", "--levels", "3", "--cf",
            "2", "--seeds", "0", "--no-progress", "--out", str(tmp_path), "--resume"]
    assert run_mpi([*args, "--epochs", "2"], 2, timeout=120).returncode == 0
    (warm,) = tmp_path.glob("*.warm1of2.e2.pt")
    warm.write_bytes(b"cut short")
    try:
        proc = run_mpi([*args, "--epochs", "4"], 2, timeout=120)  # extends from epoch 2
    except MPITimeout:
        pytest.fail("rank 0 went on training while rank 1 could not resume: the job hung")
    assert proc.returncode != 0
    assert warm.name in proc.stdout and "rank 1 of 2" in proc.stdout
    assert "to train it again from the start" in proc.stdout  # what to do
    warm.unlink()  # a missing warm start is named as well
    proc = run_mpi([*args, "--epochs", "4"], 2, timeout=120)
    assert proc.returncode != 0 and f"{warm} is missing" in proc.stdout
