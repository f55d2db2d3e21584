"""MGRIT-FAS core: exactness, agreement with sequential stepping, convergence bounds, errors."""
import math

import numpy as np
import pytest
import torch

from mgritlab.mgrit import (
    MGRIT,
    LevelBlock,
    MGRITDivergenceError,
    build_hierarchy,
    c_relax,
    f_relax,
    max_levels_for,
    sequential_solve,
    solve,
    uniform_grid,
)
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
    assert "iter" in res.table() and "level" in str(res)


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
    from mgritlab.mgrit import block_bounds
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
    """A residual stalled at round-off is not a divergence, even with an amplifying level."""
    prob = Dahlquist(-20.0, scheme="forward_euler")
    m = MGRIT(prob, uniform_grid(0, 4, 513), max_levels=4, cf=4, tol=1e-30)
    blocks = m._blocks(prob.u0, None)
    m._u0, m._scale = prob.u0, 1.0
    blocks[0].u[:] = 1.0
    assert m._check_divergence([1e-14] * 6, blocks) == "stalled at round-off"
    with pytest.raises(MGRITDivergenceError, match="stagnated"):
        m._check_divergence([1e-6] * 6, blocks)


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
