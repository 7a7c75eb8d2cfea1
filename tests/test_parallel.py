import os

import numpy as np
import pytest

from guardrl._parallel import ChildJobError, run_forked


def test_results_come_back_in_order_from_closures_over_parent_memory():
    big = np.arange(2_000_000, dtype=np.float64)  # shared copy-on-write: only the sums travel back
    jobs = [lambda k=k: (os.getpid(), float(big[k::3].sum())) for k in range(3)]
    forked = run_forked(jobs, workers=2)
    assert [value for _, value in forked] == [float(big[k::3].sum()) for k in range(3)]
    assert os.getpid() not in {pid for pid, _ in forked}  # each job ran in a child


def test_one_worker_runs_the_jobs_here_in_order():
    seen: list[int] = []
    jobs = [lambda k=k: seen.append(k) or os.getpid() for k in range(3)]
    assert run_forked(jobs, workers=1) == [os.getpid()] * 3
    assert seen == [0, 1, 2]  # side effects on the parent's memory: the jobs ran in this process


def test_a_failing_child_raises_with_its_traceback():
    def bad() -> None:
        raise ValueError("fqe diverged at step 17")

    with pytest.raises(ChildJobError, match=r"job 1 failed(.|\n)*ValueError: fqe diverged at step 17"):
        run_forked([lambda: 1, bad, lambda: 3], workers=2)


def test_a_child_that_dies_is_an_error_with_its_exit_code():
    with pytest.raises(ChildJobError, match=r"job 0 died without a result \(exit code 3\)"):
        run_forked([lambda: os._exit(3), lambda: 2], workers=2)
