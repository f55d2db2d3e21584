"""Where the kept results live: the one finder every lesson and experiment uses.

Kept results are committed under ``results/<name>/`` at the top of a source checkout (e.g.
``results/pdegcn``, ``results/pdegcn_mgrit``). A lesson runs with the working directory
``lessons/``, an experiment from the checkout, a reader perhaps from elsewhere; this module
looks in one documented order so that all of them find the same folder.
"""
from __future__ import annotations

import os
from pathlib import Path

RESULTS_ENV = "MGRITLAB_RESULTS"

__all__ = ["RESULTS_ENV", "results_root_candidates", "results_dir"]


def results_root_candidates() -> list[Path]:
    """The folders searched for ``results/``, in order.

    ``$MGRITLAB_RESULTS`` (if set), the checkout next to the installed package, then
    ``./results`` and ``../results`` (from ``lessons/``).
    """
    roots = []
    if os.environ.get(RESULTS_ENV):
        roots.append(Path(os.environ[RESULTS_ENV]))
    roots += [Path(__file__).resolve().parent.parent / "results",
              Path.cwd() / "results", Path.cwd().parent / "results"]
    seen, out = set(), []
    for r in roots:
        key = r.resolve()
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def results_dir(name: str, *, required: bool = False) -> Path | None:
    """The kept-results folder ``results/<name>``, or None when no candidate has it.

    With ``required`` a missing folder raises FileNotFoundError naming every place looked in
    and how to point at another (``$MGRITLAB_RESULTS``).
    """
    if not name or Path(name).is_absolute() or ".." in Path(name).parts:
        raise ValueError(f"name a folder under results/, e.g. 'pdegcn'; got {name!r}")
    looked = []
    for root in results_root_candidates():
        path = root / name
        if path.is_dir():
            return path
        looked.append(str(path))
    if required:
        raise FileNotFoundError(
            f"no kept results {name!r}; looked in: {', '.join(looked)}. Run from a source "
            f"checkout or set {RESULTS_ENV} to the folder that holds {name}/")
    return None
