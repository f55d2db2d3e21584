"""The plain graph convolutional network of Kipf & Welling (2017), thesis eq. 2.26:

    f_{l+1} = σ(Â f_l W_l),     Â = D̃^{-1/2} (A + I) D̃^{-1/2},

two layers (σ = ReLU, then log-softmax), dropout before each — the baseline of lesson 09.
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from .operators import normalized_adjacency, spmm


class GCN(nn.Module):
    """Two-layer GCN: log_softmax(Â dropout(relu(Â dropout(x) W_0)) W_1)."""

    def __init__(self, edge_index: torch.Tensor, num_nodes: int, in_features: int,
                 num_classes: int, *, hidden: int = 16, dropout: float = 0.5,
                 seed: int | None = None, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.A = normalized_adjacency(edge_index, num_nodes, dtype=dtype)  # symmetric: Âᵀ = Â
        self.dropout = float(dropout)
        gen = torch.Generator().manual_seed(seed) if seed is not None else None

        def glorot(rows, cols):
            a = math.sqrt(6.0 / (rows + cols))
            return nn.Parameter((torch.rand(rows, cols, generator=gen, dtype=dtype) * 2 - 1) * a)

        self.W0, self.W1 = glorot(in_features, hidden), glorot(hidden, num_classes)
        self.b0 = nn.Parameter(torch.zeros(hidden, dtype=dtype))
        self.b1 = nn.Parameter(torch.zeros(num_classes, dtype=dtype))

    def __deepcopy__(self, memo) -> GCN:
        # the graph is a constant shared by copies (torch cannot deep-copy a CSR tensor)
        memo[id(self.A)] = self.A
        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        new.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.dropout(x, self.dropout, self.training)
        f = torch.relu(spmm(self.A, self.A, x @ self.W0) + self.b0)
        f = F.dropout(f, self.dropout, self.training)
        return F.log_softmax(spmm(self.A, self.A, f @ self.W1) + self.b1, dim=-1)

    def parameter_groups(self, lr: float, weight_decay: float) -> list[dict]:
        """Weight decay on the first layer only, as in Kipf & Welling."""
        return [{"params": [self.W0, self.b0], "lr": lr, "weight_decay": weight_decay},
                {"params": [self.W1, self.b1], "lr": lr, "weight_decay": 0.0}]
