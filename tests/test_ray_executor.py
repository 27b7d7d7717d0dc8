"""Sweeps on Ray (a local Ray, num_cpus=2, one per module): the serial sweep's rows, stop cancels, errors name the point."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

ray = pytest.importorskip("ray", reason="Ray is an optional extra (pip install 'sparsity_viz[ray]'); CI installs it")

from sparsity_viz.checkpoints import load_sample  # noqa: E402
from sparsity_viz.data import load_dataset  # noqa: E402
from sparsity_viz.executors import PointFailedError, RayExecutor, get_executor  # noqa: E402
from sparsity_viz.experiments import SweepPoint, sweep  # noqa: E402
from sparsity_viz.training import TrainConfig  # noqa: E402

LEVELS = [0.0, 0.5, 0.9]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One local Ray for the module (start-up costs seconds); executors find it running and leave it up."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def digits():
    model, _ = load_sample("digits_mlp")
    return model, load_dataset("digits")


def without_seconds(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns="seconds")


def test_ray_rows_equal_serial_rows_and_fill_a_store(digits, tmp_path):
    model, data = digits
    kw = dict(strategies=["magnitude", "random", "snip"], levels=LEVELS, seeds=[0, 1])
    serial = sweep(model, data, **kw)
    on_ray = sweep(model, data, executor=RayExecutor(), store=tmp_path / "runs", **kw)
    pd.testing.assert_frame_equal(without_seconds(on_ray), without_seconds(serial))
    assert ray.is_initialized(), "an executor leaves a Ray it did not start running"
    # every point is in the store: a serial re-run reads them all back and computes none
    calls = []
    again = sweep(model, data, store=tmp_path / "runs", evaluator=lambda m: calls.append(1) or m, **kw)
    assert calls == [] and again.attrs["resumed"] == len(serial)
    pd.testing.assert_frame_equal(without_seconds(again), without_seconds(serial))


def test_fine_tuned_and_scheduled_points_on_ray_equal_serial(digits):
    model, data = digits
    kw = dict(strategies=["magnitude", "gradual"], levels=[0.5, 0.9], seeds=[0],
              finetune=TrainConfig(epochs=1, lr=3e-4), device="cpu")
    serial = sweep(model, data, **kw)
    on_ray = sweep(model, data, executor="ray", **kw)
    assert set(on_ray["kind"]) == {"one_shot", "scheduled"} and len(on_ray) == 4
    pd.testing.assert_frame_equal(without_seconds(on_ray), without_seconds(serial))


def mark_and_sleep(point, shared, stop):
    """A 1 s point that leaves a file when it starts and another when it ends."""
    folder = Path(shared["folder"])
    (folder / f"start_{point}").touch()
    time.sleep(1.0)
    (folder / f"end_{point}").touch()
    return point


def test_stop_cancels_outstanding_tasks(tmp_path):
    stop = threading.Event()
    got = []
    for result in RayExecutor().map(mark_and_sleep, range(10), shared={"folder": str(tmp_path)}, stop=stop):
        got.append(result)
        stop.set()
    time.sleep(1.5)  # a task that was not cancelled would have started and ended by now
    started = {p.name for p in tmp_path.glob("start_*")}
    ended = {int(p.name.split("_")[1]) for p in tmp_path.glob("end_*")}
    assert 1 <= len(got) < 10
    assert len(started) < 10, "tasks not yet started were cancelled"
    assert ended <= set(got) | {int(s.split("_")[1]) for s in started}
    assert len(ended) < 10


def fail_at_half(point, shared, stop):
    if point.level == 0.5:
        raise ValueError("diverged on purpose")
    return point.level


def test_a_failing_task_names_its_point():
    points = [SweepPoint("magnitude", 0, 0.0), SweepPoint("magnitude", 3, 0.5)]
    with pytest.raises(PointFailedError, match=r"magnitude \(seed 3\) at 50 % failed: ValueError: diverged on purpose"):
        list(RayExecutor().map(fail_at_half, points, shared={}))


def diverge_at_half(point, shared, stop):
    from sparsity_viz.training import TrainingDiverged

    if point.level == 0.5:
        raise TrainingDiverged("the loss became NaN", None, 1)
    return point.level


def test_a_diverging_point_raises_training_diverged_as_on_every_executor():
    """Found by an audit: on Ray it was a PointFailedError, which the app's pages (catching TrainingDiverged) let
    through as a traceback."""
    from sparsity_viz.training import TrainingDiverged

    points = [SweepPoint("magnitude", 0, 0.0), SweepPoint("magnitude", 3, 0.5)]
    for executor in ("serial", RayExecutor()):
        with pytest.raises(TrainingDiverged, match="the loss became NaN"):
            list(get_executor(executor).map(diverge_at_half, points, shared={}))


def die_at_half(point, shared, stop):
    if point.level == 0.5:
        os._exit(1)  # as the OOM killer ends a worker
    return point.level


def test_a_worker_that_dies_is_one_point_failed_error():
    """Found by an audit: a killed worker or a lost node raised Ray's WorkerCrashedError / NodeDiedError, which the
    CLI printed as a traceback."""
    points = [SweepPoint("magnitude", 0, 0.0), SweepPoint("magnitude", 3, 0.5)]
    with pytest.raises(PointFailedError, match=r"magnitude \(seed 3\) at 50 % failed: the Ray worker or node running "
                                               r"it died \(\w+"):
        list(RayExecutor().map(die_at_half, points, shared={}))


def test_an_address_that_is_not_a_ray_port_is_refused_in_seconds():
    """Found by an audit: a port that accepts TCP but is no Ray GCS (a web server) hung `ray.init` for 10 minutes."""
    from http.server import HTTPServer, SimpleHTTPRequestHandler

    from sparsity_viz.executors import ExecutorUnavailableError, check_reachable

    check_reachable(ray.get_runtime_context().gcs_address, 5.0)  # the local Ray's GCS answers as gRPC
    server = HTTPServer(("127.0.0.1", 0), SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        start = time.perf_counter()
        with pytest.raises(ExecutorUnavailableError, match=r"accepts connections but does not answer as a Ray cluster"):
            check_reachable(f"127.0.0.1:{server.server_port}", 5.0)
        assert time.perf_counter() - start < 5.0
    finally:
        server.shutdown()


def test_a_connected_process_refuses_another_cluster_address():
    """Found by an audit: with Ray already running in the process, RayExecutor(address=other) ran the points on the
    Ray it had, without a word."""
    from sparsity_viz.executors import ExecutorUnavailableError

    port = int(ray.get_runtime_context().gcs_address.rsplit(":", 1)[1])
    with pytest.raises(ExecutorUnavailableError, match=r"already connected to Ray at .* cannot run on the Ray cluster "
                                                       r"at 127.0.0.1:1"):
        list(RayExecutor(address="127.0.0.1:1").map(fail_at_half, [SweepPoint("magnitude", 0, 0.0)], shared={}))
    got = list(RayExecutor(address=f"127.0.0.1:{port}").map(fail_at_half, [SweepPoint("magnitude", 0, 0.0)],
                                                              shared={}))
    assert got == [0.0]  # the connected cluster's own port: it is the one asked for


def test_a_worker_with_other_code_fails_its_point_saying_so(digits, monkeypatch):
    """Nothing checked that a cluster's workers run the driver's code (an audit): a node with an older checkout
    would have computed other rows under the same run id. The driver's fingerprint is changed here; the workers
    (their own processes) keep theirs."""
    import sparsity_viz.executors as executors

    real = executors.runtime_fingerprint()
    assert set(real) == {"torch", "sparsity_viz source"} and len(real["sparsity_viz source"]) == 16
    monkeypatch.setattr(executors, "runtime_fingerprint", lambda: {**real, "sparsity_viz source": "0" * 16})
    model, data = digits
    with pytest.raises(PointFailedError, match="runs other code than the driver") as info:
        sweep(model, data, strategies=["magnitude"], levels=[0.5], seeds=[0], executor=RayExecutor())
    assert f"sparsity_viz source {real['sparsity_viz source']} here, {'0' * 16} on the driver" in str(info.value)
    assert "install the same sparsity_viz and torch on every node" in str(info.value)
