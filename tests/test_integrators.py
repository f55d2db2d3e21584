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

KINDS = ("none", "scalar", "diag", "dense_spd", "dense", "tridiagonal", "tridiagonal_nonsym",
         "sparse_sym", "sparse", "callable", "cg_matrix")


def operator_case(kind, n):
    """(L, SemilinearODE keywords, L as a dense float64 matrix) for every form of L."""
    rng = np.random.default_rng(11)
    lap = sp.diags([-np.ones(n - 1), 2 * np.ones(n), -np.ones(n - 1)], [-1, 0, 1]) * 40.0
    M = rng.standard_normal((n, n))
    spd = M @ M.T / n
    if kind == "none":
        return None, {}, torch.zeros(n, n, dtype=F64)
    if kind == "scalar":
        return 2.5, {}, 2.5 * torch.eye(n, dtype=F64)
    if kind == "diag":
        d = torch.as_tensor(rng.uniform(0.5, 3.0, n))
        return d, {}, torch.diag(d)
    if kind in ("dense_spd", "cg_matrix"):
        L = torch.as_tensor(spd)
        return L, ({"method": "cg"} if kind == "cg_matrix" else {}), L
    if kind == "dense":
        L = torch.as_tensor(M / np.sqrt(n) + 3 * np.eye(n))
        return L, {}, L
    if kind == "callable":  # -40 u'' by slicing: each state on its own
        def L(v):
            w = torch.nn.functional.pad(v, (1, 1))
            return 40.0 * (2 * v - w[:, :-2] - w[:, 2:])
        return L, {}, torch.as_tensor(lap.toarray())
    if kind == "tridiagonal":
        A = lap.tocsr()
    elif kind == "tridiagonal_nonsym":
        A = sp.diags([-0.5 * np.ones(n - 1), 2 * np.ones(n), -np.ones(n - 1)], [-1, 0, 1],
                     format="csr") * 40.0
    elif kind == "sparse_sym":
        G = sp.random(n, n, density=0.3, random_state=3)
        A = (G @ G.T + sp.identity(n)).tocsr()
    else:
        A = (sp.random(n, n, density=0.3, random_state=4) + 3 * sp.identity(n)).tocsr()
    return A, {}, torch.as_tensor(A.toarray())


def nonuniform_steps(B, seed=12):
    """Start times and step sizes of B consecutive steps of a non-uniform grid (all distinct,
    a few repeated as on a grid refined in blocks)."""
    rng = np.random.default_rng(seed)
    h = rng.uniform(0.01, 0.1, B)
    h[B // 2:B // 2 + 3] = h[B // 2]
    t = np.concatenate([[0.0], np.cumsum(h)[:-1]])
    return torch.as_tensor(t), torch.as_tensor(h)


SCHEMES = ("forward_euler", "imex_euler", "backward_euler", "newton", "newton_jac")


def scheme_case(scheme, L, kw, n):
    g = lambda t, u: torch.sin(u) + torch.cos(t)[:, None]
    if scheme in ("newton", "newton_jac"):
        g3 = lambda t, u: -u**3 + torch.cos(t)[:, None]
        extra = ({"dg": lambda t, u: -3 * u**2} if scheme == "newton" else
                 {"jac": lambda t, u: torch.diag_embed(-3 * u**2)})
        return get_stepper("backward_euler"), SemilinearODE(L, g3, state_shape=(n,),
                                                            cg_tol=1e-12, **extra, **kw)
    dep = scheme != "backward_euler"
    return get_stepper(scheme), SemilinearODE(L, g, state_shape=(n,), g_depends_on_u=dep,
                                              cg_tol=1e-12, **kw)


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("kind", KINDS)
def test_batched_equals_one_by_one_bitwise_on_a_nonuniform_grid(kind, scheme):
    """Batch independence: a state's step never depends on the other states of its batch, so
    stepping 12 states of a non-uniform grid at once, one by one or split as MPI ranks split
    them gives the same bits (the rule of mgrit/hierarchy.py)."""
    if scheme == "newton_jac" and kind == "callable":
        pytest.skip("a callable L has no matrix for a full Jacobian")
    n, B = 13, 12  # 13: rows of 13 doubles sit at addresses of every alignment
    L, kw, _ = operator_case(kind, n)
    stepper, ode = scheme_case(scheme, L, kw, n)
    t, h = nonuniform_steps(B)
    u = torch.as_tensor(np.random.default_rng(13).standard_normal((B, n)))
    batched = stepper.step(ode, u, t, h)
    one_by_one = torch.cat([stepper.step(ode, u[i:i + 1], t[i:i + 1], h[i:i + 1])
                            for i in range(B)])
    split = torch.cat([stepper.step(ode, u[a:b], t[a:b], h[a:b]) for a, b in ((0, 5), (5, B))])
    assert torch.equal(batched, one_by_one), (kind, scheme)
    assert torch.equal(batched, split), (kind, scheme)


@pytest.mark.parametrize("kind", KINDS)
def test_uniform_step_as_float_or_per_state_gives_the_same_bits(kind):
    """On a uniform grid too: one float h for the batch, h per state, or one state at a time."""
    n, B = 41, 7
    L, kw, _ = operator_case(kind, n)
    stepper, ode = scheme_case("imex_euler", L, kw, n)
    u = torch.as_tensor(np.random.default_rng(14).standard_normal((B, n)))
    t = torch.arange(B, dtype=F64) * 0.05
    a = stepper.step(ode, u, t, 0.05)
    b = stepper.step(ode, u, t, torch.full((B,), 0.05, dtype=F64))
    c = torch.cat([stepper.step(ode, u[i:i + 1], t[i:i + 1], 0.05) for i in range(B)])
    assert torch.equal(a, b) and torch.equal(a, c), kind


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


def test_tridiagonal_solve_falls_back_when_shift_is_indefinite():
    """A symmetric tridiagonal L whose I + hL is not positive definite for a large h: 'auto'
    still solves (pivoted LU), 'pttrf' says why it cannot."""
    from mgritlab.integrators import TridiagonalOperator

    n = 12
    A = sp.diags([-np.ones(n - 1), np.linspace(-3.0, 1.0, n), -np.ones(n - 1)], [-1, 0, 1])
    u = torch.as_tensor(np.random.default_rng(8).standard_normal((3, n)))
    t = torch.zeros(3, dtype=F64)
    dense = torch.as_tensor(A.toarray())
    ode = SemilinearODE(A, state_shape=(n,))
    assert isinstance(ode.op, TridiagonalOperator) and ode.op.symmetric
    for h in (0.1, 2.0):  # I + 0.1 L is SPD, I + 2 L is indefinite
        out = get_stepper("backward_euler").step(ode, u, t, h)
        ref = torch.linalg.solve(torch.eye(n, dtype=F64) + h * dense, u.T).T
        assert torch.allclose(out, ref, rtol=0, atol=1e-12), h
    forced = SemilinearODE(A, state_shape=(n,), method="pttrf")
    with pytest.raises(ValueError, match=r"not positive definite.*method='splu'"):
        get_stepper("backward_euler").step(forced, u, t, 2.0)
    with pytest.raises(ValueError, match="symmetric tridiagonal"):
        SemilinearODE(sp.diags([np.ones(n - 1), 2 * np.ones(n)], [-1, 0]), method="pttrf")


def test_cg_matches_dense_solve():
    rng = np.random.default_rng(3)
    M = rng.standard_normal((15, 15))
    A = torch.as_tensor(M @ M.T + np.eye(15))
    b = torch.as_tensor(rng.standard_normal((4, 15)))
    x = cg_solve(lambda v: v @ A.T, b, tol=1e-13)
    assert torch.allclose(x, torch.linalg.solve(A, b.T).T, atol=1e-9)
    with pytest.raises(CGError, match="cg_maxiter"):
        cg_solve(lambda v: v @ A.T, b, tol=1e-13, maxiter=2)


def test_imex_at_zero_l_is_forward_euler():
    g = lambda t, u: -torch.sin(u) + t[:, None]
    u = torch.randn(6, 3, dtype=F64)
    t = torch.rand(6, dtype=F64)
    fe = get_stepper("forward_euler").step(SemilinearODE(None, g), u, t, 0.3)
    im0 = get_stepper("imex_euler").step(SemilinearODE(0.0, g), u, t, 0.3)
    assert torch.allclose(fe, im0, rtol=0, atol=1e-15)


@pytest.mark.parametrize("kind", sorted(set(KINDS) - {"none"}))
def test_imex_step_matches_dense_inverse(kind):
    """u_{n+1} = (I + hA)^{-1}(u_n + h g(t_n, u_n)) (thesis eq. 4.8) against a dense solve
    with the matrix A of every form of L, for a float h and per-state steps."""
    n, B = 13, 5
    L, kw, A = operator_case(kind, n)
    g = lambda t, u: -torch.sin(u) + t[:, None]
    ode = SemilinearODE(L, g, state_shape=(n,), cg_tol=1e-14, **kw)
    rng = np.random.default_rng(9)
    u = torch.as_tensor(rng.standard_normal((B, n)))
    t = torch.as_tensor(rng.random(B))
    for h in (0.3, torch.as_tensor(rng.uniform(0.05, 0.5, B))):
        out = get_stepper("imex_euler").step(ode, u, t, h)
        hb = torch.as_tensor(h, dtype=F64).expand(B)
        ref = torch.stack([torch.linalg.solve(torch.eye(n, dtype=F64) + hb[b] * A,
                                              u[b] + hb[b] * g(t[b:b + 1], u[b:b + 1])[0])
                           for b in range(B)])
        assert torch.allclose(out, ref, rtol=0, atol=1e-11), kind


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
    # complex states with a real dense SPD (Cholesky), dense general (LU) and sparse (splu) L
    for kind in ("dense_spd", "dense", "sparse"):
        L, _, Ad = operator_case(kind, n)
        out = get_stepper("backward_euler").step(SemilinearODE(L), v, torch.zeros(2), 0.5)
        M = torch.eye(n, dtype=torch.complex128) + 0.5 * Ad.to(v.dtype)
        assert torch.allclose(out, torch.linalg.solve(M, v.T).T, rtol=0, atol=1e-12), kind


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


def test_newton_tridiagonal_matches_dense_newton():
    n = 15
    A = sp.diags([-np.ones(n - 1), 2 * np.ones(n), -np.ones(n - 1)], [-1, 0, 1]) * 30.0
    g = lambda t, u: u * (1 - u**2)
    dg = lambda t, u: 1 - 3 * u**2
    rng = np.random.default_rng(7)
    u = torch.as_tensor(rng.uniform(-1, 1, (4, n)))
    t = torch.zeros(4, dtype=F64)
    h = torch.tensor([0.05, 0.1, 0.05, 0.2], dtype=F64)
    from mgritlab.integrators import DenseOperator, TridiagonalOperator

    sparse = SemilinearODE(A, g, dg=dg, newton_tol=1e-13)
    dense = SemilinearODE(torch.as_tensor(A.toarray()), g, dg=dg, newton_tol=1e-13)
    assert isinstance(sparse.op, TridiagonalOperator) and isinstance(dense.op, DenseOperator)
    a = get_stepper("backward_euler").step(sparse, u, t, h)
    b = get_stepper("backward_euler").step(dense, u, t, h)
    assert torch.allclose(a, b, atol=1e-12)
