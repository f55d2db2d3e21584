"""Time integrators for semilinear ODEs ``u' = -L u + g(t, u)`` (thesis §2.1.2, §4.2).

    ode = SemilinearODE(L, g, state_shape=...)             # ode.py
    u_next = get_stepper("imex_euler").step(ode, u, t, h)  # steppers.py: three Euler schemes

L may be None, a scalar α, a diagonal (tensor of the state's shape), a matrix (dense torch or
numpy, scipy sparse) or a symmetric positive semi-definite callable ``L(v) -> L v``;
:func:`make_operator` turns it into one operator class per form (operators.py), each with
``apply``, ``solve_shifted(rhs, h)`` = (I + hL)^{-1} rhs, Newton's ``solve_jacobian`` and
``as_dense``. Factorisations of I + hL are cached per step size: SPD tridiagonal matrices use
LAPACK's ``dpttrf/dpttrs``, other sparse matrices ``scipy.sparse.linalg.splu``, dense matrices
Cholesky or LU in torch, callables batched CG (:func:`mgritlab.linalg.cg_solve`). A state's
result never depends on the other states of its batch, on uniform and non-uniform grids.
"""
from ..linalg import CGError, batched_tridiagonal_solve, cg_solve
from .ode import SemilinearODE
from .operators import (
    SYMMETRY_RTOL,
    CGOperator,
    DenseOperator,
    DiagonalOperator,
    Operator,
    ScalarOperator,
    SparseOperator,
    TridiagonalOperator,
    ZeroOperator,
    make_operator,
)
from .steppers import (
    STEPPERS,
    BackwardEuler,
    ForwardEuler,
    IMEXEuler,
    NewtonError,
    Stepper,
    get_stepper,
)

__all__ = [
    "SemilinearODE", "Stepper", "ForwardEuler", "BackwardEuler", "IMEXEuler", "STEPPERS",
    "get_stepper", "NewtonError", "CGError", "cg_solve", "batched_tridiagonal_solve",
    "Operator", "ZeroOperator", "ScalarOperator", "DiagonalOperator", "DenseOperator",
    "SparseOperator", "TridiagonalOperator", "CGOperator", "make_operator", "SYMMETRY_RTOL",
]
