"""Devices: resolving names, the clear error without a GPU, and the thread policy."""

from __future__ import annotations

import pytest
import torch

from sparsity_viz import DeviceUnavailableError, configure_threads, resolve_device
from sparsity_viz.devices import DEVICE_CHOICES, torch_threads, usable_cpus

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")


@pytest.mark.parametrize("name", ["cpu", "CPU", " cpu ", torch.device("cpu")])
def test_cpu(name):
    assert resolve_device(name) == torch.device("cpu")


def test_auto_picks_cuda_when_present_else_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device().type == expected


@no_cuda
@pytest.mark.parametrize("name", ["cuda", "cuda:0", torch.device("cuda")])
def test_cuda_without_gpu_raises_a_clear_error(name):
    with pytest.raises(DeviceUnavailableError) as info:
        resolve_device(name)
    msg = str(info.value)
    assert "CUDA" in msg and "no CUDA GPU" in msg
    assert "cpu" in msg  # says what to use instead
    assert isinstance(info.value, RuntimeError)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_with_gpu():
    assert resolve_device("cuda").type == "cuda"


@pytest.mark.parametrize("name", ["gpu", "tpu", "", "mps"])
def test_unknown_device_raises_value_error(name):
    with pytest.raises(ValueError, match="auto, cpu, cuda"):
        resolve_device(name)
    assert set(DEVICE_CHOICES) == {"auto", "cpu", "cuda"}


def test_configure_threads_and_restore(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("SPARSITY_VIZ_THREADS", raising=False)
        assert configure_threads() == 1 and torch.get_num_threads() == 1
        two = min(2, usable_cpus())
        monkeypatch.setenv("SPARSITY_VIZ_THREADS", str(two))
        assert configure_threads() == two and torch.get_num_threads() == two
        assert configure_threads(0) == 1  # never below one
        for bad in ("0", "-3", "abc", "1e6", "1000000", "2.5"):  # one line naming the variable, before any work
            monkeypatch.setenv("SPARSITY_VIZ_THREADS", bad)
            with pytest.raises(ValueError, match="SPARSITY_VIZ_THREADS must be a whole number from 1 to"):
                configure_threads()
        monkeypatch.setenv("SPARSITY_VIZ_THREADS", " ")
        assert configure_threads() == 1
        with torch_threads(2):
            assert torch.get_num_threads() == 2
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_entry_points_accept_device_and_fail_clearly_without_cuda():
    """prune / train / evaluate / sweep / attribute take device=...; CUDA without a GPU is one clear error."""
    from sparsity_viz.attribution import attribute
    from sparsity_viz.data import load_dataset
    from sparsity_viz.devices import DeviceUnavailableError
    from sparsity_viz.experiments import sweep
    from sparsity_viz.models import build_model
    from sparsity_viz.pruning import prune
    from sparsity_viz.training import TrainConfig, evaluate, train

    model, data = build_model("moons_mlp", seed=0), load_dataset("moons")
    assert prune(model, "magnitude", 0.5, device="cpu").model.fc1.weight.device.type == "cpu"
    assert evaluate(model, data.x_test, data.y_test, device="cpu").count == len(data.y_test)
    assert attribute(model, data.x_test[:2], 0, "saliency", device="cpu").shape == (2, 2)
    if torch.cuda.is_available():
        return
    calls = [
        lambda: prune(model, "magnitude", 0.5, device="cuda"),
        lambda: train(model, data, TrainConfig(epochs=1, device="cuda")),
        lambda: evaluate(model, data.x_test, data.y_test, device="cuda"),
        lambda: sweep(model, data, ["magnitude"], [0.5], device="cuda"),
        lambda: attribute(model, data.x_test[:2], 0, "saliency", device="cuda"),
    ]
    for call in calls:
        with pytest.raises(DeviceUnavailableError, match="no CUDA GPU"):
            call()
