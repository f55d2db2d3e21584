"""Model problems as propagators: step vs per-step references, exact solutions, errors."""
import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mgritlab.mgrit import build_hierarchy, sequential_solve, uniform_grid
from mgritlab.problems import CubicDecay, Dahlquist, GraphHeat, Heat1D, laplacian_1d

F64 = torch.float64


def _level(t, direction=1):
    return build_hierarchy(t, Dahlquist(-1.0), max_levels=1, direction=direction).levels[0]


def _slope(problem, nts):
    errs = []
    for nt in nts:
        t = problem.grid(nt)
        errs.append(float((problem.solve(t) - problem.exact(t)).abs().max()))
    return np.log2(errs[0] / errs[1]), errs


def test_dahlquist_real_complex_and_order():
    p = Dahlquist(-2.0, y0=3.0)
    assert p.u0.shape == (1,) and p.dtype == F64 and p.scheme == "backward_euler"
    assert torch.allclose(p.exact([0.0, 1.0]), torch.tensor([[3.0], [3 * math.exp(-2)]],
                                                            dtype=F64))
    pc = Dahlquist([-1.0, -1 + 4j], scheme="forward_euler")
    assert pc.dtype == torch.complex128 and pc.state_shape == (2,)
    assert pc.exact(torch.linspace(0, 1, 5)).shape == (5, 2)
    for s in ("forward_euler", "backward_euler", "imex_euler"):
        slope, _ = _slope(pc.with_scheme(s), (401, 801))
        assert abs(slope - 1) < 0.05, s
    assert pc.scheme == "forward_euler"  # with_scheme returns a copy


def test_dahlquist_step_matches_formula():
    lam, h = -3.0 + 1j, 0.05
    t = uniform_grid(0.0, 1.0, 21)
    lv = _level(t)
    u = torch.ones(3, 1, dtype=torch.complex128)
    i = torch.tensor([0, 5, 7])
    be = Dahlquist(lam).step(u, i, lv)
    fe = Dahlquist(lam, scheme="forward_euler").step(u, i, lv)
    assert torch.allclose(be, u / (1 - h * lam)) and torch.allclose(fe, u * (1 + h * lam))


def test_heat1d_matches_per_step_reference():
    p = Heat1D(nx=41, tf=1.0)
    t = p.grid(11)
    lv = _level(t)
    n = p.nx - 2
    assert p.u0.shape == (n,)
    Ld = torch.as_tensor(p.L.toarray())
    I = torch.eye(n, dtype=F64)
    b = lambda tt: -torch.sin(math.pi * p.x) * (math.sin(tt) - math.pi**2 * math.cos(tt))
    u = p.u0[None]
    for k in range(10):
        h = float(t[k + 1] - t[k])
        ref_be = torch.linalg.solve(I + h * Ld, u[0] + h * b(float(t[k + 1])))
        ref_fe = u[0] + h * (-Ld @ u[0] + b(float(t[k])))
        ref_im = torch.linalg.solve(I + h * Ld, u[0] + h * b(float(t[k])))
        idx = torch.tensor([k])
        assert torch.allclose(p.step(u, idx, lv)[0], ref_be, atol=1e-12)
        assert torch.allclose(p.with_scheme("forward_euler").step(u, idx, lv)[0], ref_fe)
        assert torch.allclose(p.with_scheme("imex_euler").step(u, idx, lv)[0], ref_im,
                              atol=1e-12)
        u = ref_be[None]


def test_heat1d_forcing_set_or_removed_after_construction_takes_effect():
    ref = Heat1D(nx=21, tf=1.0)                      # the default forcing
    p = Heat1D(nx=21, tf=1.0, forcing=None)          # b = 0 …
    t = ref.grid(9)
    p.forcing = ref.forcing                          # … then the default forcing set later
    assert torch.equal(p.solve(t), ref.solve(t))
    zero = Heat1D(nx=21, tf=1.0, forcing=None).solve(t)
    p.forcing = None                                 # and removed again: b = 0
    assert torch.equal(p.solve(t), zero)
    assert not torch.allclose(zero, ref.solve(t))
    with pytest.raises(NotImplementedError):         # exact() belongs to the default data only
        p.exact(t)
    with pytest.raises(TypeError, match="callable"):
        p.forcing = 3.0


def test_heat1d_accuracy_and_stiffness():
    p = Heat1D(nx=33, tf=1.0)
    t = p.grid(2001)
    err = float((p.solve(t) - p.exact(t)).abs().max())
    assert err < 2e-3
    assert p.cfl_limit == pytest.approx(2 / p.eigenvalues().max())
    assert p.cfl_limit == pytest.approx(p.dx**2 / 2, rel=0.01)
    fe = p.with_scheme("forward_euler")
    nt_bad = int(1.0 / (1.3 * p.cfl_limit)) + 1  # step 1.3x past the limit
    assert not torch.isfinite(fe.solve(nt_bad)).all() or fe.solve(nt_bad).abs().max() > 1e3
    nt_ok = int(1.0 / (0.9 * p.cfl_limit)) + 2
    assert float((fe.solve(nt_ok)[-1] - p.exact([1.0])[0]).abs().max()) < 5e-3


def test_heat1d_nonuniform_grid_and_batch():
    p = Heat1D(nx=21, tf=1.0)
    t = torch.tensor([0.0, 0.1, 0.15, 0.4, 0.5, 1.0], dtype=F64)
    lv = _level(t)
    assert lv.dt is None
    u = sequential_solve(p, p.u0, t)
    # the whole batch at once must agree with one-by-one steps
    batch = p.step(u[:-1], torch.arange(5), lv)
    assert torch.allclose(batch, u[1:], atol=1e-13)


def test_graph_heat():
    n = 12
    L = laplacian_1d(n, 1.0)  # a path graph with Dirichlet ends (SPD)
    A = sp.random(n, n, density=0.3, random_state=0)
    A = ((A + A.T) > 0).astype(float)
    A.setdiag(0)
    A.eliminate_zeros()
    G = sp.diags(np.asarray(A.sum(1)).ravel()) - A  # a graph Laplacian
    rng = np.random.default_rng(0)
    u0 = rng.random(n)
    for lap in (L, G, G.toarray(), torch.as_tensor(G.toarray())):
        p = GraphHeat(lap, u0, kappa=0.5)
        slope, errs = _slope(p, (201, 401))
        assert abs(slope - 1) < 0.1 and errs[1] < 1e-2
    p = GraphHeat(G, u0)
    assert p.ode.op.method == "splu"
    # heat flow on a graph conserves the total mass
    u = p.solve(51)
    assert torch.allclose(u.sum(1), torch.full((51,), u0.sum(), dtype=F64))
    with pytest.raises(ValueError, match="nodes"):
        GraphHeat(G, u0[:-1])


def test_cubic_decay():
    p = CubicDecay([1.0, 0.5, -2.0], tf=1.0)
    assert p.exact([0.0, 0.5]).shape == (2, 3)
    for s in ("backward_euler", "forward_euler", "imex_euler"):
        slope, _ = _slope(p.with_scheme(s), (801, 1601))
        assert abs(slope - 1) < 0.05, s
    t = p.grid(11)
    lv = _level(t)
    u = torch.tensor([[1.0, 0.5, -2.0]], dtype=F64)
    v = p.step(u, torch.tensor([0]), lv)
    assert torch.allclose(v + 0.1 * v**3, u, atol=1e-12)


def test_errors():
    p = Dahlquist(-1.0)
    t = uniform_grid(0.0, 1.0, 5)
    with pytest.raises(ValueError, match="forward in time"):
        p.step(p.u0[None], torch.tensor([2]), _level(t, direction=-1))
    with pytest.raises(ValueError, match="valid names"):
        Dahlquist(-1.0, scheme="rk4")
    with pytest.raises(ValueError, match="complex"):
        Dahlquist(1j, dtype=F64)
    with pytest.raises(ValueError, match="nx"):
        Heat1D(nx=2)
    with pytest.raises(ValueError, match="positive"):
        Heat1D(a=-1.0)
    with pytest.raises(NotImplementedError):
        Heat1D(x1=0.5, nx=11).exact([0.0])
    with pytest.raises(ValueError, match="state has shape"):
        p.step(torch.ones(2, 3, dtype=F64), torch.tensor([0, 1]), _level(t))


@pytest.mark.parametrize("scheme", ["forward_euler", "backward_euler", "imex_euler"])
def test_float32_problems_stay_float32(scheme):
    f32 = torch.float32
    for p in (Heat1D(nx=11, dtype=f32), Dahlquist([-1.0, -2.0], dtype=f32),
              GraphHeat(laplacian_1d(5, 1.0), np.ones(5), dtype=f32), CubicDecay(1.0, dtype=f32)):
        p = p.with_scheme(scheme)
        t = p.grid(5)
        u = p.step(p.u0[None], torch.tensor([0]), _level(t))
        assert u.dtype == f32, type(p).__name__


def test_reaction_diffusion():
    from mgritlab.problems import ReactionDiffusion1D

    p = ReactionDiffusion1D(nx=11, tf=1.0)
    ref = p.with_scheme("backward_euler").solve(1025)[-1]
    for s in ("backward_euler", "imex_euler"):
        q = p.with_scheme(s)
        e = [float((q.solve(nt)[-1] - ref).abs().max()) for nt in (33, 65)]
        assert abs(np.log2(e[0] / e[1]) - 1) < 0.2, (s, e)
    # stiff: backward Euler and IMEX take steps far past forward Euler's limit
    p = ReactionDiffusion1D(nx=21, tf=1.0)
    assert 0.3 > 2 * p.cfl_limit
    t = torch.arange(31, dtype=F64) * 0.3
    for s in ("backward_euler", "imex_euler"):
        assert float(p.with_scheme(s).solve(t).abs().max()) < 1.0
    assert not float(p.with_scheme("forward_euler").solve(t).abs().max()) < 1.0


@pytest.mark.parametrize("scheme", ["backward_euler", "forward_euler", "imex_euler"])
def test_problem_solve_is_sequential_stepping_bitwise(scheme):
    uniform = torch.linspace(0.0, 1.0, 33, dtype=F64)
    ragged = torch.cumsum(torch.rand(33, dtype=F64, generator=torch.Generator().manual_seed(0))
                          + 0.1, 0) / 10
    for p in (Heat1D(nx=17, scheme=scheme), Dahlquist([-1.0, -1 + 2j], scheme=scheme),
              CubicDecay(1.5, scheme=scheme)):
        for t in (uniform, ragged):
            assert torch.equal(p.solve(t), sequential_solve(p, p.u0, t)), (p, t[1] - t[0])
    assert torch.equal(Dahlquist(-1.0).grid(9), uniform_grid(0.0, 1.0, 9))
    with pytest.raises(ValueError, match="nt must be an integer >= 2"):
        Dahlquist(-1.0).grid(1)


def test_problem_registry_builds_what_the_cli_and_engines_name():
    from mgritlab.problems import PROBLEMS, make_problem

    heat = make_problem("heat", nx=9, a=2.0, tf=1.0)
    assert isinstance(heat, Heat1D) and heat.nx == 9 and heat.a == 2.0 and heat.tf == 1.0
    dq = make_problem("dahlquist", lam=-1 + 2j, scheme="forward_euler")
    assert dq.dtype == torch.complex128 and dq.scheme == "forward_euler" and dq.tf == 5.0
    assert make_problem("dahlquist", lam=-2.0).dtype == F64  # a real λ stays real
    assert isinstance(make_problem("nonlinear", y0=2.0), CubicDecay)
    assert set(PROBLEMS) == {"heat", "dahlquist", "nonlinear"}
    with pytest.raises(ValueError, match=r"unknown problem 'wave'.*'heat'"):
        make_problem("wave")
    with pytest.raises(ValueError, match=r"no option.*lam.*its options are nx, a"):
        make_problem("heat", lam=-1.0)
