"""mgritlab: a notebook-first teaching package for parallel-in-time (MGRIT-FAS) and
layer-parallel training.  See README.md for the course map.

Docstrings cite sources by short keys given in full in REFERENCES.md; "the thesis" is
O. E. Kara, *On Enabling Layer-Parallelism for Graph Neural Networks using IMEX Integration*,
MMath thesis, University of Waterloo, 2024, and its equation numbers are the thesis's own."""

__version__ = "0.1.0"
