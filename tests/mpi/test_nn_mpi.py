"""Runs tests/mpi/nn_gradient.py under ``mpiexec -n 2`` (layer-parallel gradients on 2 ranks)."""
from pathlib import Path

import pytest

pytestmark = pytest.mark.mpi

SCRIPT = Path(__file__).with_name("nn_gradient.py")


def test_layer_parallel_gradients_on_two_ranks(mpirun):
    out = mpirun(SCRIPT, 2, timeout=180)
    assert any(line.strip() == "OK" for line in out.splitlines()), out
