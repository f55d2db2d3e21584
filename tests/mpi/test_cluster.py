"""ipyparallel MPI engines: start, allreduce, the MGRIT task, stop — all within timeouts."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mgritlab.cluster import EngineError, MPIEngines, MPITimeout, kill_tagged, mpi_hello
from mgritlab.tasks import mgrit_run

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


def _left(run_id: str, seconds: float = 15.0) -> int:
    """How many processes tagged ``run_id`` are alive, waiting up to ``seconds`` for them to
    go (signal 0: counted, not killed)."""
    end = time.monotonic() + seconds
    while kill_tagged(run_id, 0) and time.monotonic() < end:
        time.sleep(0.2)
    return kill_tagged(run_id, 0)


def test_an_engine_error_is_shown_at_once_and_nothing_stays_behind():
    engines = MPIEngines(2, timeout=90)
    try:
        # every engine raises: nobody is stuck, the cluster stays usable
        with pytest.raises(EngineError, match=r"raised on engine rank [01]: ValueError: "
                                              r"unknown problem 'nosuch'"):
            engines.run(mgrit_run, "nosuch", nt=65, timeout=60)
        assert [h["rank"] for h in engines.run(mpi_hello, timeout=30)] == [0, 1]
        # rank 0's Newton fails while rank 1 waits for it: the real error, long before the
        # timeout (it used to say "did not finish in 60 s"), and the stuck cluster is stopped
        start = time.perf_counter()
        with pytest.raises(EngineError, match=r"(?s)rank 0: NewtonError: backward Euler.*"
                                              r"still waiting.*Remote traceback") as err:
            engines.run(mgrit_run, "nonlinear", nt=65, levels=2, y0=1e200, timeout=60)
        assert time.perf_counter() - start < 40
        assert "\x1b[" not in str(err.value)
    finally:
        engines.stop()
    assert _left(engines.run_id, 0) == 0


def test_a_timeout_holds_and_leaves_no_process():
    engines = MPIEngines(2, timeout=90)
    start = time.perf_counter()
    try:
        with pytest.raises(MPITimeout, match="did not finish on the engines in 3 s"):
            engines.run(time.sleep, 120, timeout=3)
        assert time.perf_counter() - start < 30
    finally:
        engines.stop()
    assert _left(engines.run_id, 0) == 0


def test_a_killed_kernel_leaves_no_controller_mpiexec_or_engine(tmp_path):
    """A kernel killed with SIGKILL runs no atexit: the watchdog ends its processes."""
    code = ("from mgritlab.cluster import MPIEngines\n"
            "e = MPIEngines(2, timeout=90)\n"
            "print(e.run_id, flush=True)\n"
            "import time; time.sleep(600)\n")
    kernel = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    run_id = ""
    try:
        run_id = kernel.stdout.readline().strip()
        assert run_id, "the engines did not start"
        assert kill_tagged(run_id, 0) >= 3  # controller, mpiexec, engines (and the watchdog)
        kernel.kill()
        kernel.wait(timeout=10)
        assert _left(run_id, 20) == 0
    finally:
        if kernel.poll() is None:
            kernel.kill()
        if run_id:
            kill_tagged(run_id)


def test_mpi_call_returns_rank_0s_record_and_a_failure_shows_the_ranks_error():
    from mgritlab.cluster import mpi_call

    assert mpi_call("mgritlab.cluster:mpi_hello", 2, timeout=60) == {
        "rank": 0, "size": 2, "allreduce": 3}
    with pytest.raises(RuntimeError, match=r"(?s)on 2 MPI rank\(s\) failed.*relax"):
        mpi_call("mgritlab.tasks:mgrit_run", 2, timeout=60, relax="X")
    with pytest.raises(ValueError, match="module:function"):
        mpi_call("mgritlab.tasks.mgrit_run", 2)


def _fails_on_rank_1_while_rank_0_waits():
    from mpi4py import MPI

    if MPI.COMM_WORLD.Get_rank() == 1:
        raise RuntimeError("rank 1 gave up")
    MPI.COMM_WORLD.barrier()  # rank 0 would wait here for ever without the abort
    return {}


def test_mpi_call_aborts_every_rank_when_one_fails(monkeypatch):
    from mgritlab.cluster import mpi_call

    here = str(Path(__file__).parent)   # the ranks import this module by name
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [here, os.environ.get(
        "PYTHONPATH")])))
    t0 = time.perf_counter()
    with pytest.raises(RuntimeError, match="rank 1 gave up"):
        mpi_call("test_cluster:_fails_on_rank_1_while_rank_0_waits", 2, timeout=120)
    assert time.perf_counter() - t0 < 60  # aborted, not killed at the timeout
