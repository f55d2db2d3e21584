"""The package's tasks: plain functions that run on every rank of MPI.COMM_WORLD when started
under mpiexec or on ipyparallel MPI engines (:mod:`mgritlab.cluster`, lessons 05, 07 and 12),
and in one process otherwise — the same call gives the same numbers either way.

- :func:`mgrit_run`: a model problem (:mod:`mgritlab.problems` registry) solved with MGRIT;
- :func:`train_layer_parallel`: an ODE-net classifier trained layer-parallel;
- :func:`train_pdegcn_layer_parallel`: layer-parallel PDE-GCN-D training on CORA (under
  mpiexec through :func:`mgritlab.cluster.mpi_call`);
- :func:`pdadmm_run`: pdADMM-G(-Q) iterations on a GA-MLP with its layers split over the ranks;
- :func:`gru_run`: Adam steps of the layer-parallel implicit GRU, its time steps split over the
  ranks.

It sits above every other module (it imports from all of them); where a process runs is
decided in one place, :mod:`mgritlab.mgrit.world`."""
from __future__ import annotations


def mgrit_run(problem: str = "heat", *, nt: int = 257, levels: int = 3, cf=2,
              relax: str = "FCF", cycle: str = "V", tol: float = 1e-7, max_iter: int = 100,
              repeat: int = 1, gather: bool = False, threads: int | None = 1,
              **problem_options) -> dict:
    """Solve a model problem with MGRIT on all ranks of MPI.COMM_WORLD (serial on one).

    Returns this rank's record: rank, size, iterations, residual history, the best wall time
    of ``repeat`` solves (measured between barriers; the other fields are of that run), time
    per phase, the critical-path model
    speedup, and the solution when ``gather``. ``threads`` sets torch's threads in this
    process (1 by default: ranks share the cores; None leaves it as it is).
    """
    import torch

    from .mgrit import MGRIT, uniform_grid
    from .mgrit.scaling import best_solve
    from .mgrit.solver import check_options
    from .mgrit.speedup import model_speedup
    from .mgrit.world import world_partition
    from .problems import make_problem

    check_options(tol=tol, max_iter=max_iter, relax=relax)
    if threads:
        torch.set_num_threads(threads)
    part, rank, size = world_partition()
    prob = make_problem(problem, **problem_options)
    t = uniform_grid(prob.t0, prob.tf, nt)
    solver = MGRIT(prob, t, max_levels=levels, cf=cf, relax=relax, cycle=cycle, tol=tol,
                   max_iter=max_iter, partition=part)
    best, res = best_solve(solver, prob.u0, part, repeat, gather=gather)
    return dict(rank=rank, size=size, problem=problem, nt=nt, levels=len(solver.hierarchy),
                cf=cf, relax=relax, cycle=cycle, iterations=res.iterations,
                converged=res.converged, residuals=res.residuals, seconds=best,
                phase_seconds=res.phase_seconds,
                model_speedup=model_speedup(solver.hierarchy, res.iterations, size, cycle),
                u=None if res.u is None else res.u.numpy())


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

    from .mgrit.world import any_rank, world_partition
    from .nn.data import peaks, two_spirals
    from .nn.network import ODENet
    from .nn.training import train

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

    from .graphs.train import TrainConfig, train
    from .mgrit.world import world_partition

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


def pdadmm_run(*, dataset: str = "Cora", layers: int = 8, hidden: int = 100,
               method: str = "pdadmm-g", iterations: int = 4, seed: int = 0,
               threads: int | None = 1) -> dict:
    """pdADMM-G(-Q) (Wang et al. 2022) on the GA-MLP of ``dataset``'s training rows, its
    layers split over all ranks of MPI.COMM_WORLD (one process: all of them).

    Returns this rank's record: rank, size, its layers [lo, hi), per iteration the residual,
    the objective F and L_ρ (exact sums over the ranks: the same floats on any rank count),
    the bytes this rank sent to other ranks, the seconds per iteration (this rank's clock) and
    the SHA-256 of all final weights in layer order (gathered: the same on every rank).
    """
    import hashlib
    import time

    import torch

    from .graphs import admm, gamlp
    from .graphs.admm_train import ADMMRun
    from .mgrit.world import world_partition

    if threads:
        torch.set_num_threads(threads)
    part, rank, size = world_partition()
    cfg = ADMMRun(dataset=dataset, layers=layers, hidden=hidden, method=method).admm()
    graph = gamlp.load_augmented(dataset, 5)
    weights = gamlp.init_weights(gamlp.widths(graph.num_features, hidden, graph.num_classes,
                                              layers), seed, identity_hidden=True)
    st = admm.init_state(graph.x[graph.train], graph.y[graph.train], weights, cfg,
                         partition=part)
    history, traffic = [], admm.Traffic()
    for _ in range(iterations):
        t0 = time.perf_counter()
        info = admm.iterate(st, cfg, part, traffic)
        history.append({"residual": info["residual"], "F": info["F"],
                        "lagrangian": info["lagrangian"], "seconds": time.perf_counter() - t0})
    mine = torch.cat([t.flatten() for wb in st.weights() for t in wb])
    every = mine if part is None else part.allgather(mine)
    return {"rank": rank, "size": size, "layers": [st.lo, st.hi], "history": history,
            "rank_bytes": traffic.ranks,
            "weights_sha256": hashlib.sha256(every.numpy().tobytes()).hexdigest()}


def gru_run(*, steps: int = 96, hidden: int = 32, adam_steps: int = 3, lr: float = 1e-2,
            max_levels: int = 3, cf: int = 4, fwd_iters: int = 2, bwd_iters: int = 1,
            seed: int = 0, threads: int | None = 1) -> dict:
    """Full-batch Adam steps of the layer-parallel implicit GRU classifier on BasicMotions
    (float64), the sequence's time steps split over all ranks of MPI.COMM_WORLD (one process:
    all of them). Returns this rank's record: rank, size, the time steps it holds, the loss of
    every step (the same on every rank), the seconds per step (this rank's clock) and the
    SHA-256 of the trained parameters (equal on every rank: each holds all of them)."""
    import hashlib
    import time

    import torch
    import torch.nn.functional as F

    from .mgrit.world import world_partition
    from .recurrent.datasets import load_basic_motions
    from .recurrent.model import GRUClassifier

    if threads:
        torch.set_num_threads(threads)
    part, rank, size = world_partition()
    data = load_basic_motions(steps=steps, dtype=torch.float64)
    model = GRUClassifier(data.channels, hidden, data.num_classes, steps, seed=seed,
                          parallel=True, max_levels=max_levels, cf=cf, fwd_iters=fwd_iters,
                          bwd_iters=bwd_iters, partition=part)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses, seconds = [], []
    for _ in range(adam_steps):
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = F.cross_entropy(model(data.x_train), data.y_train)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        seconds.append(time.perf_counter() - t0)
    held = model.layer_parallel().local_layers()
    digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes()
                                     for p in model.parameters())).hexdigest()
    return {"rank": rank, "size": size, "steps_held": [held.start, held.stop],
            "losses": losses, "seconds": seconds, "weights_sha256": digest}

