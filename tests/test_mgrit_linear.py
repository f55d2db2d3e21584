"""MGRIT on diagonal linear problems (mgritlab.mgrit.linear) against independent oracles."""
import numpy as np
import pytest

from mgritlab.mgrit.linear import diagonal_errors


def parareal_errors(phi, psi, m, n_c, iterations, u0):
    """Two-level MGRIT with F-relaxation is parareal (Falgout et al. 2014): on the
    C-points, U_j^(k+1) = ψ U_(j-1)^(k+1) + (φ^m − ψ) U_(j-1)^(k), from U^(0) = (u0, 0, …)."""
    U = np.zeros((n_c + 1, phi.size))
    U[0] = u0
    exact = u0 * phi ** (m * n_c)
    out = []
    for _ in range(iterations):
        new = np.zeros_like(U)
        new[0] = u0
        for j in range(1, n_c + 1):
            new[j] = psi * new[j - 1] + (phi ** m - psi) * U[j - 1]
        U = new
        out.append(np.linalg.norm(U[-1] - exact) / np.linalg.norm(exact))
    return out


def test_two_levels_with_f_relaxation_are_parareal():
    rng = np.random.default_rng(0)
    lam = -rng.uniform(0.0, 0.5, 40)
    phi = 1 + 0.8 * lam                        # explicit fine steps
    psi = 1 + 3.2 * lam / (1 + 3.2 * 2.5)      # IMEX coarse steps, α = 2.5
    u0 = rng.uniform(0.5, 1.5, 40)
    got = diagonal_errors([phi, psi], 4, 64, 6, u0=u0)
    want = parareal_errors(phi, psi, 4, 16, 6, u0)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-14)
    assert got[1] > got[0]                     # this pair's error grows: not a trivial case


def test_f_relaxation_on_the_fine_level_is_exact_after_n_over_cf_iterations():
    lam = -np.linspace(0.01, 0.5, 30)
    h, cf, steps = 0.8, 2, 16
    factors = [1 + cf ** lv * h * lam / (1 + cf ** lv * h * (lv > 0)) for lv in range(3)]
    e = diagonal_errors(factors, cf, steps, steps // cf)
    assert e[-1] < 1e-12
    assert min(e[: steps // cf - 2]) > 1e-6    # and not before


def test_exact_coarse_factors_solve_in_one_iteration():
    phi = np.array([0.9, 0.5, -0.3, 1.1])
    e = diagonal_errors([phi, phi ** 2, phi ** 4], 2, 16, 2)
    assert max(e) < 1e-12


def test_complex_factors_and_bad_input():
    phi = np.exp(1j * np.linspace(0.1, 1.0, 5)) * 0.9
    e = diagonal_errors([phi, phi ** 2 * 0.99], 2, 8, 4)
    assert e[-1] < 1e-12 and e[0] > 1e-4
    with pytest.raises(ValueError, match="at least 2 levels"):
        diagonal_errors([phi], 2, 8, 1)
    with pytest.raises(ValueError, match="same length"):
        diagonal_errors([phi, phi[:3]], 2, 8, 1)
    with pytest.raises(ValueError, match="divisible"):
        diagonal_errors([phi, phi, phi], 4, 8, 1)
    with pytest.raises(ValueError, match="positive integer"):
        diagonal_errors([phi, phi], 2, 8, 0)
    with pytest.raises(ValueError, match="finite"):
        diagonal_errors([phi, phi * np.nan], 2, 8, 1)
    with pytest.raises(ValueError, match="one value per mode"):
        diagonal_errors([phi, phi], 2, 8, 1, u0=[1.0, 2.0])
