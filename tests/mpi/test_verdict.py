"""The 1/2/3-rank comparison itself: it fails on a digest that depends on the rank count and
on a rank that reports a problem (with that rank's message), and passes identical runs."""
from pathlib import Path

import pytest

pytestmark = pytest.mark.mpi

TOY = '''
import sys
sys.path.insert(0, {here!r})
from mpi4py import MPI
from verdict import report
comm = MPI.COMM_WORLD
size, rank = comm.Get_size(), comm.Get_rank()
problems = ["rank 1 saw a bad value"] if {fail_on_rank_1} and rank == 1 else []
report(sys.argv[1], comm, problems, "d" + (str(size) if {size_dependent} else ""))
'''


def _toy(tmp_path, name, *, fail_on_rank_1=False, size_dependent=False):
    path = tmp_path / name
    path.write_text(TOY.format(here=str(Path(__file__).parent), fail_on_rank_1=fail_on_rank_1,
                               size_dependent=size_dependent))
    return path


def test_identical_runs_pass_and_return_their_digests(same_on_ranks, tmp_path):
    assert same_on_ranks(_toy(tmp_path, "same.py"), (1, 2), timeout=60) == {1: "d", 2: "d"}


def test_a_digest_that_depends_on_the_rank_count_fails(same_on_ranks, tmp_path):
    with pytest.raises(AssertionError, match="digests differ"):
        same_on_ranks(_toy(tmp_path, "differs.py", size_dependent=True), (1, 2), timeout=60)


def test_a_rank_that_reports_a_problem_fails_with_its_message(same_on_ranks, tmp_path):
    with pytest.raises(AssertionError, match="rank 1 saw a bad value"):
        same_on_ranks(_toy(tmp_path, "fails.py", fail_on_rank_1=True), (1, 2), timeout=60)
