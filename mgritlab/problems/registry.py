"""The model problems by name: one factory the command line, the MPI tasks and the lessons'
engines share (``python -m mgritlab heat``, ``tasks.mgrit_run("heat", ...)``).

Each entry names the problem's own options with their defaults; :func:`make_problem` builds
it from a name, the interval, the scheme and those options, and says which options exist when
it is given another.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .base import Problem
from .dahlquist import Dahlquist
from .heat import Heat1D
from .nonlinear import CubicDecay


@dataclass(frozen=True)
class ProblemEntry:
    """A named problem: ``build(t0=, tf=, scheme=, **options)``, its default final time,
    its own options with their defaults, and a one-line description."""

    build: Callable[..., Problem]
    tf: float
    options: dict = field(default_factory=dict)
    help: str = ""


def _dahlquist(*, lam, t0, tf, scheme):
    lam = complex(lam)
    return Dahlquist(lam.real if lam.imag == 0 else lam, scheme=scheme, t0=t0, tf=tf)


PROBLEMS: dict[str, ProblemEntry] = {
    "heat": ProblemEntry(
        lambda *, nx, a, t0, tf, scheme: Heat1D(a=a, nx=nx, t0=t0, tf=tf, scheme=scheme),
        tf=2.0, options={"nx": 1001, "a": 1.0},
        help="1-D heat equation u_t = a u_xx + b with MGRIT"),
    "dahlquist": ProblemEntry(_dahlquist, tf=5.0, options={"lam": -1.0},
                              help="the test equation y' = λy with MGRIT"),
    "nonlinear": ProblemEntry(
        lambda *, y0, t0, tf, scheme: CubicDecay(y0, scheme=scheme, t0=t0, tf=tf),
        tf=5.0, options={"y0": 1.0}, help="y' = -y^3 (FAS on a nonlinear problem)"),
}


def problem_entry(name: str) -> ProblemEntry:
    """The registered problem ``name`` (a ValueError lists the registered ones)."""
    try:
        return PROBLEMS[name]
    except KeyError:
        raise ValueError(f"unknown problem {name!r}: use one of "
                         f"{', '.join(map(repr, PROBLEMS))}") from None


def make_problem(name: str, *, t0: float = 0.0, tf: float | None = None,
                 scheme: str = "backward_euler", **options) -> Problem:
    """The model problem ``name`` ('heat', 'dahlquist' or 'nonlinear') on [t0, tf] (tf: the
    problem's default) with time stepper ``scheme`` and its own ``options`` (heat: nx, a;
    dahlquist: lam; nonlinear: y0)."""
    entry = problem_entry(name)
    unknown = sorted(set(options) - set(entry.options))
    if unknown:
        raise ValueError(f"problem {name!r} has no option(s) {', '.join(unknown)}: its options "
                         f"are {', '.join(entry.options) or 'none'}")
    return entry.build(t0=t0, tf=entry.tf if tf is None else tf, scheme=scheme,
                       **{**entry.options, **options})
