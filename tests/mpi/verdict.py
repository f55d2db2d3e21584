"""The verdict protocol of the rank scripts in this folder (run under mpiexec).

Every rank writes ``rank_P_r.txt`` — ``OK`` or what failed on it — so that the wrapper never
parses the interleaved stdout of several ranks; rank 0 writes the run's digest to
``digest_P.txt`` for the 1/2/3-rank comparison. A rank that failed aborts the job, since the
others may be waiting on a message from it; the wrapper's fixture ``same_on_ranks``
(``tests/mpi/conftest.py``) reads the files back.
"""
from __future__ import annotations

import sys
from pathlib import Path


def report(out: str | Path, comm, problems: list[str], digest: str) -> None:
    """Write this rank's verdict (and on rank 0 the digest), then end the script."""
    size, rank = comm.Get_size(), comm.Get_rank()
    verdict = "OK\n" if not problems else "FAILED: " + "; ".join(problems) + "\n"
    Path(out, f"rank_{size}_{rank}.txt").write_text(verdict)
    if problems:
        comm.Abort(1)
    if rank == 0:
        Path(out, f"digest_{size}.txt").write_text(digest)
    comm.Barrier()
    sys.exit(0)
