"""Lessons: every notebook runs (quick mode) with every exercise check rejecting its wrong
answers, none is committed with outputs, student copies hold no answers."""
import ast
import subprocess
from pathlib import Path

import nbformat
import pytest

from mgritlab.notebooks import (
    CHECK_TAG,
    INSTRUCTOR_TAG,
    MUTANT_TAG,
    SOLUTION_TAG,
    STUDENT_PLACEHOLDER,
    MutantSurvived,
    expect_check_to_fail,
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
    rows = run_lessons([path], tmp_path, quick=True, timeout=600, progress=False, mutants=True)
    assert rows[0]["ok"], rows[0]["error"]
    assert (tmp_path / f"{path.stem}.ipynb").exists()
    assert (tmp_path / f"{path.stem}.html").exists()
    assert (tmp_path / "summary.json").exists()
    noise = _noise(nbformat.read(tmp_path / f"{path.stem}.ipynb", as_version=4))
    assert not noise, f"{path.name}: outputs a reader should not see: {noise}"


# outputs that are noise for a reader: object reprs of a discarded return value, library
# deprecation warnings, the missing-widgets and unencrypted-kernel messages
NOISE = ("object at 0x", "<torch._C.Generator", "DeprecationWarning", "FutureWarning",
         "IProgress not found", "without encryption")


def _noise(nb) -> list[str]:
    found = []
    for ci, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            text = out.get("text", "") + str(out.get("data", {}).get("text/plain", ""))
            found += [f"cell {ci}: {pat!r}" for pat in NOISE if pat in text]
    return found


def test_noise_finder_sees_a_discarded_generator():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("torch.manual_seed(0)")]
    nb.cells[0].outputs = [nbformat.v4.new_output(
        "execute_result", data={"text/plain": "<torch._C.Generator at 0x7f>"}, execution_count=1)]
    assert _noise(nb) == ["cell 0: '<torch._C.Generator'"]
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="loss 0.5\n")]
    assert _noise(nb) == []


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_conventions(path):
    nb = nbformat.read(path, as_version=4)
    assert path.stem[:2].isdigit() and path.stem[2] == "_", "name lessons NN_topic.ipynb"
    assert not has_outputs(nb), f"{path.name} has outputs: run `python -m mgritlab lessons strip`"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert 'QUICK = os.environ.get("MGRITLAB_QUICK", "0") == "1"' in code[0].source
    assert "What you will learn" in nb.cells[0].source
    for needed in ("Prerequisites", "Study time"):
        assert needed in nb.cells[0].source, f"{path.name}: say the {needed.lower()} at the top"
    last = nb.cells[-1]
    assert last.cell_type == "markdown", f"{path.name}: end with a Summary/What next cell"
    for heading in ("## Summary", "## What next", "## References"):
        assert heading in last.source, f"{path.name}: the closing cell needs {heading!r}"
    n_sol = sum(SOLUTION_TAG in _tags(c) for c in code)
    assert n_sol >= 2, "a lesson ends with 2-3 exercises with tagged solutions"
    # exercise blocks: solution, one or more mutants (wrong answers), then the check
    block: list[str] = []
    for c in code:
        tags = _tags(c)
        if CHECK_TAG in tags:
            assert block[:1] == [SOLUTION_TAG] and MUTANT_TAG in block, (
                f"{path.name}: the check {_first_line(c)!r} must follow a solution cell and at "
                "least one 'mutant' cell (a plausible wrong answer it must reject)")
            _check_reveals_nothing(path, c)
            block = []
        elif SOLUTION_TAG in tags:
            assert not block, f"{path.name}: solution {_first_line(c)!r} has no check after it"
            block = [SOLUTION_TAG]
        elif MUTANT_TAG in tags:
            assert block, f"{path.name}: mutant {_first_line(c)!r} is not after a solution"
            block.append(MUTANT_TAG)
    assert not block, f"{path.name}: the last solution has no check after it"
    for c in nb.cells:
        if INSTRUCTOR_TAG in _tags(c):
            assert c.cell_type == "markdown", "instructor (model-answer) cells are markdown"


def _first_line(cell):
    return cell.source.strip().splitlines()[0] if cell.source.strip() else "(empty)"


def _check_reveals_nothing(path, cell):
    """A check prints only fixed text and displays no value: the student copy keeps checks."""
    tree = ast.parse(cell.source)
    assert any(isinstance(n, ast.Assert) for n in ast.walk(tree)) or "assert_" in cell.source, \
        f"{path.name}: check {_first_line(cell)!r} asserts nothing"
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
            assert all(isinstance(a, ast.Constant) for a in node.args), (
                f"{path.name}: check {_first_line(cell)!r} prints a computed value; print "
                "fixed text only (the student copy keeps checks)")
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        assert isinstance(tree.body[-1].value, ast.Call), (
            f"{path.name}: check {_first_line(cell)!r} ends in an expression, which Jupyter "
            "displays")


def test_committed_notebooks_have_no_outputs():
    tracked = subprocess.run(["git", "ls-files", "*.ipynb"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    for name in tracked:
        nb = nbformat.read(ROOT / name, as_version=4)
        assert not has_outputs(nb), f"{name} was committed with outputs or execution counts"


def _toy_notebook(path, check="assert y == 2"):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1"),
                nbformat.v4.new_code_cell("y = 2 * x", metadata={"tags": [SOLUTION_TAG]}),
                nbformat.v4.new_code_cell("# y doubled twice (x's double, twice)\ny = 4 * x",
                                          metadata={"tags": [MUTANT_TAG]}),
                nbformat.v4.new_markdown_cell("Model answer: because.",
                                              metadata={"tags": [INSTRUCTOR_TAG]}),
                nbformat.v4.new_code_cell(check, metadata={"tags": [CHECK_TAG]})]
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", text="hi\n")]
    nb.cells[0].execution_count = 3
    nbformat.write(nb, path)


def test_make_student_copy_removes_solutions(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _toy_notebook(src / "01_toy.ipynb")
    (written,) = make_student_copy(src, tmp_path / "student")
    nb = nbformat.read(written, as_version=4)
    assert [c.source for c in nb.cells] == ["x = 1", STUDENT_PLACEHOLDER, "assert y == 2"]
    assert not has_outputs(nb)  # mutant and model answer gone, the check kept
    # and on the real lessons: no solution, wrong answer or model answer survives
    for path in make_student_copy(ROOT / "lessons", tmp_path / "student_all"):
        for c in nbformat.read(path, as_version=4).cells:
            assert not {MUTANT_TAG, INSTRUCTOR_TAG} & set(_tags(c))
            if SOLUTION_TAG in _tags(c):
                assert c.source == STUDENT_PLACEHOLDER


def test_expect_check_to_fail_restores_the_namespace():
    ns = {"y": 2, "x": 1}
    why = expect_check_to_fail(ns, "y = 5\nz = 0", "assert y == 2, 'y should be twice x'")
    assert why == "y should be twice x"
    assert ns == {"y": 2, "x": 1}  # rebinding undone, new name removed
    with pytest.raises(MutantSurvived, match="passed a wrong answer"):
        expect_check_to_fail(ns, "y = 2.0", "assert y == 2")
    assert ns == {"y": 2, "x": 1}
    with pytest.raises(TypeError):  # a check must fail by assertion, with a message
        expect_check_to_fail(ns, "y = None", "assert y + 1 == 3")


def test_with_mutants_needs_a_check_after_each_mutant():
    from mgritlab.notebooks import with_mutants, without_mutants

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("y = 1", metadata={"tags": [MUTANT_TAG]})]
    with pytest.raises(ValueError, match="needs a 'check' cell after it"):
        with_mutants(nb)
    assert without_mutants(nb).cells == []


@pytest.mark.notebook
def test_a_check_that_passes_a_wrong_answer_fails_the_run(tmp_path):
    from mgritlab.notebooks import LessonError

    good, weak = tmp_path / "01_good.ipynb", tmp_path / "02_weak.ipynb"
    _toy_notebook(good)
    _toy_notebook(weak, check="assert y > 0")  # passes the mutant 4 * x too
    rows = run_lessons([good], tmp_path / "out", quick=True, timeout=120, progress=False,
                       mutants=True)
    assert rows[0]["ok"] and rows[0]["mutants"]
    with pytest.raises(LessonError, match=r"02_weak.*MutantSurvived.*y doubled twice"):
        run_lessons([weak], tmp_path / "out", quick=True, timeout=120, progress=False,
                    mutants=True)
    # a normal run leaves the mutants out
    assert run_lessons([weak], tmp_path / "out2", quick=True, timeout=120,
                       progress=False)[0]["ok"]


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
