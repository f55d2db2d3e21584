"""Nested iteration in depth: train a coarse network first, then refine it (Cyr, Günther,
Schroder 2019, "Multilevel initialization for layer-parallel deep neural network training").

A network with N/m layers of step m·h approximates the same ODE as one with N layers of step h.
Training it is m times cheaper; its parameters, prolonged piecewise constantly in depth
(θ^fine_k = θ^coarse_{⌊k/m⌋}, same final time T), give the fine network an initialisation that
already computes nearly the same function, so fewer fine epochs are needed.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .network import ODENet


def nested_training(net: ODENet, train: Callable[[ODENet, int], Any], *,
                    refinements: int = 2, factor: int = 2, **lp_options):
    """Train ``net``, refine it by ``factor``, train again, ``refinements`` times.

    ``train(net, stage)`` trains in place (stage 0 is the coarsest) and returns anything —
    e.g. a history — collected in the returned list. It must build its optimizer for the
    network it is given, since every refinement creates new parameters.
    ``lp_options`` override the layer-parallel options of the refined networks.
    Returns ``(finest network, [train's result per stage])``.
    """
    if not isinstance(refinements, int) or refinements < 0:
        raise ValueError(f"refinements must be a non-negative integer, got {refinements!r}")
    results = []
    for stage in range(refinements + 1):
        results.append(train(net, stage))
        if stage < refinements:
            net = net.refine(factor, **lp_options)
    return net, results


def coarse_depths(depth: int, refinements: int, factor: int = 2) -> list[int]:
    """The depths of nested training that ends at ``depth``: [depth/factor^r, ..., depth]."""
    m = factor ** refinements
    if depth % m:
        raise ValueError(f"depth {depth} is not divisible by factor**refinements = {m}; use a "
                         f"depth that is a multiple of {m} or fewer refinements")
    return [depth // factor ** (refinements - s) for s in range(refinements + 1)]
