"""Layer-parallel gradients on 2+ MPI ranks (run under mpiexec; exits non-zero on failure).

1. exact mode: loss and every parameter gradient equal autograd through the serial network
   to 1e-10 relative, on every rank;
2. T1 = 2, T2 = 1: the gradient equals the one-process layer-parallel gradient (the MGRIT
   iterates do not depend on the partition) and is the same on every rank.
"""
import sys

import torch
from mpi4py import MPI
from torch import nn

from mgritlab.mgrit.mpi import MPIPartition
from mgritlab.nn import ODENet

torch.set_num_threads(1)        # one core per rank
comm = MPI.COMM_WORLD
part = MPIPartition(comm)
g = torch.Generator().manual_seed(0)
x = torch.randn(12, 2, generator=g, dtype=torch.float64)
y = torch.randint(0, 3, (12,), generator=g)
failures = []


def loss_and_grads(model, params):
    for p in params:
        p.grad = None
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    return float(loss.detach()), [p.grad.clone() for p in params]


def rel(a, b):
    return float((a - b).norm() / b.norm())


for levels, cf, exact in [(2, 4, True), (3, 2, True), (3, 4, True), (2, 4, False),
                          (3, 4, False)]:
    opts = dict(max_levels=levels, cf=cf, exact=exact, seed=3)
    net = ODENet(2, 5, 3, 32, partition=part, **opts)
    params = list(net.parameters())
    loss, grads = loss_and_grads(net, params)
    if exact:
        ref_loss, ref = loss_and_grads(net.serial(), params)
        tol = 1e-10
    else:
        one = ODENet(2, 5, 3, 32, **opts)
        ref_loss, ref = loss_and_grads(one, list(one.parameters()))
        tol = 1e-13
    err = max(rel(a, b) for a, b in zip(grads, ref))
    lerr = abs(loss - ref_loss) / abs(ref_loss)
    flat = torch.cat([gr.flatten() for gr in grads]).numpy()
    same = comm.allgather(flat.tobytes())
    ok = err <= tol and lerr <= tol and all(s == same[0] for s in same)
    if not ok:
        failures.append((levels, cf, exact, err, lerr))
    if part.rank == 0:
        print(f"ranks={part.size} levels={levels} cf={cf} exact={exact}: loss err {lerr:.2e}, "
              f"max gradient err {err:.2e}, identical on all ranks: "
              f"{all(s == same[0] for s in same)}", flush=True)

all_failures = comm.allgather(failures)
if any(all_failures):
    if part.rank == 0:
        print("FAILED", all_failures, flush=True)
    sys.exit(1)
if part.rank == 0:
    print("OK", flush=True)
