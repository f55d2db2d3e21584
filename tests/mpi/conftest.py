"""MPI test set-up: ``same_on_ranks`` runs a rank script (``verdict.report`` protocol) on
1, 2 and 3 ranks and requires every rank's verdict OK and one digest for all rank counts."""
from __future__ import annotations

from pathlib import Path

import pytest

from mgritlab.cluster import run_mpi


@pytest.fixture
def same_on_ranks(tmp_path):
    import sys

    def _check(script: Path, ranks=(1, 2, 3), *, timeout: float = 180.0) -> dict[int, str]:
        digests = {}
        for n in ranks:
            out = tmp_path / f"ranks{n}"
            out.mkdir()
            proc = run_mpi([sys.executable, "-m", "mpi4py", str(script), str(out)], n,
                           timeout=timeout)
            verdicts = {r: (out / f"rank_{n}_{r}.txt").read_text()
                        for r in range(n) if (out / f"rank_{n}_{r}.txt").exists()}
            bad = {r: v for r, v in verdicts.items() if v != "OK\n"}
            assert not bad, f"{script.name} on {n} ranks: {bad}"
            assert proc.returncode == 0 and len(verdicts) == n, (
                f"{script.name} on {n} ranks exited with {proc.returncode}, verdicts from "
                f"ranks {sorted(verdicts)}:\n{proc.stdout}")
            digests[n] = (out / f"digest_{n}.txt").read_text()
        assert len(set(digests.values())) == 1, f"{script.name}: digests differ: {digests}"
        return digests

    return _check
