"""pdADMM-G(-Q) over layers split across MPI ranks is bitwise the same on 1, 2 and 3 ranks."""
from pathlib import Path

import pytest

pytestmark = pytest.mark.mpi

SCRIPT = Path(__file__).with_name("admm_ranks.py")


def test_admm_iterates_and_weights_identical_on_1_2_3_ranks(same_on_ranks):
    same_on_ranks(SCRIPT, (1, 2, 3), timeout=180)


def test_the_engine_task_gives_one_process_s_iterates_on_2_ranks():
    """tasks.pdadmm_run (lesson 15 runs it on ipyparallel engines) on CORA, float32."""
    from mgritlab.cluster import mpi_call
    from mgritlab.tasks import pdadmm_run

    opts = dict(layers=3, hidden=16, iterations=2)
    one = pdadmm_run(**opts)
    two = mpi_call("mgritlab.tasks:pdadmm_run", 2, timeout=300, **opts)
    drop = lambda h: [{k: v for k, v in x.items() if k != "seconds"} for x in h]
    assert drop(two["history"]) == drop(one["history"])
    assert two["weights_sha256"] == one["weights_sha256"]
    assert (one["layers"], two["layers"], two["size"]) == ([0, 3], [0, 1], 2)
    assert two["rank_bytes"] == 2 * 140 * 16 * 4  # rank 0 sends q_1 rightwards, per iteration
