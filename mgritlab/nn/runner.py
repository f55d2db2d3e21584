"""One resumable training runner: the epoch loop every training function shares.

What a run needs to survive a kill, a Ctrl-C or a corrupt file, in one place:

- :func:`run_epochs` — the loop: a progress bar (tqdm), SIGINT/SIGTERM deferred to the end of
  the epoch (a second one stops at once), a checkpoint every ``every`` epochs, at the last one
  and when stopped, and on MPI ranks one agreed stopping epoch (``agree``);
- :func:`finish_run` — the end of a run: rank 0 writes the record; a stopped run raises
  KeyboardInterrupt carrying it as ``partial_result``, with how to continue;
- :func:`save_atomic` / :func:`write_json_atomic` — a file is replaced only by a complete one
  (a unique temporary name in the same folder, then ``os.replace``), so a SIGKILL mid-write
  keeps the previous file and two runs writing into the same folder never share a temporary;
- :func:`load_checkpoint` / :func:`read_json` — a truncated, empty or foreign file is named
  with what to do, and a corrupt result JSON is ignored (rebuilt from the checkpoint);
- :func:`rng_state` / :func:`set_rng_state` — torch, numpy and random, so that a resumed run
  draws the same dropout masks as the uninterrupted one;
- :func:`update_best` — honest model selection: the test accuracy **at the epoch of best
  validation accuracy** (ties broken by the lower validation loss), never the best test
  accuracy (the protocol of Kipf & Welling 2017 and of the PDE-GCN paper, Eliasof et al. 2021).
"""
from __future__ import annotations

import json
import math
import os
import random
import signal
import tempfile
import threading
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read; the message names the file and what to do."""


class RankCheckpointError(CheckpointError):
    """A checkpoint only one MPI rank reads (its own MGRIT warm start) that it cannot read: the
    other ranks do not see the problem, so this rank must say it (rank 0 prints the rest)."""


# ---- random state ------------------------------------------------------------------------------
# the global generators, legacy numpy's included: code under training may draw from any of them
def rng_state() -> dict:
    """The states of torch's, numpy's and Python's global generators."""
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),  # noqa: NPY002
            "random": random.getstate()}


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    random.setstate(state["random"])


def seed_all(seed: int) -> None:
    """Seed torch, numpy and random alike (the start of every run)."""
    torch.manual_seed(seed)
    np.random.seed(seed)  # noqa: NPY002
    random.seed(seed)


# ---- files -------------------------------------------------------------------------------------
@contextmanager
def _replacing(path: Path, mode: str):
    """A file object on a unique temporary beside ``path`` that replaces ``path`` on success."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_atomic(obj, path: str | Path) -> None:
    """``torch.save(obj, path)``, replacing ``path`` only by a complete file."""
    with _replacing(Path(path), "wb") as f:
        torch.save(obj, f)


def write_json_atomic(obj, path: str | Path, *, indent: int | None = None) -> None:
    """``obj`` as JSON in ``path``, replacing it only by a complete file."""
    text = json.dumps(obj, indent=indent)  # fails before the file is touched
    with _replacing(Path(path), "w") as f:
        f.write(text)


def load_checkpoint(path: str | Path, *, keys=()) -> dict:
    """A checkpoint written by :func:`save_atomic`, with ``keys`` present.

    Raises :class:`CheckpointError` naming the file when it is truncated, empty or not a
    checkpoint; the file is left as it is (delete it to start the run again).
    """
    path = Path(path)
    what = ("delete it to train this run again from the start, or run without --resume "
            "into another --out folder")
    try:
        # our own files hold numpy and Python RNG states, which weights_only=True refuses
        ck = torch.load(path, weights_only=False)
    except Exception as err:  # noqa: BLE001 — unpickling garbage can raise anything
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else ""
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(err).__name__}"
                              f"{': ' + first if first else ''}): it is truncated, empty or "
                              f"not a checkpoint; {what}") from None
    missing = [k for k in keys if not isinstance(ck, dict) or k not in ck]
    if missing:
        raise CheckpointError(f"checkpoint {path} is not a training checkpoint (no "
                              f"{', '.join(map(repr, missing))}); {what}")
    return ck


def read_json(path: str | Path) -> dict | None:
    """The JSON object in ``path``; None (with a warning) when it is missing or corrupt —
    a result file is rebuilt from the checkpoint, so a truncated one must not stop a resume."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        obj = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        warnings.warn(f"{path} is not valid JSON ({err}); ignoring it, the run continues from "
                      "its checkpoint and rewrites it", RuntimeWarning, stacklevel=2)
        return None
    return obj if isinstance(obj, dict) else None


# ---- model selection ---------------------------------------------------------------------------
def no_best() -> dict:
    """The selection before the first epoch."""
    return {"epoch": -1, "val_acc": -1.0, "val_loss": math.inf, "test_acc": float("nan")}


def update_best(best: dict, epoch: int, row: dict, keep=("test_acc",)) -> dict:
    """``best`` after an epoch with ``row`` (val_acc, val_loss and the ``keep`` entries): the
    epoch of highest validation accuracy, ties broken by the lower validation loss."""
    if row["val_acc"] > best["val_acc"] or (
            row["val_acc"] == best["val_acc"] and row["val_loss"] < best["val_loss"]):
        best = {"epoch": epoch, "val_acc": row["val_acc"], "val_loss": row["val_loss"],
                **{k: row[k] for k in keep}}
    return best


# ---- the loop ----------------------------------------------------------------------------------
@contextmanager
def deferred_signals(stop: list):
    """Turn SIGINT/SIGTERM into an entry in ``stop``, checked at epoch boundaries (main thread
    only), so an interrupted run stops on a consistent state and loses nothing; a second
    signal stops at once."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    old = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, frame):
        if stop:
            raise KeyboardInterrupt("second interrupt: stopped at once, in the middle of an "
                                    "epoch; the epochs since the last checkpoint are lost")
        stop.append(signum)

    for sig in old:
        signal.signal(sig, handler)
    try:
        yield stop
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def run_epochs(step: Callable[[int], dict | None], *, start: int, end: int, total: int,
               checkpoint: Callable[[int], None] | None = None, every: int = 1,
               agree: Callable[[bool], bool] | None = None, desc: str = "",
               progress: bool = True) -> bool:
    """Run ``step(epoch)`` for epochs ``start .. end-1`` of a ``total``-epoch run.

    ``step`` returns what the progress bar shows (a dict) or None. ``checkpoint(done)`` is
    called after every ``every``-th epoch, after epoch ``total`` and when a signal stops the
    run; ``agree(flag)`` or-s the stop flag over MPI ranks, so that every rank stops after the
    same epoch. Returns True when SIGINT/SIGTERM stopped the run (after its epoch and
    checkpoint), False when it reached ``end``. Exceptions of ``step`` propagate.
    """
    from tqdm.auto import tqdm

    if int(every) != every or every < 1:
        raise ValueError(f"checkpoint every {every!r} epochs: give a whole number >= 1")
    bar = tqdm(range(start, end), desc=desc, disable=not progress, initial=start, total=total,
               leave=False)
    stop: list[int] = []
    try:
        with deferred_signals(stop):
            for epoch in bar:
                shown = step(epoch)
                if shown:
                    bar.set_postfix(shown)
                done = epoch + 1
                stopping = agree(bool(stop)) if agree is not None else bool(stop)
                if checkpoint is not None and (done % every == 0 or done == total or stopping):
                    checkpoint(done)
                if stopping:
                    return True
    finally:
        bar.close()
    return False


def finish_run(record, *, stopped: bool, what: str, json_path: str | Path | None = None,
               lead: bool = True, resume: str | None = None):
    """The end of a resumable run: ``lead`` (rank 0) writes ``record`` to ``json_path``; a run
    that a signal stopped (``run_epochs`` returned True) raises KeyboardInterrupt with
    ``record`` as ``partial_result`` and the message ``what`` plus how to continue
    (``resume``, e.g. ``"resume=True (run.ckpt.pt)"``; None when nothing was checkpointed).
    Returns ``record`` otherwise."""
    if json_path is not None and lead:
        write_json_atomic(record, json_path)
    if stopped:
        err = KeyboardInterrupt(what + (f"; continue with {resume}" if resume else
                                        "; no checkpoint was written, so it cannot be resumed"))
        err.partial_result = record
        raise err
    return record
