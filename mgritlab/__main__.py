"""Command line: ``python -m mgritlab <command> ...`` (``--help`` lists the commands).

Each command lives in the module that owns it; a module exposes ``register(subparsers)``
that adds its parser(s) with ``set_defaults(func=...)``, and ``register_experiments(exp)`` to
add experiments under ``experiment``; heavy imports stay inside ``func``.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = (
    "mgritlab.notebooks",
    "mgritlab.mgrit.cli",
    "mgritlab.graphs.cli",
    "mgritlab.training_runs.cli",
    "mgritlab.recurrent.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mgritlab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="command")
    exp = None
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name == name:  # command module not written yet
                continue
            raise
        if hasattr(module, "register"):
            module.register(sub)
        if hasattr(module, "register_experiments"):
            if exp is None:
                exp = sub.add_parser("experiment", help="run an experiment sweep"
                                     ).add_subparsers(dest="experiment_what", metavar="what")
            module.register_experiments(exp)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .mgrit.world import launcher_env

    launched = launcher_env()
    if launched is not None and launched[1] > 1:
        # under mpiexec one rank's error must end every rank, not leave them waiting
        from .mgrit.mpi_abort import abort_on_uncaught_exception

        abort_on_uncaught_exception()
    parser = build_parser()
    argv = _join_negative_values(sys.argv[1:] if argv is None else list(argv))
    args = parser.parse_args(argv)
    args.argv = argv  # for commands that relaunch themselves (e.g. under mpiexec)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


def _join_negative_values(argv: list[str]) -> list[str]:
    """``--lam -1+2j`` as ``--lam=-1+2j``: argparse takes a value that starts with '-' and is
    not a plain negative number for an option, so complex or exponent values would need '='."""
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if (a.startswith("--") and "=" not in a and nxt is not None and nxt.startswith("-")
                and _is_number(nxt)):
            out.append(f"{a}={nxt}")
            i += 2
        else:
            out.append(a)
            i += 1
    return out


def _is_number(text: str) -> bool:
    try:
        complex(text.replace("i", "j"))
    except ValueError:
        return False
    return True


def _abort_if_failed(code) -> None:
    if code not in (0, None):
        from .mgrit.mpi_abort import abort_world

        abort_world(code if isinstance(code, int) else 1)


def _run() -> int:
    """main(), and under a running MPI job a failing exit code aborts every rank: a command
    that returns an error on one rank would otherwise leave the others waiting for it."""
    try:
        code = main()
    except SystemExit as stop:
        _abort_if_failed(stop.code)
        raise
    _abort_if_failed(code)
    return code


if __name__ == "__main__":
    sys.exit(_run())
