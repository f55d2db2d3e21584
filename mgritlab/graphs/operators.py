"""Differential operators on a graph: weighted gradient G, divergence Gᵀ, Laplacian GᵀG.

For a graph with n nodes and m directed edges (an undirected edge appears twice, as (i, j) and
(j, i), as in PyG's ``edge_index``) the weighted gradient is the m × n matrix (thesis eq. 4.2;
Eliasof, Haber, Treister 2021, eq. 2)

    (G f)_ij = w_ij (f_i − f_j),        w_ij = 1 / sqrt(d̃_i d̃_j),

with degrees d̃ counted with self-loops (the GCN normalisation). A self-loop has zero gradient,
so it is left out of G (it only counts in d̃). The divergence is Gᵀ (n × m) and GᵀG (n × n) is a
symmetric positive semi-definite graph Laplacian; on CORA its largest eigenvalue is 1.0, so
forward Euler on f' = −GᵀG f is stable for h < 2 / λ_max = 2. (The PDE-GCN-D layer with both
edge directions and ReLU is f' = −½ GᵀG f KᵀK without dropout: h < 4/λ_max for K = I; see
:mod:`mgritlab.graphs.experiments`.)

The matrices are torch sparse CSR and are applied by SpMM to node features of shape (n, C):
all channels (and, in PDE-GCN-D, all layers of a batch) in one product. :class:`GatherScatter`
is the equivalent index/scatter implementation, kept as a reference for tests and benchmarks.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch


def _as_edge_index(edge_index: torch.Tensor, num_nodes: int | None) -> tuple[torch.Tensor, int]:
    edge_index = torch.as_tensor(edge_index, dtype=torch.long)
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"edge_index must have shape (2, m), got {tuple(edge_index.shape)}")
    n = int(edge_index.max()) + 1 if num_nodes is None else int(num_nodes)
    if edge_index.numel() and int(edge_index.max()) >= n:
        raise ValueError(f"edge_index refers to node {int(edge_index.max())} but num_nodes={n}")
    return edge_index, n


def degrees_with_self_loops(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """d̃_i = 1 + #{edges (i, j), j ≠ i}: the degree of A + I (self-loops in the input ignored)."""
    src, dst = edge_index
    keep = src != dst
    return torch.bincount(src[keep], minlength=num_nodes).to(torch.float64) + 1.0


def edge_weights(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """GCN weights w_ij = 1 / sqrt(d̃_i d̃_j) of the edges in ``edge_index`` (eq. 4.2)."""
    d = degrees_with_self_loops(edge_index, num_nodes)
    return (d[edge_index[0]] * d[edge_index[1]]).rsqrt()


class _SpMM(torch.autograd.Function):
    """y = A x with the transpose given, so backward is the SpMM x̄ = Aᵀ ȳ (no CSR transpose)."""

    @staticmethod
    def forward(A, At, x):
        return torch.sparse.mm(A, x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.At, ctx.A = inputs[1], inputs[0]

    @staticmethod
    def backward(ctx, grad):
        return None, None, _SpMM.apply(ctx.At, ctx.A, grad)

    @staticmethod
    def jvp(ctx, dA, dAt, dx):
        # forward mode (torch.autograd.forward_ad): linear in x, the matrix is a constant
        return _SpMM.apply(ctx.A, ctx.At, dx)


def spmm(A: torch.Tensor, At: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A @ x for a CSR matrix A (``At`` = Aᵀ, used in the backward pass) and dense x (k, C)."""
    return _SpMM.apply(A, At, x)


def _csr(rows, cols, vals, shape) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        coo = torch.sparse_coo_tensor(torch.stack([rows, cols]), vals, shape,
                                      check_invariants=True)
        return coo.coalesce().to_sparse_csr()


@dataclass(frozen=True, eq=False)
class GraphOperators:
    """G (m × n), Gᵀ (n × m) and GᵀG (n × n) of one graph as CSR matrices.

    ``grad``, ``div`` and ``lap`` act on node/edge features of shape (n, C) / (m, C) — several
    channels, or several layers' channels side by side, in one SpMM.
    """

    edge_index: torch.Tensor  # (2, m) without self-loops
    weight: torch.Tensor  # (m,) w_ij
    num_nodes: int
    G: torch.Tensor
    Gt: torch.Tensor
    GtG: torch.Tensor

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])

    @property
    def dtype(self) -> torch.dtype:
        return self.weight.dtype

    def grad(self, f: torch.Tensor) -> torch.Tensor:
        """Weighted gradient G f: node features (n, C) -> edge features (m, C)."""
        return spmm(self.G, self.Gt, f)

    def div(self, g: torch.Tensor) -> torch.Tensor:
        """Divergence Gᵀ g: edge features (m, C) -> node features (n, C)."""
        return spmm(self.Gt, self.G, g)

    def lap(self, f: torch.Tensor) -> torch.Tensor:
        """Graph Laplacian GᵀG f (n, C) -> (n, C), one SpMM with the assembled GᵀG."""
        return spmm(self.GtG, self.GtG, f)

    def __deepcopy__(self, memo) -> GraphOperators:
        # immutable graph data: a deep-copied model shares it (torch cannot deep-copy CSR)
        return self

    def to(self, dtype: torch.dtype | None = None, device=None) -> GraphOperators:
        return graph_operators(self.edge_index.to(device), self.num_nodes,
                               dtype=dtype or self.dtype, device=device)

    def gather_scatter(self) -> GatherScatter:
        return GatherScatter(self.edge_index, self.weight, self.num_nodes)


def graph_operators(
    edge_index: torch.Tensor,
    num_nodes: int | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    device=None,
) -> GraphOperators:
    """Assemble G, Gᵀ, GᵀG (eq. 4.2) from a PyG ``edge_index``; self-loops are dropped.

    Pass both directions of every undirected edge (PyG's convention); then GᵀG is twice the
    Laplacian with edge weights w_ij² summed once per undirected edge.
    """
    edge_index, n = _as_edge_index(edge_index, num_nodes)
    edge_index = edge_index[:, edge_index[0] != edge_index[1]].to(device)
    w = edge_weights(edge_index, n).to(device)
    m = edge_index.shape[1]
    e = torch.arange(m, device=device)
    rows, cols = torch.cat([e, e]), torch.cat([edge_index[0], edge_index[1]])
    vals = torch.cat([w, -w])
    G = _csr(rows, cols, vals, (m, n))
    Gt = _csr(cols, rows, vals, (n, m))
    GtG = _laplacian_csr(edge_index, w, n)
    return GraphOperators(edge_index, w.to(dtype), n, G.to(dtype), Gt.to(dtype), GtG.to(dtype))


def _laplacian_csr(edge_index: torch.Tensor, w: torch.Tensor, n: int) -> torch.Tensor:
    """GᵀG = Σ_e w_e² (e_i − e_j)(e_i − e_j)ᵀ assembled directly as CSR."""
    src, dst = edge_index
    w2 = w * w
    diag = torch.zeros(n, dtype=w.dtype, device=w.device).index_add(0, src, w2).index_add(
        0, dst, w2)
    loops = torch.arange(n, device=w.device)
    rows = torch.cat([src, dst, loops])
    cols = torch.cat([dst, src, loops])
    return _csr(rows, cols, torch.cat([-w2, -w2, diag]), (n, n))


@dataclass(frozen=True, eq=False)
class GatherScatter:
    """The same G, Gᵀ, GᵀG by indexing and ``index_add_`` (reference; much slower on CPU)."""

    edge_index: torch.Tensor
    weight: torch.Tensor
    num_nodes: int

    def grad(self, f: torch.Tensor) -> torch.Tensor:
        src, dst = self.edge_index
        return self.weight.to(f.dtype)[:, None] * (f[src] - f[dst])

    def div(self, g: torch.Tensor) -> torch.Tensor:
        src, dst = self.edge_index
        wg = self.weight.to(g.dtype)[:, None] * g
        out = g.new_zeros((self.num_nodes, g.shape[1]))
        return out.index_add(0, src, wg).index_add(0, dst, -wg)

    def lap(self, f: torch.Tensor) -> torch.Tensor:
        return self.div(self.grad(f))


def dense_gradient(edge_index: torch.Tensor, num_nodes: int | None = None,
                   dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """G as a dense m × n matrix, built row by row from the definition (for tests, small graphs)."""
    edge_index, n = _as_edge_index(edge_index, num_nodes)
    edge_index = edge_index[:, edge_index[0] != edge_index[1]]
    w = edge_weights(edge_index, n)
    G = torch.zeros(edge_index.shape[1], n, dtype=torch.float64)
    for k, (i, j) in enumerate(edge_index.t().tolist()):
        G[k, i] += w[k]
        G[k, j] -= w[k]
    return G.to(dtype)


def incidence_matrix(edge_index: torch.Tensor, num_nodes: int | None = None,
                     dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Unweighted incidence B (dense m × n, B_e = e_i − e_j) of the undirected edges i < j."""
    edge_index, n = _as_edge_index(edge_index, num_nodes)
    src, dst = edge_index
    pairs = torch.unique(torch.stack([torch.minimum(src, dst), torch.maximum(src, dst)], 1), dim=0)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    B = torch.zeros(pairs.shape[0], n, dtype=dtype)
    e = torch.arange(pairs.shape[0])
    B[e, pairs[:, 0]] = 1.0
    B[e, pairs[:, 1]] = -1.0
    return B


def laplacian(edge_index: torch.Tensor, num_nodes: int | None = None,
              dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Combinatorial Laplacian L = BᵀB = D − A (dense; small graphs)."""
    B = incidence_matrix(edge_index, num_nodes, dtype)
    return B.t() @ B


def normalized_adjacency(edge_index: torch.Tensor, num_nodes: int | None = None, *,
                         dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Â = D̃^{-1/2} (A + I) D̃^{-1/2} as CSR (the GCN propagation matrix, thesis eq. 2.26)."""
    edge_index, n = _as_edge_index(edge_index, num_nodes)
    edge_index = edge_index[:, edge_index[0] != edge_index[1]]
    loops = torch.arange(n).repeat(2, 1)
    ei = torch.cat([edge_index, loops], 1)
    d = degrees_with_self_loops(edge_index, n)
    vals = (d[ei[0]] * d[ei[1]]).rsqrt()
    return _csr(ei[0], ei[1], vals, (n, n)).to(dtype)


def largest_eigenvalue(ops: GraphOperators, *, iters: int = 500, tol: float = 1e-10,
                       seed: int = 0) -> float:
    """λ_max(GᵀG) by Lanczos (scipy ``eigsh``); forward Euler on f' = −GᵀG f is stable for
    h < 2 / λ_max."""
    import numpy as np
    import scipy.sparse as sp
    from scipy.sparse.linalg import eigsh

    A = ops.GtG.to(torch.float64)
    crow, col, val = A.crow_indices().numpy(), A.col_indices().numpy(), A.values().numpy()
    S = sp.csr_matrix((val, col, crow), shape=(ops.num_nodes, ops.num_nodes))
    v0 = np.random.default_rng(seed).standard_normal(ops.num_nodes)
    return float(eigsh(S, k=1, which="LA", v0=v0, maxiter=iters, tol=tol)[0][0])
