"""Layer-parallel training through ``graphs.train`` on P MPI ranks (run under mpiexec).

Usage: train_lp.py OUT_DIR. Trains a small layer-parallel PDE-GCN-D on CORA (dropout on,
shared IMEX, 3 levels, cf 2) for 6 epochs; then the same run killed after 3 epochs (the
checkpoint holds 2) and resumed. Checks on every rank that the resumed run equals the
uninterrupted one, that only rank 0 wrote results and every rank its own warm start, and prints
a digest of the losses and accuracies for the wrapper to compare across rank counts.
"""
import hashlib
import sys
from pathlib import Path

import torch
from mpi4py import MPI

from mgritlab.graphs.train import TrainConfig, load_graph, train

torch.set_num_threads(1)
comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
out = Path(sys.argv[1]) / f"ranks{size}"
cfg = TrainConfig(layers=16, channels=8, h=0.5, dropout=0.5, lr=0.05, weight_decay=5e-4,
                  lr_K=1e-4, epochs=6, seed=0, imex="shared", alpha=1.0, learn_alpha=True,
                  layer_parallel=True, levels=3, cf=2, checkpoint_every=2)
cora = load_graph("Cora")
full = train(cfg, graph=cora, out_dir=out / "full", progress=False)
part = train(cfg, graph=cora, out_dir=out / "cut", progress=False, stop_after=3)
torch.manual_seed(1234)  # whatever happened in between must not matter
resumed = train(cfg, graph=cora, out_dir=out / "cut", progress=False, resume=True)

KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_acc", "val_loss_serial",
        "val_acc_serial", "test_acc_serial")
ok = not part["finished"] and resumed["finished"] and full["ranks"] == size
for k in KEYS:
    if resumed["curves"][k] != full["curves"][k]:
        print(f"rank {rank}: resumed {k} differs from the uninterrupted run", flush=True)
        ok = False
warm = sorted(p.name for p in (out / "cut").glob("*.warm*"))
if size > 1 and len(warm) != size:  # one per rank, for the last checkpoint only
    print(f"rank {rank}: warm-start files {warm}", flush=True)
    ok = False
digest = hashlib.sha256(repr([full["curves"][k] for k in KEYS]).encode()).hexdigest()
oks = comm.allgather(ok)
if rank == 0:
    print(f"digest={digest}")
    print("OK" if all(oks) else "FAILED", flush=True)
sys.exit(0 if all(oks) else 1)
