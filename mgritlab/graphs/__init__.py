"""Graph networks as PDEs: PDE-GCN-D with IMEX terms on CORA and CiteSeer (thesis ch. 4–5).

    operators    G, Gᵀ, GᵀG as torch CSR (eq. 4.2), gather/scatter reference, B, L = BᵀB, λ_max
    datasets     offline Planetoid (shipped raw files, SHA-256 checked): load_planetoid("Cora")
    pdegcn       PDEGCN (eq. 4.4) with IMEX factor none/shared/channel/diffusion (eqs. 4.17–4.23),
                 batched layer_step(f, idx, h), PDEGCNPropagator.step(u, i, level) for MGRIT
    gcn          the GCN baseline (eq. 2.26)
    train        TrainConfig, preset, train (checkpoint/resume), train_seeds, summarize
    experiments  stability_sweep (§5.1, constant L·h), format_table, plot_curves
    cli          ``python -m mgritlab train pdegcn|gcn``, ``experiment pdegcn-stability``

Submodules are imported explicitly (``from mgritlab.graphs.pdegcn import PDEGCN``) so that the
command line stays fast.
"""
