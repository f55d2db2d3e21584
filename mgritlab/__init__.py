"""mgritlab: a notebook-first teaching package for parallel-in-time (MGRIT-FAS) and
layer-parallel training.  See README.md for the course map."""

__version__ = "0.1.0"
