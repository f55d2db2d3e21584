"""SHA-256 checks of the data files that ship inside the package.

Each shipped data folder (``mgritlab/data/planetoid/``, ``mgritlab/data/basicmotions/``) holds a
``SHA256SUMS`` file in ``sha256sum`` format (``<hexdigest>  <relative path>``, one a line); a
loader reads it with :func:`read_sums` and checks every file with :func:`verify` before it
parses anything. This module imports nothing from mgritlab: it sits below every layer.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["ChecksumError", "read_sums", "sha256", "verify"]

REINSTALL = "reinstall mgritlab (pip install -e .) so that its package data is present and intact"


class ChecksumError(RuntimeError):
    """A data file or its checksum list is missing, or a file does not match its SHA-256 sum."""


def sha256(path: str | Path) -> str:
    """The SHA-256 hex digest of the file at ``path`` (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_sums(sums_file: str | Path) -> dict[str, str]:
    """``{relative path: hexdigest}`` from a ``sha256sum``-format file.

    Blank lines are skipped; the binary-mode marker ``*`` before a name is dropped. Raises
    :class:`ChecksumError` if the file is missing or a line is not ``<64 hex digits> <name>``.
    """
    sums_file = Path(sums_file)
    if not sums_file.is_file():
        raise ChecksumError(f"checksum list {sums_file} is missing: {REINSTALL}")
    out = {}
    for n, line in enumerate(sums_file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        digest = parts[0].lower()
        if (len(parts) != 2 or len(digest) != 64
                or any(ch not in "0123456789abcdef" for ch in digest)):
            raise ChecksumError(
                f"{sums_file}, line {n}: expected '<sha256 hex digest>  <file name>', "
                f"got {line.strip()[:80]!r}: {REINSTALL}")
        out[parts[1].strip().lstrip("*")] = digest
    return out


def verify(path: str | Path, expected_hex: str, what: str) -> None:
    """Check that the file at ``path`` exists and has the SHA-256 digest ``expected_hex``.

    ``what`` names the data in the message (e.g. ``"BasicMotions"``). Raises
    :class:`ChecksumError` naming the file and saying to reinstall mgritlab.
    """
    path = Path(path)
    if not path.is_file():
        raise ChecksumError(f"{what}: data file {path} is missing: {REINSTALL}")
    got = sha256(path)
    if got != expected_hex.lower():
        raise ChecksumError(
            f"{what}: data file {path} does not match its SHA-256 sum (got {got[:12]}..., "
            f"expected {expected_hex[:12]}...): the file is modified or damaged; {REINSTALL}")
