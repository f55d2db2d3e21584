"""MGRIT over training steps under mpiexec: the residual history on 2 ranks is bitwise the
one of 1 rank (the training step is batch independent), for both product paths."""
import pytest

from mgritlab.training_runs.scaling import strong_scaling

pytestmark = pytest.mark.mpi


@pytest.mark.parametrize("options", [
    dict(problem="xor", solver="solver2", alpha_b=1.0, alpha_max=8.0, coarse_examples="level",
         steps=256, cycle="F"),
    dict(problem="binary_addition", solver="solver3", alpha_b=0.025, alpha_max=0.2,
         coarse_examples="fine", steps=64, cycle="V"),
])
def test_two_ranks_give_the_one_rank_residuals(tmp_path, options):
    one, two = strong_scaling((1, 2), out=tmp_path, timeout=240, repeat=1, **options)
    assert (one["size"], two["size"]) == (1, 2)
    assert one["converged"] and one["iterations"] >= 3
    assert two["residuals"] == one["residuals"]
    assert sorted(p.name for p in tmp_path.glob("*.json")) == ["scaling_P1.json",
                                                               "scaling_P2.json"]


def test_a_failing_rank_count_says_so(tmp_path):
    with pytest.raises(RuntimeError, match=r"scaling_run on 2 MPI rank\(s\) failed"):
        strong_scaling((2,), out=tmp_path, timeout=120, problem="xor", solver="naive",
                       alpha_b=1.0, alpha_max=None, steps=1, cycle="V")
