"""Multigrid reduction in time (MGRIT-FAS)."""
from .hierarchy import Hierarchy, Level, Propagator, build_hierarchy, max_levels_for, uniform_grid
from .sequential import sequential_solve

__all__ = ["Hierarchy", "Level", "Propagator", "build_hierarchy", "max_levels_for",
           "uniform_grid", "sequential_solve"]
