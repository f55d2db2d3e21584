"""The numbers of Schroder (2022), Tables 1–20, as printed (iterations; None = "50+"), with
each table's problem, solver, cycle and learning rates as its caption and text give them.

``alpha_b`` is the caption's value; where the text disagrees it says so in ``note``.
Table 17's caption says F-cycle but the text calls it two-level, and its numbers repeat
Table 18's; it is kept as the two-level table the text describes.
"""
from __future__ import annotations

N_XOR = (100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600)
N_ADD_NAIVE = (40, 80, 160, 320, 640, 1280)
N_ADD = (100, 200, 400, 800, 1600, 3200, 6400, 12800)


def _t(number, problem, solver, cycle, alpha_b, alpha_max, steps, iters, rho, note=""):
    return dict(table=number, problem=problem, solver=solver, cycle=cycle, alpha_b=alpha_b,
                alpha_max=alpha_max, steps=steps, iterations=iters, rho=rho, note=note)


_ = None
TABLES = [
    _t(1, "xor", "naive", "two-level", 0.1, None, N_XOR,
       (14, 19, 24, 31, 40, 49, _, _, _), (0.31, 0.43, 0.48, 0.59, 0.66, 0.72, _, _, _),
       "the text says α_b = 1.0 (from Trask 2015); the caption says 0.1"),
    _t(2, "xor", "solver1", "two-level", 0.1, 8.0, N_XOR,
       (6, 6, 6, 6, 6, 6, 6, 6, 5), (0.10, 0.10, 0.10, 0.10, 0.09, 0.09, 0.08, 0.08, 0.07),
       "α_max = 8 'allows α to increase up to level 3', true for α_b = 1"),
    _t(3, "xor", "solver1", "F", 0.1, 8.0, N_XOR,
       (6, 6, 7, 7, 7, 8, 11, 16, 21), (0.10, 0.10, 0.09, 0.10, 0.09, 0.07, 0.17, 0.24, 0.34)),
    _t(4, "xor", "solver1", "F", 0.05, 8.0, N_XOR,
       (5, 5, 5, 6, 6, 5, 6, 9, 12), (0.07, 0.08, 0.08, 0.06, 0.05, 0.04, 0.05, 0.07, 0.18),
       "'decrease α_b from 0.1 to 0.05': half of Table 3's α_b"),
    _t(5, "xor", "solver2", "two-level", 0.1, 8.0, N_XOR,
       (10, 12, 15, 18, 20, 20, 20, 20, 19), (0.18, 0.23, 0.28, 0.36, 0.40, 0.39, 0.39, 0.38,
                                              0.38)),
    _t(6, "xor", "solver2", "F", 0.1, 8.0, N_XOR,
       (10, 12, 15, 21, 26, 27, 29, 41, 50), (0.18, 0.23, 0.29, 0.40, 0.47, 0.47, 0.50, 0.60,
                                              0.99)),
    _t(7, "xor", "solver3", "two-level", 0.1, 8.0, N_XOR,
       (10, 10, 11, 11, 10, 10, 10, 10, 10), (0.15, 0.17, 0.19, 0.18, 0.16, 0.16, 0.15, 0.14,
                                              0.14)),
    _t(8, "xor", "solver3", "F", 0.1, 8.0, N_XOR,
       (10, 10, 11, 11, 11, 11, 12, 14, 15), (0.14, 0.17, 0.19, 0.18, 0.17, 0.18, 0.21, 0.24,
                                              0.29)),
    _t(9, "binary_addition", "naive", "two-level", 0.1, None, N_ADD_NAIVE,
       (9, 13, 19, 36, 48, 50), (0.14, 0.27, 0.38, 0.63, 0.69, 0.88)),
    _t(10, "binary_addition", "solver1", "two-level", 0.1, 0.2, N_ADD_NAIVE,
       (9, _, _, _, _, _), (0.13, 1.01, 1.02, 1.02, 1.02, 1.02)),
    _t(11, "binary_addition", "naive", "two-level", 0.025, None, N_ADD_NAIVE,
       (8, 12, 17, 23, 31, 43), (0.11, 0.24, 0.37, 0.49, 0.61, 0.70)),
    _t(12, "binary_addition", "solver1", "two-level", 0.025, 0.2, N_ADD_NAIVE,
       (5, 7, 11, 16, 25, 37), (0.06, 0.12, 0.23, 0.36, 0.53, 0.63)),
    _t(13, "binary_addition", "solver1", "two-level", 0.025, 0.2, N_ADD,
       (4, 5, 7, 11, 14, 13, 14, 14), (0.04, 0.07, 0.15, 0.27, 0.35, 0.37, 0.39, 0.39),
       "50 training examples instead of 500"),
    _t(14, "binary_addition", "solver2", "two-level", 0.025, 0.2, N_ADD,
       (4, 4, 5, 5, 6, 6, 7, 11), (0.05, 0.07, 0.07, 0.09, 0.10, 0.13, 0.18, 0.29)),
    _t(15, "binary_addition", "solver2", "F", 0.025, 0.2, N_ADD,
       (4, 4, 5, 5, 6, 6, 8, 13), (0.05, 0.07, 0.07, 0.09, 0.10, 0.13, 0.17, 0.34)),
    _t(16, "binary_addition", "solver2", "V", 0.025, 0.2, N_ADD,
       (4, 5, 6, 7, 8, 9, 11, 22), (0.05, 0.08, 0.10, 0.13, 0.17, 0.20, 0.28, 0.51)),
    _t(17, "binary_addition", "solver3", "two-level", 0.025, 0.2, N_ADD,
       (4, 4, 6, 6, 6, 6, 6, 6), (0.04, 0.06, 0.07, 0.08, 0.10, 0.10, 0.10, 0.09),
       "caption says F-cycle, text says two-level; the numbers equal Table 18's"),
    _t(18, "binary_addition", "solver3", "F", 0.025, 0.2, N_ADD,
       (4, 4, 6, 6, 6, 6, 6, 6), (0.04, 0.06, 0.07, 0.08, 0.10, 0.10, 0.10, 0.09)),
    _t(19, "binary_addition", "solver3", "V", 0.025, 0.2, N_ADD,
       (4, 6, 8, 11, 13, 14, 16, 19), (0.05, 0.07, 0.15, 0.22, 0.30, 0.33, 0.36, 0.42)),
    _t(20, "binary_addition", "solver3", "F", 0.1, 0.2, N_ADD,
       (7, 8, 9, 9, 9, 9, 9, 9), (0.15, 0.17, 0.20, 0.20, 0.20, 0.20, 0.21, 0.22)),
]


def table(number: int) -> dict:
    """The paper's Table ``number`` (1–20)."""
    for t in TABLES:
        if t["table"] == number:
            return t
    raise ValueError(f"the paper has Tables 1–20, not {number!r}")
