"""Executors: every point once, shared objects reach the workers, stop cancels what has not started."""

from __future__ import annotations

import ast
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from sparsity_viz import executors
from sparsity_viz.executors import EXECUTORS, Executor, ProcessExecutor, SerialExecutor, get_executor


def describe(point, shared, stop):
    """A point function: what a worker sees."""
    return point, shared["tag"], torch.get_num_threads()


SLOW_S = 1.0


def slow(point, shared, stop):
    """A point of SLOW_S seconds that ends early (returning None) when its stop flag is set."""
    for _ in range(int(SLOW_S / 0.01)):
        if stop is not None and stop.is_set():  # in a worker: the pool's stop event
            return None
        time.sleep(0.01)
    return point


def worker_pid(point, shared, stop):
    import os

    return os.getpid()


def test_a_process_pool_starts_no_more_processes_than_points_or_cpus():
    """``workers=10_000`` once forked 10,000 processes for a one-point sweep (a fork pool starts them all at once)."""
    many = ProcessExecutor(workers=10_000)
    assert many.pool_size(1) == 1 and many.pool_size(10_000) == executors.usable_cpus()
    assert ProcessExecutor(workers=1).pool_size(50) == 1
    pids = list(many.map(worker_pid, range(3), shared={}))
    assert len(pids) == 3 and len(set(pids)) <= min(3, executors.usable_cpus())
    assert list(many.map(worker_pid, [], shared={})) == []  # no points: no pool at all


@pytest.mark.parametrize("executor", [SerialExecutor(), ProcessExecutor(workers=2)])
def test_every_point_once_with_the_shared_objects(executor):
    results = list(executor.map(describe, range(6), shared={"tag": "dense"}))
    assert sorted(p for p, _, _ in results) == list(range(6))
    assert {tag for _, tag, _ in results} == {"dense"}
    assert {threads for _, _, threads in results} == {1}, "one torch thread per point, on every executor"


def test_serial_points_run_on_one_thread_and_the_caller_keeps_its_own():
    """Found by an audit: serial points ran on the caller's 2 threads and Ray's on 1, and a loss differed in the
    last digits under one run id (which promises the same numbers bit for bit)."""
    from sparsity_viz.devices import torch_threads

    with torch_threads(2):
        for _, _, threads in SerialExecutor().map(describe, range(2), shared={"tag": 0}):
            assert threads == 1 and torch.get_num_threads() == 2


def test_serial_runs_in_order_and_stops_before_the_next_point():
    seen = []
    stop = threading.Event()
    for p in SerialExecutor().map(describe, range(5), shared={"tag": 0}, stop=stop):
        seen.append(p[0])
        if len(seen) == 2:
            stop.set()
    assert seen == [0, 1]


def test_process_stop_cancels_pending_and_ends_running_points():
    stop = threading.Event()
    got, stopped_at = [], None
    for result in ProcessExecutor(workers=2).map(slow, range(12), shared={}, stop=stop):
        got.append(result)
        stop.set()
        stopped_at = stopped_at or time.perf_counter()
    finished = [r for r in got if r is not None]
    assert 1 <= len(finished) < 12
    # the 11 other points would take >= 5.5 s on two workers; cancelled and ended early, what is left is the
    # pool's shutdown (a generous bound for a loaded machine)
    assert time.perf_counter() - stopped_at < 11 * SLOW_S / 2 - 1.0, "pending points were cancelled, running ones ended early"


def test_unpicklable_shared_object_is_named():
    with pytest.raises(TypeError, match="'evaluator'.*module-level function"):
        list(ProcessExecutor(workers=1).map(describe, [0], shared={"tag": 0, "evaluator": lambda m: m}))


def test_registry_and_errors():
    assert set(EXECUTORS) >= {"serial", "process"}
    assert isinstance(get_executor("process", workers=3), ProcessExecutor) and get_executor("process", 3).workers == 3
    mine = SerialExecutor()
    assert get_executor(mine) is mine and isinstance(mine, Executor)
    with pytest.raises(ValueError, match="Unknown executor 'gpu'"):
        get_executor("gpu")
    with pytest.raises(TypeError, match="map"):
        get_executor(object())
    with pytest.raises(ValueError, match="at least one worker"):
        ProcessExecutor(workers=0)


def test_executors_do_not_import_experiments():
    tree = ast.parse(Path(executors.__file__).read_text())
    imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any("experiments" in m for m in imported)


class _NeedsTwoArgs(Exception):
    def __init__(self, message, detail):
        super().__init__(message)
        self.detail = detail


def fails(point, shared, stop):
    if point == "plain":
        raise ValueError("bad level")
    raise _NeedsTwoArgs("diverged", detail=1)  # unpicklable as raised: args == ("diverged",)


def test_worker_errors_reach_the_parent_as_errors_not_a_broken_pool():
    with pytest.raises(ValueError, match="bad level"):
        list(ProcessExecutor(workers=1).map(fails, ["plain"], shared={}))
    with pytest.raises(RuntimeError, match="_NeedsTwoArgs in a worker process: diverged"):
        list(ProcessExecutor(workers=1).map(fails, ["odd"], shared={}))


# --- the Ray executor's checks that need no Ray running -------------------------------------

def test_ray_is_registered_and_built_like_the_others():
    from sparsity_viz.executors import RayExecutor

    assert EXECUTORS["ray"] is RayExecutor and RayExecutor.groups
    local = get_executor("ray", workers=2)
    assert isinstance(local, RayExecutor) and local.address is None and local.num_cpus == min(2, executors.usable_cpus())
    assert get_executor("ray", workers=10_000).num_cpus == executors.usable_cpus()  # no logical CPUs beyond the real ones
    assert RayExecutor().num_cpus is None, "a local Ray on every core by default"
    with pytest.raises(ValueError, match="num_cpus applies to a local Ray only"):
        RayExecutor(address="10.0.0.5:6379", num_cpus=2)


def test_an_unreachable_ray_address_fails_fast_with_a_clear_message():
    import socket

    from sparsity_viz.executors import ExecutorUnavailableError, check_reachable

    with socket.socket() as s:  # a port nobody listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        with pytest.raises(ExecutorUnavailableError, match=f"Cannot reach a Ray cluster at {address}.*ray start --head"):
            check_reachable(address, timeout=2.0)
    with pytest.raises(ExecutorUnavailableError, match="host:port"):
        check_reachable("head-node", timeout=2.0)
    with socket.socket() as s:  # a port that listens but says nothing is no Ray (tests/test_ray_executor.py: one that is)
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(ExecutorUnavailableError, match="accepts connections but does not answer as a Ray cluster"):
            check_reachable(f"127.0.0.1:{s.getsockname()[1]}", timeout=1.0)


def test_without_ray_installed_the_message_says_how_to_install_it(monkeypatch):
    from sparsity_viz.executors import ExecutorUnavailableError, RayExecutor

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ExecutorUnavailableError, match=r"pip install 'sparsity_viz\[ray\]'"):
        RayExecutor().check()
    with pytest.raises(ExecutorUnavailableError, match="not installed"):
        list(RayExecutor().map(describe, [0], shared={"tag": 0}))
