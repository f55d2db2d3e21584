"""Layer-parallel GRU training is bitwise the same on 1, 2 and 3 MPI ranks."""
from pathlib import Path

import pytest

pytestmark = pytest.mark.mpi

SCRIPT = Path(__file__).with_name("gru_ranks.py")


def test_gru_losses_and_parameters_identical_on_1_2_3_ranks(same_on_ranks):
    same_on_ranks(SCRIPT, (1, 2, 3), timeout=180)


def test_the_engine_task_gives_one_process_s_training_on_2_ranks():
    """tasks.gru_run (lesson 14 runs it on ipyparallel engines) on BasicMotions, float64."""
    from mgritlab.cluster import mpi_call
    from mgritlab.tasks import gru_run

    opts = dict(steps=32, hidden=8, adam_steps=2)
    one = gru_run(**opts)
    two = mpi_call("mgritlab.tasks:gru_run", 2, timeout=300, **opts)
    assert two["losses"] == one["losses"] and two["weights_sha256"] == one["weights_sha256"]
    assert (one["steps_held"], two["steps_held"], two["size"]) == ([0, 32], [0, 16], 2)
