"""Shared test set-up: a run id for the whole session (every process the tests start inherits
it, so whatever a failed or timed-out test leaves behind is killed at the end), and
``mpirun`` for scripts under ``mpiexec`` with a timeout."""
from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

from mgritlab.cluster import RUN_ID_ENV, kill_tagged, run_mpi

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _tag_and_reap_processes():
    run_id = f"pytest-{uuid.uuid4().hex[:8]}"
    old = os.environ.get(RUN_ID_ENV)
    os.environ[RUN_ID_ENV] = run_id
    yield run_id
    kill_tagged(run_id)
    if old is None:
        os.environ.pop(RUN_ID_ENV, None)
    else:
        os.environ[RUN_ID_ENV] = old


@pytest.fixture
def mpirun():
    """mpirun(script, n, *args, timeout=...) -> output; fails the test on a non-zero exit."""

    def _run(script: str | Path, n: int, *args: str, timeout: float = 180.0) -> str:
        cmd = [sys.executable, "-m", "mpi4py", str(script), *map(str, args)]
        proc = run_mpi(cmd, n, timeout=timeout, cwd=ROOT)
        assert proc.returncode == 0, f"mpiexec -n {n} {script} failed:\n{proc.stdout}"
        return proc.stdout

    return _run
