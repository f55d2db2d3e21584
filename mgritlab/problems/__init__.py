"""Model problems, each an MGRIT propagator ``step(u, i, level)`` for forward levels."""
from .base import Problem
from .dahlquist import Dahlquist
from .heat import GraphHeat, Heat1D, laplacian_1d
from .nonlinear import CubicDecay, ReactionDiffusion1D
from .registry import PROBLEMS, ProblemEntry, make_problem, problem_entry

__all__ = ["Problem", "Dahlquist", "Heat1D", "GraphHeat", "CubicDecay", "ReactionDiffusion1D",
           "laplacian_1d", "PROBLEMS", "ProblemEntry", "make_problem", "problem_entry"]
