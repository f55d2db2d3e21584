"""The command line refuses bad input with an `error:` line and exit status 2 (argparse's
convention), never a traceback; messages say what to change."""
from __future__ import annotations

import pytest

from mgritlab.__main__ import main


def _fails(argv, capsys, match: str):
    """main(argv) stops with status 2 and ``match`` on stderr (argparse or our own)."""
    try:
        rc = main(argv)
    except SystemExit as stop:
        rc = stop.code
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "error:" in err and "Traceback" not in err
    assert pytest.importorskip("re").search(match, err), err


@pytest.mark.parametrize("argv, match", [
    (["heat", "--nt", "1"], "--nt: '1' is not a whole number >= 2"),
    (["heat", "--tol", "nan"], "--tol: 'nan' is not a finite number >= 0"),
    (["heat", "--relax", "3"], "--relax: unknown relaxation '3'"),
    (["heat", "--max-iter", "2.5"], "--max-iter: '2.5' is not a whole number"),
    (["heat", "--cf", "1"], "--cf: '1' is not a whole number >= 2"),
    (["heat", "--a", "-1"], "--a: '-1' is not a finite number > 0"),
    (["heat", "--nt", "17", "--nx", "9", "--scheme", "foo"], "unknown scheme 'foo'"),
    (["heat", "--nt", "17", "--nx", "9", "--t0", "3", "--tf", "1"], "t0 < tf"),
    (["nonlinear", "--nt", "9", "--levels", "5", "--cf", "4"], "max_levels <= 2"),
    (["nonlinear", "--y0", "1e200", "--nt", "65"], "Newton did not converge"),
    (["dahlquist", "--lam=1+nanj"], "not finite"),
])
def test_mgrit_commands_refuse_bad_values(argv, match, capsys):
    _fails(argv, capsys, match)


def test_the_help_example_for_a_complex_lambda_works(capsys):
    with pytest.raises(SystemExit):
        main(["dahlquist", "--help"])
    help_text = capsys.readouterr().out
    assert "--lam -1+2j" in help_text
    for argv in (["--lam", "-1+2j"], ["--lam=-1+2j"]):  # as the help writes it, and with '='
        assert main(["dahlquist", *argv, "--nt", "17", "--levels", "2"]) == 0
        assert "converged" in capsys.readouterr().out
    _fails(["dahlquist", "--lam", "-1+2x"], capsys, "--lam")


@pytest.mark.parametrize("option, value, match", [
    ("--epochs", "0", "--epochs: '0' is not a whole number >= 1"),
    ("--checkpoint-every", "0", "--checkpoint-every: '0' is not a whole number >= 1"),
    ("--lr", "-0.1", "--lr: '-0.1' is not a finite number > 0"),
    ("--h", "-1", "--h: '-1' is not a finite number > 0"),
    ("--alpha", "-1", "--alpha: '-1' is not a finite number >= 0"),
    ("--dropout", "1.5", "--dropout: '1.5' is not a probability"),
    ("--dataset", "PubMed", "unknown dataset 'PubMed'"),
    ("--relax", "F,FCF", "names 2 schemes for 3 levels"),
])
def test_train_refuses_bad_values(option, value, match, tmp_path, capsys):
    extra = ["--layer-parallel"] if option == "--relax" else []
    _fails(["train", "pdegcn", "--layers", "8", option, value, *extra, "--out", str(tmp_path),
            "--no-progress"], capsys, match)


def test_a_corrupt_checkpoint_on_resume_is_an_error_line(tmp_path, capsys):
    argv = ["train", "pdegcn", "--layers", "2", "--channels", "4", "--epochs", "2",
            "--seeds", "0", "--out", str(tmp_path), "--no-progress"]
    assert main(argv) == 0
    capsys.readouterr()
    ckpt = next(tmp_path.glob("*.ckpt.pt"))
    ckpt.write_bytes(b"")
    next(tmp_path.glob("*_seed0.json")).unlink()
    _fails([*argv, "--resume"], capsys, rf"checkpoint {ckpt} cannot be read.*delete it")


def test_an_interrupt_without_a_message_is_reported_sensibly(tmp_path, capsys, monkeypatch):
    from mgritlab.graphs import train

    def interrupted(*a, **k):
        raise KeyboardInterrupt  # e.g. a second Ctrl-C outside the epoch loop

    monkeypatch.setattr(train, "train_seeds", interrupted)
    rc = main(["train", "gcn", "--epochs", "1", "--out", str(tmp_path), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 130 and "interrupted: stopped;" in out and "interrupted: ;" not in out


def test_train_lists_every_registered_model(capsys):
    from mgritlab.graphs.train import MODELS

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in MODELS)


@pytest.mark.parametrize("bad, match", [
    (dict(tol=float("nan")), "tol=nan: give a finite number >= 0"),
    (dict(max_iter=2.5), "max_iter=2.5: give a whole number >= 0"),
    (dict(relax=3), "relax=3: give a relaxation string"),
    (dict(relax="FF"), "unknown relaxation 'FF'"),
    (dict(problem="wave"), "unknown problem 'wave'"),
])
def test_the_engine_entry_point_validates_like_the_command_line(bad, match):
    from mgritlab.tasks import mgrit_run

    kw = dict(problem="heat", nt=17, nx=9, levels=2) | bad
    with pytest.raises(ValueError, match=match):
        mgrit_run(kw.pop("problem"), **kw)
