"""Imports point one way (DESIGN.md): nothing imports a higher layer, not even lazily inside a
function. Every module under mgritlab/ is parsed with ``ast``, so the check sees the imports of
code that no test runs."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mgritlab"

# lower number = lower layer; a module may import its own layer and those below
LAYERS = {
    # kernels and the one-step math: CG/tridiagonal, operators and steppers, amplification
    # factors (stability is pure numpy; graphs.pdegcn and the MGRIT sweeps use it)
    "linalg": 0, "integrators": 0, "stability": 0,
    # mpiexec and ipyparallel launching: imports nothing of mgritlab, so the graph command
    # line and the timing sweeps below the top may start ranks with it
    "cluster": 0,
    # where the kept results are (lessons and experiments find them the same way)
    "results": 0,
    # SHA-256 sums of the shipped data (graphs' and recurrent's loaders share them)
    "checksums": 0,
    "problems": 1,
    "mgrit": 2,
    "nn": 3,
    "graphs": 4,
    # MGRIT over training steps (Schroder 2022): a model family beside graphs
    "training_runs": 4,
    # layer-parallel GRUs over the sequence (Moon & Cyr 2022): beside graphs
    "recurrent": 4,
    # the command line and the lesson tooling sit on top of everything
    "notebooks": 5, "__main__": 5, "__init__": 5, "tasks": 5,
}


def _component(module: str) -> str | None:
    """'mgritlab.graphs.train' -> 'graphs'; None outside the package."""
    parts = module.split(".")
    if parts[0] != "mgritlab":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in ``path``, at any depth."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module
            if mod == "mgritlab":  # from mgritlab import cluster
                found += [(node.lineno, f"mgritlab.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, mod))
    return found


def _layer(component: str, where: str) -> int:
    assert component in LAYERS, f"{where}: put mgritlab.{component} in a layer of LAYERS"
    return LAYERS[component]


def test_no_module_imports_a_higher_layer():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = _component(_module_name(path)) if path != PACKAGE / "__init__.py" else "__init__"
        for line, target in imports_of(path):
            dest = _component(target)
            if dest is None:
                continue
            here = f"{path.relative_to(PACKAGE.parent)}:{line}"
            if _layer(dest, here) > _layer(source, here):
                upward.append(f"{here} imports {target} ({source} -> {dest})")
    assert not upward, "imports against the layering:\n" + "\n".join(upward)


def test_the_checker_sees_lazy_and_relative_imports(tmp_path, monkeypatch):
    pkg = tmp_path / "mgritlab" / "problems"
    pkg.mkdir(parents=True)
    mod = pkg / "demo.py"
    mod.write_text("def f():\n    from ..mgrit.hierarchy import uniform_grid\n"
                   "    from . import heat\n    import mgritlab.nn\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", tmp_path / "mgritlab")
    got = [m for _, m in imports_of(mod)]
    assert got == ["mgritlab.mgrit.hierarchy", "mgritlab.problems", "mgritlab.nn"]
