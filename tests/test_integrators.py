"""Steppers: convergence order, solves against dense references, error paths."""
import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mgritlab.integrators import (
    STEPPERS,
    CGError,
    NewtonError,
    SemilinearODE,
    cg_solve,
    get_stepper,
)

torch.manual_seed(0)
F64 = torch.float64


def _run(stepper, ode, u0, t0, tf, n):
    h = (tf - t0) / n
    u = u0[None].clone()
    for k in range(n):
        u = stepper.step(ode, u, torch.tensor([t0 + k * h], dtype=F64), h)
    return u[0]


def _forced_scalar_ode():
    # u' = -2u + g(t), exact u = cos t  =>  g = -sin t + 2 cos t
    return SemilinearODE(2.0, lambda t, u: (-torch.sin(t) + 2 * torch.cos(t))[:, None]
                         .expand(u.shape), state_shape=(1,), g_depends_on_u=False)


def test_registry():
    assert set(STEPPERS) == {"forward_euler", "backward_euler", "imex_euler"}
    for name in STEPPERS:
        s = get_stepper(name)
        assert s.name == name and s.order == 1
    with pytest.raises(ValueError, match="backward_euler, forward_euler, imex_euler"):
        get_stepper("rk4")


@pytest.mark.parametrize("name", sorted(STEPPERS))
def test_order_one_linear_forced(name):
    ode, st = _forced_scalar_ode(), get_stepper(name)
    u0 = torch.ones(1, dtype=F64)
    errs = [abs(float(_run(st, ode, u0, 0.0, 1.0, n)[0]) - math.cos(1.0)) for n in (100, 200, 400)]
    slopes = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.allclose(slopes, 1.0, atol=0.1), (name, errs)


@pytest.mark.parametrize("name", sorted(STEPPERS))
def test_order_one_nonlinear(name):
    ode = SemilinearODE(None, lambda t, u: -u**3, dg=lambda t, u: -3 * u**2, state_shape=(2,))
    st = get_stepper(name)
    y0 = torch.tensor([1.0, 0.5], dtype=F64)
    exact = y0 / torch.sqrt(1 + 2 * y0**2)
    errs = [float((_run(st, ode, y0, 0.0, 1.0, n) - exact).abs().max()) for n in (200, 400, 800)]
    slopes = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.allclose(slopes, 1.0, atol=0.1), (name, errs)


def test_forward_euler_formula_and_batched_h():
    A = torch.tensor([[2.0, -1.0], [0.5, 3.0]], dtype=F64)
    ode = SemilinearODE(A, lambda t, u: t[:, None] * u, state_shape=(2,))
    u = torch.randn(4, 2, dtype=F64)
    t = torch.rand(4, dtype=F64)
    h = torch.tensor([0.1, 0.2, 0.1, 0.05], dtype=F64)
    out = get_stepper("forward_euler").step(ode, u, t, h)
    ref = u + h[:, None] * (-(u @ A.T) + t[:, None] * u)
    assert torch.allclose(out, ref, atol=1e-14)


@pytest.mark.parametrize("kind", ["sparse_tridiag", "sparse_general", "dense_spd",
                                  "dense_nonsym", "cg_callable", "cg_matrix"])
def test_backward_euler_linear_solve_matches_dense(kind):
    rng = np.random.default_rng(1)
    n = 30
    if kind == "sparse_tridiag":
        A = sp.diags([-np.ones(n - 1), 2 * np.ones(n), -np.ones(n - 1)], [-1, 0, 1]) * 50.0
    elif kind == "sparse_general":
        A = sp.random(n, n, density=0.2, random_state=2) + 3 * sp.identity(n)
    else:
        M = rng.standard_normal((n, n))
        A = M @ M.T if kind != "dense_nonsym" else M + n * np.eye(n)
    dense = torch.as_tensor(A.toarray() if sp.issparse(A) else A, dtype=F64)
    if kind == "cg_callable":
        L = lambda v: v @ dense.T
    elif kind in ("sparse_tridiag", "sparse_general"):
        L = A
    else:
        L = torch.as_tensor(A)
    ode = SemilinearODE(L, lambda t, u: torch.cos(t)[:, None] * torch.ones_like(u),
                        state_shape=(n,), g_depends_on_u=False,
                        method="cg" if kind == "cg_matrix" else "auto", cg_tol=1e-13)
    u = torch.as_tensor(rng.standard_normal((5, n)))
    t = torch.as_tensor(rng.random(5))
    for h in (0.01, torch.tensor([0.01, 0.02, 0.01, 0.03, 0.02], dtype=F64)):
        out = get_stepper("backward_euler").step(ode, u, t, h)
        hb = torch.as_tensor(h, dtype=F64).expand(5)
        rhs = u + hb[:, None] * torch.cos(t + hb)[:, None]
        ref = torch.stack([torch.linalg.solve(torch.eye(n, dtype=F64) + hb[b] * dense, rhs[b])
                           for b in range(5)])
        assert torch.allclose(out, ref, atol=1e-9, rtol=1e-9), kind


def test_factorisation_cached_per_step():
    n = 20
    A = sp.diags([-np.ones(n - 1), 2 * np.ones(n), -np.ones(n - 1)], [-1, 0, 1])
    ode = SemilinearODE(A, state_shape=(n,))
    st = get_stepper("backward_euler")
    u = torch.ones(3, n, dtype=F64)
    for _ in range(3):
        st.step(ode, u, torch.zeros(3, dtype=F64), 0.1)
    st.step(ode, u, torch.zeros(3, dtype=F64), torch.tensor([0.1, 0.2, 0.2], dtype=F64))
    assert sorted(ode.op._cache) == [0.1, 0.2]
    assert ode.op._cache[0.1][0] == "pttrf"


def test_cg_matches_dense_solve():
    rng = np.random.default_rng(3)
    M = rng.standard_normal((15, 15))
    A = torch.as_tensor(M @ M.T + np.eye(15))
    b = torch.as_tensor(rng.standard_normal((4, 15)))
    x = cg_solve(lambda v: v @ A.T, b, tol=1e-13)
    assert torch.allclose(x, torch.linalg.solve(A, b.T).T, atol=1e-9)
    with pytest.raises(CGError, match="cg_maxiter"):
        cg_solve(lambda v: v @ A.T, b, tol=1e-13, maxiter=2)


def test_imex_reduces_to_forward_euler_and_shared_diagonal_scaling():
    g = lambda t, u: -torch.sin(u) + t[:, None]
    u = torch.randn(6, 3, dtype=F64)
    t = torch.rand(6, dtype=F64)
    h, alpha = 0.3, 2.5
    fe = get_stepper("forward_euler").step(SemilinearODE(None, g), u, t, h)
    im0 = get_stepper("imex_euler").step(SemilinearODE(0.0, g), u, t, h)
    assert torch.allclose(fe, im0, atol=1e-15)
    im = get_stepper("imex_euler").step(SemilinearODE(alpha, g), u, t, h)
    # thesis eq. 4.17: x + h/(1+hα) (g(x) - α x), i.e. forward Euler on -αx + g with step h/(1+hα)
    ref = u + h / (1 + h * alpha) * (g(t, u) - alpha * u)
    assert torch.allclose(im, ref, atol=1e-14)
    diag = torch.tensor([0.5, 1.0, 2.0], dtype=F64)
    imd = get_stepper("imex_euler").step(SemilinearODE(diag, g), u, t, h)
    assert torch.allclose(imd, (u + h * g(t, u)) / (1 + h * diag), atol=1e-14)


def test_newton_with_matrix_and_jacobian():
    rng = np.random.default_rng(4)
    n = 4
    A = torch.as_tensor(rng.standard_normal((n, n)) + 4 * np.eye(n))
    g = lambda t, u: -u**3
    u = torch.as_tensor(rng.standard_normal((3, n)))
    t = torch.zeros(3, dtype=F64)
    h = 0.2
    a = get_stepper("backward_euler").step(
        SemilinearODE(A, g, dg=lambda t, u: -3 * u**2, newton_tol=1e-13), u, t, h)
    b = get_stepper("backward_euler").step(
        SemilinearODE(A, g, jac=lambda t, u: torch.diag_embed(-3 * u**2), newton_tol=1e-13),
        u, t, h)
    for v in (a, b):
        res = v + h * (v @ A.T + v**3) - u
        assert float(res.abs().max()) < 1e-11


def test_newton_failure_is_helpful():
    ode = SemilinearODE(None, lambda t, u: -u**3, dg=lambda t, u: -3 * u**2, newton_maxiter=2)
    with pytest.raises(NewtonError, match="smaller step") as err:
        get_stepper("backward_euler").step(ode, torch.full((2, 1), 10.0, dtype=F64),
                                           torch.zeros(2, dtype=F64), 10.0)
    assert "newton_maxiter" in str(err.value)
    assert isinstance(err.value, RuntimeError)
    with pytest.raises(ValueError, match="dg="):
        get_stepper("backward_euler").step(SemilinearODE(None, lambda t, u: -u),
                                           torch.ones(1, 1, dtype=F64), torch.zeros(1), 0.1)


def test_bad_arguments():
    ode = SemilinearODE(1.0, state_shape=(3,))
    st = get_stepper("backward_euler")
    u, t = torch.ones(2, 3, dtype=F64), torch.zeros(2, dtype=F64)
    for h in (-0.1, 0.0, float("nan"), torch.tensor([0.1, -0.1], dtype=F64)):
        with pytest.raises(ValueError, match="positive"):
            st.step(ode, u, t, h)
    with pytest.raises(ValueError, match="state has shape"):
        st.step(ode, torch.ones(2, 4, dtype=F64), t, 0.1)
    with pytest.raises(ValueError, match=r"t must have shape \(B,\)"):
        st.step(ode, u, torch.zeros(3, dtype=F64), 0.1)
    with pytest.raises(ValueError, match="h must be"):
        st.step(ode, u, t, torch.ones(5, dtype=F64))
    with pytest.raises(ValueError, match="square"):
        SemilinearODE(torch.ones(2, 3, dtype=F64))
    with pytest.raises(ValueError, match="is 4x4 but the state has 3"):
        st.step(SemilinearODE(torch.eye(4, dtype=F64)), u, t, 0.1)


def test_non_spd_for_cg_rejected():
    nonsym = torch.tensor([[1.0, 2.0], [0.0, 1.0]], dtype=F64)
    with pytest.raises(ValueError, match="not symmetric"):
        SemilinearODE(nonsym, method="cg")
    u, t = torch.ones(1, 2, dtype=F64), torch.zeros(1, dtype=F64)
    with pytest.raises(ValueError, match="not symmetric"):
        get_stepper("backward_euler").step(SemilinearODE(lambda v: v @ nonsym.T), u, t, 0.1)
    neg = -torch.eye(2, dtype=F64)
    with pytest.raises(ValueError, match="positive semi-definite"):
        get_stepper("imex_euler").step(SemilinearODE(lambda v: v @ neg.T), u, t, 0.1)
    with pytest.raises(ValueError, match="complex"):
        get_stepper("backward_euler").step(SemilinearODE(lambda v: v), u.to(torch.complex128),
                                           t, 0.1)


def test_complex_states():
    lam = torch.tensor([-1 + 2j, -3.0 + 0j], dtype=torch.complex128)
    ode = SemilinearODE(-lam, state_shape=(2,))
    u = torch.ones(1, 2, dtype=torch.complex128)
    t = torch.zeros(1, dtype=F64)
    assert torch.allclose(get_stepper("backward_euler").step(ode, u, t, 0.1), 1 / (1 - 0.1 * lam))
    assert torch.allclose(get_stepper("forward_euler").step(ode, u, t, 0.1), 1 + 0.1 * lam)
    # complex state with a real sparse tridiagonal L
    n = 5
    A = sp.diags([-np.ones(n - 1), 2 * np.ones(n), -np.ones(n - 1)], [-1, 0, 1])
    v = torch.randn(2, n, dtype=torch.complex128)
    out = get_stepper("backward_euler").step(SemilinearODE(A), v, torch.zeros(2, dtype=F64), 0.5)
    M = torch.eye(n, dtype=torch.complex128) + 0.5 * torch.as_tensor(A.toarray()).to(v.dtype)
    assert torch.allclose(out, torch.linalg.solve(M, v.T).T)


@pytest.mark.parametrize("dense", [False, True])
def test_many_distinct_steps_match_per_step_solves(dense):
    n, B = 25, 40
    A = sp.diags([-np.ones(n - 1), 2 * np.ones(n), -np.ones(n - 1)], [-1, 0, 1]) * 100.0
    L = torch.as_tensor(A.toarray()) if dense else A
    ode = SemilinearODE(L, state_shape=(n,))
    rng = np.random.default_rng(5)
    u = torch.as_tensor(rng.standard_normal((B, n)))
    h = torch.as_tensor(rng.uniform(1e-3, 1e-1, B))  # all different: a non-uniform grid
    out = get_stepper("backward_euler").step(ode, u, torch.zeros(B, dtype=F64), h)
    Ad = torch.as_tensor(A.toarray())
    ref = torch.stack([torch.linalg.solve(torch.eye(n, dtype=F64) + h[b] * Ad, u[b])
                       for b in range(B)])
    assert torch.allclose(out, ref, atol=1e-12)
    assert ode.op._eig is not None and len(ode.op._cache) == 0


def test_batched_tridiagonal_solve():
    from mgritlab.integrators import batched_tridiagonal_solve

    rng = np.random.default_rng(6)
    B, n = 5, 9
    lo, up = torch.as_tensor(rng.random((B, n - 1))), torch.as_tensor(rng.random((B, n - 1)))
    main = 3 + torch.as_tensor(rng.random((B, n)))
    rhs = torch.as_tensor(rng.standard_normal((B, n)))
    x = batched_tridiagonal_solve(lo, main, up, rhs)
    M = torch.diag_embed(main) + torch.diag_embed(lo, -1) + torch.diag_embed(up, 1)
    assert torch.allclose(x, torch.linalg.solve(M, rhs[..., None])[..., 0], atol=1e-13)


def test_newton_tridiagonal_matches_dense_newton():
    n = 15
    A = sp.diags([-np.ones(n - 1), 2 * np.ones(n), -np.ones(n - 1)], [-1, 0, 1]) * 30.0
    g = lambda t, u: u * (1 - u**2)
    dg = lambda t, u: 1 - 3 * u**2
    rng = np.random.default_rng(7)
    u = torch.as_tensor(rng.uniform(-1, 1, (4, n)))
    t = torch.zeros(4, dtype=F64)
    h = torch.tensor([0.05, 0.1, 0.05, 0.2], dtype=F64)
    sparse = SemilinearODE(A, g, dg=dg, newton_tol=1e-13)
    dense = SemilinearODE(torch.as_tensor(A.toarray()), g, dg=dg, newton_tol=1e-13)
    assert sparse.op.tridiag is not None
    a = get_stepper("backward_euler").step(sparse, u, t, h)
    b = get_stepper("backward_euler").step(dense, u, t, h)
    assert torch.allclose(a, b, atol=1e-12)
