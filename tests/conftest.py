"""Shared fixtures for the library tests: small seeded models and batches.

Torch runs with one intra-op thread (the library's own policy on these 2-core
machines), which also keeps the suite fast and its timings stable.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # plain `pytest` (not `python -m pytest`) from anywhere
    sys.path.insert(0, str(ROOT))

# In CI the native kernel is built into the checkout (gitignored), never into the user's
# ~/.cache; locally the warm per-machine cache is reused. Subprocesses inherit the setting.
_in_ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
if _in_ci and not os.environ.get("SPARSITY_VIZ_EXT_DIR"):
    os.environ["SPARSITY_VIZ_EXT_DIR"] = str(ROOT / "build" / "ext")

torch.set_num_threads(1)


def pytest_sessionstart(session):
    """Build the four native extensions once, side by side, before any test runs.

    Otherwise the first page that wants one starts its build in the background (the app never
    waits for a build) and that compiler run competes for the 2 cores with the test's own timed
    work, which can push an AppTest run past its timeout. A warm cache makes this instant.
    """
    import threading

    from sparsity_viz.backend import act_sparse, conv_sparse, int8, kernels

    if kernels.native_disabled():
        return
    builds = [threading.Thread(target=build) for build in (kernels.load, int8.EXTENSION.load, act_sparse.EXTENSION.load,
                                                           conv_sparse.EXTENSION.load)]
    for t in builds:
        t.start()
    for t in builds:
        t.join()

# The browser tests take about half of the suite's time, in a few long modules. Under xdist, hand them out first
# (longest first), so the two workers end together instead of one finishing a 2-minute module alone at the end.
# A serial run keeps the plain collection order.
SLOW_FIRST = ("tests/e2e/test_links_browser.py", "tests/e2e/test_browser.py", "tests/test_portable_build.py",
              "tests/test_portable_build_sse2.py", "tests/e2e/")


def pytest_collection_modifyitems(config, items):
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return

    def rank(item) -> int:
        path = item.path.relative_to(ROOT).as_posix() if item.path.is_relative_to(ROOT) else ""
        return next((i for i, prefix in enumerate(SLOW_FIRST) if path.startswith(prefix)), len(SLOW_FIRST))

    items.sort(key=rank)  # stable: the order within each rank is kept


@pytest.fixture(autouse=True)
def _seeded_by_test(request):
    """torch's, numpy's and random's global generators seeded from the test's id: a test that draws unseeded
    random inputs draws the same ones in every run, on whichever xdist worker and after whichever tests."""
    import random
    import zlib

    import numpy as np

    seed = zlib.crc32(request.node.nodeid.encode())
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


from sparsity_viz.models import MLP, LeNet5, build_model  # noqa: E402


def _seeded(factory, seed: int = 0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory()


@pytest.fixture
def tiny_mlp() -> MLP:
    """A seeded MLP 5-7-9-3 with odd layer sizes (35, 63, 27 weights) so rounding matters."""
    return _seeded(lambda: MLP(5, (7, 9), 3))


@pytest.fixture
def tiny_conv() -> LeNet5:
    """A seeded, narrow LeNet-5 (conv 4-6, fc 24): conv filters and linear rows, small."""
    return _seeded(lambda: LeNet5(num_classes=10, channels=(4, 6), hidden=24))


@pytest.fixture(scope="session")
def _lenet300_session() -> torch.nn.Module:
    return build_model("lenet300", seed=0)


@pytest.fixture
def lenet300(_lenet300_session) -> torch.nn.Module:
    """``build_model("lenet300", seed=0)``; a fresh copy per test, so tests cannot leak state."""
    import copy

    return copy.deepcopy(_lenet300_session)


@pytest.fixture(params=["tiny_mlp", "tiny_conv"])
def small_model(request) -> torch.nn.Module:
    """Each small model in turn: an MLP and a conv net."""
    return request.getfixturevalue(request.param)


def input_batch(model: torch.nn.Module, n: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded ``(inputs, labels)`` batch shaped for ``model``."""
    g = torch.Generator().manual_seed(seed)
    if isinstance(model, LeNet5):
        x = torch.randn(n, 1, 28, 28, generator=g)
        classes = model.fc2.out_features
    else:
        x = torch.randn(n, model.in_features, generator=g)
        classes = model.num_classes
    return x, torch.randint(0, classes, (n,), generator=g)


@pytest.fixture
def batch_for():
    """``batch_for(model)`` -> a small seeded ``(inputs, labels)`` batch for that model."""
    return input_batch


@pytest.fixture
def benchmark_script(monkeypatch):
    """``benchmark_script("name")`` -> benchmarks/name.py loaded as a module (its ``__main__`` part not run), with
    the benchmarks folder on ``sys.path`` for this test (the scripts import doc_block and each other from there)."""
    import importlib.util

    folder = ROOT / "benchmarks"
    monkeypatch.syspath_prepend(str(folder))

    def load(name: str):
        spec = importlib.util.spec_from_file_location(f"_bench_{name}", folder / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, spec.name, module)
        spec.loader.exec_module(module)
        return module

    return load
