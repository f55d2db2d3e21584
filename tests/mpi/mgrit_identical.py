"""Under mpiexec: distributed MGRIT gives the serial residual history and solution exactly.

Usage: mpiexec -n P python -m mpi4py tests/mpi/mgrit_identical.py
"""
import torch
from mpi4py import MPI

from mgritlab.mgrit import MGRIT, uniform_grid
from mgritlab.mgrit.mpi import MPIPartition
from mgritlab.problems import CubicDecay, Dahlquist, Heat1D

comm = MPI.COMM_WORLD
part = MPIPartition(comm)
cases = [
    ("dahlquist", Dahlquist([-1.0, -3.0 + 2.0j]), uniform_grid(0, 4, 129)),
    ("heat", Heat1D(nx=33), uniform_grid(0, 2, 129)),
    ("nonlinear", CubicDecay([1.0, 2.0]), uniform_grid(0, 4, 129)),
]
checked = 0
for name, prob, t in cases:
    for cycle in ("V", "F"):
        for levels, cf, relax in ((2, 4, "F"), (3, 2, "FCF"), (4, 2, "FCF")):
            opts = dict(max_levels=levels, cf=cf, cycle=cycle, relax=relax, tol=1e-12)
            serial = MGRIT(prob, t, **opts).solve(prob.u0)
            dist = MGRIT(prob, t, partition=part, **opts).solve(prob.u0)
            assert dist.residuals == serial.residuals, (name, cycle, levels, dist.residuals,
                                                        serial.residuals)
            assert torch.equal(dist.u, serial.u), (name, cycle, levels)
            assert dist.converged
            checked += 1
if comm.rank == 0:
    print(f"OK {checked} cases identical on {comm.size} ranks")
