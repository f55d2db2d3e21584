"""Layer-parallel training: the layer contract (:class:`LayerStack`, one batched step with
stacked parameters), ODE-net residual layers on it, their state and adjoint equations as MGRIT
propagators, frozen dropout, the ``LayerParallel`` module and nested iteration.

    net = ODENet(2, 8, 2, depth=64, max_levels=3, cf=4)      # T1 = 2, T2 = 1 by default
    loss = nn.functional.cross_entropy(net(x), y); loss.backward()
    net.layer_parallel().stats["forward"]                     # residuals of the last solve
    net.serial()                                              # the same network, serially

On MPI ranks pass ``partition=MPIPartition()``: every rank then computes the loss and holds the
full gradient after ``backward()``. Dropout masks are drawn once per forward/backward pair and
reused by every MGRIT iteration (see :mod:`mgritlab.nn.layer_parallel`).
"""
from .adjoint import AdjointPropagator, StatePropagator, StateWindow, design_gradient
from .blocks import DenseBlock, LayerStack, ODEBlock, SerialODENet, activation
from .data import peaks, split, two_spirals
from .frozen import FrozenDropout
from .layer_parallel import LayerParallel, LayerParallelFunction, SolveStats
from .nested import coarse_depths, nested_training
from .network import ODENet
from .training import History, accuracy, train

__all__ = ["LayerStack", "FrozenDropout", "StateWindow",
           "ODEBlock", "DenseBlock", "SerialODENet", "activation", "StatePropagator",
           "AdjointPropagator", "design_gradient", "LayerParallel", "LayerParallelFunction",
           "SolveStats", "ODENet", "nested_training", "coarse_depths", "two_spirals", "peaks",
           "split", "train", "accuracy", "History"]
