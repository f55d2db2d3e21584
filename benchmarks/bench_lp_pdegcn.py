"""Layer-parallel PDE-GCN-D on CORA: batched layer steps, epoch seconds per phase, memory per
rank, and the critical-path model speedup from the measured costs.

    python benchmarks/bench_lp_pdegcn.py [--quick] [--ranks 2] [--device cpu|cuda]

1. **layer step** — ``PDEGCNBlock.step`` on B = 1, 4, 16, 64 layers in one call, layouts
   'loop' and 'batched' (and 'auto', what the block picks on this device), in evaluation mode
   (no dropout) and in training mode (frozen masks, p = 0.6): milliseconds per layer, and the
   ratio to one single-layer call;
2. **epochs** — one training step (forward, backward, Adam) for 64 and 256 layers: the serial
   network, layer-parallel (3 levels, cf 4, T₁ = 2, T₂ = 1: the thesis's settings) on one
   process, and on ``--ranks`` MPI ranks (this script relaunched under mpiexec, one torch
   thread per rank), with LayerParallel's seconds per phase and the MGRIT blocks (states,
   adjoints) each rank holds. h = 0.2, explicit layers on the fine level and a shared IMEX
   term α = 1 on the coarse levels (thesis fig. 5.10), dropout 0.6;
3. **model** — the critical-path speedup over the serial epoch at 16/32/64 ranks, from the
   measured per-layer costs: forward step c_Φ, adjoint step c_Φ̄, design gradient c_θ, and
   the measured rest of the epoch (opening/closing maps, loss, Adam) o:

       t_LP(P) = o + T₁·σ(P)·c_Φ + T₂·σ(P)·c_Φ̄ + ⌈N/P⌉·c_θ,   speedup(P) = t_serial / t_LP(P)

   with σ(P) the critical path of one V-cycle (``mgritlab.mgrit.speedup``, XBraid's per-level
   split, which allows more ranks than the 16 coarsest intervals); communication is left out.
   The same formula at P = 1 and 2 is printed beside the measured epochs to show how far the
   model is from the machine.

Every ratio compares runs made side by side in this invocation. Results go to
``benchmarks/results/lp_pdegcn.json`` (``--quick``: ``lp_pdegcn_quick.json``) and the markdown
table ``lp_pdegcn.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
from _results import keep, result_path

LP = dict(max_levels=3, cf=4, fwd_iters=2, bwd_iters=1)
IMEX_LEVELS = [0.0, None, None]


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def median(xs):
    xs = sorted(xs)
    return float(xs[len(xs) // 2])


def build(data, ops, layers, channels, parallel, partition=None, seed=0, **kw):
    from mgritlab.graphs.pdegcn import PDEGCN

    opts = dict(LP, partition=partition, **kw) if parallel else {}
    # h = 0.2 (the 256-layer step of T = 51.2); explicit fine level, α = 1 on the coarse levels
    # (thesis fig. 5.10), where explicit steps 4h and 16h would make MGRIT diverge
    return PDEGCN(ops, data.num_features, data.num_classes, channels=channels, layers=layers,
                  h=0.2, dropout=0.6, imex="shared", alpha=1.0, level_alpha=IMEX_LEVELS,
                  seed=seed, parallel=parallel, **opts)


# -- 1. the layer step -----------------------------------------------------------------------
def layer_costs(data, ops, channels, batches, reps, device):
    """ms per layer of one B-layer step call, per layout, evaluation and training mode."""
    from mgritlab.nn import FrozenDropout

    model = build(data, ops, max(batches), channels, False).to(device)
    block = model.block
    with torch.no_grad():
        f0 = model.eval().open(data.x.to(device))
    params = block.layer_parameters()
    rows, calls = [], []
    for mode in ("eval", "train"):
        frozen = FrozenDropout({"grad": 0.6}, seed=1) if mode == "train" else None
        for B in batches:
            x = f0.expand(B, *f0.shape).contiguous()
            k = torch.arange(B, device=device)
            for layout in ("loop", "batched"):
                calls.append((mode, B, layout, x, k, frozen))
    times = {c[:3]: [] for c in calls}
    with torch.no_grad():
        for rep in range(reps + 1):  # interleaved: every variant sees the same machine load
            for mode, B, layout, x, k, frozen in calls:
                block.layout = layout
                # an untimed call of the same shape first: the timed one then finds the
                # caches and the allocator as a run of such calls does (without it, the first
                # call after a large batch is up to 2x slower)
                block.step(x, k, block.h, params, frozen, 0)
                _sync(device)
                t0 = time.perf_counter()
                block.step(x, k, block.h, params, frozen, 0)
                _sync(device)
                if rep:  # the first round warms up (and draws the masks)
                    times[(mode, B, layout)].append(time.perf_counter() - t0)
    block.layout = "auto"
    auto = block._layout(device)
    for (mode, B, layout), ts in times.items():
        single = median(times[(mode, 1, "loop")])
        t = median(ts)
        rows.append({"mode": mode, "B": B, "layout": layout, "auto": layout == auto,
                     "ms_per_layer": 1e3 * t / B, "ratio_to_single": t / B / single})
    return rows


def adjoint_costs(data, ops, channels, B, reps, device):
    """Seconds per layer of the adjoint step (vjp_x) and the design gradient (vjp_theta) on
    B layers at once, training mode, as LayerParallel calls them."""
    from mgritlab.nn import FrozenDropout

    model = build(data, ops, B, channels, False).to(device)
    block = model.block
    with torch.no_grad():
        f0 = model.eval().open(data.x.to(device))
    x = f0.expand(B, *f0.shape).contiguous()
    v = torch.randn_like(x)
    k = torch.arange(B, device=device)
    theta = block.take(block.layer_parameters(), k)
    frozen = FrozenDropout({"grad": 0.6}, seed=1)
    lin = block.linearize(x, k, theta, frozen)
    calls = {"linearize": lambda: block.linearize(x, k, theta, frozen),
             "vjp_x": lambda: block.vjp_x(x, k, theta, block.h, frozen, v, lin, 0),
             "vjp_theta": lambda: block.vjp_theta(x, k, theta, block.h, frozen, v, lin, 0)}
    out = {n: [] for n in calls}
    with torch.no_grad():
        for rep in range(reps + 1):
            for name, call in calls.items():
                _sync(device)
                t0 = time.perf_counter()
                call()
                _sync(device)
                if rep:
                    out[name].append(time.perf_counter() - t0)
    return {n: median(ts) / B for n, ts in out.items()}


# -- 2. epochs -------------------------------------------------------------------------------
def epoch_timer(model, data, partition=None, device="cpu"):
    """One training step (graphs.train.train_step) as a closure: (wall seconds,
    LayerParallel phases or None)."""
    from types import SimpleNamespace

    from mgritlab.graphs.train import train_step

    opt = torch.optim.Adam(model.parameter_groups(9e-3, 2.4e-4, 2e-5))
    on = SimpleNamespace(x=data.x.to(device), y=data.y.to(device),
                         train_mask=data.train_mask.to(device))
    lp = model.layer_parallel() if model.parallel else None
    model.to(device).train()

    def epoch():
        if partition is not None:
            partition.barrier()
        _sync(device)
        if lp is not None:
            lp.reset_seconds()
        t0 = time.perf_counter()
        train_step(model, opt, on)
        _sync(device)
        if partition is not None:
            partition.barrier()
        return time.perf_counter() - t0, (lp.reset_seconds() if lp is not None else None)
    return epoch


def held_bytes(model) -> dict:
    """The MGRIT blocks this process holds after a step: states and adjoints (bytes)."""
    lp = model.layer_parallel()
    w = lp.warm_state()
    size = {k: v.numel() * v.element_size() for k, v in w.items()}
    return {"state_bytes": size.get("state", 0), "adjoint_bytes": size.get("adjoint", 0),
            "layers_held": len(lp.local_layers()),
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def epoch_rows(data, ops, layers_list, channels, reps, device, partition=None, serial=True):
    """Median epoch seconds (after one warm-up) of serial and layer-parallel, side by side."""
    rows = []
    for L in layers_list:
        timers = {"lp": epoch_timer(build(data, ops, L, channels, True, partition).to(device),
                                    data, partition, device)}
        if serial:
            timers["serial"] = epoch_timer(build(data, ops, L, channels, False).to(device),
                                           data, None, device)
        times = {n: [] for n in timers}
        for rep in range(reps + 1):
            for name, epoch in timers.items():
                t = epoch()
                if rep:
                    times[name].append(t)
        row = {"layers": L, "ranks": 1 if partition is None else partition.size}
        for name, ts in times.items():
            row[f"{name}_s"] = median([t[0] for t in ts])
        row["phases"] = {ph: median([t[1][ph] for t in times["lp"]])
                         for ph in times["lp"][0][1]}
        # the rest of the step (opening/closing maps, loss, Adam), epoch by epoch
        row["other_s"] = median([t[0] - sum(t[1].values()) for t in times["lp"]])
        rows.append(row)
    return rows


def _mpi_worker(args) -> int:
    """Under mpiexec: the layer-parallel epochs on all ranks; rank 0 writes the rows."""
    from mgritlab.graphs.train import load_graph
    from mgritlab.mgrit.mpi import MPIPartition
    from mgritlab.mgrit.world import world

    torch.set_num_threads(1)
    comm, rank, _ = world()
    part = MPIPartition(comm)
    data, ops = load_graph("Cora")
    rows = epoch_rows(data, ops, args.layers, args.channels, args.reps, "cpu", part,
                      serial=False)
    # each rank's share of the states and adjoints, after one more step
    mem = []
    for L in args.layers:
        m = build(data, ops, L, args.channels, True, part)
        epoch_timer(m, data, part)()
        mem.append(comm.gather(held_bytes(m), root=0))
    if rank == 0:
        for row, per_rank in zip(rows, mem):
            row["per_rank"] = per_rank
        Path(args.worker).write_text(json.dumps(rows))
    return 0


def run_ranks(args) -> list[dict]:
    from mgritlab.cluster import run_mpi

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(out),
               "--layers", *map(str, args.layers), "--channels", str(args.channels),
               "--reps", str(args.reps)]
        proc = run_mpi(cmd, args.ranks, timeout=3600)
        if proc.returncode != 0:
            raise RuntimeError(f"the {args.ranks}-rank run failed:\n{proc.stdout}")
        return json.loads(out.read_text())


# -- 3. the model ----------------------------------------------------------------------------
def model_rows(serial_s, other_s, costs, layers, ranks_list):
    """mgritlab.nn.cost_model.epoch_model at each rank count, beside the measured serial."""
    from mgritlab.nn.cost_model import epoch_model

    rows = []
    for P in ranks_list:
        m = epoch_model(costs, layers, P, levels=LP["max_levels"], cf=LP["cf"],
                        fwd_iters=LP["fwd_iters"], bwd_iters=LP["bwd_iters"], other=other_s)
        rows.append({"ranks": P, "sigma_first": m["sigma_first"], "sigma": m["sigma"],
                     "forward_s": m["forward"], "adjoint_s": m["adjoint"],
                     "gradient_s": m["gradient"], "epoch_s": m["total"],
                     "speedup_over_serial": serial_s / m["total"]})
    return rows


def markdown(res) -> str:
    out = ["# Layer-parallel PDE-GCN-D on CORA (`bench_lp_pdegcn.py`)", "",
           f"{res['channels']} channels, device {res['device']}, {res['threads']} torch "
           f"thread(s) per process; layer-parallel: 3 levels, cf 4, T1 = 2, T2 = 1, "
           f"F-relaxation on the fine level, FCF on the coarse ones. Medians of "
           f"{res['reps']} repetitions after a warm-up, variants interleaved.", "",
           "## 1. One call of the layer step on B layers (ms per layer)", "",
           "| mode | B | loop | batched | loop / single | batched / single | auto |",
           "|---|---:|---:|---:|---:|---:|---|"]
    by = {(r["mode"], r["B"], r["layout"]): r for r in res["layer_step"]}
    for mode in ("eval", "train"):
        for B in res["batches"]:
            lo, ba = by[(mode, B, "loop")], by[(mode, B, "batched")]
            auto = "loop" if lo["auto"] else "batched"
            out.append(f"| {mode} | {B} | {lo['ms_per_layer']:.2f} | {ba['ms_per_layer']:.2f} | "
                       f"{lo['ratio_to_single']:.2f} | {ba['ratio_to_single']:.2f} | {auto} |")
    a = res["adjoint_step"]
    out += ["", f"Adjoint step (vjp_x) {1e3 * a['vjp_x']:.2f} ms per layer, design gradient "
            f"(vjp_theta) {1e3 * a['vjp_theta']:.2f} ms, linearisation (σ'(z), once per "
            f"backward) {1e3 * a['linearize']:.2f} ms (B = {res['adjoint_B']}, training "
            f"mode).", "",
            "## 2. Seconds per training epoch (forward, backward, Adam)", "",
            "| layers | ranks | serial s | LP s | LP forward | LP adjoint | LP gradient | "
            "LP comm. | LP other | LP / LP 1 rank | states per rank (MB) |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    one = {r["layers"]: r["lp_s"] for r in res["epochs"] if r["ranks"] == 1}
    for r in res["epochs"]:
        ph = r["phases"]
        mem = ", ".join(f"{p['state_bytes'] / 2**20:.1f}" for p in r.get("per_rank", []))
        out.append(f"| {r['layers']} | {r['ranks']} | "
                   f"{r.get('serial_s', float('nan')):.3f} | {r['lp_s']:.3f} | "
                   f"{ph['forward']:.3f} | {ph['adjoint']:.3f} | {ph['gradient']:.3f} | "
                   f"{ph['communication']:.3f} | {r['other_s']:.3f} | "
                   f"{r['lp_s'] / one[r['layers']]:.2f} | {mem} |")
    out += ["", "## 3. Critical-path model from the measured costs "
            f"({res['model_layers']} layers)", "",
            "| ranks | σ first / later | model epoch s | measured epoch s | "
            "model speedup over serial |", "|---:|---:|---:|---:|---:|"]
    meas = {r["ranks"]: r["lp_s"] for r in res["epochs"] if r["layers"] == res["model_layers"]}
    for m in res["model"]:
        got = f"{meas[m['ranks']]:.3f}" if m["ranks"] in meas else ""
        out.append(f"| {m['ranks']} | {m['sigma_first']:.0f} / {m['sigma']:.0f} | "
                   f"{m['epoch_s']:.3f} | {got} | {m['speedup_over_serial']:.2f} |")
    out += ["", "Targets: " + "; ".join(f"{k}: {v}" for k, v in res["targets"].items()), ""]
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    p.add_argument("--layers", type=int, nargs="+", default=None)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--reps", type=int, default=None)
    p.add_argument("--ranks", type=int, default=2, help="MPI ranks of the distributed rows "
                   "(1: none)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (no MPI rows on cuda)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.layers = args.layers or ([32, 64] if args.quick else [64, 256])
    args.reps = args.reps or (1 if args.quick else 3)
    if args.worker:
        return _mpi_worker(args)
    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here; run with --device cpu")
    from mgritlab.graphs.train import load_graph

    data, ops = load_graph("Cora")
    ops_dev = ops if args.device == "cpu" else ops.to(device=args.device)
    data_dev = data.to(args.device) if args.device != "cpu" else data
    batches = [1, 4, 16] if args.quick else [1, 4, 16, 64]

    print("1. layer step", flush=True)
    steps = layer_costs(data_dev, ops_dev, args.channels, batches, max(7, args.reps + 4),
                        args.device)
    adjoint_B = 4
    adj = adjoint_costs(data_dev, ops_dev, args.channels, adjoint_B, max(7, args.reps + 4),
                        args.device)
    print("2. epochs", flush=True)
    epochs = epoch_rows(data_dev, ops_dev, args.layers, args.channels, args.reps, args.device)
    for r in epochs:  # one process's share: all of it
        m = build(data_dev, ops_dev, r["layers"], args.channels, True).to(args.device)
        epoch_timer(m, data_dev, None, args.device)()
        r["per_rank"] = [held_bytes(m)]
    if args.ranks > 1 and args.device == "cpu":
        epochs += run_ranks(args)

    L = max(args.layers)
    row1 = next(r for r in epochs if r["layers"] == L and r["ranks"] == 1)
    single = {r["mode"]: r["ms_per_layer"] / 1e3 for r in steps
              if r["B"] == 1 and r["layout"] == "loop"}
    c_step = single["train"]  # at 64 ranks the relaxation calls hold one to three layers
    ranks_list = sorted({1, 2, args.ranks, 16, 32, 64} - {0})
    ranks_list = [P for P in ranks_list if P <= L // LP["cf"]]
    costs = {"step": c_step, "vjp_x": adj["vjp_x"], "vjp_theta": adj["vjp_theta"],
             "linearize": adj["linearize"]}
    model = model_rows(row1["serial_s"], row1["other_s"], costs, L, ranks_list)

    def ratio(mode, B, layout="loop"):
        return next(r["ratio_to_single"] for r in steps
                    if (r["mode"], r["B"], r["layout"]) == (mode, B, layout))

    auto = next(r["layout"] for r in steps if r["auto"])
    best = {(mode, B): ratio(mode, B, auto) for mode in ("eval", "train") for B in batches}
    targets = {
        f"batched step per layer <= single (B=16, 64, auto layout = {auto})": " ".join(
            f"{mode} B={B}: {best[(mode, B)]:.2f}" for mode in ("eval", "train")
            for B in batches if B >= 16),
    }
    two = [r for r in epochs if r["layers"] == L and r["ranks"] > 1]
    if two:
        targets[f"{two[0]['ranks']}-rank LP epoch <= 0.6 x 1-rank ({L} layers)"] = \
            f"{two[0]['lp_s'] / row1['lp_s']:.2f}"
        s1 = row1["per_rank"][0]["state_bytes"]
        targets["states per rank ∝ 1/P"] = ", ".join(
            f"{p['state_bytes'] / s1:.2f}" for p in two[0]["per_rank"])
    m64 = [m for m in model if m["ranks"] == 64]
    if m64:
        targets["model speedup >= 3.5 at 64 ranks"] = f"{m64[0]['speedup_over_serial']:.2f}"

    res = {"machine": platform.platform(), "processor": platform.processor(),
           "cpus": os.cpu_count(), "torch": torch.__version__, "device": args.device,
           "threads": torch.get_num_threads(), "channels": args.channels, "reps": args.reps,
           "batches": batches, "layer_step": steps, "adjoint_step": adj, "adjoint_B": adjoint_B,
           "epochs": epochs, "model_layers": L, "model": model, "targets": targets}
    name = "lp_pdegcn" if args.device == "cpu" else f"lp_pdegcn_{args.device.split(':')[0]}"
    keep(result_path(name, quick=args.quick, out=args.out), res, markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
