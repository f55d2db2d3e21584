"""Layer-parallel PDE-GCN-D training as a plain function, importable on ipyparallel MPI
engines (lesson 12, :mod:`mgritlab.cluster`) and callable in one process: on every rank of
MPI.COMM_WORLD the same network is trained with its layers split over the ranks."""
from __future__ import annotations


def train_pdegcn_layer_parallel(config: dict, *, epochs: int | None = None,
                                threads: int | None = 1) -> dict:
    """Train ``config`` (a :class:`~mgritlab.graphs.train.TrainConfig` as a dict, with
    ``layer_parallel=True``) on all ranks, writing no files; returns this rank's record.

    The record: rank, size, the per-epoch curves (losses, accuracies with the layer-parallel
    and the exact serial forward, wall seconds, seconds per phase — this rank's clock), the
    layers whose states this rank holds and the bytes of its MGRIT blocks (states, adjoints).
    ``threads``: torch threads per process (1: ranks share the cores).
    """
    import torch

    from ..mgrit.tasks import world
    from .train import TrainConfig, train

    cfg = TrainConfig.from_dict(dict(config, **({} if epochs is None else {"epochs": epochs})))
    if not cfg.layer_parallel:
        raise ValueError("train_pdegcn_layer_parallel needs layer_parallel=True in config")
    if threads:
        torch.set_num_threads(threads)
    comm, rank, size = world()
    part = None
    if size > 1:
        from ..mgrit.mpi import MPIPartition

        part = MPIPartition(comm)
    r = train(cfg, progress=False, partition=part)
    return {"rank": rank, "size": size, "curves": r["curves"],
            "layers_held": r["layers_per_rank"], "held_bytes": r["held_bytes"],
            "test_acc_at_best_val": r["test_acc_at_best_val"],
            "serial_test_acc_at_best_val": r["serial_test_acc_at_best_val"]}
