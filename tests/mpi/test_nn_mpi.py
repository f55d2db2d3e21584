"""Runs tests/mpi/nn_gradient.py under ``mpiexec -n 2`` (layer-parallel gradients on 2 ranks)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.mpi

SCRIPT = Path(__file__).with_name("nn_gradient.py")


def mpiexec() -> str | None:
    exe = Path(sys.prefix) / "bin" / "mpiexec"
    return str(exe) if exe.exists() else shutil.which("mpiexec")


def test_layer_parallel_gradients_on_two_ranks():
    pytest.importorskip("mpi4py")
    exe = mpiexec()
    if exe is None:
        pytest.skip("no mpiexec found (install mpich: pip install mpich)")
    proc = subprocess.Popen([exe, "-n", "2", sys.executable, str(SCRIPT)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, cwd=Path(__file__).parents[2])
    try:
        out, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"mpiexec -n 2 {SCRIPT.name} timed out after 120 s:\n{out}")
    print(out)
    assert proc.returncode == 0, out
    assert any(line.strip() == "OK" for line in out.splitlines()), out
