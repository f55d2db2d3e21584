"""The integrators under mpiexec: MGRIT on a non-uniform grid with a matrix L is bitwise the
serial run on 2 and 3 ranks (so 1 vs 2 vs 3 ranks agree)."""
from pathlib import Path

import pytest

pytestmark = pytest.mark.mpi
HERE = Path(__file__).parent


@pytest.mark.parametrize("n", [2, 3])
def test_nonuniform_grid_matrix_l_identical_on_any_rank_count(mpirun, n):
    out = mpirun(HERE / "mgrit_nonuniform.py", n, timeout=240)
    assert f"non-uniform cases identical on {n} ranks" in out
