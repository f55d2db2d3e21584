"""Offline sequence-classification data for the layer-parallel GRUs.

Two sources, both returned as a :class:`SequenceData` in the batch-first layout of
``torch.nn.GRU(batch_first=True)``: inputs ``(samples, steps, channels)``, integer labels
``(samples,)``.

* :func:`load_basic_motions` — BasicMotions from the UEA multivariate time series
  classification archive (Bagnall et al. 2018, "The UEA multivariate time series
  classification archive, 2018", arXiv:1811.00075; www.timeseriesclassification.com). Smart-watch
  3-D accelerometer and 3-D gyroscope readings (6 channels, 100 steps at 10 Hz) of four
  activities: Standing, Running, Walking, Badminton; the archive's split of 40 train / 40 test
  series, 10 per class in each. The two ``.ts`` files ship in ``mgritlab/data/basicmotions/``
  (copied from sktime 1.2.0's wheel, see the README there) with their SHA-256 sums; they are
  checked before they are parsed, and parsed here (no sktime needed).
* :func:`synthetic_sequences` — seeded tasks of any length (128 ... 4096 steps for the scaling
  experiments) whose label rule does not depend on the length: an adding-problem
  classification (after Hochreiter & Schmidhuber 1997) and a motif-detection task.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..checksums import ChecksumError, read_sums, verify

__all__ = [
    "BASIC_MOTIONS_FILES", "PACKAGE_DATA", "SERIES_LENGTH", "TASKS", "SequenceData",
    "load_basic_motions", "parse_ts", "synthetic_sequences",
]

PACKAGE_DATA = Path(__file__).resolve().parent.parent / "data" / "basicmotions"
BASIC_MOTIONS_FILES = {"train": "BasicMotions_TRAIN.ts", "test": "BasicMotions_TEST.ts"}
SERIES_LENGTH = 100  # BasicMotions: 100 steps (10 s at 10 Hz) per series
TASKS = ("adding", "pattern")
# task="pattern": four mutually orthogonal, zero-mean Walsh patterns of length 8, one a class
_MOTIFS = np.array([
    [1, 1, 1, 1, -1, -1, -1, -1],
    [1, 1, -1, -1, 1, 1, -1, -1],
    [1, -1, 1, -1, 1, -1, 1, -1],
    [1, 1, -1, -1, -1, -1, 1, 1],
], dtype=np.float64)
_PATTERN_NOISE = 0.3  # std of the Gaussian noise the motif sits in


@dataclass
class SequenceData:
    """A sequence-classification data set, batch first (like ``nn.GRU(batch_first=True)``).

    ``x_*``: float tensors ``(samples, steps, channels)``; ``y_*``: long tensors ``(samples,)``
    with values in ``range(len(classes))``; ``classes[k]`` names label ``k``. ``x_val`` and
    ``y_val`` are ``None`` when there is no validation split.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple[str, ...]
    name: str
    x_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None

    def __post_init__(self):
        if (self.x_val is None) != (self.y_val is None):
            raise ValueError("give both x_val and y_val, or neither")
        shape = None
        for split, x, y in self.splits():
            if x.dim() != 3 or y.dim() != 1 or x.shape[0] != y.shape[0]:
                raise ValueError(f"{self.name}: {split} split has x of shape {tuple(x.shape)} "
                                 f"and y of shape {tuple(y.shape)}; expected (n, steps, "
                                 "channels) and (n,)")
            if shape is not None and x.shape[1:] != shape:
                raise ValueError(f"{self.name}: {split} split has (steps, channels) = "
                                 f"{tuple(x.shape[1:])}, the train split {tuple(shape)}")
            shape = x.shape[1:]

    @property
    def steps(self) -> int:
        """The sequence length T."""
        return self.x_train.shape[1]

    @property
    def channels(self) -> int:
        """Input features per step."""
        return self.x_train.shape[2]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def splits(self) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
        """``[("train", x, y), ("val", x, y), ("test", x, y)]``, without val if there is none."""
        out = [("train", self.x_train, self.y_train)]
        if self.x_val is not None:
            out.append(("val", self.x_val, self.y_val))
        out.append(("test", self.x_test, self.y_test))
        return out


# --------------------------------------------------------------------------------------------
# the .ts format of the UEA & UCR archive

def parse_ts(path: str | Path) -> tuple[np.ndarray, list[str], dict[str, str]]:
    """Parse an equal-length, labelled ``.ts`` file of the UEA & UCR archive.

    The format: ``#`` comment lines; header lines ``@problemName``, ``@timeStamps false``,
    ``@missing false``, ``@univariate``, ``@dimensions d``, ``@equalLength true``,
    ``@seriesLength m``, ``@classLabel true <label> ...``, then ``@data`` and one line per
    series: ``d`` channels separated by ``:``, each ``m`` comma-separated values, the class
    label last. Returns ``(values, labels, header)``: values ``(n, d, m)`` float64, the label
    string of each series, and the header as ``{"classlabel": "true Standing ...", ...}``
    (keys lower-case). Anything else (time stamps, missing values, unequal lengths) raises a
    ValueError naming the file and line.
    """
    path = Path(path)
    header: dict[str, str] = {}
    rows, labels = [], []
    in_data = False
    for n, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path.name}, line {n}"
        if not in_data:
            if not line.startswith("@"):
                raise ValueError(f"{where}: expected a header line starting with '@' before "
                                 "@data")
            key, _, value = line[1:].partition(" ")
            key = key.lower()
            if key == "data":
                in_data = True
                dims, length, allowed = _check_header(header, path.name)
            else:
                header[key] = value.strip()
            continue
        fields = line.split(":")
        if len(fields) != dims + 1:
            raise ValueError(f"{where}: {len(fields) - 1} channels, the header says {dims}")
        series = []
        for ch, field in enumerate(fields[:-1]):
            values = field.split(",")
            if len(values) != length:
                raise ValueError(f"{where}: channel {ch} has {len(values)} values, the header "
                                 f"says {length}")
            try:
                series.append([float(v) for v in values])
            except ValueError:
                raise ValueError(f"{where}: channel {ch} holds a value that is not a number"
                                 ) from None
        label = fields[-1].strip()
        if label not in allowed:
            raise ValueError(f"{where}: class label {label!r} is not one of the header's "
                             f"{allowed}")
        rows.append(series)
        labels.append(label)
    if not in_data:
        raise ValueError(f"{path.name}: no @data line")
    if not rows:
        raise ValueError(f"{path.name}: no series after @data")
    return np.asarray(rows, dtype=np.float64), labels, header


def _check_header(header: dict[str, str], name: str) -> tuple[int, int, list[str]]:
    """(dimensions, series length, class labels) of a header, or a ValueError."""
    need = {"dimensions", "serieslength", "classlabel"}
    if not need <= header.keys():
        raise ValueError(f"{name}: the header lacks @{', @'.join(sorted(need - header.keys()))}")
    for key, want in (("timestamps", "false"), ("missing", "false"), ("equallength", "true")):
        if header.get(key, want).lower() != want:
            raise ValueError(f"{name}: @{key} {header[key]} is not supported (only equal-length "
                             "series without time stamps or missing values)")
    cl = header["classlabel"].split()
    if not cl or cl[0].lower() != "true" or len(cl) < 2:
        raise ValueError(f"{name}: @classLabel must be 'true' followed by the class labels")
    try:
        dims, length = int(header["dimensions"]), int(header["serieslength"])
    except ValueError:
        raise ValueError(f"{name}: @dimensions and @seriesLength must be integers") from None
    return dims, length, cl[1:]


# --------------------------------------------------------------------------------------------
# BasicMotions

def _check_dtype(dtype) -> None:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point torch.dtype, not {dtype!r}")


def _stratified_split(y: np.ndarray, num_classes: int, val_fraction: float, seed: int):
    """(train indices, val indices), both sorted: round(val_fraction * n_k) (halves up) samples
    of every class k go to validation, chosen by ``numpy.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for k in range(num_classes):
        idx = np.flatnonzero(y == k)
        n_val = math.floor(val_fraction * len(idx) + 0.5)
        if not 0 < n_val < len(idx):
            raise ValueError(
                f"val_fraction={val_fraction} puts {n_val} of the {len(idx)} training samples "
                f"of class {k} into the validation split; it must leave at least one in each "
                "(use val_fraction=0 for no validation split)")
        perm = rng.permutation(idx)
        val.append(perm[:n_val])
        train.append(perm[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def load_basic_motions(*, steps: int = 96, standardize: bool = True, val_fraction: float = 0.25,
                       seed: int = 0, dtype: torch.dtype = torch.float32,
                       root: str | Path | None = None) -> SequenceData:
    """BasicMotions (UEA archive; Bagnall et al. 2018, arXiv:1811.00075) as a
    :class:`SequenceData`, offline.

    Data: 80 series of a smart watch's 3-D accelerometer and 3-D gyroscope (6 channels,
    100 steps sampled at 10 Hz) while a person stands, runs, walks or plays badminton; the
    archive's split, 40 train / 40 test with 10 of each class in each. Labels are numbered in
    the order of the files' ``@classLabel`` header: 0 Standing, 1 Running, 2 Walking,
    3 Badminton.

    Choices:

    * ``steps``: keep the **last** ``steps`` of the 100 time steps (``1 <= steps <= 100``). The
      default 96 because a 3-level MGRIT hierarchy with coarsening factor 4 needs a sequence
      length divisible by 4**2 = 16, which 100 is not.
    * ``standardize``: subtract each channel's mean and divide by its standard deviation
      (population std, over samples and kept steps), both computed on the final training
      split only (after the validation samples are taken out) and applied to every split.
    * ``val_fraction``: a seeded (``numpy.random.default_rng(seed)``), stratified validation
      split taken from the 40 training series: ``round(val_fraction * 10)`` series of each
      class (halves round up: 0.25 gives 3 a class, 12 in all, leaving 28 to train);
      ``0`` for none. The test split is always the archive's 40 test series.
    * ``root``: folder holding ``BasicMotions_TRAIN.ts`` and ``BasicMotions_TEST.ts``
      (default: the copy shipped in ``mgritlab/data/basicmotions/``). Whichever folder they
      come from, they must match the shipped ``SHA256SUMS``; a missing or modified file
      raises :class:`mgritlab.checksums.ChecksumError` before anything is parsed.
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) \
            or not 1 <= steps <= SERIES_LENGTH:
        raise ValueError(f"steps must be an integer from 1 to {SERIES_LENGTH} (BasicMotions "
                         f"has {SERIES_LENGTH} steps per series), not {steps!r}")
    if not isinstance(val_fraction, (int, float)) or not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), not {val_fraction!r}")
    _check_dtype(dtype)
    root = Path(root).expanduser() if root is not None else PACKAGE_DATA
    sums = read_sums(PACKAGE_DATA / "SHA256SUMS")
    for fname in BASIC_MOTIONS_FILES.values():
        if fname not in sums:
            raise ChecksumError(f"BasicMotions: no SHA-256 sum for {fname} in "
                                f"{PACKAGE_DATA / 'SHA256SUMS'}: reinstall mgritlab "
                                "(pip install -e .)")
        verify(root / fname, sums[fname], "BasicMotions")

    parsed = {split: parse_ts(root / f) for split, f in BASIC_MOTIONS_FILES.items()}
    classes = tuple(parsed["train"][2]["classlabel"].split()[1:])
    if tuple(parsed["test"][2]["classlabel"].split()[1:]) != classes:
        raise ValueError("BasicMotions: the train and test files list different classes")
    index = {c: k for k, c in enumerate(classes)}
    xs, ys = {}, {}
    for split, (values, labels, _) in parsed.items():
        xs[split] = np.ascontiguousarray(values[:, :, -steps:].transpose(0, 2, 1))
        ys[split] = np.array([index[c] for c in labels], dtype=np.int64)

    if val_fraction > 0:
        tr, va = _stratified_split(ys["train"], len(classes), val_fraction, seed)
        xs["val"], ys["val"] = xs["train"][va], ys["train"][va]
        xs["train"], ys["train"] = xs["train"][tr], ys["train"][tr]
    if standardize:
        mean = xs["train"].mean(axis=(0, 1))
        std = xs["train"].std(axis=(0, 1))
        std = np.where(std > 1e-12, std, 1.0)  # a constant channel is only centred
        xs = {split: (x - mean) / std for split, x in xs.items()}

    def t(split):
        if split not in xs:
            return None, None
        return torch.as_tensor(xs[split], dtype=dtype), torch.as_tensor(ys[split])

    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = t("train"), t("val"), t("test")
    return SequenceData(x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te, classes=classes,
                        name="BasicMotions", x_val=x_va, y_val=y_va)


# --------------------------------------------------------------------------------------------
# synthetic tasks of any length

def _adding(rng: np.random.Generator, total: int, steps: int):
    values = rng.random((total, steps))
    half = steps // 2
    first = rng.integers(0, half, size=total)
    second = rng.integers(half, steps, size=total)
    marker = np.zeros((total, steps))
    rows = np.arange(total)
    marker[rows, first] = 1.0
    marker[rows, second] = 1.0
    y = (values[rows, first] + values[rows, second] > 1.0).astype(np.int64)
    return np.stack([values, marker], axis=-1), y


def _pattern(rng: np.random.Generator, total: int, steps: int):
    length = _MOTIFS.shape[1]
    y = rng.integers(0, len(_MOTIFS), size=total)
    start = rng.integers(0, steps - length + 1, size=total)
    x = _PATTERN_NOISE * rng.standard_normal((total, steps))
    cols = start[:, None] + np.arange(length)
    x[np.arange(total)[:, None], cols] += _MOTIFS[y]
    return x[:, :, None], y.astype(np.int64)


def synthetic_sequences(n: int, steps: int, *, task: str = "adding", seed: int = 0,
                        dtype: torch.dtype = torch.float32) -> SequenceData:
    """A seeded synthetic sequence-classification task: ``n`` training, ``n // 4`` validation
    and ``n // 4`` test sequences of ``steps`` steps, i.i.d., all drawn from one
    ``numpy.random.default_rng(seed)`` (train first, then val, then test).

    The label rule and its statistics do not depend on ``steps``, so the task can be scaled
    from 128 to 4096 steps (the information a model must carry just travels farther).

    * ``task="adding"`` — a classification form of the adding problem (in the style of
      Hochreiter & Schmidhuber 1997): 2 channels, a value ``~ U(0, 1)`` and a marker in
      ``{0, 1}``. Exactly two steps are marked, one uniformly in the first half
      ``[0, steps // 2)`` and one uniformly in the second ``[steps // 2, steps)``; the label is
      1 if the two marked values sum to more than 1, else 0 (each with probability 1/2).
      Needs ``steps >= 2``. Classes ``("sum<=1", "sum>1")``.
    * ``task="pattern"`` — 1 channel of Gaussian noise (std 0.3) into which one of four
      orthogonal, zero-mean ±1 Walsh motifs of length 8 is added at a uniformly random
      position; the label is the motif (uniform over the four). Needs ``steps >= 8``.
      Classes ``("motif0", ..., "motif3")``.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}: choose one of {', '.join(TASKS)}")
    for arg, value in (("n", n), ("steps", steps)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{arg} must be an integer, not {value!r}")
    if n < 4:
        raise ValueError(f"n must be at least 4 (so that val and test get n // 4 >= 1 "
                         f"sequences), not {n}")
    min_steps = 2 if task == "adding" else _MOTIFS.shape[1]
    if steps < min_steps:
        raise ValueError(f"task={task!r} needs steps >= {min_steps}, not {steps}")
    _check_dtype(dtype)
    rng = np.random.default_rng(seed)
    n_held = n // 4
    total = n + 2 * n_held
    x, y = (_adding if task == "adding" else _pattern)(rng, total, steps)
    x = torch.as_tensor(x, dtype=dtype)
    y = torch.as_tensor(y)
    classes = ("sum<=1", "sum>1") if task == "adding" else tuple(
        f"motif{k}" for k in range(len(_MOTIFS)))
    a, b = n, n + n_held
    return SequenceData(x_train=x[:a], y_train=y[:a], x_test=x[b:], y_test=y[b:],
                        classes=classes, name=f"synthetic-{task}", x_val=x[a:b], y_val=y[a:b])
