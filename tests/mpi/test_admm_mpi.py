"""pdADMM-G(-Q) over layers split across MPI ranks is bitwise the same on 1, 2 and 3 ranks."""
from pathlib import Path

import pytest

pytestmark = pytest.mark.mpi

SCRIPT = Path(__file__).with_name("admm_ranks.py")


def test_admm_iterates_and_weights_identical_on_1_2_3_ranks(mpirun, tmp_path):
    digests = {}
    for n in (1, 2, 3):
        mpirun(SCRIPT, n, tmp_path, timeout=180)
        for r in range(n):
            verdict = (tmp_path / f"rank_{n}_{r}.txt").read_text()
            assert verdict == "OK\n", f"{n} ranks, rank {r}: {verdict}"
        digests[n] = (tmp_path / f"digest_{n}.txt").read_text()
    assert digests[1] == digests[2] == digests[3], digests
