"""Under mpiexec: on a non-uniform grid with a matrix L, distributed MGRIT gives the serial
residual history and solution exactly (batch independence of the integrators' solves).

Usage: mpiexec -n P python -m mpi4py tests/mpi/mgrit_nonuniform.py
"""
import numpy as np
import scipy.sparse as sp
import torch
from mpi4py import MPI

from mgritlab.integrators import SemilinearODE
from mgritlab.mgrit import MGRIT
from mgritlab.mgrit.mpi import MPIPartition
from mgritlab.problems import GraphHeat, Heat1D, Problem, ReactionDiffusion1D


class DenseDiffusion(Problem):
    """u' = -A u + sin(t) with a dense symmetric positive definite A (Cholesky solves)."""

    def __init__(self, n=9, scheme="backward_euler"):
        M = torch.as_tensor(np.random.default_rng(0).standard_normal((n, n)))
        self.u0 = torch.linspace(-1.0, 1.0, n, dtype=torch.float64)
        self.ode = SemilinearODE(M @ M.T / n + torch.eye(n, dtype=torch.float64),
                                 lambda t, u: torch.sin(t)[:, None].expand(u.shape),
                                 state_shape=(n,), g_depends_on_u=False)
        super().__init__(scheme)


def ring_laplacian(n=30):
    """Graph Laplacian of a ring with chords: symmetric, not tridiagonal (sparse LU)."""
    i = np.arange(n)
    rows = np.concatenate([i, i])
    cols = np.concatenate([(i + 1) % n, (i + 7) % n])
    A = sp.coo_matrix((np.ones(2 * n), (rows, cols)), shape=(n, n)).tocsr()
    A = A + A.T
    return (sp.diags(np.asarray(A.sum(1)).ravel()) - A).tocsr()


comm = MPI.COMM_WORLD
part = MPIPartition(comm)
t = 2.0 * torch.linspace(0.0, 1.0, 97, dtype=torch.float64) ** 1.5  # every step different
lap = ring_laplacian()
cases = [
    ("heat (tridiagonal, dpttrf)", Heat1D(nx=33)),
    ("graph heat (sparse LU)", GraphHeat(lap, np.sin(np.arange(30.0)), kappa=5.0)),
    ("dense SPD (Cholesky)", DenseDiffusion()),
    ("reaction-diffusion (Newton, tridiagonal)", ReactionDiffusion1D(nx=17, tf=2.0)),
]
checked = 0
for name, prob in cases:
    for levels, cf, relax in ((2, 4, "F"), (3, 2, "FCF"), (4, 2, "FCF")):
        opts = dict(max_levels=levels, cf=cf, relax=relax, tol=1e-12)
        serial = MGRIT(prob, t, **opts).solve(prob.u0)
        dist = MGRIT(prob, t, partition=part, **opts).solve(prob.u0)
        assert dist.residuals == serial.residuals, (name, levels, dist.residuals,
                                                    serial.residuals)
        assert torch.equal(dist.u, serial.u), (name, levels)
        assert dist.converged, (name, levels)
        checked += 1
if comm.rank == 0:
    print(f"OK {checked} non-uniform cases identical on {comm.size} ranks")
