"""Training as time stepping: one gradient step per time step, an MGRIT propagator
(Schroder 2022, §2.2–3.4; full reference in REFERENCES.md).

The state is the flat weight vector w_i (s,); the time index i counts training steps, and
on MGRIT level ℓ one step is

    Φ_i^(ℓ)(w) = w − α^(ℓ) ∇ℓ(w; z_i^(ℓ))                       (eqs. 9, 12–13)

with a learning rate per level and the training examples z_i^(ℓ) of step i chosen by a rule:

* ``AllData`` — every example in every step, a full batch (eq. 11: the Naive solver and
  Solver 1);
* ``Serialised`` — example j = mod(i, K) (eq. 15: Solver 2);
* ``Repeated`` — example j = mod(⌊i/2⌋, K), each example twice in a row (eq. 16: Solver 3).

Learning rates: ``constant(α_b)`` (eq. 10) or ``doubling(α_b, α_max)``,
α^(ℓ) = min(2^ℓ α_b, α_max) (eq. 14), or any function of the level index.

Which example a *coarse* point trains on is left open by the paper. Its Remark 1 says the
serialised rule "is independent of ℓ": point i of level 1 uses mod(i, K) although it sits at
fine point 2i, whose example is mod(2i, K); and that injecting the fine level's examples
instead converged worse. ``coarse_examples='level'`` (default) is that reading — i is the
level's own index; ``'fine'`` is the injected variant, i replaced by the finest-grid index
of the point (``level.fine_index(i)``). Both read eq. (16) with the same i.

Φ is batched: one call steps B states (B, s) at B time indices, with one batched
back-propagation (``SigmoidMLP.gradient``) or, for any network given as a loss function,
``torch.func.vmap`` over ``torch.func.grad``. Each state's step depends on that state and its
index only (batch independence, DESIGN.md).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from numbers import Real

import torch

from .networks import TrainingData


# ---- learning rates per level --------------------------------------------------------------
@dataclass(frozen=True)
class LearningRate:
    """α^(ℓ) = min(growth^ℓ α_b, α_max): ``growth=1`` is eq. (10), ``growth=2`` eq. (14)."""

    base: float
    maximum: float = math.inf
    growth: float = 1.0

    def __post_init__(self):
        for name in ("base", "maximum", "growth"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, Real) or not v > 0 or math.isnan(v):
                raise ValueError(f"learning rate {name}={v!r}: give a number > 0")
        if self.maximum < self.base:
            raise ValueError(f"α_max = {self.maximum} is below α_b = {self.base}: the largest "
                             "learning rate must be at least the base one (eq. 14, "
                             "α^(ℓ) = min(2^ℓ α_b, α_max)); raise α_max or lower α_b")

    def __call__(self, level: int) -> float:
        return min(self.growth**level * self.base, self.maximum)


def constant(alpha_b: float) -> LearningRate:
    """α^(ℓ) = α_b on every level (the Naive solver, eq. 10)."""
    return LearningRate(alpha_b)


def doubling(alpha_b: float, alpha_max: float) -> LearningRate:
    """α^(ℓ) = min(2^ℓ α_b, α_max) (eq. 14: Solvers 1–3)."""
    return LearningRate(alpha_b, alpha_max, 2.0)


# ---- which examples a step trains on -------------------------------------------------------
class ExampleRule:
    """Which training examples step i uses: :meth:`index` gives one example index per step,
    or None for all examples."""

    name = ""

    def index(self, i: torch.Tensor, examples: int) -> torch.Tensor | None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class AllData(ExampleRule):
    """z_i = all K examples, a full batch, in every step (eq. 11)."""

    name = "all"

    def index(self, i, examples):
        return None


class Serialised(ExampleRule):
    """z_i = example mod(i, K) (eq. 15)."""

    name = "serial"

    def index(self, i, examples):
        return torch.remainder(i, examples)


class Repeated(ExampleRule):
    """z_i = example mod(⌊i/r⌋, K): each example r times in a row (eq. 16 with r = 2)."""

    name = "repeat"

    def __init__(self, times: int = 2):
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ValueError(f"times={times!r}: give a whole number >= 1 (eq. 16 has 2)")
        self.times = times

    def index(self, i, examples):
        return torch.remainder(torch.div(i, self.times, rounding_mode="floor"), examples)

    def __repr__(self) -> str:
        return f"Repeated(times={self.times})"


RULES = {"all": AllData, "serial": Serialised, "repeat": Repeated}


def example_rule(rule) -> ExampleRule:
    """An :class:`ExampleRule` from itself or its name ('all', 'serial', 'repeat')."""
    if isinstance(rule, ExampleRule):
        return rule
    if isinstance(rule, str) and rule in RULES:
        return RULES[rule]()
    raise TypeError(f"examples={rule!r}: give 'all' (eq. 11), 'serial' (eq. 15), 'repeat' "
                    "(eq. 16) or an ExampleRule instance")


# ---- the propagator ------------------------------------------------------------------------
class TrainingSteps:
    """Φ_i^(ℓ)(w) = w − α^(ℓ) ∇ℓ(w; z_i^(ℓ)) as an MGRIT propagator ``step(u, i, level)``.

    Parameters
    ----------
    data : the network, its examples and w_0 (:class:`~.networks.TrainingData`).
    learning_rate : α^(ℓ): a number (the same on every level), a :class:`LearningRate`
        (:func:`constant`, :func:`doubling`) or a function of the level index.
    examples : 'all', 'serial', 'repeat' or an :class:`ExampleRule`.
    coarse_examples : 'level' (point i of any level uses its own index i, Remark 1) or
        'fine' (it uses its finest-grid index).
    loss : instead of the network's closed-form gradient, a function ``loss(w, x, y)`` of
        one flat weight vector (s,) and its examples (k, n^[0]), (k, n^[L]) returning a
        scalar; the step then uses ``vmap(grad(loss))``.
    """

    def __init__(self, data: TrainingData, learning_rate, examples="all", *,
                 coarse_examples: str = "level",
                 loss: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
                 | None = None):
        if not isinstance(data, TrainingData):
            raise TypeError(f"data must be a TrainingData (e.g. xor_problem()), got "
                            f"{type(data).__name__}")
        self.data = data
        if isinstance(learning_rate, Real) and not isinstance(learning_rate, bool):
            learning_rate = constant(float(learning_rate))
        if not callable(learning_rate):
            raise TypeError(f"learning_rate={learning_rate!r}: give a number, "
                            "constant(α_b), doubling(α_b, α_max) or a function of the level")
        self.learning_rate = learning_rate
        self.examples = example_rule(examples)
        if coarse_examples not in ("level", "fine"):
            raise ValueError(f"coarse_examples={coarse_examples!r}: give 'level' (a coarse "
                             "point i uses its own index, Remark 1) or 'fine' (its finest-grid "
                             "index)")
        self.coarse_examples = coarse_examples
        self.loss = loss
        self._vgrad = None
        if loss is not None:
            self._vgrad = torch.func.vmap(torch.func.grad(loss))

    @property
    def size(self) -> int:
        """s, the length of the state."""
        return self.data.network.size

    @property
    def w0(self) -> torch.Tensor:
        return self.data.w0

    def alpha(self, level_index: int) -> float:
        """α^(ℓ) of level ``level_index`` (checked: a finite number > 0)."""
        a = self.learning_rate(level_index)
        if isinstance(a, bool) or not isinstance(a, Real) or not (math.isfinite(a) and a > 0):
            raise ValueError(f"the learning rate of level {level_index} is {a!r}: "
                             "learning_rate(level) must give a finite number > 0")
        return float(a)

    def batch(self, i: torch.Tensor, level=None) -> tuple[torch.Tensor, torch.Tensor]:
        """The examples of steps ``i`` on ``level``: x (K, n0), y (K, nL) shared by all steps
        (rule 'all') or (B, 1, n0), (B, 1, nL) one example per step."""
        i = torch.as_tensor(i)
        if level is not None and self.coarse_examples == "fine":
            i = level.fine_index(i)
        j = self.examples.index(i, self.data.examples)
        if j is None:
            return self.data.x, self.data.y
        return self.data.x[j].unsqueeze(1), self.data.y[j].unsqueeze(1)

    def gradient(self, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """∇ℓ (B, s) for weights (B, s) and examples shared (K, ·) or per state (B, k, ·)."""
        if self._vgrad is None:
            return self.data.network.gradient(w, x, y)
        if x.ndim == 2:
            x, y = x.expand(w.shape[0], *x.shape), y.expand(w.shape[0], *y.shape)
        return self._vgrad(w, x, y)

    def step(self, u: torch.Tensor, i: torch.Tensor, level) -> torch.Tensor:
        """w_{i+1} = w_i − α^(ℓ) ∇ℓ(w_i; z_i^(ℓ)) for a batch u (B, s) at indices i (B,)."""
        if getattr(level, "direction", 1) != 1:
            raise ValueError("training steps run forward only: build the hierarchy with "
                             "direction=+1")
        if u.ndim != 2 or u.shape[1] != self.size:
            raise ValueError(f"states of shape {tuple(u.shape)}: a training step takes flat "
                             f"weight vectors (B, {self.size})")
        x, y = self.batch(i, level)
        return u - self.alpha(getattr(level, "index", 0)) * self.gradient(u, x, y)

    def serial(self, steps: int, w0: torch.Tensor | None = None) -> torch.Tensor:
        """Serial training, w_{i+1} = Φ_i^(0)(w_i) for i < ``steps``: (steps+1, s)."""
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps={steps!r}: give a whole number >= 0")
        w = torch.empty((steps + 1, self.size), dtype=self.data.w0.dtype)
        w[0] = self.data.w0 if w0 is None else self._check_w0(w0)
        for k in range(steps):
            w[k + 1] = self.step(w[k : k + 1], torch.tensor([k]), FINEST_LEVEL)[0]
        return w

    def _check_w0(self, w0) -> torch.Tensor:
        w0 = torch.as_tensor(w0, dtype=self.data.w0.dtype)
        if w0.shape != (self.size,):
            raise ValueError(f"w0 of shape {tuple(w0.shape)}: give the {self.size} weights "
                             "as one flat vector")
        return w0

    def __repr__(self) -> str:
        return (f"TrainingSteps({self.data.name or 'network'} {self.data.network.sizes}, "
                f"learning_rate={self.learning_rate!r}, examples={self.examples!r}, "
                f"coarse_examples={self.coarse_examples!r})")


class _Finest:
    """Level 0 as far as a training step cares (its index, stride 1, forward)."""

    index, stride, direction = 0, 1, 1

    @staticmethod
    def fine_index(i):
        return i


FINEST_LEVEL = _Finest()  # for stepping outside a hierarchy
