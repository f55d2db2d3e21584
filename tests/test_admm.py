"""pdADMM-G / pdADMM-G-Q (mgritlab.graphs.admm): each subproblem against a brute-force
minimiser, the Lagrangian's descent under the theorem's ρ condition, batched = per-layer loop,
the quantisation set, the counted bytes and the ρ warning."""
import math
import warnings

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from mgritlab.graphs import admm, gamlp

D = torch.float64


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=D)


def _problem(L=4, n=12, d0=7, h=5, C=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d0, generator=g, dtype=D)
    y = torch.randint(0, C, (n,), generator=g)
    weights = gamlp.init_weights(gamlp.widths(d0, h, C, L), seed, dtype=D)
    return x, y, weights


def _state_tensors(st):
    out = []
    for grp in st.groups:
        for i in range(grp.size):
            out += [t[i] for t in (grp.W, grp.b, grp.z, grp.p, grp.q, grp.u) if t is not None]
    return out


# ---- closed forms against brute force ----------------------------------------------------------
def test_b_update_is_the_least_squares_minimiser():
    p, W, z = _rand(1, 9, 4, seed=1), _rand(1, 4, 3, seed=2), _rand(1, 9, 3, seed=3)
    b = admm.update_b(p, W, z)[0]

    def f(v):
        r = z[0] - p[0] @ W[0] - torch.from_numpy(v)
        return float((r * r).sum())
    brute = minimize(f, np.zeros(3), method="BFGS", options={"gtol": 1e-12}).x
    assert np.allclose(b.numpy(), brute, atol=1e-7)
    assert f(b.numpy()) <= f(brute) + 1e-12


def test_z_update_is_the_exact_minimiser_entry_by_entry():
    a, q, z_old = _rand(1, 40, 3, seed=4) * 2, _rand(1, 40, 3, seed=5), _rand(1, 40, 3, seed=6)
    nu = 0.7
    z = admm.update_z(a, q, z_old, nu)
    grid = torch.linspace(-8, 8, 160001, dtype=D)  # step 1e-4
    vals = admm.z_objective(grid.view(-1, 1, 1, 1), a, q, z_old, nu)
    best = vals.min(0).values
    got = admm.z_objective(z, a, q, z_old, nu)
    assert torch.all(got <= best + 1e-12)
    assert torch.allclose(z, grid[vals.argmin(0)], atol=2e-4)


def test_q_update_is_the_minimiser_and_its_projection_the_minimiser_over_the_grid():
    fz, u, pn = _rand(1, 6, 4, seed=7).relu(), _rand(1, 6, 4, seed=8), _rand(1, 6, 4, seed=9)
    nu, rho = 0.3, 1.7

    def obj(q):
        return nu / 2 * (q - fz) ** 2 - u * q + rho / 2 * (pn - q) ** 2
    q = admm.update_q(fz, u, pn, nu, rho)
    brute = minimize(lambda v: float(obj(torch.from_numpy(v).view_as(q)).sum()),
                     np.zeros(q.numel()), method="BFGS", options={"gtol": 1e-12}).x
    assert np.allclose(q.flatten().numpy(), brute, atol=1e-7)
    grid = admm.Grid(-1.0, 2.0, 31)
    values = grid.values(D)
    by_value = obj(values.view(-1, 1, 1, 1).expand(-1, *q.shape))
    brute_q = values[by_value.argmin(0)]
    assert torch.equal(grid.project(q), brute_q)


def test_zl_update_reaches_the_minimiser_of_cross_entropy_plus_penalty():
    a, y = _rand(1, 10, 4, seed=10), torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    nu = 0.5
    z = admm.update_zl(a, y, a.clone(), nu, iters=500, tol=0.0)

    def f(v):
        return float(admm.zl_objective(torch.from_numpy(v).view_as(a), a, y, nu)[0])
    brute = minimize(f, a.flatten().numpy(), method="BFGS", options={"gtol": 1e-10})
    assert f(z.flatten().numpy()) <= brute.fun + 1e-9
    assert np.allclose(z.flatten().numpy(), brute.x, atol=1e-5)
    # a few iterations never make it worse than where it started
    z_old = _rand(1, 10, 4, seed=11) * 3
    z3 = admm.update_zl(a, y, z_old, nu, iters=3, tol=0.0)
    assert admm.zl_objective(z3, a, y, nu) <= admm.zl_objective(z_old, a, y, nu)


@pytest.mark.parametrize("which", ["p", "W"])
def test_quadratic_steps_majorise_and_converge_to_the_exact_minimiser(which):
    p, W, b, z = _rand(2, 8, 5, seed=12), _rand(2, 5, 4, seed=13), _rand(2, 4, seed=14), \
        _rand(2, 8, 4, seed=15)
    qp, up, nu, rho, wd = _rand(2, 8, 5, seed=16), _rand(2, 8, 5, seed=17), 0.8, 4.0, 0.1
    if which == "p":
        def obj(v):
            return admm.p_objective(v, W, b, z, qp, up, nu, rho)

        def grad(v):
            return admm.p_gradient(v, W, b, z, qp, up, nu, rho)

        def curv(d):
            return admm.p_curvature(d, W, nu, rho)
        x = p.clone()
        # exact minimiser: (ν W Wᵀ + ρ I) pᵀ-rows: p (ν W Wᵀ + ρ I) = ν (z − b) Wᵀ − u + ρ q
        exact = torch.stack([torch.linalg.solve(
            nu * W[i] @ W[i].T + rho * torch.eye(5, dtype=D),
            (nu * (z[i] - b[i]) @ W[i].T - up[i] + rho * qp[i]).T).T for i in range(2)])
    else:
        def obj(v):
            return admm.W_objective(p, v, b, z, nu, wd)

        def grad(v):
            return admm.W_gradient(p, v, b, z, nu, wd)

        def curv(d):
            return admm.W_curvature(d, p, nu, wd)
        x = W.clone()
        exact = torch.stack([torch.linalg.solve(
            nu * p[i].T @ p[i] + wd * torch.eye(5, dtype=D), nu * p[i].T @ (z[i] - b[i]))
            for i in range(2)])
    tau = torch.full((2,), 1e-3, dtype=D)
    for _k in range(400):
        f0, g = obj(x), grad(x)
        new, tau = admm.quadratic_step(x, g, curv, tau / 2, 2.0, 30)
        d = new - x
        # the majorisation with the objective itself, and a decrease
        assert torch.all(obj(new) <= f0 + admm._bsum(g * d) + tau / 2 * admm._bsum(d * d)
                         + 1e-10 * f0.abs())
        assert torch.all(obj(new) <= f0 + 1e-12 * f0.abs())
        x = new
    assert torch.allclose(x, exact, atol=1e-8)


# ---- the iteration ------------------------------------------------------------------------------
def test_the_augmented_lagrangian_never_increases_under_the_rho_condition():
    x, y, w = _problem(L=5, seed=3)
    nu = 1.0
    cfg = admm.ADMMConfig(nu=nu, rho=1.01 * admm.rho_bound(nu), adapt_rho=False)
    st = admm.init_state(x, y, w, cfg)
    lag = [admm.iterate(st, cfg)["lagrangian"] for _ in range(60)]
    steps = np.diff(lag)
    assert np.all(steps <= 1e-10 * np.abs(lag[1:])), steps.max()
    assert lag[-1] < lag[0]


def test_batched_update_equals_the_per_layer_loop():
    x, y, w = _problem(L=6, seed=4)
    for grid in (None, admm.Grid(-1, 3, 64)):
        cfg = admm.ADMMConfig(nu=0.5, rho=3.0, grid=grid)
        a = admm.init_state(x, y, w, cfg, batched=True)
        b = admm.init_state(x, y, w, cfg, batched=False)
        assert [g.size for g in a.groups] == [1, 4, 1] and len(b.groups) == 6
        for _ in range(8):
            ia, ib = admm.iterate(a, cfg), admm.iterate(b, cfg)
            assert ia["lagrangian"] == pytest.approx(ib["lagrangian"], rel=1e-12)
        for s, t in zip(_state_tensors(a), _state_tensors(b)):
            assert torch.allclose(s, t, rtol=1e-12, atol=1e-13)


def test_quantised_p_and_q_lie_in_the_grid():
    x, y, w = _problem(L=4, seed=5)
    grid = admm.Grid(-0.5, 2.5, 41)
    cfg = admm.ADMMConfig(nu=0.5, rho=3.0, grid=grid)
    st = admm.init_state(x, y, w, cfg)
    values = grid.values(D)
    for _ in range(6):
        admm.iterate(st, cfg)
        for g in st.groups:
            for t in (g.p, g.q):
                if t is not None:
                    assert torch.isin(t, values).all()
    # the codes: one byte per entry for up to 256 levels, and decode(encode) is the identity
    assert admm.Grid(0, 1, 256).code_dtype == torch.uint8
    assert admm.Grid(0, 1, 257).code_dtype == torch.int16
    t = st.groups[1].p
    assert torch.equal(grid.decode(grid.encode(t), D), t)


def test_bytes_are_counted_from_the_messages():
    x, y, w = _problem(L=4, n=12, h=5, seed=6)
    n, h, L = 12, 5, 4
    for grid, itemsize in ((None, 8), (admm.Grid(-1, 2, 200), 1)):
        cfg = admm.ADMMConfig(nu=0.5, rho=3.0, grid=grid)
        st = admm.init_state(x, y, w, cfg)
        traffic = admm.Traffic()
        admm.iterate(st, cfg, traffic=traffic)
        # p_2..p_L and q_1..q_{L-1}: 2(L−1) messages of n × h entries
        assert traffic.messages == 2 * (L - 1)
        assert traffic.interface == 2 * (L - 1) * n * h * itemsize
        assert traffic.ranks == 0  # one process: nothing crossed a rank


def test_forward_scores_are_the_ga_mlps():
    x, y, w = _problem(L=4, seed=7)
    cfg = admm.ADMMConfig(nu=0.5, rho=3.0)
    st = admm.init_state(x, y, w, cfg)
    for _ in range(3):
        admm.iterate(st, cfg)
    assert torch.allclose(admm.forward_scores(st, x), gamlp.forward(x, st.weights()),
                          rtol=0, atol=1e-13)


def test_rho_below_the_bound_warns_with_what_to_change():
    assert admm.rho_bound(1.0) == pytest.approx(4.0)
    assert admm.rho_bound(1.0, lipschitz=0.5) == pytest.approx((math.sqrt(17) + 1) / 2)
    x, y, w = _problem(L=3)
    with pytest.warns(RuntimeWarning, match=r"raise rho above 4 or lower nu below 0\.5"):
        admm.init_state(x, y, w, admm.ADMMConfig(nu=1.0, rho=2.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        admm.init_state(x, y, w, admm.ADMMConfig(nu=1.0, rho=4.5))


@pytest.mark.parametrize("kwargs, match", [
    ({"nu": 0.0}, "nu=0.0"), ({"rho": -1.0}, "rho=-1.0"), ({"eta": 1.0}, "eta"),
    ({"weight_decay": -1.0}, "weight_decay"), ({"rho_factor": 0.5}, "only grows")])
def test_bad_hyperparameters_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        admm.ADMMConfig(**kwargs)


def test_bad_grids_and_depths_are_refused():
    with pytest.raises(ValueError, match="lo < hi"):
        admm.Grid(1.0, 1.0)
    with pytest.raises(ValueError, match="levels"):
        admm.Grid(0.0, 1.0, 1)
    with pytest.raises(ValueError, match="at least 2 layers"):
        gamlp.widths(5, 4, 3, 1)
    with pytest.raises(ValueError, match="at most 3 processes"):
        admm.layer_block(3, 0, 4)
