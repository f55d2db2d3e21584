"""pdADMM-G and pdADMM-G-Q on P MPI ranks (run under mpiexec; exits non-zero on failure).

Argument: a folder. Runs 6 iterations of each method on a small random GA-MLP problem (7
layers, float64) with the layers split over the ranks, then the pipelined forward pass, and
writes the digest of the residuals, objectives, final weights and scores to ``digest_P.txt``
(rank 0): the wrapper compares 1, 2 and 3 ranks bitwise. Checks on every rank: it holds only
its own layers, and the bytes it sent across ranks are the messages of its boundaries. Each
rank writes ``rank_P_r.txt`` with its verdict (``verdict.report``).
"""
import hashlib
import sys
from pathlib import Path

import torch
from mpi4py import MPI
from verdict import report

from mgritlab.graphs import admm, gamlp
from mgritlab.mgrit.mpi import MPIPartition

torch.set_num_threads(1)
out = Path(sys.argv[1])
comm = MPI.COMM_WORLD
part = MPIPartition(comm)
P, rank = comm.Get_size(), comm.Get_rank()
g = torch.Generator().manual_seed(0)
n, d0, h, C, L = 14, 9, 6, 3, 7
x = torch.randn(n, d0, generator=g, dtype=torch.float64)
y = torch.randint(0, C, (n,), generator=g)
weights = gamlp.init_weights(gamlp.widths(d0, h, C, L), 1, dtype=torch.float64,
                             identity_hidden=True)
problems, digest = [], hashlib.sha256()
try:
    for grid, itemsize in ((None, 8), (admm.Grid(-1.0, 3.0, 200), 1)):
        cfg = admm.ADMMConfig(nu=0.5, rho=3.0, grid=grid)
        st = admm.init_state(x, y, weights, cfg, partition=part)
        lo, hi = admm.layer_block(L, rank, P)
        assert (st.lo, st.hi) == (lo, hi) and sum(gr.size for gr in st.groups) == hi - lo
        for _ in range(6):
            traffic = admm.Traffic()
            info = admm.iterate(st, cfg, part, traffic)
            digest.update(repr((info["residual"], info["F"], info["lagrangian"])).encode())
            # my first p goes left (rank > 0), my last q goes right (rank < P−1)
            expect = ((rank > 0) + (rank < P - 1)) * n * h * itemsize
            assert traffic.ranks == expect, (traffic.ranks, expect)
        gathered = comm.gather([(W.numpy().tobytes(), b.numpy().tobytes())
                                for W, b in st.weights()], root=0)
        scores = admm.forward_scores(st, x, part)
        last = comm.bcast(None if scores is None else scores.numpy().tobytes(), root=P - 1)
        if rank == 0:
            for chunk in gathered:
                for wb in chunk:
                    digest.update(wb[0])
                    digest.update(wb[1])
            digest.update(last)
except Exception as err:  # noqa: BLE001 — the verdict file names any failure
    problems.append(f"{type(err).__name__}: {err}")
report(out, comm, problems, digest.hexdigest())
