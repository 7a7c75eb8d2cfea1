import os
import time
from pathlib import Path

import numpy as np
import pytest

from guardrl._parallel import BackgroundWorker, ChildJobError, run_forked


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


def write_pid(path: Path, delay: float = 0.0) -> None:
    time.sleep(delay)
    path.write_text(str(os.getpid()))


def fail(message: str) -> None:
    raise ValueError(message)


def test_background_calls_run_in_one_child_in_order_while_the_parent_goes_on(tmp_path):
    with BackgroundWorker() as worker:
        worker.submit(f"{__name__}:write_pid", tmp_path / "a", delay=0.3)
        worker.submit(f"{__name__}:write_pid", path=tmp_path / "b")
        assert not (tmp_path / "a").exists()  # submit did not wait for the call
        worker.join()
        pids = {(tmp_path / n).read_text() for n in "ab"}
    assert len(pids) == 1 and str(os.getpid()) not in pids
    assert (tmp_path / "a").stat().st_mtime_ns <= (tmp_path / "b").stat().st_mtime_ns


def test_a_failing_background_call_raises_at_join_and_later_calls_still_run(tmp_path):
    with BackgroundWorker() as worker:
        worker.submit(f"{__name__}:fail", "no such plot column 'cost'")
        worker.submit(f"{__name__}:write_pid", tmp_path / "after")
        with pytest.raises(ChildJobError, match=r"fail failed in the background worker(.|\n)*no such plot column"):
            worker.join()
        worker.join()  # the failure was reported once
    assert (tmp_path / "after").exists()


def test_a_background_worker_that_dies_is_an_error_naming_the_call():
    with BackgroundWorker() as worker:
        worker.submit("os:_exit", 5)
        with pytest.raises(ChildJobError, match=r"died during os:_exit \(exit code 5\)"):
            worker.join()


def test_an_error_in_the_parent_abandons_the_background_work(tmp_path):
    worker = BackgroundWorker()
    with pytest.raises(RuntimeError, match="stage failed"), worker:
        worker.submit(f"{__name__}:write_pid", tmp_path / "slow", delay=30)
        raise RuntimeError("stage failed")
    assert not worker._process.is_alive() and not (tmp_path / "slow").exists()


def test_a_worker_freed_by_a_short_job_starts_the_next_while_a_long_one_runs(tmp_path):
    # job 0 runs 1.5 s; jobs 1-3 are short: they must all run beside it, not wait for it to end
    def stamp(k: int, delay: float) -> float:
        time.sleep(delay)
        return time.monotonic()

    ends = run_forked([lambda k=k, d=d: stamp(k, d) for k, d in enumerate([1.5, 0.1, 0.1, 0.1])], workers=2)
    assert max(ends[1:]) < ends[0]  # results still come back in order
