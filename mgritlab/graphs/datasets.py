"""Offline Planetoid citation graphs (CORA, CiteSeer) for PDE-GCN-D.

The raw Planetoid files (Yang, Cohen, Salakhutdinov 2016) ship inside the package under
``mgritlab/data/planetoid/<Name>/raw/`` with their SHA-256 sums in
``mgritlab/data/planetoid/SHA256SUMS``. :func:`load_planetoid` copies them into a cache root
(``$MGRITLAB_DATA`` or ``~/.cache/mgritlab/planetoid``, or the ``root`` you pass), checks every
file's SHA-256 and only then calls the real ``torch_geometric.datasets.Planetoid``: it finds its
raw files in place and never downloads. Features are row-normalised (``NormalizeFeatures``);
the split is the public one (CORA: 140 train / 500 val / 1000 test nodes).

PyG's processed files (``<Name>/processed/*.pt``) are derived from the checked raw files, so a
processed file that cannot be read or holds the wrong graph is rebuilt from them (with a
warning). A complete cache on a read-only file system is used as it is, without its lock.
"""
from __future__ import annotations

import os
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path

from ..checksums import ChecksumError, read_sums, sha256

DATASETS = ("Cora", "CiteSeer")
RAW_SUFFIXES = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")
PACKAGE_DATA = Path(__file__).resolve().parent.parent / "data" / "planetoid"
# nodes, features, classes of the public graphs: a processed file must give these
SIZES = {"Cora": (2708, 1433, 7), "CiteSeer": (3327, 3703, 6)}
PROCESSED = ("data.pt", "pre_filter.pt", "pre_transform.pt")


class DatasetError(RuntimeError):
    """A Planetoid raw file is missing or does not match its SHA-256 sum."""


def canonical_name(name: str) -> str:
    """'cora' -> 'Cora', 'citeseer' -> 'CiteSeer'; a ValueError names the choices."""
    for d in DATASETS:
        if name.lower() == d.lower():
            return d
    raise ValueError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")


def raw_file_names(name: str) -> list[str]:
    """The eight raw files Planetoid reads, e.g. ``ind.cora.x``."""
    name = canonical_name(name)
    return [f"ind.{name.lower()}.{s}" for s in RAW_SUFFIXES]


def default_root() -> Path:
    """``$MGRITLAB_DATA`` if set, else ``~/.cache/mgritlab/planetoid``."""
    env = os.environ.get("MGRITLAB_DATA")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "mgritlab" / "planetoid"


def expected_sums(sums_file: Path | None = None) -> dict[str, str]:
    """``{'Cora/raw/ind.cora.x': hexdigest, ...}`` from the shipped SHA256SUMS (or
    ``sums_file``), read with :func:`mgritlab.checksums.read_sums`. ``sha256`` here is
    :func:`mgritlab.checksums.sha256`."""
    sums_file = Path(sums_file) if sums_file is not None else PACKAGE_DATA / "SHA256SUMS"
    try:
        return read_sums(sums_file)
    except ChecksumError as err:
        raise DatasetError(str(err)) from None


def verify_raw(name: str, root: Path, sums: dict[str, str] | None = None) -> None:
    """Check that every raw file of ``name`` under ``root/<name>/raw`` has its SHA-256 sum.

    Raises :class:`DatasetError` naming the file and what to do.
    """
    name = canonical_name(name)
    sums = expected_sums() if sums is None else sums
    for fname in raw_file_names(name):
        rel = f"{name}/raw/{fname}"
        path = Path(root) / rel
        if not path.is_file():
            raise DatasetError(
                f"{name}: raw file {path} is missing. Reinstall mgritlab so that "
                f"mgritlab/data/planetoid/{rel} ships with it, or copy the Planetoid raw files "
                f"into {path.parent}")
        if rel not in sums:
            raise DatasetError(
                f"{name}: no SHA-256 sum for {rel} in SHA256SUMS; reinstall mgritlab")
        got = sha256(path)
        if got != sums[rel]:
            raise DatasetError(
                f"{name}: raw file {path} is corrupt (SHA-256 {got[:12]}..., expected "
                f"{sums[rel][:12]}...). Delete {Path(root) / name} so that it is copied again "
                "from the package, or reinstall mgritlab if the shipped copy is damaged")


def prepare_root(name: str, root: str | Path | None = None, *, source: Path | None = None) -> Path:
    """Copy the shipped raw files of ``name`` into ``root`` (where absent) and verify them."""
    name = canonical_name(name)
    root = Path(root).expanduser() if root is not None else default_root()
    source = Path(source) if source is not None else PACKAGE_DATA
    sums = expected_sums(source / "SHA256SUMS")
    raw = root / name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for fname in raw_file_names(name):
        dst = raw / fname
        if not dst.exists():
            src = source / name / "raw" / fname
            if not src.is_file():
                raise DatasetError(
                    f"{name}: shipped raw file {src} is missing: reinstall mgritlab "
                    "(pip install -e .) so its package data mgritlab/data/planetoid is present")
            shutil.copyfile(src, dst)
    verify_raw(name, root, sums)
    return root


def _open_lock_file(path: Path):
    return open(path, "a")


@contextmanager
def _lock(path: Path, *, complete: bool):
    """An exclusive file lock (POSIX; a no-op where fcntl is unavailable). Yields whether the
    cache may be written: a lock file that cannot be created (a read-only cache) is fine when
    the cache is ``complete`` — nothing will be written then — and a DatasetError otherwise."""
    try:
        import fcntl
    except ImportError:  # Windows: no concurrent-process protection
        yield True
        return
    try:
        f = _open_lock_file(path)
    except OSError as err:
        if not complete:
            raise DatasetError(
                f"cannot create the lock file {path} ({err.strerror or err}) and the cache "
                f"{path.parent} has no processed files yet: set MGRITLAB_DATA (or pass root=) "
                "to a writable folder") from None
        yield False
        return
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _planetoid(root: Path, name: str):
    """PyG's Planetoid of ``name`` under ``root``, checked against the public sizes (raises
    whatever reading a corrupt processed file raises)."""
    from torch_geometric.datasets import Planetoid
    from torch_geometric.transforms import NormalizeFeatures

    ds = Planetoid(str(root), name, split="public", transform=NormalizeFeatures())
    d = ds[0]
    got = (d.num_nodes, d.num_features, ds.num_classes)
    if got != SIZES[name]:
        raise ValueError(f"the processed graph has (nodes, features, classes) = {got}, "
                         f"expected {SIZES[name]}")
    return ds


def load_planetoid(name: str = "Cora", root: str | Path | None = None):
    """The Planetoid graph ``name`` ('Cora' or 'CiteSeer') as a PyG ``Data`` object, offline.

    Public split (``train_mask``/``val_mask``/``test_mask``), row-normalised features.
    """
    name = canonical_name(name)
    root = prepare_root(name, root)
    processed = root / name / "processed"
    complete = all((processed / f).is_file() for f in PROCESSED)
    # concurrent runs must not read a half-written cache
    with _lock(root / name / ".lock", complete=complete) as writable:
        try:
            ds = _planetoid(root, name)
        except Exception as err:  # noqa: BLE001 — any failure to read a derived file
            what = f"{type(err).__name__}: {str(err).strip()[:120]}"
            if not writable:
                raise DatasetError(
                    f"{name}: the processed files in {processed} cannot be used ({what}) and "
                    f"the cache is read-only: delete {processed}, or set MGRITLAB_DATA to a "
                    "writable folder, so that they are rebuilt from the checked raw files"
                ) from None
            warnings.warn(f"{name}: the processed files in {processed} cannot be used "
                          f"({what}); rebuilding them from the hash-checked raw files",
                          RuntimeWarning, stacklevel=2)
            shutil.rmtree(processed, ignore_errors=True)
            ds = _planetoid(root, name)
    data = ds[0]
    data.num_classes = ds.num_classes
    data.name = name
    return data
