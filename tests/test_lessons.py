"""Lessons: every notebook runs (quick mode), none is committed with outputs, student copies."""
import subprocess
from pathlib import Path

import nbformat
import pytest

from mgritlab.notebooks import (
    CHECK_TAG,
    SOLUTION_TAG,
    STUDENT_PLACEHOLDER,
    has_outputs,
    make_student_copy,
    run_lessons,
    strip_outputs,
)

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted((ROOT / "lessons").glob("*.ipynb"))


def _tags(cell):
    return cell.get("metadata", {}).get("tags", [])


@pytest.mark.notebook
@pytest.mark.timeout(600)
@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_runs_quick(path, tmp_path):
    rows = run_lessons([path], tmp_path, quick=True, timeout=600, progress=False)
    assert rows[0]["ok"], rows[0]["error"]
    assert (tmp_path / f"{path.stem}.ipynb").exists()
    assert (tmp_path / f"{path.stem}.html").exists()
    assert (tmp_path / "summary.json").exists()


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_conventions(path):
    nb = nbformat.read(path, as_version=4)
    assert path.stem[:2].isdigit() and path.stem[2] == "_", "name lessons NN_topic.ipynb"
    assert not has_outputs(nb), f"{path.name} has outputs: run `python -m mgritlab lessons strip`"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert 'QUICK = os.environ.get("MGRITLAB_QUICK", "0") == "1"' in code[0].source
    assert "What you will learn" in nb.cells[0].source
    n_sol = sum(SOLUTION_TAG in _tags(c) for c in code)
    assert n_sol >= 2, "a lesson ends with 2-3 exercises with tagged solutions"
    for i, c in enumerate(code):
        if SOLUTION_TAG in _tags(c):
            assert i + 1 < len(code) and CHECK_TAG in _tags(code[i + 1]), \
                "each solution cell is followed by a check cell"
            assert "assert" in code[i + 1].source


def test_committed_notebooks_have_no_outputs():
    tracked = subprocess.run(["git", "ls-files", "*.ipynb"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    for name in tracked:
        nb = nbformat.read(ROOT / name, as_version=4)
        assert not has_outputs(nb), f"{name} was committed with outputs or execution counts"


def _toy_notebook(path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1"),
                nbformat.v4.new_code_cell("y = 2 * x", metadata={"tags": [SOLUTION_TAG]}),
                nbformat.v4.new_code_cell("assert y == 2", metadata={"tags": [CHECK_TAG]})]
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", text="hi\n")]
    nb.cells[0].execution_count = 3
    nbformat.write(nb, path)


def test_make_student_copy_removes_solutions(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _toy_notebook(src / "01_toy.ipynb")
    (written,) = make_student_copy(src, tmp_path / "student")
    nb = nbformat.read(written, as_version=4)
    assert nb.cells[1].source == STUDENT_PLACEHOLDER
    assert nb.cells[2].source == "assert y == 2"  # checks are kept
    assert nb.cells[0].source == "x = 1" and not has_outputs(nb)
    # and on the real lessons: no solution survives
    for path in make_student_copy(ROOT / "lessons", tmp_path / "student_all"):
        for c in nbformat.read(path, as_version=4).cells:
            if SOLUTION_TAG in _tags(c):
                assert c.source == STUDENT_PLACEHOLDER


def test_strip_outputs(tmp_path):
    path = tmp_path / "01_toy.ipynb"
    _toy_notebook(path)
    assert strip_outputs([path]) == [path]
    assert not has_outputs(nbformat.read(path, as_version=4))
    assert strip_outputs([path]) == []


def test_failures_are_reported_after_all_lessons(tmp_path):
    from mgritlab.notebooks import LessonError

    bad = tmp_path / "01_bad.ipynb"
    good = tmp_path / "02_good.ipynb"
    for path, src in ((bad, "raise ValueError('boom')"), (good, "print('fine')")):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(src)]
        nbformat.write(nb, path)
    with pytest.raises(LessonError, match=r"01_bad.*ValueError: boom") as err:
        run_lessons([bad, good], tmp_path / "out", quick=True, timeout=120, progress=False)
    assert list(err.value.failures) == ["01_bad"]
    assert (tmp_path / "out" / "02_good.html").exists()


def test_resume_skips_lessons_that_already_ran(tmp_path):
    import json

    good = tmp_path / "01_good.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print('fine')")]
    nbformat.write(nb, good)
    out = tmp_path / "out"
    first = run_lessons([good], out, quick=True, timeout=120, progress=False)
    again = run_lessons([good], out, quick=True, timeout=120, progress=False, resume=True)
    assert again == first  # skipped: same source, same mode, output present
    nb.cells.append(nbformat.v4.new_code_cell("x = 1"))
    nbformat.write(nb, good)  # changed source: runs again
    third = run_lessons([good], out, quick=True, timeout=120, progress=False, resume=True)
    assert third[0]["source_sha256"] != first[0]["source_sha256"] and third[0]["ok"]
    assert json.loads((out / "summary.json").read_text())[0] == third[0]


def test_a_silent_hanging_cell_hits_the_cell_timeout(tmp_path):
    """A cell that prints nothing and never ends is stopped by the per-cell timeout (with a
    blocking kernel client nbclient waited for output for ever and the timeout never fired)."""
    from mgritlab.notebooks import LessonError

    hang = tmp_path / "01_hang.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import time\ntime.sleep(600)")]
    nbformat.write(nb, hang)
    with pytest.raises(LessonError, match=r"01_hang: cell 0: CellTimeoutError|01_hang: "
                                          r"CellTimeoutError"):
        run_lessons([hang], tmp_path / "out", quick=True, timeout=3, progress=False)
