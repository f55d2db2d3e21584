"""Multigrid reduction in time (MGRIT-FAS): hierarchy, relaxation, FAS cycles and solve()."""
from .hierarchy import Hierarchy, Level, Propagator, build_hierarchy, max_levels_for, uniform_grid
from .partition import SerialPartition, block_bounds
from .relaxation import LevelBlock, c_relax, c_residual, f_relax, sequential_sweep
from .sequential import sequential_solve
from .solver import MGRIT, MGRITDivergenceError, MGRITResult, solve
from .transfer import fas_restrict, ideal_interpolate, restrict_inject

__all__ = ["Hierarchy", "Level", "Propagator", "build_hierarchy", "max_levels_for",
           "uniform_grid", "sequential_solve", "SerialPartition", "block_bounds", "LevelBlock",
           "f_relax", "c_relax", "c_residual", "sequential_sweep", "fas_restrict",
           "ideal_interpolate", "restrict_inject", "MGRIT", "MGRITResult",
           "MGRITDivergenceError", "solve"]
