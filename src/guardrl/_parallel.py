"""Run independent jobs in forked child processes, or as Ray tasks on a cluster.

d3rlpy's update loop is Python-bound and holds the GIL, so threads do not overlap two trainings (measured: BC and
CQL in two threads took 6.57 s against 6.77 s one after the other). Forked processes do. A forked child shares
the parent's memory copy-on-write, so a job may be a closure over large arrays and loaded models: only its result
is pickled, back through a pipe.

Inside :func:`ray_session` (a run whose config names ``ray.address``, or with ``RAY_ADDRESS`` set), the same jobs
run as Ray tasks on that cluster instead: each job is serialized (Ray's cloudpickle; large arrays travel through
its object store) and its result comes back the same way.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import signal
import socket
import sys
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any, TypeVar

from guardrl.errors import ConfigError

T = TypeVar("T")


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch on ``n`` intra-op threads inside the block, restored after (torch loads on first use)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class ChildJobError(RuntimeError):
    """A job failed in its child process; the message carries the child's traceback."""


def _child(job: Callable[[], Any], conn: Connection) -> None:
    try:
        # one intra-op thread per child: the children already use the cores, and torch's OpenMP pool is not
        # safe to use after a fork (the reason PyTorch's DataLoader workers do the same)
        import torch

        torch.set_num_threads(1)
        conn.send(("ok", job()))
    except BaseException:  # noqa: BLE001 - every failure goes back to the parent, which raises it
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


_SESSION: dict[str, Any] = {}
"""The Ray session of the block running now (see :func:`ray_session`), under ``"info"``; empty without one."""


@contextlib.contextmanager
def own_sigterm() -> Iterator[None]:
    """This process's SIGTERM handler, restored on the way out: ``ray.init`` installs its own and leaves it behind
    after shutting down, and a process forked later with Ray's handler does not end on ``terminate()``."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)


def connect_ray(ray: Any, address: str) -> None:
    """Join the Ray cluster at ``address``, or a user error that says what is missing or unreachable."""
    hint = "check that `ray start --head` runs there and the address is reachable"
    host, _, port = address.rpartition(":")
    if host and port.isdigit() and "://" not in address:
        # Ray retries an unreachable head for minutes; a refused connection is known at once
        try:
            socket.create_connection((host, int(port)), timeout=10).close()
        except OSError as exc:
            raise ConfigError(f"ray address {address!r}: cannot connect ({exc.strerror or exc}); {hint}") from None
    try:
        ray.init(address=address, log_to_driver=False)
    except (ValueError, ConnectionError, RuntimeError, TimeoutError) as exc:
        hint = (
            "a ray:// address needs Ray's client: pip install 'ray[client]'"
            if address.startswith("ray://") and "ray[client]" in str(exc)
            else hint + " (a cluster with Ray's token authentication also needs RAY_AUTH_MODE=token and its token "
            "on this machine: ~/.ray/auth_token or RAY_AUTH_TOKEN)"
        )
        raise ConfigError(f"ray address {address!r}: cannot connect ({str(exc).splitlines()[0]}); {hint}") from None


@contextlib.contextmanager
def ray_session(address: str | None) -> Iterator[dict[str, Any] | None]:
    """Inside the block, :func:`run_forked` and :func:`run_tasks` run their jobs as tasks on the Ray cluster at
    ``address``; yields what the run records of it (address, live nodes, tasks run), or None without an address.

    A process that is already part of a Ray session (a sweep's trial runs in a Ray worker) keeps to local
    processes: its parallelism is the sweep's."""
    if not address:
        yield None
        return
    try:
        import ray
    except ImportError:
        raise ConfigError("ray.address: Ray is not installed (pip install 'guardrl[ray]'), or unset it") from None
    if ray.is_initialized():
        yield None
        return
    with own_sigterm():
        connect_ray(ray, address)
        try:
            nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
            info: dict[str, Any] = {"backend": "ray", "address": address, "nodes": nodes, "tasks": 0}
            _SESSION["info"] = info
            yield info
        finally:
            _SESSION.pop("info", None)
            ray.shutdown()


def ray_info() -> dict[str, Any] | None:
    """The running block's Ray session (see :func:`ray_session`), or None."""
    return _SESSION.get("info")


def run_tasks(function: Callable[..., T], calls: Sequence[tuple[Any, ...]]) -> list[T]:
    """``function(*args)`` for every ``args`` of ``calls``, in order: as Ray tasks (one CPU each) inside a
    :func:`ray_session`, else here one after the other. ``function`` must be importable where the tasks run
    (a module-level function of an installed package), and its arguments picklable."""
    info = ray_info()
    if info is None:
        return [function(*args) for args in calls]
    import ray

    remote = ray.remote(num_cpus=1)(function)
    refs = [remote.remote(*args) for args in calls]
    info["tasks"] += len(refs)
    try:
        return list(ray.get(refs))
    except ray.exceptions.RayTaskError as exc:
        raise ChildJobError(f"a Ray task failed:\n{exc}") from None


def _run_job(job: Callable[[], T]) -> T:
    return job()


def run_forked(jobs: Sequence[Callable[[], T]], workers: int) -> list[T]:
    """Results of ``jobs``, in order, each run in a forked child, at most ``workers`` at a time (a new job starts
    as soon as any running one ends); inside a :func:`ray_session`, each as a Ray task on the cluster.

    With ``workers <= 1``, a single job, or no ``fork`` start method on this platform, the jobs run inline, one
    after the other. A job that seeds its own randomness gives the same result either way.
    """
    if ray_info() is not None and len(jobs) > 1:
        return run_tasks(_run_job, [(job,) for job in jobs])
    if workers <= 1 or len(jobs) <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return [job() for job in jobs]
    ctx = multiprocessing.get_context("fork")
    results: list[Any] = [None] * len(jobs)
    running: deque[tuple[int, Any, Connection]] = deque()

    def collect() -> None:
        # whichever child is done first: waiting on the oldest would idle a worker behind one long job
        ready = wait([conn for _, _, conn in running])
        pos = next(i for i, (_, _, conn) in enumerate(running) if conn in ready)
        index, process, conn = running[pos]
        del running[pos]
        try:
            status, value = conn.recv()
        except EOFError:
            process.join()
            raise ChildJobError(f"job {index} died without a result (exit code {process.exitcode})") from None
        finally:
            conn.close()
        process.join()
        if status != "ok":
            raise ChildJobError(f"job {index} failed in its child process:\n{value}")
        results[index] = value

    try:
        for index, job in enumerate(jobs):
            if len(running) >= workers:
                collect()
            receive, send = ctx.Pipe(duplex=False)
            process = ctx.Process(target=_child, args=(job, send), daemon=True)
            process.start()
            send.close()  # the parent keeps only the reading end, so a dead child reads as EOF
            running.append((index, process, receive))
        while running:
            collect()
    finally:
        for _, process, conn in running:  # after an error: stop the rest
            process.terminate()
            process.join()
            conn.close()
    return results


def _call(target: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)(*args, **kwargs)


def _worker(conn: Connection, preload: str | None) -> None:
    # A child forked from a threaded parent (torch's pool, a progress bar's refresh thread) may inherit the
    # standard streams' locks held; it writes nothing there, its failures go back through the pipe.
    sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the child
    if preload is not None:
        with contextlib.suppress(Exception):  # a failed import shows again, with its traceback, at the first job
            importlib.import_module(preload)
    while True:
        message = conn.recv()
        if message is None:
            break
        try:
            _call(*message)
            conn.send(("ok", None))
        except BaseException:  # noqa: BLE001 - every failure goes back to the parent, which raises it
            conn.send(("error", traceback.format_exc()))
    conn.close()


class BackgroundWorker:
    """One forked child that runs submitted calls in order while the parent goes on; for side effects only
    (a run's plots: they cost seconds of matplotlib and the run reads them only at its report).

    A call is named ``"module:function"`` so that the parent never imports what only the child needs.
    :meth:`join` waits for every call and raises :class:`ChildJobError` with the child's traceback if one failed.
    Without the ``fork`` start method the calls run inline, at submission.
    """

    def __init__(self, preload: str | None = None):
        self._pending: list[str] = []
        self._conn: Connection | None = None
        self._process: Any = None
        if "fork" in multiprocessing.get_all_start_methods():
            ctx = multiprocessing.get_context("fork")
            self._conn, child = ctx.Pipe(duplex=True)
            self._process = ctx.Process(target=_worker, args=(child, preload), daemon=True)
            self._process.start()
            child.close()

    @staticmethod
    def call(target: str, *args: Any, **kwargs: Any) -> Any:
        """``target(*args, **kwargs)`` here and now (``target`` named as for :meth:`submit`)."""
        return _call(target, args, kwargs)

    def submit(self, target: str, *args: Any, **kwargs: Any) -> None:
        """Run ``target(*args, **kwargs)`` in the child (arguments are pickled)."""
        if self._conn is None:
            _call(target, args, kwargs)
            return
        self._conn.send((target, args, kwargs))
        self._pending.append(target)

    def join(self) -> None:
        """Wait for every submitted call; raise the first failure."""
        if self._conn is None:
            return
        failures = []
        try:
            while self._pending:
                target = self._pending.pop(0)
                try:
                    status, value = self._conn.recv()
                except EOFError:
                    self._process.join(timeout=5)  # the pipe closes before the exit code is known
                    raise ChildJobError(
                        f"the background worker died during {target} (exit code {self._process.exitcode})"
                    ) from None
                if status != "ok":
                    failures.append(f"{target} failed in the background worker:\n{value}")
        finally:
            self._pending.clear()
        if failures:
            raise ChildJobError(failures[0])

    def close(self, abandon: bool = False) -> None:
        """Stop the child once its calls are done, or at once with ``abandon`` (after an error)."""
        if self._conn is None:
            return
        if not abandon:
            with contextlib.suppress(OSError):
                self._conn.send(None)
            self._process.join()
        if self._process.is_alive():
            self._process.terminate()
            self._process.join()
        self._conn.close()
        self._conn = None

    def __enter__(self) -> BackgroundWorker:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(abandon=exc_type is not None)
