"""The shipped BasicMotions files, their loader and the synthetic sequence tasks."""
from __future__ import annotations

import shutil
from collections import Counter

import numpy as np
import pytest
import torch

from mgritlab.checksums import ChecksumError, read_sums, sha256
from mgritlab.recurrent.datasets import (
    PACKAGE_DATA,
    SequenceData,
    load_basic_motions,
    synthetic_sequences,
)

HEADER_CLASSES = ("Standing", "Running", "Walking", "Badminton")


def raw_lines(split: str) -> list[str]:
    """The data lines of a shipped .ts file, by plain string handling."""
    text = (PACKAGE_DATA / f"BasicMotions_{split.upper()}.ts").read_text()
    lines = [ln.strip() for ln in text.splitlines()]
    return [ln for ln in lines if ln and not ln.startswith(("#", "@"))]


def raw_sample(line: str) -> tuple[np.ndarray, str]:
    """(channels, steps) array and label of one data line."""
    *channels, label = line.split(":")
    return np.array([[float(v) for v in ch.split(",")] for ch in channels]), label


@pytest.fixture(scope="module")
def raw():
    return load_basic_motions(val_fraction=0, standardize=False, steps=100,
                              dtype=torch.float64)


def test_shipped_files_match_their_sums():
    sums = read_sums(PACKAGE_DATA / "SHA256SUMS")
    assert set(sums) == {"BasicMotions_TRAIN.ts", "BasicMotions_TEST.ts"}
    for name, digest in sums.items():
        assert sha256(PACKAGE_DATA / name) == digest


def test_default_shapes_and_classes():
    d = load_basic_motions(val_fraction=0)
    assert isinstance(d, SequenceData) and d.name == "BasicMotions"
    assert d.x_train.shape == (40, 96, 6) and d.x_test.shape == (40, 96, 6)
    assert d.steps == 96 and d.channels == 6 and d.num_classes == 4
    assert d.x_val is None and d.y_val is None
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.long
    assert d.classes == HEADER_CLASSES
    for split, y in (("train", d.y_train), ("test", d.y_test)):
        assert torch.bincount(y, minlength=4).tolist() == [10, 10, 10, 10]
        # an independent count from the raw lines: label k is header class k
        counts = Counter(ln.rsplit(":", 1)[1] for ln in raw_lines(split))
        assert [counts[c] for c in HEADER_CLASSES] == torch.bincount(y).tolist()
        assert [HEADER_CLASSES[k] for k in y.tolist()] == [
            ln.rsplit(":", 1)[1] for ln in raw_lines(split)]


@pytest.mark.parametrize("steps", [96, 16, 1, 100])
def test_keeps_the_last_steps(steps):
    d = load_basic_motions(steps=steps, standardize=False, val_fraction=0, dtype=torch.float64)
    assert d.steps == steps
    for split, x in (("train", d.x_train), ("test", d.x_test)):
        for i in (0, 17, 39):
            values, _ = raw_sample(raw_lines(split)[i])
            assert values.shape == (6, 100)
            np.testing.assert_array_equal(x[i].numpy(), values[:, -steps:].T)


def test_standardisation_uses_training_statistics_only(raw):
    d = load_basic_motions(val_fraction=0.25, seed=3)
    ref = load_basic_motions(val_fraction=0.25, seed=3, standardize=False,
                             dtype=torch.float64)
    mean = d.x_train.double().mean(dim=(0, 1))
    std = d.x_train.double().std(dim=(0, 1), unbiased=False)
    torch.testing.assert_close(mean, torch.zeros(6, dtype=torch.float64), atol=1e-5, rtol=0)
    torch.testing.assert_close(std, torch.ones(6, dtype=torch.float64), atol=1e-5, rtol=0)
    # the test and val splits are transformed with the training split's statistics
    m = ref.x_train.mean(dim=(0, 1))
    s = ref.x_train.std(dim=(0, 1), unbiased=False)
    for x, x_raw in ((d.x_test, ref.x_test), (d.x_val, ref.x_val)):
        torch.testing.assert_close(x.double(), (x_raw - m) / s, atol=1e-5, rtol=1e-5)
    test_mean = d.x_test.double().mean(dim=(0, 1))
    assert test_mean.abs().max() > 1e-3  # not standardised by its own statistics
    # the statistics are those of the 28 training samples, not of all 40
    m40 = raw.x_train[:, -96:].mean(dim=(0, 1))
    assert (m40 - m).abs().max() > 1e-6


def test_validation_split_is_stratified_reproducible_and_disjoint(raw):
    a = load_basic_motions(val_fraction=0.25, seed=5, standardize=False, dtype=torch.float64)
    b = load_basic_motions(val_fraction=0.25, seed=5, standardize=False, dtype=torch.float64)
    c = load_basic_motions(val_fraction=0.25, seed=6, standardize=False, dtype=torch.float64)
    assert torch.equal(a.x_val, b.x_val) and torch.equal(a.y_val, b.y_val)
    assert torch.equal(a.x_train, b.x_train)
    assert not torch.equal(a.x_val, c.x_val)
    # round(0.25 * 10) with halves up: 3 of each class to val, 7 stay in train
    assert torch.bincount(a.y_val, minlength=4).tolist() == [3, 3, 3, 3]
    assert torch.bincount(a.y_train, minlength=4).tolist() == [7, 7, 7, 7]
    # train and val partition the archive's 40 training series
    full = raw.x_train[:, -96:]

    def rows(x):
        return [int(np.flatnonzero((full == xi).all(dim=(1, 2)).numpy())[0]) for xi in x]

    tr, va = rows(a.x_train), rows(a.x_val)
    assert sorted(tr + va) == list(range(40))
    assert torch.equal(raw.y_train[tr], a.y_train) and torch.equal(raw.y_train[va], a.y_val)
    # the test split is always the archive's
    torch.testing.assert_close(a.x_test, raw.x_test[:, -96:])
    d = load_basic_motions(val_fraction=0.5)
    assert torch.bincount(d.y_val).tolist() == [5, 5, 5, 5]


def test_a_modified_or_missing_file_fails_the_checksum(tmp_path):
    root = tmp_path / "bm"
    shutil.copytree(PACKAGE_DATA, root)
    assert load_basic_motions(root=root).x_train.shape == (28, 96, 6)
    path = root / "BasicMotions_TRAIN.ts"
    text = path.read_text()
    path.write_text(text.replace("0.079106", "0.079107", 1))
    with pytest.raises(ChecksumError,
                       match=r"BasicMotions_TRAIN\.ts does not match its SHA-256.*reinstall"):
        load_basic_motions(root=root)
    path.unlink()
    with pytest.raises(ChecksumError, match=r"BasicMotions_TRAIN\.ts is missing.*reinstall"):
        load_basic_motions(root=root)


@pytest.mark.parametrize("steps", [0, -1, 101, 2.5, True])
def test_bad_steps_raise(steps):
    with pytest.raises(ValueError, match="from 1 to 100"):
        load_basic_motions(steps=steps)


@pytest.mark.parametrize("kw", [{"val_fraction": 1.0}, {"val_fraction": -0.1},
                                {"val_fraction": 0.01}, {"dtype": torch.long}])
def test_bad_arguments_raise(kw):
    with pytest.raises(ValueError):
        load_basic_motions(**kw)


# --------------------------------------------------------------------------------------------
# synthetic tasks

@pytest.mark.parametrize("task, channels, classes", [("adding", 2, 2), ("pattern", 1, 4)])
def test_synthetic_shapes_and_seeds(task, channels, classes):
    d = synthetic_sequences(64, 128, task=task, seed=1)
    assert d.x_train.shape == (64, 128, channels) and d.y_train.shape == (64,)
    assert d.x_val.shape == (16, 128, channels) and d.x_test.shape == (16, 128, channels)
    assert d.steps == 128 and d.channels == channels and d.num_classes == classes
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.long
    same = synthetic_sequences(64, 128, task=task, seed=1)
    other = synthetic_sequences(64, 128, task=task, seed=2)
    for (_, x, y), (_, xs, ys), (_, xo, _) in zip(d.splits(), same.splits(), other.splits()):
        assert torch.equal(x, xs) and torch.equal(y, ys)
        assert not torch.equal(x, xo)
    assert synthetic_sequences(8, 16, task=task, dtype=torch.float64).x_train.dtype \
        == torch.float64


@pytest.mark.parametrize("steps", [2, 3, 128, 4096])
def test_adding_label_rule_and_balance(steps):
    n = 2000 if steps <= 128 else 200
    d = synthetic_sequences(n, steps, seed=7)
    for _, x, y in d.splits():
        values, marker = x[..., 0].double(), x[..., 1]
        assert ((values >= 0) & (values < 1)).all()
        assert set(marker.unique().tolist()) <= {0.0, 1.0}
        assert (marker.sum(dim=1) == 2).all()
        half = steps // 2
        assert (marker[:, :half].sum(dim=1) == 1).all()
        assert (marker[:, half:].sum(dim=1) == 1).all()
        expect = ((values * marker).sum(dim=1) > 1).long()
        assert torch.equal(y, expect)
    frac = d.y_train.double().mean().item()
    assert abs(frac - 0.5) < (0.05 if n == 2000 else 0.15)


def test_pattern_motif_is_the_label():
    d = synthetic_sequences(400, 256, task="pattern", seed=4)
    counts = torch.bincount(d.y_train, minlength=4)
    assert counts.min() > 60  # uniform over 4 classes: 100 each in expectation
    # a matched filter recovers the label: the task is easy to solve in principle
    from mgritlab.recurrent.datasets import _MOTIFS

    motifs = torch.as_tensor(_MOTIFS, dtype=torch.float32)[:, None, :]
    scores = torch.nn.functional.conv1d(d.x_train.transpose(1, 2), motifs)  # (n, 4, T-7)
    pred = scores.amax(dim=2).argmax(dim=1)
    assert (pred == d.y_train).double().mean() > 0.95


@pytest.mark.parametrize("args, kw, match", [
    ((3, 128), {}, "at least 4"),
    ((16, 1), {}, "steps >= 2"),
    ((16, 7), {"task": "pattern"}, "steps >= 8"),
    ((16, 128), {"task": "copy"}, "unknown task"),
    ((16.0, 128), {}, "integer"),
    ((16, 128), {"dtype": torch.int32}, "floating"),
])
def test_synthetic_bad_arguments(args, kw, match):
    with pytest.raises(ValueError, match=match):
        synthetic_sequences(*args, **kw)


def test_sequence_data_checks_its_shapes():
    x, y = torch.zeros(4, 8, 2), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="steps, channels"):
        SequenceData(x, y, torch.zeros(4, 9, 2), y, ("a", "b"), "t")
    with pytest.raises(ValueError, match="both x_val and y_val"):
        SequenceData(x, y, x, y, ("a", "b"), "t", x_val=x)
