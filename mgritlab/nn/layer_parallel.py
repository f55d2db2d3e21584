"""Layer-parallel training: MGRIT replaces the forward and backward sweeps (thesis Algorithm 2).

:class:`LayerParallel` is a drop-in ``nn.Module`` for the residual layers of an ODE-net. Its
forward runs T₁ MGRIT iterations on the state equations (default 2), its backward T₂ MGRIT
iterations on the adjoint equations (default 1, ``direction=-1``), then assembles the
parameter gradient once from the design equations (see :mod:`mgritlab.nn.adjoint`;
Günther, Ruthotto, Schroder, Cyr, Gauger 2020, Algorithm 3). With few iterations the
gradient is inexact — that is the point: it is cheap and parallel, and still a descent direction.
``exact=True`` iterates both solves to a tolerance instead, which reproduces back-propagation.

Random layers (dropout) are frozen per forward/backward pair: the block draws its mask once in
``forward`` (:meth:`~mgritlab.nn.blocks.ODEBlock.draw_frozen`), every MGRIT iteration and the
adjoint reuse it, and ``last_frozen`` keeps it for :meth:`LayerParallel.serial`.

With an :class:`~mgritlab.mgrit.mpi.MPIPartition` the layers are split across ranks by the
solver; both solves gather their result on every rank, so every rank computes the loss, and
the design equations are evaluated for a disjoint share of the layers per rank and summed
with an allreduce: after ``loss.backward()`` every rank holds the full, identical gradient.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import torch
from torch import nn

from ..mgrit import MGRIT, MGRITDivergenceError, max_levels_for
from .adjoint import AdjointPropagator, StatePropagator, design_gradient
from .blocks import ODEBlock, SerialODENet


@dataclass
class SolveStats:
    """Residual history of one MGRIT solve (state or adjoint) of a :class:`LayerParallel`."""

    residuals: list[float]
    iterations: int
    converged: bool
    seconds: float
    warm_start: bool
    levels: int

    def __str__(self) -> str:
        r = ", ".join(f"{x:.2e}" for x in self.residuals)
        return (f"{self.iterations} it ({'warm' if self.warm_start else 'cold'} start, "
                f"{self.levels} levels, {self.seconds * 1e3:.1f} ms): residuals [{r}]")


@dataclass
class _Pair:
    """What one forward keeps for its backward."""

    states: torch.Tensor
    frozen: dict | None
    params: dict = field(repr=False)


class LayerParallelFunction(torch.autograd.Function):
    """x_N = Ψ(x_0; θ): MGRIT forward, MGRIT adjoint + design equations backward.

    ``apply(x0, module, frozen, *stacked_params)`` — the parameters are passed explicitly (in
    ``module.block.param_names`` order) so that autograd routes their gradients, and so that
    :func:`torch.autograd.gradcheck` can perturb them.
    """

    @staticmethod
    def forward(ctx, x0, module, frozen, *params):
        p = dict(zip(module.block.param_names, params))
        states = module.solve_state(x0.detach(), p, frozen)
        ctx.module = module
        ctx.pair = _Pair(states, frozen, p)
        ctx.save_for_backward(*params)  # raises if the optimizer changed them before backward
        return states[-1].clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        ctx.saved_tensors  # noqa: B018  (version check of the parameters)
        pair = ctx.pair
        adjoints, grads = ctx.module.solve_adjoint(pair.states, pair.params, pair.frozen,
                                                   grad_out)
        return (adjoints[0], None, None,
                *(grads[n] for n in ctx.module.block.param_names))


class LayerParallel(nn.Module):
    """The residual layers of ``block``, forward and backward by MGRIT (thesis Algorithm 2).

    Parameters
    ----------
    block : an :class:`~mgritlab.nn.blocks.ODEBlock` (its stacked parameters are trained).
    max_levels, cf : the MGRIT hierarchy in depth; ``depth`` must be a multiple of
        ``cf**(max_levels-1)`` so that every coarse layer sits on a fine layer.
    relax : per-level relaxation; default 'F' on the finest level and 'FCF' on coarse levels
        (TorchBraid's default).
    cycle : 'V' or 'F'.
    fwd_iters, bwd_iters : T₁ and T₂, the MGRIT iterations of the forward and the backward.
    exact : iterate both solves until the residual is below ``exact_rtol`` (default 1e-13 in
        float64, 1e-5 in float32) times the larger of the state size and the first residual,
        or for at most ``exact_max_iter`` iterations (default: depth).
    warm_start : start each solve from the previous call's state / adjoint (when the shapes
        match) instead of zeros.
    partition : None (one process) or an :class:`~mgritlab.mgrit.mpi.MPIPartition`.

    Attributes: ``stats`` {'forward': SolveStats, 'backward': SolveStats} of the last solves;
    ``last_frozen``: the random choices of the last forward (dropout masks), or None.
    """

    def __init__(self, block: ODEBlock, *, max_levels: int = 2, cf: int = 4, relax=None,
                 cycle: str = "V", fwd_iters: int = 2, bwd_iters: int = 1,
                 exact: bool = False, exact_rtol: float | None = None,
                 exact_max_iter: int | None = None, warm_start: bool = True, partition=None):
        super().__init__()
        if not isinstance(block, ODEBlock):
            raise TypeError(f"LayerParallel needs an ODEBlock (stacked residual layers), got "
                            f"{type(block).__name__}")
        for name, v in (("fwd_iters", fwd_iters), ("bwd_iters", bwd_iters)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive number of MGRIT iterations, got {v!r}")
        self.block = block
        self.max_levels, self.cf = max_levels, cf
        self.relax = relax if relax is not None else ["F"] + ["FCF"] * (max_levels - 1)
        self.cycle, self.fwd_iters, self.bwd_iters = cycle, fwd_iters, bwd_iters
        self.exact, self.exact_rtol, self.exact_max_iter = exact, exact_rtol, exact_max_iter
        self.warm_start, self.partition = warm_start, partition
        self.check_hierarchy(block.depth, max_levels, cf)
        self.stats: dict[str, SolveStats | None] = {"forward": None, "backward": None}
        self.last_frozen: dict | None = None
        self._warm: dict[str, torch.Tensor] = {}

    @staticmethod
    def check_hierarchy(depth: int, max_levels: int, cf: int) -> None:
        """Raise a ValueError saying what to change if ``depth`` does not fit the hierarchy."""
        if not isinstance(cf, int) or cf < 2:
            raise ValueError(f"cf must be an integer >= 2, got {cf!r}")
        if not isinstance(max_levels, int) or max_levels < 1:
            raise ValueError(f"max_levels must be a positive integer, got {max_levels!r}")
        fit = max_levels_for(depth + 1, cf)
        if max_levels > fit:
            raise ValueError(
                f"a network of depth {depth} with cf={cf} allows at most {fit} MGRIT level(s) "
                f"(the coarsest level needs at least one layer); use max_levels <= {fit}, a "
                f"smaller cf, or a deeper network (depth a multiple of {cf ** (max_levels - 1)})")
        m = cf ** (max_levels - 1)
        if depth % m:
            lo, hi = (depth // m) * m, (depth // m + 1) * m
            raise ValueError(
                f"depth {depth} is not divisible by cf**(max_levels-1) = {cf}**{max_levels - 1} "
                f"= {m}: every coarse layer must sit on a fine layer. Use a depth that is a "
                f"multiple of {m} (e.g. {lo or hi} or {hi}), or change cf / max_levels")

    # -- the module interface ------------------------------------------------------------
    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        params = self.block.layer_parameters()
        self._check_devices(x0, params)
        frozen = self.block.draw_frozen(x0)
        self.last_frozen = frozen
        return LayerParallelFunction.apply(x0, self, frozen, *params.values())

    def serial(self, frozen: dict | None = None) -> SerialODENet:
        """The equivalent serial network (shares the parameters; for checks and inference).

        ``frozen``: the dropout masks to reuse, e.g. ``self.last_frozen``.
        """
        return SerialODENet(self.block, frozen)

    def reset_warm_start(self) -> None:
        """Forget the stored state and adjoint: the next solves start from zeros."""
        self._warm.clear()

    def extra_repr(self) -> str:
        mode = "exact" if self.exact else f"T1={self.fwd_iters}, T2={self.bwd_iters}"
        return (f"levels={self.max_levels}, cf={self.cf}, relax={self.relax}, {mode}, "
                f"warm_start={self.warm_start}")

    # -- the two solves ------------------------------------------------------------------
    def _solve(self, direction: int, start: torch.Tensor, guess, propagator, iters):
        """One MGRIT solve; in exact mode to ``exact_rtol`` relative to the larger of the size
        of the states (start value, warm-start guess) and the first residual, since states
        that grow through the layers raise the round-off floor of the residual."""
        rtol = 0.0
        if self.exact:
            rtol = self.exact_rtol or (1e-13 if start.dtype == torch.float64 else 1e-5)
            sizes = [float(start.double().norm())]
            if guess is not None:
                sizes.append(float(guess.double().flatten(1).norm(dim=1).max()))
            scale = max(sizes) or math.sqrt(start.numel())
            tol, max_iter = rtol * scale, self.exact_max_iter or self.block.depth
        else:
            tol, max_iter = 0.0, iters
        solver = MGRIT(propagator, self.block.grid(start.device), max_levels=self.max_levels,
                       cf=self.cf, relax=self.relax, cycle=self.cycle, tol=tol, rtol=rtol,
                       max_iter=max_iter, direction=direction, partition=self.partition,
                       device=start.device)
        try:
            return solver.solve(start, guess)
        except MGRITDivergenceError as err:
            what = "state (forward)" if direction > 0 else "adjoint (backward)"
            raise MGRITDivergenceError(
                f"the layer-parallel {what} solve did not converge: the coarse levels take "
                f"steps of {self.cf}**l * h = {self.cf}**l * {self.block.h:.3g} through layers "
                f"that amplify too much. Use fewer levels (max_levels={self.max_levels - 1}), a "
                f"smaller cf, a deeper network or a shorter final time T "
                f"(T={self.block.T:g}).\n{err}") from err

    def _guess(self, key: str, like: torch.Tensor) -> torch.Tensor | None:
        g = self._warm.get(key) if self.warm_start else None
        shape = (self.block.depth + 1, *like.shape)
        if g is None or g.shape != shape or g.dtype != like.dtype or g.device != like.device:
            return None
        return g

    def _record(self, key: str, res, guess) -> None:
        self.stats[key] = SolveStats(list(res.residuals), res.iterations, res.converged,
                                     res.solve_seconds, guess is not None,
                                     len(res.hierarchy.levels))
        if self.exact and not res.converged:
            warnings.warn(f"exact mode: the {key} MGRIT solve stopped after {res.iterations} "
                          f"iterations at residual {res.residuals[-1]:.3e}; raise exact_max_iter "
                          f"or exact_rtol", RuntimeWarning, stacklevel=3)

    def solve_state(self, x0: torch.Tensor, params: dict, frozen=None) -> torch.Tensor:
        """x_0..x_N (N+1, *x0.shape) by T₁ MGRIT iterations (or to tolerance in exact mode)."""
        guess = self._guess("state", x0)
        prop = StatePropagator(self.block, params, frozen)
        res = self._solve(1, x0, guess, prop, self.fwd_iters)
        self._record("forward", res, guess)
        if self.warm_start:
            self._warm["state"] = res.u
        return res.u

    def solve_adjoint(self, states: torch.Tensor, params: dict, frozen, grad_out: torch.Tensor):
        """x̄_0..x̄_N by T₂ MGRIT iterations backward in depth, then the design gradient.

        Returns (adjoints (N+1, ...), {name: ∂J/∂θ (N, ...)}) — full on every rank.
        """
        guess = self._guess("adjoint", grad_out)
        prop = AdjointPropagator(self.block, params, frozen, states)
        g = grad_out.detach().to(states.dtype).contiguous()
        res = self._solve(-1, g, guess, prop, self.bwd_iters)
        self._record("backward", res, guess)
        if self.warm_start:
            self._warm["adjoint"] = res.u
        part = self.partition
        rank, size = (part.rank, part.size) if part is not None else (0, 1)
        N = self.block.depth
        mine = range(N * rank // size, N * (rank + 1) // size)
        grads = design_gradient(self.block, params, frozen, states, res.u, mine, prop.lin)
        if size > 1:
            _allreduce_sum(part, list(grads.values()))
        return res.u, grads

    def _check_devices(self, x0: torch.Tensor, params: dict) -> None:
        devices = {n: p.device for n, p in params.items()}
        if len(set(devices.values())) > 1:
            where = ", ".join(f"{n} on {d}" for n, d in devices.items())
            raise ValueError(f"the parameters of the block are on different devices ({where}); "
                             f"move the whole model to one device with model.to(device)")
        dev = next(iter(devices.values()), x0.device)
        if x0.device != dev:
            raise ValueError(f"the input is on {x0.device} but the parameters are on {dev}; "
                             f"move the input with x.to({str(dev)!r})")
        dtypes = {p.dtype for p in params.values()}
        if dtypes and dtypes != {x0.dtype}:
            raise ValueError(f"the input is {x0.dtype} but the parameters are "
                             f"{sorted(map(str, dtypes))}; convert one of them (model.to(dtype) "
                             f"or x.to(dtype))")


def _allreduce_sum(partition, tensors: list[torch.Tensor]) -> None:
    """Sum each tensor over the ranks of ``partition`` in place (through host memory)."""
    import numpy as np

    MPI = partition.MPI
    for t in tensors:
        buf = np.ascontiguousarray(t.detach().cpu().numpy())
        partition.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        t.copy_(torch.from_numpy(buf).to(t.device))
