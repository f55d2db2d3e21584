"""A sequence classifier: a GRU over the sequence (serial or layer-parallel), then a linear map.

    h_0 = 0,   h_{t+1} = Q(h_t, x_t),  t = 0, ..., N − 1     (GRUStack: classic or implicit)
    logits = W_out h^(L)_N + b_out,   J = CE(logits, c)       (the last layer's final state)

With ``parallel=True`` the recurrence is solved by MGRIT over the sequence
(:class:`~mgritlab.nn.layer_parallel.LayerParallel`: T₁ forward and T₂ adjoint iterations,
the design gradient of the shared weights summed over the time steps); the classifier is an
ordinary layer differentiated by autograd around the solves. The seed's set-up (Cyr slides,
"Classic/Implicit/Parallel GRU Comparisons"; Moon & Cyr 2022) is 3 levels, c_f = 4, T₁ = 2,
T₂ = 1, evaluated both by serial inference (:meth:`GRUClassifier.serial`) and by the parallel
forward.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..nn.blocks import SerialODENet
from ..nn.layer_parallel import LayerParallel
from .gru import GRUStack, StepInputs


class GRUClassifier(nn.Module):
    """GRU over ``steps`` time steps (``num_layers`` layers of ``hidden_size``) → ``classes``.

    Inputs are batch-first, (batch, steps, input_size), as ``nn.GRU(batch_first=True)``.
    ``parallel=True`` runs the recurrence layer-parallel; ``lp_options`` are
    :class:`LayerParallel`'s keywords (max_levels, cf, fwd_iters, bwd_iters, exact,
    partition, ...); ``warm_start`` defaults to False here, since consecutive mini-batches
    are different sequences whose hidden states are no better a start than zeros.
    """

    def __init__(self, input_size: int, hidden_size: int, classes: int, steps: int, *,
                 num_layers: int = 1, scheme="implicit", dt: float = 1.0,
                 parallel: bool = False, seed: int = 0, dtype=torch.float64, device=None,
                 **lp_options):
        super().__init__()
        if not isinstance(classes, int) or classes < 2:
            raise ValueError(f"classes must be an integer >= 2, got {classes!r}")
        g = torch.Generator().manual_seed(seed)
        self.gru = GRUStack(input_size, hidden_size, steps, num_layers=num_layers,
                            scheme=scheme, dt=dt, generator=g, dtype=dtype, device=device)
        self.classifier = nn.Linear(hidden_size, classes, dtype=dtype, device=device)
        bound = 1.0 / math.sqrt(hidden_size)
        with torch.no_grad():
            for p in (self.classifier.weight, self.classifier.bias):
                u = torch.rand(p.shape, generator=g, dtype=torch.float64)
                p.copy_(((2 * u - 1) * bound).to(dtype))
        self.parallel = parallel
        self.lp_options = {"warm_start": False, **lp_options}
        if parallel:
            levels, cf = self.lp_options.get("max_levels", 2), self.lp_options.get("cf", 4)
            self.check_length(steps, levels, cf)
            self.body = LayerParallel(self.gru, **self.lp_options)
        else:
            self.body = SerialODENet(self.gru)

    @staticmethod
    def check_length(steps: int, max_levels: int, cf: int) -> None:
        """Raise a ValueError saying what to change if a sequence of ``steps`` does not fit
        an MGRIT hierarchy of ``max_levels`` levels with coarsening ``cf``."""
        if isinstance(cf, int) and isinstance(max_levels, int) and cf >= 2 and max_levels >= 1:
            m = cf ** (max_levels - 1)
            if steps % m:
                lo = (steps // m) * m
                raise ValueError(
                    f"a sequence of {steps} steps does not fit {max_levels} MGRIT levels with "
                    f"cf={cf}: the length must be a multiple of cf**(levels-1) = {m}. Use the "
                    f"last {lo or m} steps of each sequence (e.g. load_basic_motions(steps="
                    f"{lo or m})), pad to {lo + m}, or change cf / max_levels")
        LayerParallel.check_hierarchy(steps, max_levels, cf)

    @property
    def steps(self) -> int:
        return self.gru.depth

    def inputs(self, x: torch.Tensor) -> StepInputs:
        """The per-step inputs of a batch-first batch x (batch, steps, channels)."""
        if not torch.is_tensor(x) or x.dim() != 3:
            raise ValueError(f"the input must be (batch, steps, channels), got "
                             f"{getattr(x, 'shape', type(x).__name__)}")
        if x.shape[1] != self.steps:
            raise ValueError(f"the sequences have {x.shape[1]} steps but the GRU was built for "
                             f"steps={self.steps}; slice or pad them to {self.steps} steps")
        if x.shape[2] != self.gru.input_size:
            raise ValueError(f"the sequences have {x.shape[2]} channels but the GRU was built "
                             f"for input_size={self.gru.input_size}")
        w = self.classifier.weight
        if x.dtype != w.dtype or x.device != w.device:
            raise ValueError(f"the input is {x.dtype} on {x.device} but the model is "
                             f"{w.dtype} on {w.device}: convert one of them")
        return StepInputs(x.detach().transpose(0, 1))

    def h0(self, batch: int) -> torch.Tensor:
        w = self.classifier.weight
        return torch.zeros(batch, self.gru.state_size, dtype=w.dtype, device=w.device)

    def final_state(self, x: torch.Tensor, body: nn.Module | None = None) -> torch.Tensor:
        """h_N, all layers' (batch, L·H), by ``body`` (default: this model's)."""
        body = self.body if body is None else body
        return body(self.h0(x.shape[0]), frozen=self.inputs(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hN = self.final_state(x)
        return self.classifier(hN[:, -self.gru.hidden_size:])

    def serial(self) -> nn.Module:
        """The same classifier with serial inference (shares all parameters)."""
        return _SerialView(self)

    def layer_parallel(self) -> LayerParallel:
        """The :class:`LayerParallel` body (for its ``stats``), or a clear error."""
        if not isinstance(self.body, LayerParallel):
            raise AttributeError("this GRUClassifier runs serially (parallel=False); build it "
                                 "with parallel=True for MGRIT statistics")
        return self.body


class _SerialView(nn.Module):
    """A :class:`GRUClassifier` evaluated by stepping through the sequence."""

    def __init__(self, model: GRUClassifier):
        super().__init__()
        self.model = model
        self.body = SerialODENet(model.gru)

    def forward(self, x):
        hN = self.model.final_state(x, self.body)
        return self.model.classifier(hN[:, -self.model.gru.hidden_size:])
