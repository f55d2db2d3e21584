"""MGRIT under mpiexec: identical to one process; CLI; clear errors; clean-up."""
import json
import sys
import time
from pathlib import Path

import pytest

from mgritlab.cluster import MPITimeout, run_mpi

pytestmark = pytest.mark.mpi
HERE = Path(__file__).parent


@pytest.mark.parametrize("n", [2, 3])
def test_distributed_mgrit_is_identical_to_serial(mpirun, n):
    out = mpirun(HERE / "mgrit_identical.py", n)
    assert f"identical on {n} ranks" in out


@pytest.mark.parametrize("n", [2, 3])
def test_no_rank_holds_every_point_forward_and_reversed(mpirun, n):
    """Pipelined coarsest solve, reversed partition for the adjoint, u_init_local warm start
    and the layer-parallel helpers: bitwise the serial answer (tests/mpi/mgrit_reverse.py)."""
    out = mpirun(HERE / "mgrit_reverse.py", n, timeout=120)
    assert f"identical on {n} ranks" in out


def test_cli_under_mpiexec_prints_on_rank_zero_only(tmp_path):
    out_json = tmp_path / "heat.json"
    cmd = [sys.executable, "-m", "mgritlab", "heat", "--nt", "129", "--nx", "33", "--levels",
           "3", "--cf", "2", "--tol", "1e-12", "--compare", "--json", str(out_json)]
    proc = run_mpi(cmd, 2, timeout=120)
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout.count("model speedup on 2 rank(s)") == 1
    assert "time per phase" in proc.stdout
    data = json.loads(out_json.read_text())
    assert data["ranks"] == 2 and data["converged"] and data["max_difference"] < 1e-9
    serial = run_mpi(cmd[:-2] + ["--json", str(tmp_path / "one.json")], 1, timeout=120)
    assert serial.returncode == 0
    assert json.loads((tmp_path / "one.json").read_text())["residuals"] == data["residuals"]


def test_too_many_ranks_says_how_many_fit():
    cmd = [sys.executable, "-m", "mgritlab", "dahlquist", "--nt", "9", "--levels", "3",
           "--cf", "2"]
    proc = run_mpi(cmd, 3, timeout=120)
    assert proc.returncode != 0
    assert "at most 2 processes fit" in proc.stdout


def test_a_failing_rank_ends_the_cli_at_once_with_its_error():
    """Rank 0's NewtonError (y0 = 1e200 overflows) used to leave rank 1 waiting for ever."""
    cmd = [sys.executable, "-m", "mgritlab", "nonlinear", "--y0", "1e200", "--nt", "65"]
    start = time.perf_counter()
    proc = run_mpi(cmd, 2, timeout=90)
    assert time.perf_counter() - start < 60
    assert proc.returncode != 0
    assert "backward Euler: Newton did not converge" in proc.stdout


def test_a_user_script_whose_rank_raises_ends_every_rank(tmp_path):
    """Plain `python script.py` (not `python -m mpi4py`): creating an MPIPartition installs
    the guard, so rank 0's error ends rank 1, which waits in a barrier."""
    script = tmp_path / "fail.py"
    script.write_text("from mgritlab.mgrit.mpi import MPIPartition\n"
                      "part = MPIPartition()\n"
                      "if part.rank == 0:\n"
                      "    raise ValueError('boom on rank 0')\n"
                      "part.barrier()\n")
    start = time.perf_counter()
    proc = run_mpi([sys.executable, str(script)], 2, timeout=90, cwd=HERE.parents[1])
    assert time.perf_counter() - start < 60
    assert proc.returncode != 0
    assert "ValueError: boom on rank 0" in proc.stdout and "Traceback" in proc.stdout


def test_timeout_kills_every_rank(tmp_path):
    script = tmp_path / "hang.py"
    script.write_text("import time\nfrom mpi4py import MPI\nprint('up', flush=True)\n"
                      "time.sleep(600)\n")
    with pytest.raises(MPITimeout, match="killed"):
        run_mpi([sys.executable, str(script)], 2, timeout=8)
    import subprocess

    left = subprocess.run(["pgrep", "-f", str(script)], capture_output=True, text=True)
    assert left.stdout.strip() == ""


def test_missing_mpiexec_gives_install_command(monkeypatch, tmp_path):
    import mgritlab.cluster as cluster

    monkeypatch.setattr(cluster.sys, "prefix", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(cluster.MPIUnavailable, match="pip install mpich mpi4py"):
        cluster.mpiexec_path()
    with pytest.warns(RuntimeWarning, match="Falling back to the serial solver"):
        engines = cluster.start_engines(2, timeout=5)
    assert not engines.parallel
    from mgritlab.tasks import mgrit_run

    [rec] = engines.run(mgrit_run, "dahlquist", nt=33, levels=2, cf=4)
    assert rec["converged"] and rec["size"] == 1
