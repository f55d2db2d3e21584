"""Layer-parallel training as a plain function, importable on ipyparallel MPI engines
(lesson 07, :mod:`mgritlab.cluster`) and callable in one process: on every rank of
MPI.COMM_WORLD the same network is trained with the layers split across the ranks."""
from __future__ import annotations


def train_layer_parallel(*, problem: str = "spirals", n: int = 200, depth: int = 32,
                         width: int = 8, epochs: int = 20, lr: float = 2e-2,
                         max_levels: int = 2, cf: int = 4, fwd_iters: int = 2,
                         bwd_iters: int = 1, seed: int = 0) -> dict:
    """Train an ODE-net classifier layer-parallel on all ranks (serially on one process).

    Returns this rank's record: rank, size, the history (loss, accuracy, cumulative seconds)
    and a checksum of the trained parameters (equal on every rank: each holds the full
    gradient after ``backward``, so the optimizers stay in lockstep).
    """
    import torch

    from ..mgrit.tasks import any_rank, world_partition
    from .data import peaks, two_spirals
    from .network import ODENet
    from .training import train

    if problem not in ("spirals", "peaks"):
        raise ValueError(f"unknown problem {problem!r}: use 'spirals' or 'peaks'")
    part, rank, size = world_partition()
    torch.set_num_threads(1)
    if problem == "spirals":
        x, y, classes = *two_spirals(n, seed=seed), 2
    else:
        x, y, classes = *peaks(n, seed=seed), 5
    net = ODENet(2, width, classes, depth, seed=seed, max_levels=max_levels, cf=cf,
                 fwd_iters=fwd_iters, bwd_iters=bwd_iters, partition=part)
    hist = train(net, x, y, epochs=epochs, lr=lr, eval_model=net.serial(),
                 agree=lambda flag: any_rank(part, flag))
    checksum = float(sum(p.detach().double().sum() for p in net.parameters()))
    return dict(rank=rank, size=size, loss=hist.loss, train_acc=hist.train_acc,
                seconds=hist.seconds, checksum=checksum)
