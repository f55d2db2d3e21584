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

    from ..mgrit.tasks import world_partition
    from .train import TrainConfig, train

    cfg = TrainConfig.from_dict(dict(config, **({} if epochs is None else {"epochs": epochs})))
    if not cfg.layer_parallel:
        raise ValueError("train_pdegcn_layer_parallel needs layer_parallel=True in config")
    if threads:
        torch.set_num_threads(threads)
    part, rank, size = world_partition()
    r = train(cfg, progress=False, partition=part)
    return {"rank": rank, "size": size, "curves": r["curves"],
            "layers_held": r["layers_per_rank"], "held_bytes": r["held_bytes"],
            "test_acc_at_best_val": r["test_acc_at_best_val"],
            "serial_test_acc_at_best_val": r["serial_test_acc_at_best_val"]}


def main(argv=None) -> int:
    """``mpiexec -n P python -m mgritlab.graphs.tasks CONFIG.json OUT.json [EPOCHS]``: train on
    all ranks; rank 0 writes its record (used to time runs on several ranks)."""
    import json
    import sys
    from pathlib import Path

    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (2, 3):
        print(main.__doc__, file=sys.stderr)
        return 2
    config = json.loads(Path(args[0]).read_text())
    rec = train_pdegcn_layer_parallel(config, epochs=int(args[2]) if len(args) == 3 else None)
    if rec["rank"] == 0:
        from ..nn.runner import write_json_atomic

        write_json_atomic(rec, args[1])
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
