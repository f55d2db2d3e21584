"""Amplification factors, stability regions, stable steps and the IMEX α bound."""
import numpy as np
import pytest
import torch

from mgritlab.integrators import SemilinearODE, get_stepper
from mgritlab.stability import (
    R_backward_euler,
    R_forward_euler,
    R_imex,
    amplification,
    min_alpha,
    stability_region,
    stable_step,
    two_level_bounds,
)

Z = np.array([-2.5, -1.0 + 0.5j, 0.3j, -0.1 - 2j, 0.2])


def test_formulas():
    assert np.allclose(R_forward_euler(Z), 1 + Z)
    assert np.allclose(R_backward_euler(Z), 1 / (1 - Z))
    assert np.allclose(R_imex(Z, 0.0), 1 + Z)
    assert np.allclose(R_imex(Z, 1.5), (1 + Z + 1.5) / 2.5)
    assert np.allclose(amplification("imex_euler", Z, alpha_h=1.5), R_imex(Z, 1.5))
    with pytest.raises(ValueError, match="valid names"):
        amplification("rk4", Z)


@pytest.mark.parametrize("name", ["forward_euler", "backward_euler"])
def test_R_matches_one_step_of_the_stepper(name):
    h = 0.3
    lam = torch.tensor([-1.0 + 2j, -4.0, -0.5j], dtype=torch.complex128)
    ode = SemilinearODE(-lam)
    out = get_stepper(name).step(ode, torch.ones(1, 3, dtype=torch.complex128),
                                 torch.zeros(1, dtype=torch.float64), h)
    assert np.allclose(out[0].numpy(), amplification(name, h * lam.numpy()))


def test_imex_R_matches_stepper():
    h, alpha, lam = 0.4, 3.0, -2.0 + 1.0j
    # y' = λ y written as -α y (implicit) + (λ + α) y (explicit)
    ode = SemilinearODE(alpha, lambda t, u: (lam + alpha) * u)
    out = get_stepper("imex_euler").step(ode, torch.ones(1, 1, dtype=torch.complex128),
                                         torch.zeros(1, dtype=torch.float64), h)
    assert np.isclose(complex(out[0, 0]), complex(R_imex(h * lam, h * alpha)))


def test_stability_region():
    X, Y, absR, mask = stability_region("forward_euler", re=(-3, 1), im=(-2, 2), n=201)
    assert X.shape == Y.shape == absR.shape == mask.shape == (201, 201)
    assert np.array_equal(mask, np.abs(1 + X + 1j * Y) <= 1)
    area = mask.mean() * 16
    assert abs(area - np.pi) < 0.1  # the disc |1 + z| <= 1
    _, _, _, mb = stability_region(R_backward_euler, n=101)
    assert mb[50, 0] and not mb[50, 90] and not mb[50, 100]  # z=-3 stable; z=0.6, 1 not
    _, _, _, mi = stability_region("imex_euler", alpha_h=2.0, n=101)
    assert mi.sum() > mask[::2, ::2].sum()  # α enlarges the region
    with pytest.raises(ValueError):
        stability_region("forward_euler", re=(1, -1))


def test_stable_step():
    assert stable_step(-4.0, "forward_euler") == pytest.approx(0.5)  # h < -2/λ
    assert stable_step([-4.0, -10.0], "forward_euler") == pytest.approx(0.2)
    assert stable_step(-1 + 1j, "forward_euler") == pytest.approx(1.0)  # -2x/|λ|^2
    assert stable_step(-4.0, "backward_euler") == float("inf")
    assert stable_step(-4.0, "imex_euler", alpha=1.0) == pytest.approx(2 / (4 - 2))
    assert stable_step(-4.0, "imex_euler", alpha=2.0) == float("inf")
    h = stable_step(-3 + 2j, "imex_euler", alpha=0.5)
    assert abs(R_imex(h * (-3 + 2j), h * 0.5)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="Re λ >= 0"):
        stable_step(0.5, "forward_euler")


def test_stable_step_is_unlimited_at_the_alpha_boundary():
    """At α = |λ|²/(−2 Re λ) IMEX Euler is stable for every h: inf, not 2/ε from rounding
    (lesson 08 printed 4503599627370496.000 there)."""
    rng = np.random.default_rng(0)
    lam = -rng.uniform(0.01, 10, 200) + 1j * rng.uniform(-10, 10, 200)
    for lam_k in lam:
        alpha = abs(lam_k) ** 2 / (-2 * lam_k.real)
        assert stable_step(lam_k, "imex_euler", alpha=alpha) == float("inf")
        # just below the boundary the step is finite and |R| = 1 there (independent check)
        a = alpha * (1 - 1e-6)
        h = stable_step(lam_k, "imex_euler", alpha=a)
        assert np.isfinite(h) and abs(R_imex(h * lam_k, h * a)) == pytest.approx(1.0)
    assert stable_step([-1.0, -4.0], "imex_euler", alpha=0.5) == pytest.approx(2 / (4 - 1))


def test_min_alpha():
    lam = np.array([-1 + 5j, -0.2 + 1j, -10.0, 0.0])
    h = 0.5
    a = min_alpha(lam, h)
    assert a == pytest.approx(max(np.abs(lam[:3]) ** 2 / (-2 * lam[:3].real) - 1 / h))
    assert np.all(np.abs(R_imex(h * lam, h * a)) <= 1 + 1e-12)
    assert np.abs(R_imex(h * lam, h * a * 0.99)).max() > 1
    assert min_alpha([-0.1], 1.0) == 0.0
    with pytest.raises(ValueError, match="no α helps"):
        min_alpha([-1.0, 2j], 0.1)
    with pytest.raises(ValueError, match="positive"):
        min_alpha([-1.0], 0.0)


def test_roundoff_zero_eigenvalues_are_zero():
    lam = np.array([4e-17, -1.0, -4.0])
    assert stable_step(lam, "forward_euler") == pytest.approx(0.5)
    assert min_alpha(lam, 1.0) == pytest.approx(1.0)


def _two_level_norms(phi, phi_c, m, n_c):
    """‖E_F‖₂ and ‖E_FCF‖₂ of one mode, from the C-point matrices (an independent oracle):
    A (Schur complement) has 1 and −φ^m below the diagonal, B (coarse) 1 and −φ_c;
    E_F = I − B⁻¹A, and FCF adds one CF sweep, E_FCF = E_F (I − A)."""
    shift = np.eye(n_c, k=-1)
    A = np.eye(n_c) - phi ** m * shift
    B = np.eye(n_c) - phi_c * shift
    e_f = np.eye(n_c) - np.linalg.solve(B, A)
    return np.linalg.norm(e_f, 2), np.linalg.norm(e_f @ (np.eye(n_c) - A), 2)


@pytest.mark.parametrize("lam, h, alpha, m", [
    (-0.5, 0.2, 2.5, 4), (-0.26, 0.8, 2.5, 4), (-0.3 + 1j, 0.125, 1.0, 4), (-3.0, 0.1, 1.0, 2)])
def test_two_level_bounds_hold_and_are_sharp_for_many_stable_coarse_steps(lam, h, alpha, m):
    for phi, phi_c in ((R_imex(h * lam, h * alpha), R_imex(m * h * lam, m * h * alpha)),
                       (R_backward_euler(h * lam), R_backward_euler(m * h * lam))):
        assert abs(phi_c) < 1
        for n_c in (4, 16, 256):
            bounds = two_level_bounds(phi, phi_c, m, n_c)
            norms = _two_level_norms(phi, phi_c, m, n_c)
            assert all(norm <= bound * (1 + 1e-12) for norm, bound in zip(norms, bounds))
        # the norms approach the bounds as N_c grows (one mode, |φ_c| < 1)
        assert all(norm >= 0.95 * bound for norm, bound in zip(norms, bounds))


def test_two_level_bounds_take_the_worst_mode_and_count_steps_at_unit_modulus():
    phi = np.array([0.9, 0.5, 1.0])
    phi_c = np.array([0.7, 0.2, 1.0])
    one = [two_level_bounds(p, c, 2, 8) for p, c in zip(phi, phi_c)]
    assert two_level_bounds(phi, phi_c, 2, 8) == tuple(max(b[i] for b in one) for i in (0, 1))
    # |φ_c| = 1: the geometric sums are N_c and N_c − 1 terms of 1
    assert two_level_bounds(0.5, 1.0, 2, 8) == pytest.approx((0.75 * 8, 0.25 * 0.75 * 7))
    assert two_level_bounds(1.0, 1.0, 4, 8) == (0.0, 0.0)  # the coarse step is exact


def test_the_two_level_bound_holds_for_the_solver_on_dahlquist():
    from mgritlab.mgrit import solve
    from mgritlab.problems import Dahlquist

    lam, n, m = -0.1 + 2j, 64, 4
    p = Dahlquist(lam, tf=8.0)
    h = 8.0 / n
    bound_f, bound_fcf = two_level_bounds(R_backward_euler(h * lam),
                                          R_backward_euler(m * h * lam), m, n // m)
    for relax, bound in (("F", bound_f), ("FCF", bound_fcf)):
        res = solve(p, p.u0, p.grid(n + 1), max_levels=2, cf=m, relax=relax, tol=1e-13,
                    max_iter=40)
        assert 0.3 * bound < max(res.conv_factors[:6]) <= bound * 1.05


@pytest.mark.parametrize("args, words", [
    (([0.5, 0.4], [0.1], 2, 8), "the same number"),
    (([], [], 2, 8), "the same number"),
    (([np.nan], [0.1], 2, 8), "finite"),
    (([0.5], [0.1], 1, 8), "m >= 2"),
    (([0.5], [0.1], 2, 1), "n_c >= 2"),
    (([0.5], [0.1], 2.5, 8), "integer")])
def test_two_level_bounds_reject_bad_input(args, words):
    with pytest.raises(ValueError, match=words):
        two_level_bounds(*args)
