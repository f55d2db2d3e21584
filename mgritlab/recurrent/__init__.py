"""Layer-parallel recurrent networks: the GRU over the sequence, classic and implicit.

    gru        GRUStack (the GRU step as a layer stack with weights shared over time; classic
               or implicit, Δt per level), StepInputs (the inputs x_t as per-step data)
    model      GRUClassifier (GRU → linear on the last hidden state; serial or LayerParallel)
    datasets   load_basic_motions (UEA BasicMotions, shipped, SHA-256 checked),
               synthetic_sequences (a seeded task whose length can grow)

Submodules are imported explicitly (``from mgritlab.recurrent.gru import GRUStack``), like
:mod:`mgritlab.graphs`. This family imports :mod:`mgritlab.nn` only (beside ``graphs``).
"""
