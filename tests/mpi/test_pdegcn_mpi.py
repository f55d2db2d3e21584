"""Layer-parallel PDE-GCN-D training is bitwise the same on 1, 2 and 3 MPI ranks."""
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.mpi

SCRIPT = Path(__file__).with_name("pdegcn_ranks.py")


def test_losses_and_parameters_identical_on_1_2_3_ranks(mpirun):
    digests = {}
    for n in (1, 2, 3):
        out = mpirun(SCRIPT, n, timeout=150)
        assert any(line.strip() == "OK" for line in out.splitlines()), out
        digests[n] = re.search(r"digest=(\w+)", out).group(1)
    assert digests[1] == digests[2] == digests[3], digests
