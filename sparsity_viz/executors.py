"""Executors: where the independent points of a sweep run (this process, local worker processes, a Ray cluster).

A sweep plans its points, hands them to an executor together with the read-only
objects every point needs (``shared``: the dense model, the dataset, the device,
the evaluator, ...), and assembles what comes back. The contract, for every
executor:

- ``map(fn, points, *, shared, stop)`` yields ``fn(point, shared, stop)`` for
  each point, **as each one finishes** (not necessarily in order), so a caller
  that records results as they arrive loses nothing finished;
- ``shared`` reaches every point, whatever the executor: in worker processes it
  is shipped once per worker (not once per point);
- once ``stop`` is set (a callable returning True, or an object with
  ``is_set()``) no new point starts, pending points are cancelled, and points
  already running get a stop flag of their own to end early (``fn`` then
  returns whatever it means by "not finished", e.g. ``None``).

``fn`` must be a module-level function (worker processes import it by name).
A point may have a ``label`` (text naming it in error messages). An executor
whose per-task overhead is large may set ``groups = True``: the caller then
hands it bigger points where it can (a sweep: one (strategy, seed) ranking cut
at every level per task). ``EXECUTORS`` is the registry (``"serial"``,
``"process"``, ``"ray"``: ``shared`` put in Ray's object store once, points as
Ray tasks on a local Ray or a cluster; ``ray`` is an optional extra).
This module knows nothing about sweeps; ``experiments`` imports it, never the reverse.
"""

from __future__ import annotations

import functools
import hashlib
import multiprocessing as mp
import os
import pickle
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import torch

from .devices import torch_threads, usable_cpus
from .divergence import TrainingDiverged
from .training import is_stopped

PointFn = Callable[[Any, Mapping[str, Any], Any], Any]  # fn(point, shared, stop) -> result


@runtime_checkable
class Executor(Protocol):
    """Runs independent points; see the module docstring for the contract."""

    name: str

    def map(self, fn: PointFn, points: Iterable[Any], *, shared: Mapping[str, Any],
            stop: Any = None) -> Iterator[Any]:
        """Yield ``fn(point, shared, stop)`` for every point, as each finishes; start none once ``stop`` is set."""
        ...


class SerialExecutor:
    """Every point in this process, one after the other, in order, on one torch thread.

    One thread, as in a process or Ray worker: a point's numbers then do not depend on the executor (a
    2-thread matmul sums in another order; the run id, which names the numbers, does not record threads).
    """

    name = "serial"

    def __init__(self, workers: int = 1):
        """``workers`` is accepted so every registry entry is built the same way; serial is always one."""
        self.workers = 1

    def map(self, fn: PointFn, points: Iterable[Any], *, shared: Mapping[str, Any],
            stop: Any = None) -> Iterator[Any]:
        for point in points:
            if is_stopped(stop):
                return
            with torch_threads(1):
                result = fn(point, shared, stop)
            yield result  # outside: the caller's code between points runs on its own thread count


class ProcessExecutor:
    """Points in a pool of local worker processes, one torch thread each.

    ``shared`` goes to each worker once, through the pool's initializer. Every
    entry must be picklable (checked up front, with the offending key named):
    worker processes started with ``spawn`` receive it pickled, and the check
    keeps a sweep that works here working on every platform. So an evaluator
    must be a module-level function or class instance, not a lambda or closure.

    Worth it only where a point is much longer than shipping the model and
    dataset to a worker (fine-tuned or scheduled points); measured in
    ``benchmarks/sweep_speed.py``.
    """

    name = "process"

    def __init__(self, workers: int = 2, start_method: str | None = None, poll_seconds: float = 0.05):
        """
        Args:
            workers: worker processes (at least 1). A map starts at most one per point and one per
                usable CPU (``usable_cpus``): more processes than CPUs only take turns on them, and a
                pool started by fork starts every one of its processes at once.
            start_method: ``"fork"``, ``"spawn"`` or ``"forkserver"``; default ``fork`` where the
                platform has it and CUDA is not yet initialised in this process, else ``spawn``.
            poll_seconds: how often ``stop`` is checked while waiting for results.
        """
        if workers < 1:
            raise ValueError(f"A process executor needs at least one worker, got {workers}.")
        self.workers = int(workers)
        self.start_method = start_method
        self.poll_seconds = float(poll_seconds)

    def pool_size(self, n_points: int) -> int:
        """Processes a map of ``n_points`` starts: ``workers``, at most one per point and per usable CPU."""
        return max(1, min(self.workers, n_points, usable_cpus()))

    def context(self) -> mp.context.BaseContext:
        """The multiprocessing context the pool is started with."""
        if self.start_method is not None:
            return mp.get_context(self.start_method)
        fork_safe = "fork" in mp.get_all_start_methods() and not torch.cuda.is_initialized()
        return mp.get_context("fork" if fork_safe else "spawn")

    def map(self, fn: PointFn, points: Iterable[Any], *, shared: Mapping[str, Any],
            stop: Any = None) -> Iterator[Any]:
        shared = dict(shared)
        check_picklable(shared)
        points = list(points)
        if not points:
            return
        ctx = self.context()
        worker_stop = ctx.Event()  # the running points' own stop flag, set when ``stop`` is
        processes = self.pool_size(len(points))
        with ProcessPoolExecutor(max_workers=processes, mp_context=ctx, initializer=_init_worker,
                                 initargs=(shared, worker_stop)) as pool:
            pending: set[Future] = set()
            try:
                for point in points:
                    if is_stopped(stop):
                        break
                    pending.add(pool.submit(_run_point, fn, point))
                while pending:
                    done, pending = wait(pending, timeout=self.poll_seconds, return_when=FIRST_COMPLETED)
                    for future in done:
                        if not future.cancelled():
                            yield future.result()
                    if is_stopped(stop) and not worker_stop.is_set():
                        worker_stop.set()
                        pending = {f for f in pending if not f.cancel()}  # the running ones end early
            finally:
                worker_stop.set()
                for future in pending:
                    future.cancel()


def check_picklable(shared: Mapping[str, Any]) -> None:
    """Raise a ``TypeError`` naming the first entry of ``shared`` that cannot be sent to a worker process."""
    for key, value in shared.items():
        try:
            pickle.dumps(value)
        except Exception as exc:  # pickle raises several types (PicklingError, AttributeError, TypeError)
            raise TypeError(
                f"The sweep's {key!r} ({type(value).__name__}) cannot be sent to worker processes: {exc}. "
                "Use a module-level function or a picklable object, or run the sweep with executor='serial'."
            ) from exc


RAY_INSTALL = "pip install 'sparsity_viz[ray]'"


class ExecutorUnavailableError(ValueError):
    """The executor cannot run here (Ray not installed, a cluster address that does not answer)."""


class PointFailedError(RuntimeError):
    """A point raised in a remote task, or the worker running it died (``lost``); ``label`` names the point,
    ``__cause__`` is the exception."""

    def __init__(self, label: str, cause: BaseException, lost: bool = False):
        if lost:  # Ray's own text runs to many lines (a traceback of the worker): its first line says what
            first = str(cause).strip().splitlines()[0][:300] if str(cause).strip() else ""
            text = (f"Sweep point {label} failed: the Ray worker or node running it died ({type(cause).__name__}"
                    f"{': ' + first if first else ''}); where the sweep has a results store (the app's, the CLI's "
                    "--store), the points finished before it are kept there, and running it again resumes from them.")
        else:
            text = f"Sweep point {label} failed: {type(cause).__name__}: {cause}"
        super().__init__(text)
        self.label = label


class RayExecutor:
    """Points as Ray tasks: on a local Ray started here (no ``address``) or on a running cluster.

    ``shared`` is put in Ray's object store once; each worker fetches it once (not once per task).
    Results are yielded as tasks finish (``ray.wait``); once ``stop`` is set the
    finished results are collected, every outstanding task is cancelled
    (``ray.cancel``: a running one gets a KeyboardInterrupt) and the map ends.
    An exception in a task surfaces as one ``PointFailedError`` naming the point, except ``TrainingDiverged``,
    which is raised as itself (as on the other executors); a worker or node that dies mid-task is a
    ``PointFailedError`` too.

    On a cluster every node needs this package (and torch) installed at the same
    version; each task checks (``runtime_fingerprint``), and a worker that differs fails its point saying so.
    Points and ``fn`` travel by cloudpickle (lambdas are fine).
    Start-up costs seconds (a local Ray: ~6 s here): worth it for fine-tuned
    sweeps or a cluster, not for an untrained sweep of a few seconds
    (``docs/sweeps.md``).
    """

    name = "ray"
    groups = True  # a task costs ~ms to schedule: hand it a whole (strategy, seed) ranking where possible

    def __init__(self, address: str | None = None, num_cpus: int | None = None, *, workers: int = 1,
                 shutdown: bool = True, connect_timeout: float = 5.0, poll_seconds: float = 0.1):
        """
        Args:
            address: a cluster's ``host:port`` (``ray://host:port`` needs Ray Client, ``pip install
                'ray[client]==2.60.0'``; or ``"auto"``); None starts a local
                Ray on this machine.
            num_cpus: CPUs of the local Ray (None: ``workers`` when above 1, else all cores); not allowed
                with ``address`` (the cluster has its own).
            workers: the registry's common argument; a local Ray's CPUs when ``num_cpus`` is None (at most
                ``usable_cpus()``).
            shutdown: shut Ray down (or disconnect) after a map if this executor started it; False keeps it
                for the next map (the app: several sessions share one connection).
            connect_timeout: seconds to wait for ``address`` to answer before giving up.
            poll_seconds: how often ``stop`` is checked while waiting for results.
        """
        if address is not None and num_cpus is not None:
            raise ValueError("num_cpus applies to a local Ray only; a cluster at an address has its own CPUs.")
        if num_cpus is not None and num_cpus < 1:
            raise ValueError(f"A local Ray needs at least one CPU, got num_cpus={num_cpus}.")
        self.address = address
        if num_cpus is None and address is None and workers > 1:
            num_cpus = min(int(workers), usable_cpus())  # logical CPUs beyond the real ones only oversubscribe
        self.num_cpus = num_cpus
        self.shutdown = shutdown
        self.connect_timeout = float(connect_timeout)
        self.poll_seconds = float(poll_seconds)
        self.workers = self.num_cpus or 1

    def check(self) -> None:
        """Fail fast (``ExecutorUnavailableError``) if Ray is not installed or ``address`` does not answer."""
        import_ray()
        if self.address is not None:
            check_reachable(self.address, self.connect_timeout)

    def connect(self) -> bool:
        """Start or join Ray unless it is running in this process; True if this call started it."""
        ray = import_ray()
        if ray.is_initialized():
            self._check_same_ray(ray)
            return False
        if self.address is None:  # "local": a new Ray here even where RAY_ADDRESS names a cluster
            ray.init(address="local", num_cpus=self.num_cpus, include_dashboard=False, log_to_driver=False)
        else:
            check_reachable(self.address, self.connect_timeout)
            try:
                ray.init(address=self.address, log_to_driver=False)
            except ConnectionError as exc:
                raise ExecutorUnavailableError(f"Cannot join the Ray cluster at {self.address}: {exc}") from exc
        _JOINED["address"] = self.address
        return True

    def _check_same_ray(self, ray) -> None:
        """``ExecutorUnavailableError`` when this process's Ray is not the one asked for: a process holds one
        Ray connection, and a sweep asked for a cluster ran on a local Ray without a word (an audit)."""
        current = ray.get_runtime_context().gcs_address  # "ip:port"
        if "address" in _JOINED:  # joined by an executor: it knows what it asked for
            differs = _JOINED["address"] != self.address
        else:  # started by the caller (ray.init): only a port tells a cluster's address apart
            differs = self.address not in (None, "auto") and _port(self.address) != _port(current)
        if differs:
            wanted = f"the Ray cluster at {self.address}" if self.address else "a local Ray"
            raise ExecutorUnavailableError(
                f"This process is already connected to Ray at {current}, so it cannot run on {wanted} (one Ray "
                "connection per process); run there from a new process, or use the connected one.")

    def map(self, fn: PointFn, points: Iterable[Any], *, shared: Mapping[str, Any],
            stop: Any = None) -> Iterator[Any]:
        ray = import_ray()
        started = self.connect()
        task = ray.remote(num_cpus=1, max_retries=0)(_run_ray_task)
        pending: dict[Any, Any] = {}  # ObjectRef -> point
        driver = runtime_fingerprint()  # each worker compares its own: a node with other code fails loudly
        try:
            shared_ref = ray.put(dict(shared))  # once; every task gets the same object
            for point in points:
                if is_stopped(stop):
                    break
                pending[task.remote(fn, point, [shared_ref], driver)] = point  # a list: the worker resolves it once
            while pending and not is_stopped(stop):
                done, _ = ray.wait(list(pending), num_returns=1, timeout=self.poll_seconds)
                for ref in done:
                    yield _ray_result(ray, ref, pending.pop(ref))
            if pending:  # stopped: keep what finished meanwhile, cancel the rest
                done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0)
                for ref in done:
                    yield _ray_result(ray, ref, pending.pop(ref))
        finally:
            for ref in pending:
                ray.cancel(ref)
            if started and self.shutdown:
                ray.shutdown()
                _JOINED.clear()


_JOINED: dict[str, str | None] = {}  # {"address": what the executor that started this process's Ray asked for}


def _port(address: str) -> int | None:
    try:
        return urlsplit(address if "://" in address else f"//{address}").port
    except ValueError:
        return None


def import_ray():
    """The ``ray`` module, or an ``ExecutorUnavailableError`` saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ExecutorUnavailableError(f"The ray executor needs Ray, which is not installed: {RAY_INSTALL}") from exc
    return ray


def check_reachable(address: str, timeout: float) -> None:
    """Raise ``ExecutorUnavailableError`` unless ``host:port`` (or ``ray://host:port``) answers as a gRPC server.

    Ray itself retries an unreachable address for minutes, and one that accepts TCP but is no Ray port (a
    web server, the dashboard) for longer (an audit waited 10 minutes); this answers in ``timeout`` seconds:
    it opens an HTTP/2 connection and reads the server's first frame, which gRPC makes a SETTINGS frame.
    """
    if address in ("auto", "local"):
        return
    parts = urlsplit(address if "://" in address else f"//{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or port is None:
        raise ExecutorUnavailableError(f"A Ray address is host:port (e.g. 10.0.0.5:6379), not {address!r}.")
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise ExecutorUnavailableError(
            f"Cannot reach a Ray cluster at {address} ({exc}); start one with `ray start --head` "
            "on the head node and pass its address."
        ) from None
    with sock:
        try:
            sock.sendall(HTTP2_PREFACE)
            head = sock.recv(9)  # the server's first frame header
        except OSError:  # silent until the timeout, or reset
            head = b""
    if len(head) < 4 or head[3] != 0x4:  # a gRPC server opens with a SETTINGS frame (type 4)
        raise ExecutorUnavailableError(
            f"{address} accepts connections but does not answer as a Ray cluster (Ray's GCS speaks gRPC): give the "
            "head node's GCS port, 6379 unless `ray start --head --port` chose another. Ray itself would retry "
            "it for minutes.")


HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])  # + an empty SETTINGS frame
_RAY_SHARED: dict[str, Any] = {}  # in a Ray worker: the map's shared objects, fetched once per worker, not per task


class WorkerMismatchError(RuntimeError):
    """A Ray worker runs other code than the driver (torch, or this package's source): its rows would not be
    the driver's."""


@functools.cache
def runtime_fingerprint() -> dict[str, str]:
    """What a point's result depends on besides its inputs: torch's version and a hash of this package's Python
    source (the version number stays 0.1.0 across commits; a node with an older checkout computes other rows)."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return {"torch": torch.__version__, "sparsity_viz source": digest.hexdigest()[:16]}


def _run_ray_task(fn: PointFn, point: Any, shared_box: list, driver: dict[str, str]) -> Any:
    """Inside a Ray worker: the same code as the driver, one torch thread (like a process worker), the shared
    objects, then the point."""
    import ray

    here = runtime_fingerprint()
    if here != driver:
        node = ray.get_runtime_context().get_node_id()[:12]
        differs = "; ".join(f"{k} {here.get(k)} here, {v} on the driver" for k, v in driver.items() if here.get(k) != v)
        raise WorkerMismatchError(f"the Ray worker on node {node} runs other code than the driver ({differs}): "
                                  "install the same sparsity_viz and torch on every node.")
    torch.set_num_threads(1)
    key = shared_box[0].hex()
    if key not in _RAY_SHARED:
        _RAY_SHARED.clear()  # one map's objects at a time
        _RAY_SHARED[key] = ray.get(shared_box[0])
    return fn(point, _RAY_SHARED[key], None)


def _ray_result(ray, ref, point: Any) -> Any:
    label = getattr(point, "label", None) or repr(point)
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else exc
        if isinstance(cause, TrainingDiverged):  # as on every other executor: callers catch it (the app's pages)
            cause.add_note(f"(sweep point {label}, on Ray)")
            raise cause from None
        raise PointFailedError(label, cause) from cause
    except ray.exceptions.RayError as exc:  # the worker or node running it died (the OOM killer, a lost node)
        raise PointFailedError(label, exc, lost=True) from exc


EXECUTORS: dict[str, type] = {
    SerialExecutor.name: SerialExecutor,
    ProcessExecutor.name: ProcessExecutor,
    RayExecutor.name: RayExecutor,
}


def get_executor(executor: str | Executor, workers: int = 1) -> Executor:
    """An ``Executor``: a registry name built with ``workers``, or an instance passed through unchanged."""
    if isinstance(executor, str):
        if executor not in EXECUTORS:
            raise ValueError(f"Unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}.")
        return EXECUTORS[executor](workers=workers)
    if not isinstance(executor, Executor):
        raise TypeError(f"executor must be one of {', '.join(EXECUTORS)} or have a map(fn, points, *, shared, stop) "
                        f"method, not {type(executor).__name__}.")
    return executor


# --- inside a worker process ---------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(shared: dict, stop) -> None:
    torch.set_num_threads(1)
    _WORKER.update(shared=shared, stop=stop)


def _run_point(fn: PointFn, point: Any) -> Any:
    try:
        return fn(point, _WORKER["shared"], _WORKER["stop"])
    except Exception as exc:
        try:  # an exception the parent cannot unpickle would surface there as a bare BrokenProcessPool
            pickle.loads(pickle.dumps(exc))
        except Exception:
            raise RuntimeError(f"{type(exc).__name__} in a worker process: {exc}") from None
        raise
