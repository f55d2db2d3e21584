"""Where a benchmark keeps its results: ``benchmarks/results/<name>.json`` and the markdown
table ``<name>.md`` beside it. A ``--quick`` run is a smoke test: it writes ``<name>_quick.*``
(ignored by git), so it never replaces the published numbers that ``report.py`` composes into
``benchmarks/README.md``.
"""
from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def result_path(name: str, *, quick: bool = False, out: str | Path | None = None) -> Path:
    """``out`` when given, else ``results/<name>.json`` (``<name>_quick.json`` if ``quick``)."""
    if out is not None:
        return Path(out)
    return RESULTS / (f"{name}_quick.json" if quick else f"{name}.json")


def keep(path: Path, result, markdown: str | None = None, *, indent: int = 1) -> Path:
    """``result`` as JSON in ``path`` and, when given, ``markdown`` in ``path`` with .md."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=indent) + "\n")
    if markdown is not None:
        path.with_suffix(".md").write_text(markdown.rstrip("\n") + "\n")
    return path
