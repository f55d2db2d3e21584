"""Under mpiexec: no rank holds all time points, and the answer is still the serial one.

Forward solves with MPIPartition(), backward (direction=-1) solves with its reversed()
mirror, one-level and nested runs, and warm starts from u_local: residual histories equal
the one-process ones bit for bit, and each rank's u_local is its slice of the serial
solution. Also the layer-parallel helpers owner_of, bcast_from_owner, recv_from_right_first.

Usage: mpiexec -n P python -m mpi4py tests/mpi/mgrit_reverse.py
"""
import torch
from mpi4py import MPI

from mgritlab.mgrit import MGRIT, uniform_grid
from mgritlab.mgrit.mpi import MPIPartition
from mgritlab.problems import Heat1D

comm = MPI.COMM_WORLD
fwd = MPIPartition(comm)
bwd = fwd.reversed()
assert bwd.reverse and not bwd.reversed().reverse and bwd.comm is comm


class BackwardHeat:
    """Backward Euler for u' = -Lu stepping t_i -> t_{i-1} (the adjoint of the heat step)."""

    def __init__(self, heat):
        self.heat = heat

    def step(self, u, i, level):
        assert level.direction == -1
        return self.heat.stepper.step(self.heat.ode, u, level.t_next(i), level.dt)


heat = Heat1D(nx=33)
adjoint = BackwardHeat(Heat1D(nx=33, forcing=None))
uT = torch.linspace(-1.0, 1.0, 31, dtype=torch.float64)


def check(prop, u0, t, part, **opts):
    """A distributed solve (gather=False) against the serial one; returns both."""
    serial = MGRIT(prop, t, **opts).solve(u0)
    m = MGRIT(prop, t, partition=part, **opts)
    dist = m.solve(u0, gather=False)
    assert dist.u is None
    assert dist.residuals == serial.residuals, (opts, dist.residuals, serial.residuals)
    lo, hi = dist.bounds
    in_solver_order = serial.u if opts.get("direction", 1) > 0 else serial.u.flip(0)
    assert torch.equal(dist.u_local, in_solver_order[lo:hi]), opts
    return m, serial, dist


checked = 0
for nt, levels, cf in ((129, 3, 2), (129, 3, 4), (113, 3, 4), (123, 3, 2), (65, 1, 2)):
    t = uniform_grid(0, 2, nt)
    for nested in (False, True):
        opts = dict(max_levels=levels, cf=cf, tol=1e-12, nested=nested)
        m, serial, dist = check(heat, heat.u0, t, fwd, **opts)
        hier, N = m.hierarchy, nt - 1
        f_lo, f_hi = dist.bounds

        # warm start from a half-converged u_local equals the serial warm start from u
        part_opts = dict(opts, max_iter=2, tol=0.0)
        rough = MGRIT(heat, t, partition=fwd, **part_opts).solve(heat.u0, gather=False)
        rough_serial = MGRIT(heat, t, **part_opts).solve(heat.u0)
        warm = MGRIT(heat, t, partition=fwd, **opts).solve(
            heat.u0, u_init_local=rough.u_local, gather=False)
        warm_serial = MGRIT(heat, t, **opts).solve(heat.u0, u_init=rough_serial.u)
        assert warm.residuals == warm_serial.residuals, (opts, warm.residuals)
        assert torch.equal(warm.u_local, warm_serial.u[f_lo:f_hi])

        # layer-parallel helpers
        assert all(fwd.owner_of(hier, p) == comm.rank for p in range(f_lo, f_hi))
        owner = fwd.owner_of(hier, N)
        got = fwd.bcast_from_owner(dist.u_local[-1] if comm.rank == owner else None, owner)
        assert torch.equal(got, serial.u[N])
        first = fwd.recv_from_right_first(dist.u_local)
        assert (first is None) == (comm.rank == comm.size - 1)
        assert first is None or torch.equal(first, serial.u[f_hi])

        # the adjoint on the mirrored partition: rank r's block is (f_lo, f_hi] physically
        if levels > 1 and N % hier.levels[-1].stride == 0:
            bopts = dict(opts, direction=-1)
            mb, serial_b, dist_b = check(adjoint, uT, t, bwd, **bopts)
            b_lo, b_hi = dist_b.bounds
            phys = sorted(N - k for k in range(b_lo, b_hi))
            assert phys == [0] * (comm.rank == 0) + list(range(f_lo + 1, min(f_hi, N) + 1))
            assert all(bwd.owner_of(mb.hierarchy, p) == comm.rank for p in phys)
            full = MGRIT(adjoint, t, partition=bwd, **bopts).solve(uT)  # solver-order gather
            assert torch.equal(full.u, serial_b.u)
            warm_b = MGRIT(adjoint, t, partition=bwd, **bopts).solve(
                uT, u_init_local=dist_b.u_local, gather=False)
            warm_b_serial = MGRIT(adjoint, t, **bopts).solve(uT, u_init=serial_b.u)
            assert warm_b.residuals == warm_b_serial.residuals
            checked += 1
        checked += 1
if comm.rank == 0:
    print(f"OK {checked} cases identical on {comm.size} ranks")
