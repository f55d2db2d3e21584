"""MGRIT-FAS core: exactness, agreement with sequential stepping, convergence bounds, errors."""
import math
from itertools import pairwise

import numpy as np
import pytest
import torch

from mgritlab.mgrit import (
    MGRIT,
    LevelBlock,
    MGRITDivergenceError,
    SerialPartition,
    block_bounds,
    build_hierarchy,
    c_relax,
    f_relax,
    max_levels_for,
    sequential_solve,
    sequential_sweep,
    solve,
    uniform_grid,
)
from mgritlab.mgrit.partition import Partition
from mgritlab.mgrit.speedup import costs_for, critical_path, model_speedup
from mgritlab.problems import CubicDecay, Dahlquist, Heat1D

torch.manual_seed(0)


def _problems():
    return {
        "dahlquist": (Dahlquist([-1.0, -3.0 + 2.0j, -0.2]), uniform_grid(0, 4, 129)),
        "heat": (Heat1D(nx=65), uniform_grid(0, 2, 129)),
        "nonlinear": (CubicDecay([1.0, 2.0, 0.5]), uniform_grid(0, 4, 129)),
    }


PROBLEMS = _problems()


def _levels(nt, cf, which):
    top = max_levels_for(nt, cf)
    return {"2": 2, "3": min(3, top), "max": top}[which]


@pytest.mark.parametrize("name", list(PROBLEMS))
@pytest.mark.parametrize("which", ["2", "3", "max"])
@pytest.mark.parametrize("cycle", ["V", "F"])
@pytest.mark.parametrize("cf", [2, 4, 8])
def test_converged_mgrit_equals_sequential(name, which, cycle, cf):
    prob, t = PROBLEMS[name]
    ref = sequential_solve(prob, prob.u0, t)
    levels = _levels(t.numel(), cf, which)
    res = solve(prob, prob.u0, t, max_levels=levels, cf=cf, cycle=cycle, tol=1e-13,
                max_iter=200)
    assert res.converged, res.table()
    scale = float(ref.abs().max())
    assert float((res.u - ref).abs().max()) <= 1e-11 * scale


@pytest.mark.parametrize("cf", [2, 4, 8])
@pytest.mark.parametrize("relax, per_iter", [("F", 1), ("FCF", 2)])
def test_two_level_exactness_property(cf, relax, per_iter):
    """After k iterations the C-points of the first per_iter·k intervals are exact; MGRIT is
    exact after at most N/cf iterations (F) and equals sequential stepping to round-off."""
    prob = Dahlquist([-1.0, -0.3])
    t = uniform_grid(0, 3, 8 * cf + 1)
    ref = sequential_solve(prob, prob.u0, t)
    n_c = (t.numel() - 1) // cf
    errors = []

    def record(k, u):
        errors.append((u[::cf] - ref[::cf]).abs().amax(dim=1))

    res = solve(prob, prob.u0, t, max_levels=2, cf=cf, relax=relax, tol=0.0,
                max_iter=n_c, callback=record)
    for k, e in enumerate(errors, start=1):
        exact_upto = min(per_iter * k + 1, n_c + 1)  # C-points 0..per_iter*k
        assert float(e[:exact_upto].max()) <= 1e-14
    assert res.iterations <= math.ceil(n_c / per_iter)
    assert float((res.u - ref).abs().max()) <= 1e-12


def _bound(lam_fine, lam_coarse, m, n_c, relax):
    lam, mu = np.abs(lam_fine), np.abs(lam_coarse)
    diff = np.abs(lam_fine**m - lam_coarse)
    if relax == "F":
        return float(np.max(diff * (1 - mu**n_c) / (1 - mu)))
    return float(np.max(lam**m * diff * (1 - mu ** (n_c - 1)) / (1 - mu)))


@pytest.mark.parametrize("relax", ["F", "FCF"])
@pytest.mark.parametrize("name", ["dahlquist", "heat"])
def test_two_level_convergence_below_dobrev_bound(relax, name):
    """Dobrev, Kolev, Petersson, Schroder (2017): ‖E_F‖ ≤ max|λ^m−μ|(1−|μ|^Nc)/(1−|μ|),
    ‖E_FCF‖ ≤ max|λ|^m|λ^m−μ|(1−|μ|^(Nc−1))/(1−|μ|) for backward Euler Φ (eigenvalues λ) and
    its re-discretisation Φ_c with step m·h (eigenvalues μ)."""
    cf, nt = 4, 257
    if name == "dahlquist":
        z = np.array([-1.0, -10.0, -0.5 + 3j])
        prob, t = Dahlquist(z), uniform_grid(0, 8, nt)
    else:
        prob, t = Heat1D(nx=33), uniform_grid(0, 2, nt)
        z = -prob.eigenvalues()
    h = float(t[1] - t[0])
    n_c = (nt - 1) // cf
    bound = _bound(1 / (1 - h * z), 1 / (1 - cf * h * z), cf, n_c, relax)
    ref = sequential_solve(prob, prob.u0, t)
    errs = []
    solve(prob, prob.u0, t, max_levels=2, cf=cf, relax=relax, tol=0.0, max_iter=6,
          callback=lambda k, u: errs.append(float((u[::cf] - ref[::cf]).norm())))
    factors = [errs[k] / errs[k - 1] for k in range(1, len(errs)) if errs[k - 1] > 1e-13]
    assert factors, errs
    assert max(factors) <= bound * (1 + 1e-8), (factors, bound)
    assert bound < 1


def _loop_f_relax(u, g, step, level, cf):
    u = u.clone()
    for i in range(1, u.shape[0]):
        if i % cf:
            new = step(u[i - 1 : i], torch.tensor([i - 1]), level)[0]
            u[i] = new + (0 if g is None else g[i])
    return u


def _loop_c_relax(u, g, step, level, cf):
    u = u.clone()
    for i in range(cf, u.shape[0], cf):
        new = step(u[i - 1 : i], torch.tensor([i - 1]), level)[0]
        u[i] = new + (0 if g is None else g[i])
    return u


@pytest.mark.parametrize("nt, cf", [(33, 4), (30, 4), (17, 2), (26, 8)])
@pytest.mark.parametrize("with_g", [False, True])
def test_vectorised_relaxation_equals_per_point_loop(nt, cf, with_g):
    prob = Heat1D(nx=17)
    hier = build_hierarchy(uniform_grid(0, 1, nt), prob, max_levels=2, cf=cf)
    lv = hier.levels[0]
    u = torch.randn(nt, *prob.state_shape, dtype=torch.float64)
    g = torch.randn_like(u) if with_g else None
    block = LevelBlock(lv, prob, 0, nt, u.clone(), g)
    f_relax(block)
    assert torch.allclose(block.u, _loop_f_relax(u, g, prob.step, lv, cf), rtol=0, atol=1e-14)
    assert block.counter["calls"] == cf - 1
    block = LevelBlock(lv, prob, 0, nt, u.clone(), g)
    c_relax(block, None)
    assert torch.allclose(block.u, _loop_c_relax(u, g, prob.step, lv, cf), rtol=0, atol=1e-14)
    assert block.counter["calls"] == 1


def test_backward_direction_reproduces_backward_stepping():
    class Adjoint:  # x̄_{i-1} = e^{hλ}-like contraction, stepping from t_i to t_{i-1}
        def step(self, u, i, level):
            assert level.direction == -1
            return u / (1 + 0.7 * level.h(i)[:, None])

    t = uniform_grid(0, 2, 97)
    uT = torch.tensor([1.0, -2.0], dtype=torch.float64)
    ref = sequential_solve(Adjoint(), uT, t, direction=-1)
    res = solve(Adjoint(), uT, t, max_levels=3, cf=4, direction=-1, tol=1e-14)
    assert torch.equal(res.u[-1], uT)
    assert float((res.u - ref).abs().max()) <= 1e-13


def test_nested_iteration_and_warm_start():
    prob, t = Heat1D(nx=65), uniform_grid(0, 2, 257)
    plain = solve(prob, prob.u0, t, max_levels=3, cf=4, tol=1e-10)
    nested = solve(prob, prob.u0, t, max_levels=3, cf=4, tol=1e-10, nested=True)
    assert nested.residuals[0] < plain.residuals[0]
    assert nested.iterations <= plain.iterations
    warm = solve(prob, prob.u0, t, max_levels=3, cf=4, tol=1e-10, u_init=plain.u)
    assert warm.iterations == 1 and warm.residuals[0] <= 1e-10


def test_residual_history_keeps_zeros_and_factors():
    prob, t = Dahlquist(-1.0), uniform_grid(0, 1, 9)
    res = solve(prob, prob.u0, t, max_levels=2, cf=2, relax="F", tol=0.0, max_iter=4)
    assert res.residuals[-1] == 0.0 and res.converged
    assert len(res.conv_factors) == len(res.residuals) - 1
    header, *rows = res.table().splitlines()
    assert header.split() == ["iter", "residual", "conv.", "factor", "seconds"]
    assert len(rows) == res.iterations == len(res.residuals)
    for k, (row, r) in enumerate(zip(rows, res.residuals)):
        cols = row.split()
        assert int(cols[0]) == k + 1 and float(cols[1]) == pytest.approx(r, rel=1e-4, abs=0)
        assert len(cols) == (3 if k == 0 else 4)  # no conv. factor for the first iteration
    assert str(res).startswith("MGRIT converged in 4 iteration(s)")
    assert res.hierarchy.summary() in str(res) and res.table() in str(res)


def test_one_level_is_sequential_stepping():
    prob, t = CubicDecay(1.0), uniform_grid(0, 2, 33)
    res = solve(prob, prob.u0, t, max_levels=1)
    assert torch.equal(res.u, sequential_solve(prob, prob.u0, t)) and res.converged


def test_unstable_coarse_propagator_raises_and_implicit_repairs():
    prob = Dahlquist(-20.0, scheme="forward_euler")
    t = uniform_grid(0, 4, 513)              # h·λ = -0.156: stable; 8h·λ = -1.25 ... 16h: -2.5
    with pytest.raises(MGRITDivergenceError, match=r"Level [1-9]") as err:
        solve(prob, prob.u0, t, max_levels=4, cf=4, tol=1e-10, max_iter=60)
    assert "implicit" in str(err.value)
    res = solve(prob, prob.u0, t, max_levels=4, cf=4, tol=1e-10, max_iter=60,
                coarse_propagator=prob.with_scheme("backward_euler"))
    assert res.converged


@pytest.mark.parametrize("kwargs, match", [
    (dict(cf=1), "coarsening factors must be integers >= 2"),
    (dict(cf=[4, 1], max_levels=3), "coarsening factors"),
    (dict(max_levels=9, cf=4), "at most 4 level"),
    (dict(max_levels=0), "max_levels"),
    (dict(relax="CF"), "unknown relaxation"),
    (dict(cycle="W"), "cycle must be"),
    (dict(tol=float("nan")), r"tol=nan: give a finite number"),
    (dict(tol=-1e-9), r"tol=-1e-09"),
    (dict(rtol=float("inf")), r"rtol=inf"),
    (dict(max_iter=2.5), r"max_iter=2.5: give a whole number"),
    (dict(max_iter=True), r"max_iter=True"),
    (dict(relax=3), r"relax=3: give a relaxation string"),
    (dict(relax=["F", "X"], max_levels=2), "unknown relaxation 'X'"),
])
def test_bad_configuration_errors(kwargs, match):
    prob, t = Dahlquist(-1.0), uniform_grid(0, 1, 65)
    with pytest.raises(ValueError, match=match):
        MGRIT(prob, t, **kwargs)


def test_bad_input_errors():
    prob, t = Dahlquist(-1.0), uniform_grid(0, 1, 17)
    with pytest.raises(ValueError, match="strictly increasing"):
        MGRIT(prob, torch.tensor([0.0, 0.5, 0.5, 1.0]))
    with pytest.raises(ValueError, match="u_init must have shape"):
        MGRIT(prob, t).solve(prob.u0, u_init=torch.zeros(16, 1))
    with pytest.raises(TypeError, match="not a propagator"):
        MGRIT(object(), t)
    with pytest.raises(ValueError):
        uniform_grid(0, 1, 1)


def test_speedup_model_counts_match_serial_work():
    """With one process the critical path is all the work: σ sums to the measured count."""
    prob, t = Dahlquist(-1.0), uniform_grid(0, 4, 257)
    for levels, cf, cycle, relax in [(2, 4, "V", "F"), (3, 2, "V", "FCF"), (4, 2, "F", "FCF")]:
        m = MGRIT(prob, t, max_levels=levels, cf=cf, cycle=cycle, relax=relax, tol=1e-12)
        res = m.solve(prob.u0)
        applied = sum(w["states"] for w in res.work)
        k = res.iterations
        model = (critical_path(m.hierarchy, 1, cycle, first_iteration=True)
                 + (k - 1) * critical_path(m.hierarchy, 1, cycle))
        assert applied == model
    costs = costs_for(2**14 + 1, 2, 4)
    s1, s64, s1024 = (model_speedup(costs, 10, p) for p in (1, 64, 1024))
    assert s1024 > s64 > s1
    with pytest.raises(ValueError, match="do not fit"):
        model_speedup(costs_for(2**14 + 1, 2, 8), 10, 1024)


@pytest.mark.parametrize("ranks", [3, 48, 64])
def test_speedup_model_uses_the_real_block_sizes(ranks):
    from mgritlab.mgrit.speedup import _intervals, level_costs

    hier = build_hierarchy(uniform_grid(0, 1, 16385), Dahlquist(-1.0), max_levels=5, cf=4)
    costs = level_costs(hier)
    for lvl in range(len(costs) - 1):
        largest = max(len(range(lo, hi, hier.levels[lvl].cf))
                      for lo, hi in (block_bounds(hier, r, ranks)[lvl] for r in range(ranks)))
        assert _intervals(costs, lvl, ranks) in (largest, largest - 1)  # last block: t_N


def test_blow_up_in_the_first_iteration_is_caught_at_once():
    prob = Dahlquist(-200.0, scheme="forward_euler")
    with pytest.raises(MGRITDivergenceError, match="Level 2 looks unstable") as err:
        solve(prob, prob.u0, uniform_grid(0, 1, 513), max_levels=3, cf=4, tol=1e-10)
    assert "after iteration 1," in str(err.value)


def test_unstable_fine_step_is_named_without_overflow():
    heat = Heat1D(nx=33, tf=1.0, scheme="forward_euler")  # h = 1/1024 > CFL limit dx²/2
    with pytest.raises(MGRITDivergenceError, match="fine step is unstable"):
        solve(heat, heat.u0, heat.grid(1025), max_levels=2, cf=2, tol=1e-10)


def test_stagnation_at_round_off_stops_quietly():
    """A residual stalled at round-off is not a divergence, even with an amplifying level:
    coarse steps 32h·λ = -2.5 amplify by 1.5, yet two-level MGRIT reaches round-off."""
    prob = Dahlquist(-10.0, scheme="forward_euler")
    res = solve(prob, prob.u0, uniform_grid(0, 4, 513), max_levels=2, cf=32, tol=1e-30,
                max_iter=60)
    assert res.stop_reason == "stalled at round-off" and not res.converged
    assert res.iterations < 60 and res.residuals[-1] < 1e-12
    assert float((res.u - sequential_solve(prob, prob.u0, uniform_grid(0, 4, 513))).abs().max()
                 ) < 1e-12


class _RoundOff:
    """Forward Euler for u' = λu, each step's result perturbed by a seeded relative 1e-17 to
    1e-16 (round-off that a CPU's kernels may leave, rounding up or down)."""

    def __init__(self, lam):
        self.lam, self.gen = lam, torch.Generator().manual_seed(0)

    def step(self, u, i, level):
        out = u * (1 + self.lam * level.h(i)[:, None])
        size = 10.0 ** (-17 + torch.rand(out.shape, generator=self.gen, dtype=out.dtype))
        sign = torch.rand(out.shape, generator=self.gen, dtype=out.dtype) < 0.5
        return out * (1 + torch.where(sign, -size, size))


def test_round_off_growth_after_convergence_is_no_divergence():
    """With check_growth and an amplifying coarse level (32h·λ = -2.5), the first iteration
    after convergence that moves round-off upwards once raised 'MGRIT diverges'."""
    u0 = torch.ones(1, dtype=torch.float64)
    t = uniform_grid(0, 4, 513)
    res = solve(_RoundOff(-10.0), u0, t, max_levels=2, cf=32, tol=1e-30, max_iter=30,
                check_growth=True)
    assert any(b > a for a, b in zip(res.residuals[7:], res.residuals[8:]))  # it did grow
    assert max(res.residuals[7:]) < 1e-12
    exact = sequential_solve(Dahlquist(-10.0, scheme="forward_euler"), u0, t)
    assert float((res.u - exact).abs().max()) < 1e-12


def test_stagnation_above_round_off_with_an_unstable_level_raises():
    prob = Dahlquist(-20.0, scheme="forward_euler")   # 16h·λ = -2.5: level 1 amplifies by 1.5
    with pytest.raises(MGRITDivergenceError, match=r"(?s)stagnated.*Level 1 looks unstable"):
        solve(prob, prob.u0, uniform_grid(0, 4, 513), max_levels=2, cf=16, tol=1e-30,
              max_iter=60)


def test_without_the_guard_every_iterate_comes_back_and_matches_the_guarded_ones():
    """guard=False (convergence studies): the stagnating solve above runs all its iterations,
    and its first iterates are the guarded solve's (the guard only stops, it changes nothing)."""
    prob = Dahlquist(-20.0, scheme="forward_euler")
    t = uniform_grid(0, 4, 513)
    seen = []
    res = solve(prob, prob.u0, t, max_levels=2, cf=16, tol=1e-30, max_iter=12, guard=False,
                callback=lambda k, u: seen.append(u.clone()))
    assert res.iterations == len(seen) == 12 and res.stop_reason == "max_iter=12 reached"
    early = solve(prob, prob.u0, t, max_levels=2, cf=16, tol=1e-30, max_iter=3)
    assert early.residuals == res.residuals[:3]
    assert torch.equal(early.u, seen[2])
    with pytest.raises(MGRITDivergenceError, match=r"MGRIT diverged: residual (nan|inf)"):
        overflow = Dahlquist(-1e300, scheme="forward_euler")   # a non-finite residual: raises
        solve(overflow, prob.u0, t, max_levels=2, cf=16, max_iter=3, guard=False)


class _Hinted:
    """Forward Euler for u' = -200u with advice of its own for an unstable level."""

    def step(self, u, i, level):
        return u * (1 - 200.0 * level.h(i)[:, None])

    def instability_hint(self, level):
        return f"HINT for level {level.index} (step {level.dt:.3g})"


def test_a_propagators_instability_hint_names_the_unstable_level():
    u0 = torch.ones(1, dtype=torch.float64)
    with pytest.raises(MGRITDivergenceError, match=r"Level 2 looks unstable.*HINT for level 2"):
        solve(_Hinted(), u0, uniform_grid(0, 1, 513), max_levels=3, cf=4, tol=1e-10)


def test_exact_partials_make_distributed_norms_split_independent():
    """MPIPartition.norm sends each rank's exact partials instead of every per-point term; the
    fsum of all partials must be the very float fsum gives over all terms, for any split."""
    import math
    import random

    from mgritlab.mgrit.mpi import exact_partials

    rng = random.Random(0)
    scales = [1.0, 1e-16, 1e16, 1e300, 1e-300, 3.0, 0.1]
    for _ in range(500):
        n = rng.randint(0, 80)
        v = [rng.choice(scales) * rng.random() for _ in range(n)]
        cuts = sorted(rng.sample(range(n + 1), min(rng.randint(1, 6), n + 1)))
        chunks = [v[a:b] for a, b in zip([0, *cuts], [*cuts, n])]
        assert math.fsum(x for c in chunks for x in exact_partials(c)) == math.fsum(v)
    many = [rng.random() for _ in range(100_000)]
    assert len(exact_partials(many)) <= 3  # a few floats, not one per point
    assert exact_partials([1.0, math.inf]) == [1.0, math.inf]  # non-finite: passed through


class _Split(Partition):
    """The block split of ``size`` processes, seen from rank 0 (no exchanges needed)."""

    def __init__(self, size, reverse=False):
        self.rank, self.size, self.reverse = 0, size, reverse


@pytest.mark.parametrize("nt, levels, cf, size", [
    (129, 3, 2, 3), (113, 3, 4, 2), (113, 3, 4, 3), (123, 3, 2, 7), (257, 4, 2, 5),
    (99, 3, 4, 4), (65, 1, 2, 5)])
def test_reversed_block_bounds_mirror_the_forward_ones(nt, levels, cf, size):
    """Reversed, rank r owns the solver units [U - u_hi, U - u_lo) of its forward units
    [u_lo, u_hi): physically (u_lo·unit, u_hi·unit], right after its forward block."""
    hier = build_hierarchy(uniform_grid(0, 1, nt), Dahlquist(-1.0), max_levels=levels, cf=cf)
    units, unit = hier.levels[-1].N, hier.levels[-1].stride
    fwd = [block_bounds(hier, r, size) for r in range(size)]
    rev = [block_bounds(hier, r, size, reverse=True) for r in range(size)]
    for lvl, lv in enumerate(hier.levels):
        for r in range(size):
            u_lo, u_hi = units * r // size, units * (r + 1) // size
            assert fwd[r][lvl][0] == u_lo * unit // lv.stride
            assert rev[r][lvl][0] == (units - u_hi) * unit // lv.stride
            assert rev[r][lvl][0] % (lv.cf or 1) == 0  # a block starts at a C-point
        # solver order: rank size-1 first, rank 0 last (it holds the last point N)
        ends = [rev[r][lvl] for r in reversed(range(size))]
        assert ends[0][0] == 0 and ends[-1][1] == lv.N + 1
        assert all(a[1] == b[0] for a, b in pairwise(ends))
        if lv.N * lv.stride == units * unit:  # the grid ends at a coarsest point
            for r in range(size):
                phys = sorted(lv.N - k for k in range(*rev[r][lvl]))
                after = [p + 1 for p in range(*fwd[r][lvl]) if p < lv.N]
                assert phys == [0] * (r == 0) + after
    for reverse in (False, True):
        split, bounds = _Split(size, reverse), rev if reverse else fwd
        for p in range(nt):
            k = hier.levels[0].to_physical(p)
            lo, hi = bounds[split.owner_of(hier, p)][0]
            assert lo <= k < hi
    with pytest.raises(ValueError, match=r"physical_index must be in 0\.\.128"):
        _Split(2).owner_of(build_hierarchy(uniform_grid(0, 1, 129), Dahlquist(-1.0)), 129)


def test_serial_partition_reverses_and_its_helpers_are_trivial():
    hier = build_hierarchy(uniform_grid(0, 1, 33), Dahlquist(-1.0), max_levels=3, cf=2)
    part = SerialPartition()
    rev = part.reversed()
    assert rev.reverse and not rev.reversed().reverse and not part.reverse
    assert rev.bounds(hier) == part.bounds(hier) == block_bounds(hier, 0, 1, reverse=True)
    assert rev.left is rev.right is None and rev.solver_order == [0]
    x = torch.ones(3)
    assert part.bcast_from_owner(x, 0) is x and part.owner_of(hier, 32) == 0
    assert part.recv_left(x) is None and part.recv_from_right_first(x[None]) is None
    with pytest.raises(ValueError, match="owner is rank 0"):
        part.bcast_from_owner(x, 1)


@pytest.mark.parametrize("nt, cf", [(33, 4), (30, 4), (17, 2)])
def test_sequential_sweep_in_blocks_equals_one_sweep(nt, cf):
    """The pipelined coarsest solve: blocks swept one after another, each from its left
    neighbour's last point, give the very floats of one sweep over the whole level."""
    prob = Heat1D(nx=17)
    lv = build_hierarchy(uniform_grid(0, 1, nt), prob, max_levels=1).levels[0]
    u = torch.randn(nt, *prob.state_shape, dtype=torch.float64)
    g = torch.randn_like(u)
    whole = LevelBlock(lv, prob, 0, nt, u.clone(), g)
    sequential_sweep(whole)
    ghost, pieces = None, []
    for lo, hi in zip([0, cf, 2 * cf + 1], [cf, 2 * cf + 1, nt]):
        b = LevelBlock(lv, prob, lo, hi, u[lo:hi].clone(), g[lo:hi])
        sequential_sweep(b, ghost)
        ghost = b.u[-1]
        pieces.append(b.u)
    assert torch.equal(torch.cat(pieces), whole.u)
    with pytest.raises(RuntimeError, match="neighbour's point"):
        sequential_sweep(LevelBlock(lv, prob, 1, nt, u[1:].clone()))


class _BackwardDecay:
    """A contraction stepping from t_i to t_{i-1} (an adjoint-like backward propagator)."""

    def step(self, u, i, level):
        return u / (1 + 0.7 * level.h(i)[:, None])


@pytest.mark.parametrize("direction", [1, -1])
def test_u_init_local_equals_u_init(direction):
    """result.u_local (solver order) warm-starts exactly as the gathered result.u does."""
    if direction > 0:
        prop = Dahlquist([-1.0, -0.3])
        u0 = prop.u0
    else:
        prop, u0 = _BackwardDecay(), torch.tensor([1.0, -2.0], dtype=torch.float64)
    t = uniform_grid(0, 2, 65)
    part = SerialPartition(reverse=direction < 0)
    opts = dict(max_levels=3, cf=2, direction=direction, partition=part)
    rough = MGRIT(prop, t, tol=0.0, max_iter=2, **opts).solve(u0)
    m = MGRIT(prop, t, tol=1e-13, **opts)
    full = m.solve(u0, u_init=rough.u)
    local = m.solve(u0, u_init_local=rough.u_local)
    assert local.residuals == full.residuals and torch.equal(local.u, full.u)
    assert local.iterations < MGRIT(prop, t, tol=1e-13, **opts).solve(u0).iterations
    with pytest.raises(ValueError, match="either u_init"):
        m.solve(u0, u_init=rough.u, u_init_local=rough.u_local)
    with pytest.raises(ValueError, match=r"u_init_local must have shape \(65, 2\)"):
        m.solve(u0, u_init_local=rough.u_local[1:])


@pytest.mark.parametrize("levels, nested", [(1, False), (3, False), (3, True)])
def test_gather_false_never_collects_a_level(levels, nested):
    """gather=False: u is None and no step of the solve (coarsest solve included) gathers."""
    class NoGather(SerialPartition):
        def allgather(self, local):
            raise AssertionError("gathered a level")

    prob, t = Heat1D(nx=17), uniform_grid(0, 1, 65)
    opts = dict(max_levels=levels, cf=2, tol=1e-12, nested=nested)
    res = MGRIT(prob, t, partition=NoGather(), **opts).solve(prob.u0, gather=False)
    ref = MGRIT(prob, t, **opts).solve(prob.u0)
    assert res.u is None and res.bounds == (0, 65)
    assert res.residuals == ref.residuals and torch.equal(res.u_local, ref.u)


def test_speedup_model_with_xbraids_per_level_split():
    """The thesis's setting (256 layers, 3 levels, cf 4) on 64 ranks: more ranks than coarsest
    intervals (16), so only the per-level split fits; by hand, one V-cycle with F fine and FCF
    coarse costs 3+2+(3+4+2+16+3)+3 plus the residual 1 = 37 in the first iteration, 34 after."""
    costs = costs_for(257, 4, 3, ["F", "FCF", "FCF"])
    with pytest.raises(ValueError, match="per_level"):
        critical_path(costs, 64)
    assert critical_path(costs, 64, first_iteration=True, distribution="per_level") == 37
    assert critical_path(costs, 64, distribution="per_level") == 34
    # up to the coarsest size, both splits deal out whole coarsest intervals alike
    for p in (1, 2, 16):
        assert critical_path(costs, p, distribution="per_level") == critical_path(costs, p)
    assert model_speedup(costs, 2, 64, distribution="per_level") == 256 / 71


# -- bad propagators and bad input: named, not solved wrongly -------------------------------
class _Decay:
    """u' = -u by backward Euler on a (4,) state, with a deliberate defect (``bad``)."""

    def __init__(self, bad=None):
        self.bad = bad

    def step(self, u, i, level):
        out = u / (1 + level.h(i)[:, None])
        if self.bad == "shape":
            return out[:, :1]                          # (B, 1) for a (B, 4) state
        if self.bad == "dtype":
            return out.float()
        if self.bad == "mix":                          # state b depends on its batch mates
            return out + 0.1 * out.mean(dim=0, keepdim=True)
        if self.bad == "nan" and bool((i == 5).any()):
            out = out.clone()
            out[i == 5] = math.nan
        return out


U0 = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)


@pytest.mark.parametrize("levels", [1, 3])
@pytest.mark.parametrize("bad, match", [
    ("shape", r"_Decay.step on level 0 returned shape \(\d+, 1\).*states of shape \(\d+, 4\)"),
    ("dtype", r"dtype torch.float32 for states .* dtype torch.float64"),
])
def test_a_step_of_the_wrong_shape_or_dtype_is_rejected(levels, bad, match):
    with pytest.raises(ValueError, match=match):
        solve(_Decay(bad), U0, uniform_grid(0, 1, 33), max_levels=levels, cf=2)


def test_a_step_that_mixes_batch_members_is_explained():
    with pytest.raises(MGRITDivergenceError, match=r"(?s)mixes the states of a batch.*on its "
                                                   r"own") as err:
        solve(_Decay("mix"), U0, uniform_grid(0, 1, 65), max_levels=3, cf=2, tol=1e-12,
              max_iter=100)
    assert "after iteration" in str(err.value)
    assert int(str(err.value).split("after iteration ")[1].split()[0]) <= 10


def test_non_finite_u0_is_rejected_before_solving():
    for levels in (1, 2):
        with pytest.raises(ValueError, match=r"u0 has non-finite entries .*\[\[1\]\]"):
            solve(_Decay(), torch.tensor([1.0, math.nan, 0.0, 0.0], dtype=torch.float64),
                  uniform_grid(0, 1, 33), max_levels=levels)


@pytest.mark.parametrize("levels", [1, 2, 3])
def test_non_finite_values_from_the_propagator_are_named(levels):
    with pytest.raises(MGRITDivergenceError, match=r"(?s)Non-finite values.*_Decay.*level 0 "
                                                   r"at point 6.*step from point 5"):
        solve(_Decay("nan"), U0, uniform_grid(0, 1, 33), max_levels=levels, cf=2)


def test_a_complex_problem_with_a_real_u0_says_so():
    prob, t = Dahlquist(-3.0 + 2.0j), uniform_grid(0, 1, 33)
    for levels in (1, 2):
        with pytest.raises(TypeError, match=r"complex values .* for real states.*"
                                            r"u0.to\('torch.complex128'\)"):
            solve(prob, torch.ones(1, dtype=torch.float64), t, max_levels=levels)
    res = solve(prob, torch.ones(1, dtype=torch.complex128), t, max_levels=2, tol=1e-13)
    assert res.converged and res.u.is_complex() and float(res.u[-1].imag.abs()) > 0


def test_a_round_off_rise_does_not_use_up_the_growth_check():
    from mgritlab.mgrit.divergence import first_growth

    floor = 1e-11
    converged_then_rises = [1.0, 1e-6, 1e-17, 3e-17, 2e-17, 1e-3]
    assert first_growth(converged_then_rises, floor)     # the rise to 1e-3 is the first real one
    assert not first_growth(converged_then_rises[:4], floor)   # 1e-17 -> 3e-17 is round-off
    assert not first_growth([1.0, 0.5, 0.7, 0.6, 0.9], floor)  # the second real rise
    assert first_growth([1.0, 0.5, 0.7])
