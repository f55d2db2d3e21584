"""MGRIT over training steps (Schroder 2022): the paper's solvers, its tables and the
potential speedup; the propagator itself is :class:`mgritlab.problems.training.TrainingSteps`."""
from .solvers import CYCLES, SOLVERS, Solver, levels_for, paper_sigma, run

__all__ = ["CYCLES", "SOLVERS", "Solver", "levels_for", "paper_sigma", "run"]
