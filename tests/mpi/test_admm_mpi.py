"""pdADMM-G(-Q) over layers split across MPI ranks is bitwise the same on 1, 2 and 3 ranks."""
from pathlib import Path

import pytest

pytestmark = pytest.mark.mpi

SCRIPT = Path(__file__).with_name("admm_ranks.py")


def test_admm_iterates_and_weights_identical_on_1_2_3_ranks(same_on_ranks):
    same_on_ranks(SCRIPT, (1, 2, 3), timeout=180)
