"""Linear stability of the one-step schemes (thesis §2.1.2 and §4.2).

Applied to Dahlquist's test equation y' = λy with step h, a one-step scheme gives
y_{n+1} = R(z) y_n with z = hλ. The scheme is stable when |R(z)| ≤ 1:

* forward Euler   R(z) = 1 + z                  (thesis §2.1.2): stable iff |1 + hλ| ≤ 1,
  for real λ < 0 iff h ≤ −2/λ (thesis eqs. 2.5–2.16);
* backward Euler  R(z) = 1 / (1 − z): stable for every h when Re λ ≤ 0 (A-stable);
* IMEX Euler with a shared diagonal α, i.e. y' = (λ + α) y − α y with −α y implicit
  (thesis eq. 4.9, Theorem 4.2.1): R = (1 + hλ + hα) / (1 + hα), the magnification factor.
  For λ = x + iy with x < 0 it is stable iff  α ≥ |λ|² / (−2x) − 1/h  (eq. 4.10).

:func:`two_level_bounds` turns a fine and a coarse factor into the two-level MGRIT bound of
Dobrev et al. (2017, Theorems 3.3–3.4; lesson 03): stability of each level is not enough, the
coarse step must also be close to m fine ones.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["R_forward_euler", "R_backward_euler", "R_imex", "amplification",
           "stability_region", "stable_step", "min_alpha", "two_level_bounds"]


def R_forward_euler(z):
    """R(z) = 1 + z (forward Euler, thesis §2.1.2)."""
    return 1.0 + np.asarray(z, dtype=complex)


def R_backward_euler(z):
    """R(z) = 1 / (1 − z) (backward Euler, thesis §2.1.2)."""
    z = np.asarray(z, dtype=complex)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 / (1.0 - z)


def R_imex(z, w):
    """R(z; w) = (1 + z + w) / (1 + w), z = hλ, w = hα ≥ 0 (IMEX Euler, thesis Thm 4.2.1).

    w = 0 gives forward Euler; the factor is the forward Euler step of size h/(1 + hα) applied
    to λ + α (thesis eq. 4.17).
    """
    z = np.asarray(z, dtype=complex)
    return (1.0 + z + w) / (1.0 + w)


def amplification(scheme: str, z, alpha_h: float = 0.0):
    """R(z) of a registered scheme ('forward_euler', 'backward_euler', 'imex_euler')."""
    if scheme == "forward_euler":
        return R_forward_euler(z)
    if scheme == "backward_euler":
        return R_backward_euler(z)
    if scheme == "imex_euler":
        return R_imex(z, alpha_h)
    raise ValueError(f"unknown scheme {scheme!r}: valid names are backward_euler, "
                     f"forward_euler, imex_euler")


def stability_region(R: Callable | str, re=(-3.0, 1.0), im=(-2.0, 2.0), n: int = 401,
                     **kwargs):
    """Sample |R(z)| on an n×n grid of the complex plane.

    ``R`` is a callable of a complex array or a scheme name (``kwargs`` go to
    :func:`amplification`, e.g. ``alpha_h``). Returns ``X, Y, absR, mask`` with
    ``mask = absR <= 1`` (the stability region); plot e.g. with
    ``plt.contourf(X, Y, mask, levels=[0.5, 1.5])``.
    """
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    if not (re[0] < re[1] and im[0] < im[1]):
        raise ValueError(f"need re=(lo, hi) and im=(lo, hi) with lo < hi, got {re}, {im}")
    if isinstance(R, str):
        name = R
        R = lambda z: amplification(name, z, **kwargs)
    X, Y = np.meshgrid(np.linspace(*re, n), np.linspace(*im, n))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        absR = np.abs(R(X + 1j * Y))
    absR = np.where(np.isnan(absR), np.inf, absR)
    return X, Y, absR, absR <= 1.0


def _check_lams(lam):
    lam = np.atleast_1d(np.asarray(lam, dtype=complex)).ravel()
    if lam.size == 0 or not np.all(np.isfinite(lam)):
        raise ValueError("eigenvalues must be a non-empty set of finite numbers")
    # round-off zeros (e.g. the null space of a graph Laplacian from eigvalsh) count as 0
    lam = np.where(np.abs(lam) <= 1e-12 * np.abs(lam).max(), 0.0, lam)
    bad = (lam.real >= 0) & (lam != 0)
    if bad.any():
        raise ValueError(
            f"eigenvalue {lam[bad][0]} has Re λ >= 0: the exact solution does not decay, so "
            f"no step size and no α helps: |R| <= 1 fails for a growing/oscillating mode; only "
            f"eigenvalues with Re λ < 0 (or λ = 0) can be handled")
    return lam


def stable_step(lam, scheme: str = "forward_euler", alpha: float = 0.0) -> float:
    """The largest h with |R(hλ)| ≤ 1 for every eigenvalue in ``lam`` (Re λ < 0 or λ = 0).

    Eigenvalues with |λ| ≤ 1e-12 max|λ| count as 0 (round-off in a computed null space).

    forward Euler: h ≤ −2 Re λ / |λ|², i.e. h ≤ −2/λ for real λ < 0 (thesis eqs. 2.5–2.16);
    backward Euler: every h (returns inf: A-stable);
    IMEX Euler with shift α: h (|λ|² + 2α Re λ) ≤ −2 Re λ, i.e. h ≤ −2/(λ + 2α) for real λ,
    and every h once |λ|² + 2α Re λ ≤ 0 (equivalent to eq. 4.10). At the boundary
    α = |λ|²/(−2 Re λ) that sum is 0 up to rounding; within 64 ulps of |λ|² it counts as 0 and
    the step is unlimited (inf), not 2/ε ≈ 4.5e15.
    """
    lam = _check_lams(lam)
    lam = lam[lam != 0]
    if scheme == "backward_euler" or lam.size == 0:
        if scheme not in ("forward_euler", "backward_euler", "imex_euler"):
            amplification(scheme, 0)
        return float("inf")
    if scheme == "forward_euler":
        alpha = 0.0
    elif scheme != "imex_euler":
        amplification(scheme, 0)  # raises the error listing valid names
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    x, m2 = lam.real, np.abs(lam) ** 2
    denom = m2 + 2 * alpha * x
    limited = denom > 64 * np.finfo(float).eps * m2
    hmax = np.where(limited, -2 * x / np.where(limited, denom, 1.0), np.inf)
    return float(hmax.min())


def min_alpha(eigenvalues, h: float) -> float:
    """The smallest α ≥ 0 making IMEX Euler with step h stable for every eigenvalue.

    For λ = x + iy with x < 0, |1 + hλ + hα| ≤ 1 + hα  ⇔  α ≥ |λ|²/(−2x) − 1/h
    (thesis eq. 4.10); λ = 0 needs nothing. Raises ValueError if some Re λ ≥ 0 with λ ≠ 0,
    since no α helps there.
    """
    if not (np.isfinite(h) and h > 0):
        raise ValueError(f"the step size must be positive, got h={h}")
    lam = _check_lams(eigenvalues)
    lam = lam[lam != 0]
    if lam.size == 0:
        return 0.0
    need = np.abs(lam) ** 2 / (-2 * lam.real) - 1.0 / h
    return float(max(0.0, need.max()))


def two_level_bounds(phi, phi_c, m: int, n_c: int) -> tuple[float, float]:
    """Bounds on the two-level MGRIT error propagators for a linear problem whose fine and
    coarse steps share eigenvectors, with fine factors φ_ω and coarse factors φ_c,ω
    (Dobrev, Kolev, Petersson, Schroder 2017, Theorems 3.3 and 3.4; lesson 03):

        ‖E_F‖   ≤ max_ω |φ_ω^m − φ_c,ω| (1 − |φ_c,ω|^N_c) / (1 − |φ_c,ω|),
        ‖E_FCF‖ ≤ max_ω |φ_ω|^m |φ_ω^m − φ_c,ω| (1 − |φ_c,ω|^(N_c−1)) / (1 − |φ_c,ω|),

    m = cf, N_c = N/m coarse steps; the geometric sum is N_c (N_c − 1) at |φ_c| = 1. The norm
    is the 2-norm in the basis of the shared eigenvectors (for normal steps, the plain one).
    Below 1, the two-level iteration contracts in every iteration; above 1 the bound promises
    nothing (it is not a proof of divergence). Returns (F bound, FCF bound).
    """
    phi = np.atleast_1d(np.asarray(phi, dtype=complex)).ravel()
    phi_c = np.atleast_1d(np.asarray(phi_c, dtype=complex)).ravel()
    if phi.size == 0 or phi.shape != phi_c.shape:
        raise ValueError(f"phi and phi_c need one factor per eigenvalue, the same number of "
                         f"each (got {phi.size} and {phi_c.size})")
    if not (np.all(np.isfinite(phi)) and np.all(np.isfinite(phi_c))):
        raise ValueError("phi and phi_c must be finite")
    if int(m) != m or m < 2 or int(n_c) != n_c or n_c < 2:
        raise ValueError(f"need an integer coarsening factor m >= 2 and n_c >= 2 coarse "
                         f"steps, got m={m}, n_c={n_c}")
    m, n_c = int(m), int(n_c)
    a = np.abs(phi_c)

    def geometric(n):  # (1 − a^n)/(1 − a), = n at a = 1
        one = np.isclose(a, 1.0, rtol=0.0, atol=1e-12)
        return np.where(one, n, (1 - a ** n) / np.where(one, 1.0, 1 - a))

    gap = np.abs(phi ** m - phi_c)
    return (float(np.max(gap * geometric(n_c))),
            float(np.max(np.abs(phi) ** m * gap * geometric(n_c - 1))))
