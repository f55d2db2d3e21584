"""Layer-parallel training: MGRIT replaces the forward and backward sweeps (thesis Algorithm 2).

:class:`LayerParallel` is a drop-in ``nn.Module`` for the layers of any
:class:`~mgritlab.nn.blocks.LayerStack`. Its forward runs T₁ MGRIT iterations on the state
equations (default 2), its backward T₂ MGRIT iterations on the adjoint equations (default 1,
``direction=-1``), then assembles the parameter gradient once from the design equations (see
:mod:`mgritlab.nn.adjoint`; Günther, Ruthotto, Schroder, Cyr, Gauger 2020, Algorithm 3). With
few iterations the gradient is inexact — that is the point: it is cheap and parallel, and still
a descent direction. ``exact=True`` iterates both solves to a tolerance instead, which
reproduces back-propagation. ``max_levels=1`` is the serial network: MGRIT on one level is
sequential stepping through the same layer steps.

Random layers (dropout) are frozen per forward/backward pair: the block draws one frozen object
in ``forward`` (:meth:`~mgritlab.nn.blocks.LayerStack.draw_frozen`, or the caller passes it),
every MGRIT iteration and the adjoint reuse it, and ``last_frozen`` keeps it for
:meth:`LayerParallel.serial`. The same object carries per-step data that is not a state: a
recurrent network's inputs x_t (:mod:`mgritlab.recurrent`), passed as ``frozen``.

Parameters shared by all layers (``LayerStack.shared_names``: a recurrent network's weights)
get one design-equation contribution per layer; they are summed per block of cf^(L−1) layers,
then over the blocks in order, so the gradient is bitwise the same on any number of ranks.

Distributed means distributed. With an :class:`~mgritlab.mgrit.mpi.MPIPartition` the layers are
split across ranks in blocks of whole coarsest intervals, and no rank holds all states: a rank
keeps the states of its own layers (plus its right neighbour's first state, which its adjoint
steps need), solves the adjoint on the mirrored partition (its adjoint block sits right next to
its state block), and computes the design gradient of its own layers. What travels: one state
per neighbour per relaxation exchange inside MGRIT, the final state x_N (for the loss, from the
last rank to all), the input adjoint x̄_0 (from rank 0 to all), and the allreduce that sums the
ranks' disjoint gradient blocks (for a shared parameter its disjoint block sums) — so after
``loss.backward()`` every rank holds the full, identical gradient and the optimisers stay in
lockstep.
"""
from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass, field
from itertools import pairwise

import torch
from torch import nn

from ..mgrit import MGRIT, MGRITDivergenceError, SerialPartition, max_levels_for
from .adjoint import AdjointPropagator, StatePropagator, StateWindow, design_gradient, sum_chunks
from .blocks import LayerStack, SerialODENet

PHASES = ("forward", "adjoint", "gradient", "communication")
#: on_divergence='raise' warns (once) when one MGRIT iteration multiplies the residual by more
#: than this and no coarse level is diagnosed unstable (an exploding network, not MGRIT's fault)
GROWTH_WARNING = 10.0


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
    """What one forward keeps for its backward: this process's states and the frozen draws."""

    states: StateWindow
    frozen: object
    params: dict = field(repr=False)



def _caller_level() -> int:
    """``stacklevel`` of the first frame outside mgritlab and torch, so that a warning points
    at the user's line (the solve runs inside torch.autograd.Function.apply)."""
    import sys

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    torch_dir = os.path.dirname(os.path.abspath(torch.__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(
            (here, torch_dir)):
        frame, level = frame.f_back, level + 1
    return level

class LayerParallelFunction(torch.autograd.Function):
    """x_N = Ψ(x_0; θ): MGRIT forward, MGRIT adjoint + design equations backward.

    ``apply(x0, module, frozen, *stacked_params)`` — the parameters are passed explicitly (in
    ``module.block.param_names`` order) so that autograd routes their gradients, and so that
    :func:`torch.autograd.gradcheck` can perturb them.
    """

    @staticmethod
    def forward(ctx, x0, module, frozen, *params):
        p = dict(zip(module.block.param_names, params))
        states, xN = module.solve_state(x0.detach(), p, frozen)
        ctx.module = module
        ctx.pair = _Pair(states, frozen, p)
        ctx.save_for_backward(*params)  # raises if the optimizer changed them before backward
        return xN

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        ctx.saved_tensors  # noqa: B018  (version check of the parameters)
        pair = ctx.pair
        adj0, grads = ctx.module.solve_adjoint(pair.states, pair.params, pair.frozen, grad_out)
        return (adj0, None, None, *(grads[n] for n in ctx.module.block.param_names))


class LayerParallel(nn.Module):
    """The layers of ``block``, forward and backward by MGRIT (thesis Algorithm 2).

    Parameters
    ----------
    block : a :class:`~mgritlab.nn.blocks.LayerStack` (its stacked parameters are trained).
    max_levels, cf : the MGRIT hierarchy in depth; ``depth`` must be a multiple of
        ``cf**(max_levels-1)`` so that every coarse layer sits on a fine layer. Coarse level ℓ
        takes steps cf^ℓ·h with the weights of the fine layer at the coarse point; a block
        with a per-level scheme (e.g. PDE-GCN-D's IMEX term per level) reads ℓ in its step.
    relax : per-level relaxation; default 'F' on the finest level and 'FCF' on coarse levels
        (TorchBraid's default).
    cycle : 'V' or 'F'.
    fwd_iters, bwd_iters : T₁ and T₂, the MGRIT iterations of the forward and the backward.
    exact : iterate both solves until the residual is below ``exact_rtol`` (default 1e-13 in
        float64, 1e-5 in float32) times the larger of the state size and the first residual,
        or for at most ``exact_max_iter`` iterations (default: depth).
    warm_start : start each solve from the previous call's state / adjoint (when the shapes
        match) instead of zeros; training and evaluation passes keep separate starts.
    partition : None (one process) or an :class:`~mgritlab.mgrit.mpi.MPIPartition`.
    on_divergence : 'raise' (default): a solve whose residual grows while a coarse level is
        unstable raises :class:`~mgritlab.mgrit.MGRITDivergenceError` naming the level and
        what would stabilise it; a residual that grows more than ``GROWTH_WARNING`` (10) times
        in one iteration with no coarse level to blame (layers that amplify on every level:
        the network's property, not MGRIT's) is reported once as a RuntimeWarning. 'warn':
        train on with the inexact solves, as TorchBraid does (to reproduce experiments that
        did so); the first growth is reported once as a RuntimeWarning. Either warning is kept
        in ``divergence_warning``. A non-finite residual always raises.

    Attributes: ``stats`` {'forward': SolveStats, 'backward': SolveStats} of the last solves;
    ``seconds`` {phase: seconds} summed since the last :meth:`reset_seconds` (phases
    'forward', 'adjoint' MGRIT, 'gradient' assembly, 'communication' outside MGRIT);
    ``last_frozen``: the random choices of the last forward (dropout masks), or None.
    """

    def __init__(self, block: LayerStack, *, max_levels: int = 2, cf: int = 4, relax=None,
                 cycle: str = "V", fwd_iters: int = 2, bwd_iters: int = 1,
                 exact: bool = False, exact_rtol: float | None = None,
                 exact_max_iter: int | None = None, warm_start: bool = True, partition=None,
                 on_divergence: str = "raise"):
        super().__init__()
        if not isinstance(block, LayerStack):
            raise TypeError(f"LayerParallel needs a LayerStack (stacked layers with a batched "
                            f"step, e.g. an ODEBlock), got {type(block).__name__}")
        for name, v in (("fwd_iters", fwd_iters), ("bwd_iters", bwd_iters)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive number of MGRIT iterations (T1, "
                                 f"T2 >= 1), got {v!r}")
        if on_divergence not in ("raise", "warn"):
            raise ValueError(f"on_divergence must be 'raise' or 'warn', got {on_divergence!r}")
        self.on_divergence = on_divergence
        self.divergence_warning: str | None = None
        self.check_hierarchy(block.depth, max_levels, cf)
        block.check_levels(max_levels)
        self.block = block
        self.max_levels, self.cf = max_levels, cf
        self.relax = relax if relax is not None else ["F"] + ["FCF"] * (max_levels - 1)
        self.cycle, self.fwd_iters, self.bwd_iters = cycle, fwd_iters, bwd_iters
        self.exact, self.exact_rtol, self.exact_max_iter = exact, exact_rtol, exact_max_iter
        self.warm_start = warm_start
        self.partition = partition if partition is not None else SerialPartition()
        self.stats: dict[str, SolveStats | None] = {"forward": None, "backward": None}
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self.last_frozen = None
        self._last_x0: torch.Tensor | None = None
        self._state_key = "state"
        self._bounds: dict[tuple, tuple[int, int]] = {}
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
    def forward(self, x0: torch.Tensor, frozen=None) -> torch.Tensor:
        """x_N for the input x_0; ``frozen``: this pass's random choices (default: drawn by
        the block)."""
        params = self.block.layer_parameters()
        self._check_devices(x0, params)
        if frozen is None:
            frozen = self.block.draw_frozen(x0)
        self.last_frozen = frozen
        # training and evaluation passes solve different problems (dropout): separate starts
        self._state_key = "state" if torch.is_grad_enabled() and self.training else "state/eval"
        return LayerParallelFunction.apply(x0, self, frozen, *params.values())

    def serial(self, frozen=None) -> SerialODENet:
        """The equivalent serial network (shares the parameters; one process, for checks).

        ``frozen``: the dropout masks to reuse, e.g. ``self.last_frozen``.
        """
        return SerialODENet(self.block, frozen)

    @torch.no_grad()
    def serial_forward(self, x0: torch.Tensor, frozen=None) -> torch.Tensor:
        """The exact x_N by sequential stepping, distributed like the MGRIT solves: each rank
        steps its own layers after receiving its left neighbour's last state (a pipeline);
        every rank returns x_N. No gradient."""
        solver = MGRIT(StatePropagator(self.block, self.block.layer_parameters(), frozen),
                       self.block.grid(x0.device), max_levels=1, partition=self.partition,
                       device=x0.device)
        res = solver.solve(x0, gather=False)
        return self._final_state(solver, res.u_local)

    @torch.no_grad()
    def forward_iterates(self, x0: torch.Tensor, frozen=None, iterations: int | None = None,
                         callback=None) -> list[float]:
        """The forward MGRIT solve of :meth:`forward` from zero (no warm start), for
        ``iterations`` iterations (default T₁) and with no divergence stop, calling
        ``callback(k, x_N)`` after iteration k with the last state (on every rank). Returns
        the residual history. For convergence studies: the error of x_N after k iterations
        against :meth:`serial_forward` (``graphs.mgrit_experiments.forward_error``)."""
        iterations = self.fwd_iters if iterations is None else iterations
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            raise ValueError(f"iterations must be a positive number of MGRIT iterations, got "
                             f"{iterations!r}")
        solver = self._solver(StatePropagator(self.block, self.block.layer_parameters(), frozen),
                              1, iterations, x0.device, watch=False)
        step = None if callback is None else (
            lambda k, u: callback(k, self._final_state(solver, u)))
        return solver.solve(x0, gather=False, callback=step).residuals

    def reset_warm_start(self) -> None:
        """Forget the stored states and adjoints: the next solves start from zeros."""
        self._warm.clear()

    def reset_seconds(self) -> dict[str, float]:
        """The seconds per phase since the last reset (and start counting afresh)."""
        out, self.seconds = self.seconds, dict.fromkeys(PHASES, 0.0)
        return out

    def warm_state(self) -> dict[str, torch.Tensor]:
        """This process's warm-start blocks (for checkpoints; see :meth:`load_warm_state`)."""
        return {k: v.clone() for k, v in self._warm.items()}

    def load_warm_state(self, state: dict[str, torch.Tensor]) -> None:
        self._warm = {k: v.clone() for k, v in state.items()}

    def local_layers(self) -> range:
        """The layers whose states (and design gradient) this process holds."""
        lo, hi = self._fine_bounds(1)
        return range(lo, min(hi, self.block.depth))

    def _fine_bounds(self, direction: int) -> tuple[int, int]:
        """[lo, hi) of this process's fine block in solver order (fixed by depth, levels, cf
        and partition: computed once)."""
        key = (direction, id(self.partition))
        if key not in self._bounds:
            self._bounds[key] = self._solver(None, direction, 0, None).bounds[0]
        return self._bounds[key]

    def extra_repr(self) -> str:
        mode = "exact" if self.exact else f"T1={self.fwd_iters}, T2={self.bwd_iters}"
        return (f"levels={self.max_levels}, cf={self.cf}, relax={self.relax}, {mode}, "
                f"warm_start={self.warm_start}, ranks={self.partition.size}")

    # -- the two solves ------------------------------------------------------------------
    def _solver(self, propagator, direction: int, iters: int, device, tol: float = 0.0,
                rtol: float = 0.0, max_iter: int | None = None, watch: bool = True) -> MGRIT:
        """The MGRIT solver of one solve; ``watch=False``: no divergence stop whatever
        ``on_divergence`` says (a convergence study wants every iterate)."""
        part = self.partition if direction > 0 else self.partition.reversed()
        stop = watch and self.on_divergence == "raise"
        return MGRIT(propagator or _NoStep(), self.block.grid(device), max_levels=self.max_levels,
                     cf=self.cf, relax=self.relax, cycle=self.cycle, tol=tol, rtol=rtol,
                     max_iter=iters if max_iter is None else max_iter, direction=direction,
                     partition=part, check_growth=stop,
                     divergence_factor=1e4 if stop else math.inf, guard=watch,
                     device=device)

    def _global_max(self, x: float) -> float:
        part = self.partition
        return part.comm.allreduce(x, op=part.MPI.MAX) if part.size > 1 else x

    def _solve(self, direction: int, start: torch.Tensor, guess, propagator, iters):
        """One MGRIT solve; in exact mode to ``exact_rtol`` relative to the larger of the size
        of the states (start value, warm-start guess) and the first residual, since states
        that grow through the layers raise the round-off floor of the residual."""
        rtol, tol, max_iter = 0.0, 0.0, iters
        if self.exact:
            rtol = self.exact_rtol or (1e-13 if start.dtype == torch.float64 else 1e-5)
            size = float(start.double().norm())
            if guess is not None and guess.numel():
                size = max(size, float(guess.double().flatten(1).norm(dim=1).max()))
            scale = self._global_max(size) or math.sqrt(start.numel())
            tol, max_iter = rtol * scale, self.exact_max_iter or self.block.depth
        solver = self._solver(propagator, direction, iters, start.device, tol, rtol, max_iter)
        try:
            res = solver.solve(start, u_init_local=guess, gather=False)
        except MGRITDivergenceError as err:
            raise MGRITDivergenceError(self._divergence_message(direction, start, err)) from err
        r = res.residuals
        jump = max((b / a for a, b in pairwise(r) if a > 0), default=0.0)
        history = f"residuals {', '.join(f'{x:.3e}' for x in r)}"
        if self.divergence_warning is None and self.on_divergence == "warn" and jump > 1:
            self.divergence_warning = self._divergence_message(
                direction, start, f"(on_divergence='warn': training goes on) {history}")
            warnings.warn(self.divergence_warning, RuntimeWarning, stacklevel=_caller_level())
        elif self.divergence_warning is None and jump > GROWTH_WARNING:
            # no coarse level is to blame (the solve did not raise): the layers amplify on
            # the fine level too — a property of the network, so a warning, not an error
            self.divergence_warning = self._divergence_message(
                direction, start, f"The residual grew {jump:.3g} times in one iteration, "
                f"though no coarse level amplifies more than the fine one: the layers "
                f"themselves amplify, and this inexact solve is far from the serial network "
                f"(more iterations, exact=True or a smaller step h would help). {history}")
            warnings.warn(self.divergence_warning, RuntimeWarning, stacklevel=_caller_level())
        return solver, res

    def _divergence_message(self, direction: int, start: torch.Tensor, err) -> str:
        what = "state (forward)" if direction > 0 else "adjoint (backward)"
        advice = []
        for lvl in range(1, self.max_levels):
            H = self.cf ** lvl * self.block.h
            a = self.block.divergence_advice(self._last_x0, 0, H, lvl, self.last_frozen)
            if a:
                advice.append(f"  level {lvl} (step {H:.3g}): {a}")
        head = (f"the layer-parallel {what} solve did not converge: the coarse levels take "
                f"steps of {self.cf}**l * h = {self.cf}**l * {self.block.h:.3g}, and a coarse "
                f"step through layers that amplify too much, or one too far from the fine "
                f"steps it stands for, makes MGRIT grow.")
        # with two levels, one fewer is the serial network: no advice
        fewer = (f"fewer levels (max_levels={self.max_levels - 1}), " if self.max_levels > 2
                 else "")
        fix = ("\n".join(advice) + "\n" if advice else "") + (
            f"Otherwise use {fewer}a smaller cf, a deeper network or a shorter final time T "
            f"(T={self.block.T:g}).")
        return f"{head}\n{fix}\n{err}"

    def _guess(self, key: str, n: int, like: torch.Tensor) -> torch.Tensor | None:
        g = self._warm.get(key) if self.warm_start else None
        if g is None or g.shape != (n, *like.shape) or g.dtype != like.dtype \
                or g.device != like.device:
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

    def _final_state(self, solver: MGRIT, u_local: torch.Tensor) -> torch.Tensor:
        """x_N (the last fine point) on every rank: one broadcast from its owner."""
        part = solver.partition
        N = self.block.depth
        owner = part.owner_of(solver.hierarchy, N)
        lo, _ = solver.bounds[0]
        mine = u_local[N - lo].clone() if part.rank == owner else None
        return part.bcast_from_owner(mine, owner)

    def solve_state(self, x0: torch.Tensor, params: dict, frozen=None):
        """T₁ MGRIT iterations (or to tolerance in exact mode) on the state equations.

        Returns (this process's :class:`StateWindow`, x_N on every process). The window holds
        the states of the own layers plus the right neighbour's first state.
        """
        key = self._state_key
        t0 = time.perf_counter()
        self._last_x0 = x0
        prop = StatePropagator(self.block, params, frozen)
        lo, hi = self._fine_bounds(1)
        guess = self._guess(key, hi - lo, x0)
        solver, res = self._solve(1, x0, guess, prop, self.fwd_iters)
        self._record("forward", res, guess)
        if self.warm_start:
            self._warm[key] = res.u_local
        t1 = time.perf_counter()
        xN = self._final_state(solver, res.u_local)
        right = self.partition.recv_from_right_first(res.u_local)
        values = res.u_local if right is None else torch.cat([res.u_local, right[None]])
        t2 = time.perf_counter()
        self.seconds["forward"] += t1 - t0
        self.seconds["communication"] += t2 - t1
        return StateWindow(values, lo), xN

    def solve_adjoint(self, states: StateWindow, params: dict, frozen, grad_out: torch.Tensor):
        """x̄ by T₂ MGRIT iterations backward in depth, then this rank's design gradient.

        Returns (x̄_0 on every rank, {name: ∂J/∂θ (N, ...)} summed over the ranks).
        """
        t0 = time.perf_counter()
        N = self.block.depth
        prop = AdjointPropagator(self.block, params, frozen, states)
        g = grad_out.detach().to(states.values.dtype).contiguous()
        lo, hi = self._fine_bounds(-1)
        guess = self._guess("adjoint", hi - lo, g)
        solver, res = self._solve(-1, g, guess, prop, self.bwd_iters)
        self._record("backward", res, guess)
        if self.warm_start:
            self._warm["adjoint"] = res.u_local
        # solver order s is physical N - s: the block holds x̄ at physical N-hi+1 .. N-lo
        adjoints = StateWindow(res.u_local.flip(0), N - hi + 1)
        t1 = time.perf_counter()
        layers = self.local_layers()
        # a shared parameter's contributions are summed per block of m = cf^(L-1) layers
        # (ranks own whole blocks), then over the blocks in order: the same bits on any
        # number of ranks
        grads = design_gradient(self.block, params, frozen, states, adjoints, layers,
                                prop.lin_at if prop.lin is not None else None,
                                chunk=self.cf ** (self.max_levels - 1), partial=True)
        t2 = time.perf_counter()
        part = self.partition.reversed()
        owner = part.owner_of(solver.hierarchy, 0)   # who holds x̄_0
        adj0 = part.bcast_from_owner(adjoints[torch.tensor([0])][0].clone()
                                     if part.rank == owner else None, owner)
        if self.partition.size > 1:
            _allreduce_sum(self.partition, list(grads.values()))
        for n in self.block.shared_names:
            grads[n] = sum_chunks(grads[n])
        t3 = time.perf_counter()
        self.seconds["adjoint"] += t1 - t0
        self.seconds["gradient"] += t2 - t1
        self.seconds["communication"] += t3 - t2
        return adj0, grads

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


class _NoStep:
    """A placeholder propagator for building a hierarchy only to read its partition."""

    def step(self, u, i, level):  # pragma: no cover - never called
        raise RuntimeError("placeholder propagator")


def _allreduce_sum(partition, tensors: list[torch.Tensor]) -> None:
    """Sum each tensor over the ranks of ``partition`` in place (through host memory).

    The ranks' blocks are disjoint (zeros elsewhere), so the sum is exact in any order."""
    import numpy as np

    MPI = partition.MPI
    for t in tensors:
        buf = np.ascontiguousarray(t.detach().cpu().numpy())
        partition.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        t.copy_(torch.from_numpy(buf).to(t.device))
