"""Layer-parallel GRU training is bitwise the same on 1, 2 and 3 MPI ranks."""
from pathlib import Path

import pytest

pytestmark = pytest.mark.mpi

SCRIPT = Path(__file__).with_name("gru_ranks.py")


def test_gru_losses_and_parameters_identical_on_1_2_3_ranks(same_on_ranks):
    same_on_ranks(SCRIPT, (1, 2, 3), timeout=180)
