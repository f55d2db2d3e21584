"""ipyparallel MPI engines: start, allreduce, the MGRIT task, stop — all within timeouts."""
import time

import pytest

from mgritlab.cluster import MPIEngines, kill_tagged, mpi_hello
from mgritlab.mgrit.tasks import mgrit_run

pytestmark = pytest.mark.mpi


def test_engines_start_allreduce_and_stop_cleanly():
    start = time.perf_counter()
    engines = MPIEngines(2, timeout=90)
    try:
        hello = engines.run(mpi_hello, timeout=30)
        assert [h["rank"] for h in hello] == [0, 1]
        assert all(h["size"] == 2 and h["allreduce"] == 3 for h in hello)
        serial = mgrit_run("heat", nt=65, nx=33, levels=2, cf=4)
        dist = engines.run(mgrit_run, "heat", nt=65, nx=33, levels=2, cf=4, timeout=60)
        assert all(d["residuals"] == serial["residuals"] for d in dist)
    finally:
        engines.stop()
    assert time.perf_counter() - start < 150
    assert kill_tagged(engines.run_id) == 0  # nothing left behind
