"""Layer-parallel implicit GRU on P MPI ranks (run under mpiexec; exits non-zero on failure).

Argument: a folder. Trains a small two-layer implicit GRU classifier (float64, 64 steps,
3 levels, cf 4, T1 = 2, T2 = 1) for four Adam steps and writes the digest of its losses and
parameters to ``digest_P.txt`` (rank 0): the wrapper compares 1, 2 and 3 ranks bitwise. Also
checks that every rank ends with the same parameters, that a rank holds only its share of
the states, and that exact mode equals autograd through the serial recurrence on P ranks.
Each rank writes ``rank_P_r.txt`` with its verdict (``verdict.report``).
"""
import hashlib
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from mpi4py import MPI
from verdict import report

from mgritlab.mgrit.mpi import MPIPartition
from mgritlab.recurrent.model import GRUClassifier

torch.set_num_threads(1)
out = Path(sys.argv[1])
comm = MPI.COMM_WORLD
part = MPIPartition(comm)
g = torch.Generator().manual_seed(0)
N, B, c = 64, 6, 3
x = torch.randn(B, N, c, generator=g, dtype=torch.float64)
y = torch.randint(0, 3, (B,), generator=g)
m = GRUClassifier(c, 5, 3, N, num_layers=2, parallel=True, seed=1, max_levels=3, cf=4,
                  partition=part)
opt = torch.optim.Adam(m.parameters(), lr=0.05)
losses = []
for _ in range(4):
    opt.zero_grad()
    loss = F.cross_entropy(m(x), y)
    loss.backward()
    opt.step()
    losses.append(loss.item())
problems = []
lp = m.layer_parallel()
share = -(-N // part.size) + 16 + 1
if len(lp.local_layers()) > share:
    problems.append(f"holds {len(lp.local_layers())} layers (share {share})")
digest = hashlib.sha256(repr(losses).encode() + b"".join(
    p.detach().numpy().tobytes() for p in m.parameters())).hexdigest()
if len(set(comm.allgather(digest))) != 1:
    problems.append("ranks ended with different parameters")

ex = GRUClassifier(c, 5, 3, N, num_layers=2, parallel=True, seed=2, max_levels=3, cf=4,
                   exact=True, partition=part)
F.cross_entropy(ex(x), y).backward()
lp_grads = [p.grad.clone() for p in ex.parameters()]
ex.zero_grad()
F.cross_entropy(ex.serial()(x), y).backward()
err = max(float((a - p.grad).norm() / p.grad.norm()) for a, p in zip(lp_grads, ex.parameters()))
if not err < 1e-10:
    problems.append(f"exact-mode gradient differs from autograd by {err:.2e}")

report(out, comm, problems, f"{digest}\n{losses}\n")
