"""Lesson tooling: run the lesson notebooks, make student copies, strip outputs.

The conventions every lesson in ``lessons/`` follows (file names, the quick-mode switch,
``solution``/``mutant``/``check``/``instructor`` tags, stripped outputs) are written down in
CONTRIBUTING.md ("Lessons"); ``tests/test_lessons.py`` checks them. This module holds the
constants they rely on (:data:`QUICK_ENV`, :data:`SOLUTION_TAG`, :data:`MUTANT_TAG`,
:data:`CHECK_TAG`, :data:`INSTRUCTOR_TAG`, :data:`STUDENT_PLACEHOLDER`) and the tools.

Mutation testing of exercise checks
-----------------------------------
A check must fail on wrong answers, not only pass on the right one. Between an exercise's
``solution`` cell and its ``check`` cell sit one or more cells tagged ``mutant``, each a
plausible wrong answer (``wmass = np.zeros(51)``) that *rebinds* the answer's names (never
changes an object in place). A normal run leaves them out. ``run --mutants`` (the CI lesson
test) replaces each by a cell that, in the live kernel, snapshots the namespace, runs the
mutant, runs the check and requires it to raise ``AssertionError``, then restores the
namespace (:func:`expect_check_to_fail`); the real check then runs on the real answer.
Student copies drop ``mutant`` and ``instructor`` cells (nbconvert's TagRemovePreprocessor)
and replace each ``solution`` cell's source by a placeholder.

Command line (``python -m mgritlab lessons …``)
-----------------------------------------------
    run [--quick] [--resume] [--mutants] [--out DIR] [--timeout S] [names...]
                                                         execute (all, or those matching names)
    student --out DIR                                    solution-free copies
    strip [paths...]                                     remove outputs in place

``run`` writes, per lesson, the executed ``NN_topic.ipynb`` and ``NN_topic.html`` to DIR, the
PNG figures to ``DIR/figures/NN_topic/``, and ``DIR/summary.json`` (lesson, seconds, ok,
error). It tries every lesson, then fails (exit status 1, :class:`LessonError` in Python)
naming each failing lesson and its error.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

SOLUTION_TAG = "solution"
CHECK_TAG = "check"
MUTANT_TAG = "mutant"
INSTRUCTOR_TAG = "instructor"
STUDENT_PLACEHOLDER = "# Your solution here"
QUICK_ENV = "MGRITLAB_QUICK"
KERNEL_NAME = "python3"

__all__ = [
    "SOLUTION_TAG", "CHECK_TAG", "MUTANT_TAG", "INSTRUCTOR_TAG", "STUDENT_PLACEHOLDER",
    "QUICK_ENV", "LessonError", "MutantSurvived", "lessons_dir", "find_lessons", "run_lessons",
    "make_student_copy", "strip_outputs", "has_outputs", "expect_check_to_fail",
    "with_mutants", "without_mutants", "register",
]


class LessonError(RuntimeError):
    """One or more lessons failed to execute; ``failures`` maps lesson name → error text."""

    def __init__(self, failures: dict[str, str]):
        self.failures = dict(failures)
        lines = [f"{len(failures)} lesson(s) failed:"]
        lines += [f"  {name}: {err}" for name, err in failures.items()]
        super().__init__("\n".join(lines))


class MutantSurvived(AssertionError):
    """An exercise check passed a wrong answer (a ``mutant`` cell)."""


# --------------------------------------------------------------------------------------------
# Finding lessons
# --------------------------------------------------------------------------------------------
def lessons_dir() -> Path:
    """The ``lessons/`` folder: next to the package (source checkout) or in the cwd."""
    here = Path(__file__).resolve().parent.parent / "lessons"
    if here.is_dir():
        return here
    return Path.cwd() / "lessons"


def find_lessons(names: Sequence[str] | None = None, directory: Path | str | None = None
                 ) -> list[Path]:
    """Lesson notebooks, sorted; ``names`` select by path, file name, stem or prefix ("03")."""
    directory = Path(directory) if directory is not None else lessons_dir()
    all_nb = sorted(p for p in directory.glob("*.ipynb") if not p.name.startswith("."))
    if not names:
        return all_nb
    chosen: list[Path] = []
    for name in names:
        p = Path(name)
        if p.suffix == ".ipynb" and p.exists():
            hits = [p]
        else:
            key = p.name.removesuffix(".ipynb")
            hits = [q for q in all_nb if q.stem == key or q.stem.startswith(key)]
        if not hits:
            raise FileNotFoundError(
                f"no lesson matches {name!r} in {directory}; available: "
                f"{', '.join(q.stem for q in all_nb) or '(none)'}")
        chosen += [h for h in hits if h not in chosen]
    return chosen


# --------------------------------------------------------------------------------------------
# Mutation testing of the exercise checks
# --------------------------------------------------------------------------------------------
def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _label(source: str) -> str:
    first = source.strip().splitlines()[0] if source.strip() else ""
    return first.lstrip("# ").strip() if first.startswith("#") else first[:60]


def expect_check_to_fail(namespace: dict, mutant: str, check: str, label: str = "") -> str:
    """Run ``mutant`` then ``check`` in ``namespace``; the check must raise AssertionError.

    The namespace is restored afterwards (names the mutant rebinds get their old objects
    back, names it adds are removed), so the lesson goes on with the real answer. Raises
    :class:`MutantSurvived` when the check passes, and re-raises any other exception of the
    check (a check should fail with a message, not a TypeError). Returns the check's message.
    """
    saved = dict(namespace)
    try:
        exec(compile(mutant, "<mutant>", "exec"), namespace)
        try:
            exec(compile(check, "<check>", "exec"), namespace)
        except AssertionError as err:
            return str(err)
        raise MutantSurvived(
            f"the check passed a wrong answer ({label or _label(mutant)}): make it compare "
            "with an independent recomputation")
    finally:
        for key in set(namespace) - set(saved):
            del namespace[key]
        namespace.update(saved)


def _next_check(cells, start: int):
    for cell in cells[start + 1:]:
        if cell.cell_type == "code" and CHECK_TAG in _tags(cell):
            return cell
    return None


def with_mutants(nb):
    """A copy of ``nb`` with each ``mutant`` cell turned into a run of the next check on it.

    Raises ValueError if a mutant has no check after it.
    """
    import copy

    import nbformat

    nb = copy.deepcopy(nb)
    cells = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and MUTANT_TAG in _tags(cell):
            check = _next_check(nb.cells, i)
            if check is None:
                raise ValueError(f"cell {i}: a 'mutant' cell needs a 'check' cell after it")
            label = _label(cell.source)
            cells.append(nbformat.v4.new_code_cell(
                "from mgritlab.notebooks import expect_check_to_fail as _expect_check_to_fail\n"
                f"_why = _expect_check_to_fail(globals(), {cell.source!r}, {check.source!r}, "
                f"{label!r})\n"
                f"print({'wrong answer rejected (' + label + '):'!r}, _why)",
                metadata={"tags": [MUTANT_TAG]}))
        else:
            cells.append(cell)
    nb.cells = cells
    return nb


def without_mutants(nb):
    """A copy of ``nb`` without its ``mutant`` cells (what a normal run executes)."""
    import copy

    nb = copy.deepcopy(nb)
    nb.cells = [c for c in nb.cells if MUTANT_TAG not in _tags(c)]
    return nb


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _env(**values: str):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _kernel_manager(kernel_name: str):
    """A kernel manager whose python3 kernel runs on this interpreter (``sys.executable``).

    Asynchronous, as nbclient expects: with a blocking kernel client nbclient's wait for
    output blocks its event loop, so a silent cell that hangs is never stopped by the
    per-cell timeout (nor by Ctrl-C / SIGTERM).
    The kernel's sockets are CurveZMQ-encrypted when pyzmq and the kernel support it
    (jupyter_client >= 8.10, ipykernel >= 7.4 declare it in the kernelspec); otherwise
    ipykernel logs "Kernel is running over TCP without encryption" once per lesson.
    """
    import zmq
    from jupyter_client.manager import AsyncKernelManager

    km = AsyncKernelManager(kernel_name=kernel_name)
    if zmq.has("curve") and "transport_encryption" in km.trait_names():
        km.transport_encryption = "auto"  # encrypts only if the kernelspec declares curve
    spec = km.kernel_spec
    if spec is not None and spec.argv and "ipykernel_launcher" in spec.argv:
        spec.argv = [sys.executable] + spec.argv[1:]
    return km


def _error_text(err: BaseException) -> str:
    ename = getattr(err, "ename", None)
    if ename:
        return f"{ename}: {getattr(err, 'evalue', '')}".strip()
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[-1] if text else ''}"


def _failing_cell(nb) -> int | None:
    """Index of the first cell with an error output (None if none)."""
    if nb is None:
        return None
    for ci, cell in enumerate(nb.cells):
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            return ci
    return None


def _extract_figures(nb, fig_dir: Path) -> list[Path]:
    out = []
    for ci, cell in enumerate(nb.cells):
        k = 0
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" in data:
                fig_dir.mkdir(parents=True, exist_ok=True)
                path = fig_dir / f"cell{ci:03d}_{k}.png"
                path.write_bytes(base64.b64decode(data["image/png"]))
                out.append(path)
                k += 1
    return out


def run_lessons(paths: Iterable[Path | str] | None = None, out_dir: Path | str = "build/lessons",
                quick: bool = False, timeout: int = 600, *, kernel_name: str = KERNEL_NAME,
                raise_on_error: bool = True, progress: bool = True,
                resume: bool = False, mutants: bool = False) -> list[dict]:
    """Execute lesson notebooks (all of ``lessons/`` when ``paths`` is None).

    ``summary.json`` is rewritten after every lesson, so an interrupted run keeps what it did;
    with ``resume`` a lesson is skipped when the summary says it already ran successfully in
    the same mode from the same source (SHA-256 of the notebook) and its output is there.
    With ``mutants`` every ``mutant`` cell is run against its check (:func:`with_mutants`);
    otherwise mutant cells are left out.

    Each lesson runs in a fresh ``python3`` kernel on this interpreter with cwd = its folder,
    ``MGRITLAB_QUICK=1`` if ``quick``, and ``timeout`` seconds per cell. Writes the executed
    notebook, an HTML rendering and the PNG figures to ``out_dir`` and a ``summary.json``.
    Returns the summary rows ``{lesson, seconds, ok, error, figures}``; after trying every
    lesson, raises :class:`LessonError` naming each failure (unless ``raise_on_error=False``).
    """
    import nbformat
    from jupyter_core.utils import run_sync
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter
    from tqdm.auto import tqdm

    paths = find_lessons() if paths is None else [Path(p) for p in paths]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = out_dir / "summary.json"
    done = {}
    if resume and summary.exists():
        with contextlib.suppress(ValueError, OSError):
            done = {r["lesson"]: r for r in json.loads(summary.read_text(encoding="utf-8"))}
    rows: list[dict] = []
    failures: dict[str, str] = {}
    bar = tqdm(paths, desc="lessons", unit="lesson", disable=not progress)
    for path in bar:
        path = path.resolve()
        name = path.stem
        bar.set_postfix_str(name)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        old = done.get(name)
        if (old and old.get("ok") and old.get("quick") == bool(quick)
                and old.get("mutants", False) == bool(mutants)
                and old.get("source_sha256") == digest and (out_dir / f"{name}.ipynb").exists()):
            rows.append(old)
            if progress:
                bar.write(f"{name}: done earlier, skipped (resume)")
            continue
        row = {"lesson": name, "seconds": 0.0, "ok": False, "error": None, "figures": 0,
               "quick": bool(quick), "mutants": bool(mutants), "source_sha256": digest}
        t0 = time.perf_counter()
        nb = None
        try:
            nb = nbformat.read(path, as_version=4)
            nb = with_mutants(nb) if mutants else without_mutants(nb)
            km = _kernel_manager(kernel_name)
            client = NotebookClient(
                nb, km=km, kernel_name=kernel_name, timeout=timeout,
                resources={"metadata": {"path": str(path.parent)}})
            try:
                with _env(**{QUICK_ENV: "1" if quick else "0", "MPLBACKEND": "Agg"}):
                    client.execute()
            finally:  # the client does not own a km it was given: shut the kernel down here
                if km.has_kernel:
                    run_sync(km.shutdown_kernel)(now=True)
            row["ok"] = True
        except Exception as err:  # noqa: BLE001 - every failure is reported, then raised
            row["error"] = _error_text(err)
            cell = _failing_cell(nb)
            if cell is not None:
                row["error"] = f"cell {cell}: {row['error']}"
            failures[name] = row["error"]
        row["seconds"] = round(time.perf_counter() - t0, 2)
        if nb is not None:
            try:
                nbformat.write(nb, out_dir / f"{name}.ipynb")
                body, _ = HTMLExporter().from_notebook_node(nb)
                (out_dir / f"{name}.html").write_text(body, encoding="utf-8")
                row["figures"] = len(_extract_figures(nb, out_dir / "figures" / name))
            except Exception as err:  # noqa: BLE001
                if row["ok"]:
                    row["ok"], row["error"] = False, f"export failed: {_error_text(err)}"
                    failures[name] = row["error"]
        rows.append(row)
        summary.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
        if progress:
            status = "ok" if row["ok"] else f"FAILED ({row['error']})"
            bar.write(f"{name}: {row['seconds']:.1f} s {status}")
    summary.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    if failures and raise_on_error:
        raise LessonError(failures)
    return rows


# --------------------------------------------------------------------------------------------
# Student copies and output stripping
# --------------------------------------------------------------------------------------------
def _strip_nb(nb) -> bool:
    changed = False
    for cell in nb.cells:
        if cell.cell_type == "code":
            if cell.get("outputs"):
                cell.outputs = []
                changed = True
            if cell.get("execution_count") is not None:
                cell.execution_count = None
                changed = True
        md = cell.get("metadata", {})
        for key in ("execution", "collapsed", "scrolled", "ExecuteTime"):
            if key in md:
                del md[key]
                changed = True
    return changed


def has_outputs(nb) -> bool:
    """True if some code cell of ``nb`` (a NotebookNode) has outputs or an execution count."""
    return any(c.cell_type == "code" and (c.get("outputs") or c.get("execution_count")
                                          is not None) for c in nb.cells)


def strip_outputs(paths: Iterable[Path | str] | None = None) -> list[Path]:
    """Remove outputs, execution counts and execution metadata in place; returns changed files."""
    import nbformat

    paths = find_lessons() if paths is None else [Path(p) for p in paths]
    changed = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        if _strip_nb(nb):
            nbformat.write(nb, path)
            changed.append(Path(path))
    return changed


def make_student_copy(src_dir: Path | str | None = None, out_dir: Path | str = "build/student"
                      ) -> list[Path]:
    """Copy every lesson for students: no solutions, no wrong answers, no model answers.

    Each ``solution`` cell's source is replaced by a placeholder; ``mutant`` and
    ``instructor`` cells are removed (nbconvert's TagRemovePreprocessor); check cells are kept
    (students run them to test their answers); outputs are stripped. Returns the written paths.
    """
    import nbformat
    from nbconvert.preprocessors import TagRemovePreprocessor

    remove = TagRemovePreprocessor(remove_cell_tags={MUTANT_TAG, INSTRUCTOR_TAG})

    src_dir = Path(src_dir) if src_dir is not None else lessons_dir()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in find_lessons(directory=src_dir):
        nb, _ = remove.preprocess(nbformat.read(path, as_version=4), {})
        for cell in nb.cells:
            if cell.cell_type == "code" and SOLUTION_TAG in _tags(cell):
                cell.source = STUDENT_PLACEHOLDER
        _strip_nb(nb)
        dest = out_dir / path.name
        nbformat.write(nb, dest)
        written.append(dest)
    return written


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------
def _cmd_run(args) -> int:
    try:
        paths = find_lessons(args.names or None)
    except FileNotFoundError as err:
        print(err, file=sys.stderr)
        return 2
    if not paths:
        print(f"no lessons found in {lessons_dir()}", file=sys.stderr)
        return 1
    try:
        rows = run_lessons(paths, args.out, quick=args.quick, timeout=args.timeout,
                           resume=args.resume, mutants=args.mutants)
    except LessonError as err:
        print(str(err), file=sys.stderr)
        print(f"executed notebooks and summary.json are in {args.out}", file=sys.stderr)
        return 1
    total = sum(r["seconds"] for r in rows)
    print(f"{len(rows)} lesson(s) ok in {total:.1f} s; output in {args.out}")
    return 0


def _cmd_student(args) -> int:
    written = make_student_copy(args.src, args.out)
    print(f"wrote {len(written)} student notebook(s) to {args.out}")
    return 0


def _cmd_strip(args) -> int:
    paths = [Path(p) for p in args.paths] if args.paths else find_lessons()
    changed = strip_outputs(paths)
    for p in changed:
        print(f"stripped {p}")
    print(f"{len(changed)} of {len(paths)} notebook(s) changed")
    return 0


def register(subparsers) -> None:
    """Add ``lessons {run,student,strip}`` to the ``python -m mgritlab`` parser."""
    p = subparsers.add_parser("lessons", help="run lessons, make student copies, strip outputs",
                              description="Lesson notebooks: run, student, strip.")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    sub = p.add_subparsers(dest="action", metavar="action")

    r = sub.add_parser("run", help="execute lessons, write notebooks/HTML/figures/summary.json")
    r.add_argument("names", nargs="*", help="lessons to run (e.g. 01 or 02_diffusion…); "
                                            "default all")
    r.add_argument("--quick", action="store_true", help="MGRITLAB_QUICK=1: small problems (CI)")
    r.add_argument("--out", default="build/lessons", help="output folder (build/lessons)")
    r.add_argument("--timeout", type=int, default=600, help="seconds per cell (600)")
    r.add_argument("--resume", action="store_true",
                   help="skip lessons that already ran successfully (same source and mode)")
    r.add_argument("--mutants", action="store_true",
                   help="also run every exercise check on its 'mutant' wrong answers, which "
                        "it must reject")
    r.set_defaults(func=_cmd_run)

    s = sub.add_parser("student", help="copies of the lessons without solutions")
    s.add_argument("--out", default="build/student", help="output folder (build/student)")
    s.add_argument("--src", default=None, help="lesson folder (default lessons/)")
    s.set_defaults(func=_cmd_student)

    st = sub.add_parser("strip", help="remove outputs and execution counts in place")
    st.add_argument("paths", nargs="*", help="notebooks (default all lessons)")
    st.set_defaults(func=_cmd_strip)
