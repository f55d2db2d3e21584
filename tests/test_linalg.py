"""Batched CG and the shifted solve: dense oracles, batch independence, errors, gradients."""
import warnings

import pytest
import torch

from mgritlab import integrators, linalg
from mgritlab.linalg import (
    CGError,
    TridiagonalFactor,
    batched_dot,
    batched_tridiagonal_solve,
    cg_solve,
    shifted_solve,
)

F64 = torch.float64


def spd(n, seed=0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    M = torch.randn(n, n, generator=g, dtype=F64)
    return (M @ M.T + n * torch.eye(n, dtype=F64)).to(dtype)


def graph_laplacian(n, edges=40, seed=0):
    """GᵀG of a random weighted graph, as a sparse CSR matrix (symmetric PSD)."""
    g = torch.Generator().manual_seed(seed)
    i, j = torch.randint(n, (2, edges), generator=g)
    keep = i != j
    i, j = i[keep], j[keep]
    G = torch.zeros(len(i), n, dtype=F64)
    w = torch.rand(len(i), generator=g, dtype=F64) + 0.5
    G[torch.arange(len(i)), i] = w
    G[torch.arange(len(i)), j] = -w
    with warnings.catch_warnings():  # torch: "Sparse CSR tensor support is in beta state"
        warnings.filterwarnings("ignore", "Sparse CSR tensor support", UserWarning)
        return (G.T @ G).to_sparse_csr()


def laplace_1d(v, dim):
    """-v'' with zero Dirichlet ends along ``dim``, by slicing: each system on its own."""
    pad = [0, 0] * (v.dim() - 1 - dim % v.dim()) + [1, 1]
    w = torch.nn.functional.pad(v, pad)
    return 2 * v - w.narrow(dim, 0, v.shape[dim]) - w.narrow(dim, 2, v.shape[dim])


def test_integrators_reexport_linalg():
    assert integrators.cg_solve is linalg.cg_solve and integrators.CGError is linalg.CGError
    assert integrators.batched_tridiagonal_solve is linalg.batched_tridiagonal_solve


def test_cg_rows_matches_dense():
    A = spd(15)
    b = torch.randn(4, 15, dtype=F64)
    x = cg_solve(lambda v: v @ A.T, b, tol=1e-13)
    assert torch.allclose(x, torch.linalg.solve(A, b.T).T, rtol=0, atol=1e-11)
    # a state of several axes: (B, 3, 5), A acting on the flattened 15 entries
    b3 = b.reshape(4, 3, 5)
    x3 = cg_solve(lambda v: (v.reshape(4, 15) @ A.T).reshape(4, 3, 5), b3, tol=1e-13, x0=b3)
    assert torch.allclose(x3.reshape(4, 15), x, rtol=0, atol=1e-11)


@pytest.mark.parametrize("batch_dim", [1, -1])
def test_cg_columns_matches_dense(batch_dim):
    A = spd(12, seed=1)
    b = torch.randn(12, 5, dtype=F64)
    x = cg_solve(lambda v: A @ v, b, tol=1e-13, batch_dim=batch_dim)
    assert torch.allclose(x, torch.linalg.solve(A, b), rtol=0, atol=1e-11)


def test_cg_batch_independent_bitwise_columns():
    L = graph_laplacian(30)
    s = torch.tensor([0.0, 0.3, 5.0, 40.0], dtype=F64)  # iteration counts differ per column
    r = torch.randn(30, 4, dtype=F64)

    def lap(v):  # column by column: torch's CSR product of several columns may differ from
        # its one-column product in the last bit on some CPUs (AVX-512); cg_solve is tested here
        return torch.cat([L @ v[:, k:k + 1] for k in range(v.shape[1])], dim=1)

    y = cg_solve(lambda v: v + s * lap(v), r, tol=1e-12, batch_dim=-1)
    for j in range(4):
        alone = cg_solve(lambda v, j=j: v + s[j] * lap(v), r[:, j:j + 1], tol=1e-12,
                         batch_dim=-1)
        assert torch.equal(alone, y[:, j:j + 1]), j


@pytest.mark.parametrize("m", [50, 40_000])  # 40 000 entries: torch splits a lone sum
def test_cg_batch_independent_bitwise_rows(m):
    h = torch.tensor([0.05, 0.2, 0.01], dtype=F64)[:, None]
    b = torch.randn(3, m, dtype=F64)
    x = cg_solve(lambda v: v + h[:len(v)] * laplace_1d(v, 1), b, tol=1e-12)
    alone = cg_solve(lambda v: v + h[0] * laplace_1d(v, 1), b[:1], tol=1e-12)
    assert torch.equal(alone, x[:1])


def test_cg_zero_rhs_gives_zero():
    A = spd(8, seed=2)
    b = torch.randn(8, 3, dtype=F64)
    b[:, 1] = 0.0
    for x0 in (None, torch.ones_like(b)):
        x = cg_solve(lambda v: A @ v, b, tol=1e-13, x0=x0, batch_dim=1)
        assert torch.equal(x[:, 1], torch.zeros(8, dtype=F64))
        assert torch.allclose(x, torch.linalg.solve(A, b), rtol=0, atol=1e-11)


def test_cg_maxiter_raises_with_residual_and_advice():
    A = spd(15)
    b = torch.randn(4, 15, dtype=F64)
    with pytest.raises(CGError, match=r"did not converge in 2 iterations: 4 of 4 systems at "
                                      r"relative residual up to .* raise cg_maxiter"):
        cg_solve(lambda v: v @ A.T, b, tol=1e-13, maxiter=2)


def test_cg_indefinite_operator_raises():
    D = torch.tensor([1.0, -2.0], dtype=F64)
    with pytest.raises(CGError, match="not symmetric positive definite"):
        cg_solve(lambda v: v * D, torch.ones(3, 2, dtype=F64))


def test_cg_float32_tolerance_below_eps_converges():
    A = spd(20, seed=3)
    b = torch.randn(20, 6, dtype=F64)
    x = cg_solve(lambda v: A.float() @ v, b.float(), tol=1e-12, batch_dim=-1)
    ref = torch.linalg.solve(A, b)
    assert (x.double() - ref).norm() <= 1e-5 * ref.norm()


def test_shifted_solve_gradcheck():
    L = graph_laplacian(10, edges=20, seed=4)
    r = torch.randn(10, 4, dtype=F64, requires_grad=True)
    s = torch.tensor([0.0, 0.5, 0.0, 3.0], dtype=F64, requires_grad=True)  # s = 0 and mixed
    f = lambda r, s: shifted_solve(lambda v: L @ v, r, s, tol=1e-13)
    assert torch.autograd.gradcheck(f, (r, s))
    # rows layout, one shared scalar shift
    s0 = torch.tensor(0.7, dtype=F64, requires_grad=True)
    g = lambda r, s: shifted_solve(lambda v: v @ L.to_dense(), r, s, tol=1e-13, batch_dim=0)
    assert torch.autograd.gradcheck(g, (r.detach().T.clone().requires_grad_(), s0))


def test_shifted_solve_backward_matches_dense_formula():
    A = spd(6, seed=5) / 6
    r = torch.randn(6, 3, dtype=F64, requires_grad=True)
    s = torch.tensor([0.0, 0.4, 2.5], dtype=F64, requires_grad=True)
    w = torch.randn(6, 3, dtype=F64)
    y = shifted_solve(lambda v: A @ v, r, s, tol=1e-14)
    (w * y).sum().backward()
    r_dense = r.detach().clone().requires_grad_()
    s_dense = s.detach().clone().requires_grad_()
    eye = torch.eye(6, dtype=F64)
    y_dense = torch.stack([torch.linalg.solve(eye + s_dense[j] * A, r_dense[:, j])
                           for j in range(3)], 1)
    (w * y_dense).sum().backward()
    assert torch.allclose(y, y_dense, rtol=0, atol=1e-12)
    assert torch.allclose(r.grad, r_dense.grad, rtol=0, atol=1e-12)
    assert torch.allclose(s.grad, s_dense.grad, rtol=0, atol=1e-12)


def test_shifted_solve_gradients_batch_independent_bitwise():
    L = graph_laplacian(30, seed=6)
    r = torch.randn(30, 3, dtype=F64, requires_grad=True)
    s = torch.tensor([0.1, 2.0, 20.0], dtype=F64, requires_grad=True)
    shifted_solve(lambda v: L @ v, r, s, tol=1e-12).square().sum().backward()
    r1 = r.detach()[:, 2:].clone().requires_grad_()
    s1 = s.detach()[2:].clone().requires_grad_()
    shifted_solve(lambda v: L @ v, r1, s1, tol=1e-12).square().sum().backward()
    assert torch.equal(r1.grad, r.grad[:, 2:]) and torch.equal(s1.grad, s.grad[2:])


def tridiagonal(n, seed, symmetric):
    g = torch.Generator().manual_seed(seed)
    up = -torch.rand(n - 1, generator=g, dtype=F64)
    lo = up.clone() if symmetric else -torch.rand(n - 1, generator=g, dtype=F64)
    main = 2.5 + torch.rand(n, generator=g, dtype=F64)
    dense = torch.diag(main) + torch.diag(lo, -1) + torch.diag(up, 1)
    return lo, main, up, dense


@pytest.mark.parametrize("symmetric, main_shift, kind", [(True, 0.0, "pttrf"),
                                                         (False, 0.0, "gttrf"),
                                                         (True, -3.0, "gttrf")])
def test_tridiagonal_factor_matches_dense_and_solves_columns_on_their_own(symmetric, main_shift,
                                                                          kind):
    """SPD: L D Lᵀ; non-symmetric or indefinite: pivoted LU. Against a dense solve, for real
    and complex right-hand sides, and each column bitwise the same alone or with others."""
    n = 31
    lo, main, up, dense = tridiagonal(n, seed=1, symmetric=symmetric)
    main, dense = main + main_shift, dense + main_shift * torch.eye(n, dtype=F64)
    f = TridiagonalFactor(lo.numpy(), main.numpy(), up.numpy(), symmetric=symmetric)
    assert f.kind == kind
    x = torch.randn(n, 6, dtype=F64)
    y = torch.as_tensor(f.solve(x.numpy()))
    assert torch.allclose(y, torch.linalg.solve(dense, x), rtol=0, atol=1e-12)
    for j in range(6):
        assert torch.equal(torch.as_tensor(f.solve(x[:, j:j + 1].numpy())), y[:, j:j + 1])
    z = torch.complex(x, torch.randn(n, 6, dtype=F64))
    yz = torch.as_tensor(f.solve(z.numpy()))
    assert torch.allclose(yz, torch.linalg.solve(dense.to(z.dtype), z), rtol=0, atol=1e-12)


def test_tridiagonal_factor_errors():
    lo, main, up, _ = tridiagonal(5, seed=2, symmetric=True)
    with pytest.raises(ValueError, match="not positive definite"):
        TridiagonalFactor(lo.numpy(), (main - 5).numpy(), up.numpy(), symmetric=True,
                          require_spd=True)
    with pytest.raises(ValueError, match="singular"):
        TridiagonalFactor(0 * lo.numpy(), 0 * main.numpy(), 0 * up.numpy(), symmetric=False)


def test_batched_tridiagonal_solve_matches_dense_and_is_batch_independent():
    B, n = 5, 9
    g = torch.Generator().manual_seed(6)
    lo, up = torch.rand(B, n - 1, generator=g, dtype=F64), torch.rand(B, n - 1, generator=g,
                                                                      dtype=F64)
    main = 3 + torch.rand(B, n, generator=g, dtype=F64)
    rhs = torch.randn(B, n, generator=g, dtype=F64)
    x = batched_tridiagonal_solve(lo, main, up, rhs)
    M = torch.diag_embed(main) + torch.diag_embed(lo, -1) + torch.diag_embed(up, 1)
    assert torch.allclose(x, torch.linalg.solve(M, rhs[..., None])[..., 0], rtol=0, atol=1e-13)
    alone = batched_tridiagonal_solve(lo[2:3], main[2:3], up[2:3], rhs[2:3])
    assert torch.equal(alone, x[2:3])


@pytest.mark.parametrize("m", [7, 40_000])
def test_batched_dot_lone_row_sums_like_a_row_of_many(m):
    x = torch.randn(3, m, dtype=F64)
    d = batched_dot(x, x)
    assert torch.allclose(d, (x * x).sum(1), rtol=1e-14, atol=0)
    assert torch.equal(batched_dot(x[1:2], x[1:2]), d[1:2])
