"""One rank's uncaught exception ends every rank of the MPI job.

Without this, a rank that raises exits (or waits in ``MPI_Finalize``) while the others wait for
it in a collective or a receive for ever: ``mpiexec -n 2 python -m mgritlab ...`` hangs until
killed. :func:`abort_on_uncaught_exception` installs a ``sys.excepthook`` that prints the
traceback as usual, then calls ``MPI.COMM_WORLD.Abort`` — what ``python -m mpi4py script``
does for the scripts it starts, here for every way of starting one (the CLI, user scripts,
engines). :class:`~mgritlab.mgrit.mpi.MPIPartition` installs it on more than one rank.

Standard library only (mpi4py is imported when the hook fires), so a command can install it
before its heavy imports.
"""
from __future__ import annotations

import contextlib
import sys
import time

# Time for mpiexec's proxy to forward what this rank wrote before Abort tears the job down:
# without it the traceback can be lost (seen on a loaded CI machine: empty output, exit 1).
FORWARD_SECONDS = 1.0


def _mpi_running():
    """mpi4py's MPI module when MPI is initialised and not finalised, else None."""
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is None:
        return None
    try:
        return mpi if mpi.Is_initialized() and not mpi.Is_finalized() else None
    except Exception:  # noqa: BLE001 - a broken MPI cannot be aborted either
        return None


def abort_world(code: int = 1) -> None:
    """Abort every rank of MPI.COMM_WORLD with ``code`` (flushing this rank's output first and
    giving mpiexec :data:`FORWARD_SECONDS` to pass it on);
    a no-op where MPI is not running (nothing can be waiting for this process then)."""
    mpi = _mpi_running()
    if mpi is None or mpi.COMM_WORLD.Get_size() < 2:
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed stream must not stop the abort
            stream.flush()
    time.sleep(FORWARD_SECONDS)
    mpi.COMM_WORLD.Abort(code)


def abort_on_uncaught_exception() -> None:
    """Install (once) a ``sys.excepthook`` that shows the traceback, then aborts every rank."""
    previous = sys.excepthook
    if getattr(previous, "_mgritlab_abort", False):
        return

    def hook(kind, value, tb):
        previous(kind, value, tb)
        abort_world(1)

    hook._mgritlab_abort = True
    sys.excepthook = hook
