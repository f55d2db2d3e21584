"""Two-dimensional toy classification problems for ODE-nets (seeded, in memory)."""
from __future__ import annotations

import math

import torch


def two_spirals(n: int = 400, *, turns: float = 1.5, noise: float = 0.05, seed: int = 0,
                dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaved spirals: points (n, 2) in about [-1, 1]², labels (n,) in {0, 1}."""
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n}")
    g = torch.Generator().manual_seed(seed)
    m = n // 2
    r = torch.sqrt(torch.rand(n, generator=g, dtype=torch.float64)) * 0.95 + 0.05
    phi = 2 * math.pi * turns * r
    arm = torch.stack([r * torch.cos(phi), r * torch.sin(phi)], dim=1)
    arm[m:] = -arm[m:]                       # the second spiral: the first turned by π
    x = arm + noise * torch.randn(arm.shape, generator=g, dtype=torch.float64)
    y = torch.cat([torch.zeros(m, dtype=torch.long), torch.ones(n - m, dtype=torch.long)])
    perm = torch.randperm(n, generator=g)
    return x[perm].to(dtype), y[perm]


def peaks_function(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """MATLAB's peaks(x, y), the level-set function of the 'peaks' problem."""
    return (3 * (1 - x) ** 2 * torch.exp(-x ** 2 - (y + 1) ** 2)
            - 10 * (x / 5 - x ** 3 - y ** 5) * torch.exp(-x ** 2 - y ** 2)
            - torch.exp(-(x + 1) ** 2 - y ** 2) / 3)


def peaks(n: int = 1000, *, classes: int = 5, seed: int = 0,
          dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """The 'peaks' problem of the layer-parallel papers: points uniform in [-3, 3]², class =
    which of ``classes`` equally populated bands of peaks(x, y) the point falls in.

    The points are returned scaled to [-1, 1]².
    """
    g = torch.Generator().manual_seed(seed)
    p = 6 * torch.rand(n, 2, generator=g, dtype=torch.float64) - 3
    z = peaks_function(p[:, 0], p[:, 1])
    ref = peaks_function(*(6 * torch.rand(2, 20000, generator=torch.Generator().manual_seed(1),
                                          dtype=torch.float64) - 3))
    edges = torch.quantile(ref, torch.linspace(0, 1, classes + 1, dtype=torch.float64)[1:-1])
    y = torch.bucketize(z, edges)
    return (p / 3).to(dtype), y


def split(x: torch.Tensor, y: torch.Tensor, fraction: float = 0.8):
    """The first ``fraction`` of the points for training, the rest for validation."""
    n = round(fraction * x.shape[0])
    return (x[:n], y[:n]), (x[n:], y[n:])
