"""The native build: never hangs on a stale lock, never blocks the live path, is built
once per machine (every checkout of the same source reuses it) and once among
concurrent first loads."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sparsity_viz.backend import kernels

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(kernels.native_disabled(), reason="native kernels disabled by SPARSITY_VIZ_NATIVE=0")


def test_a_stale_torch_lock_left_by_a_killed_build_does_not_hang_the_next_load():
    if not kernels.available():
        pytest.skip("no compiler here: " + (kernels.notice() or ""))
    build = kernels.cache_dir()
    (build / "lock").write_text("")  # what a build killed half-way leaves behind
    code = "from sparsity_viz.backend import kernels; print(kernels.load() is not None)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "True", proc.stderr[-2000:]
    assert not (build / "lock").exists()


def test_ready_is_instant_once_built_and_background_build_is_idempotent():
    if not kernels.available():
        pytest.skip("no compiler here: " + (kernels.notice() or ""))
    assert kernels.ready()
    kernels.build_in_background()  # already loaded: nothing to start
    assert kernels._background is None or not kernels._background.is_alive()


def test_ready_is_false_for_an_empty_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(kernels.ENV_CACHE, str(tmp_path))
    monkeypatch.setattr(kernels, "_tried", False)
    assert not kernels.ready()


# A C++ file that compiles in under a second (plain CPython API, no torch headers): it
# exercises the same build, lock and marker path as the real kernel without a 40 s build.
TINY_SOURCE = """
#include <Python.h>
#define SV_CAT2(a, b) a##b
#define SV_CAT(a, b) SV_CAT2(a, b)
#define SV_STR2(a) #a
#define SV_STR(a) SV_STR2(a)
static PyObject* answer(PyObject*, PyObject*) { return PyLong_FromLong(42); }
static PyMethodDef methods[] = {{"answer", answer, METH_NOARGS, nullptr}, {nullptr, nullptr, 0, nullptr}};
static PyModuleDef module = {PyModuleDef_HEAD_INIT, SV_STR(TORCH_EXTENSION_NAME), nullptr, -1, methods};
PyMODINIT_FUNC SV_CAT(PyInit_, TORCH_EXTENSION_NAME)(void) { return PyModule_Create(&module); }
"""

# Loads the kernel in a fresh process and reports how: where kernels.py came from,
# "built" or "cached", and how long the first load() took.
LOAD_AND_REPORT = """
import json, sys, time
from pathlib import Path
from sparsity_viz.backend import kernels
if len(sys.argv) > 1:
    kernels.SOURCE = Path(sys.argv[1])
if len(sys.argv) > 2:  # line up with the other process: both call load() at once
    Path(sys.argv[2], "ready-" + str(sys.argv[3])).touch()
    while not Path(sys.argv[2], "go").exists():
        time.sleep(0.005)
start = time.perf_counter()
module = kernels.load()
seconds = time.perf_counter() - start
print(json.dumps({"file": kernels.__file__, "origin": kernels.origin(), "seconds": seconds,
                  "library": str(kernels.library_path()), "notice": kernels.notice(),
                  "answer": module.answer() if hasattr(module, "answer") else None}))
"""


def _copy_package(dest: Path) -> Path:
    shutil.copytree(ROOT / "sparsity_viz", dest / "sparsity_viz", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def _env(ext_dir: Path, checkout: Path | None = None) -> dict:
    env = {**os.environ, kernels.ENV_CACHE: str(ext_dir)}
    env.pop(kernels.ENV_SWITCH, None)
    if checkout is not None:
        env["PYTHONPATH"] = str(checkout)
    return env


def _report(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_second_checkout_loads_the_first_ones_build_in_under_two_seconds_without_rebuilding(tmp_path):
    if not kernels.available():
        pytest.skip("no compiler here: " + (kernels.notice() or ""))
    ext_dir = kernels.cache_dir().parent  # the suite's cache: warm after the first build on this machine
    first, second = _copy_package(tmp_path / "first"), _copy_package(tmp_path / "second")

    def load_from(checkout: Path) -> dict:
        proc = subprocess.run([sys.executable, "-c", LOAD_AND_REPORT], cwd=checkout, env=_env(ext_dir, checkout),
                              capture_output=True, text=True, timeout=600)
        report = _report(proc)
        assert Path(report["file"]).is_relative_to(checkout), report  # really that checkout's code
        return report

    built = load_from(first)  # reuses the warm build, or builds it (the only slow case)
    library = Path(built["library"])
    before = {p.name: p.stat().st_mtime_ns for p in library.parent.iterdir()}

    report = load_from(second)
    assert report["origin"] == "cached", report
    assert report["seconds"] < 10.0, report  # a build takes ~40 s; a cached load well under a second when quiet
    assert report["library"] == built["library"]
    after = {p.name: p.stat().st_mtime_ns for p in library.parent.iterdir() if p.name != ".build.lock"}
    assert after == {k: v for k, v in before.items() if k != ".build.lock"}  # nothing rebuilt or rewritten


def test_concurrent_first_loads_on_an_empty_cache_build_once_and_both_get_the_module(tmp_path):
    source = tmp_path / "tiny.cpp"
    source.write_text(TINY_SOURCE)
    ext_dir, sync = tmp_path / "ext", tmp_path / "sync"
    sync.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", LOAD_AND_REPORT, str(source), str(sync), str(i)], cwd=ROOT,
                              env=_env(ext_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    deadline = time.monotonic() + 120
    while len(list(sync.glob("ready-*"))) < 2 and time.monotonic() < deadline:
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.01)
    (sync / "go").touch()
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        reports.append(_report(subprocess.CompletedProcess(p.args, p.returncode, out, err)))
    if any(r["notice"] for r in reports):
        pytest.skip("no compiler here: " + str(reports[0]["notice"]))
    assert sorted(r["origin"] for r in reports) == ["built", "cached"], reports  # one build; the other waited
    assert [r["answer"] for r in reports] == [42, 42]
    assert len({r["library"] for r in reports}) == 1


def test_a_build_without_its_marker_is_rebuilt_not_trusted(tmp_path, monkeypatch):
    """A library left by a killed build (no ``.built`` marker) is never imported as finished."""
    source = tmp_path / "tiny.cpp"
    source.write_text(TINY_SOURCE)
    monkeypatch.setenv(kernels.ENV_CACHE, str(tmp_path / "ext"))
    monkeypatch.setattr(kernels, "SOURCE", source)
    build = kernels.cache_dir()
    build.mkdir(parents=True)
    kernels.library_path().write_bytes(b"half a library")  # what a link killed half-way leaves
    assert not kernels.built()
    monkeypatch.setattr(kernels, "_tried", False)
    assert not kernels.ready()
    proc = subprocess.run([sys.executable, "-c", LOAD_AND_REPORT, str(source)], cwd=ROOT,
                          env=_env(tmp_path / "ext"), capture_output=True, text=True, timeout=300)
    report = _report(proc)
    if report["notice"]:
        pytest.skip("no compiler here: " + report["notice"])
    assert (report["origin"], report["answer"]) == ("built", 42)
    assert kernels.built() and kernels.ready()


def test_asking_again_while_the_background_build_runs_never_waits_for_it():
    """load() holds the build lock for the whole compile: kernel_pending() and build_in_background() must not
    take it (a Prune-page slider move would freeze for the build). A fake 3 s build, in a fresh process."""
    code = """
import time
from pathlib import Path
from sparsity_viz.backend import kernels, live

def slow_build(*args, **kwargs):
    time.sleep(3.0)
    raise RuntimeError("fake build failed")

kernels._locked_load = slow_build
kernels.built = lambda *a, **k: False
t0 = time.perf_counter()
first = live.kernel_pending()  # starts the build
time.sleep(0.3)  # the build thread now holds the load lock
second = live.kernel_pending()
ext = kernels.Extension(Path(kernels.SOURCE), "sparsity_viz_fake", "fake kernels")
ext.build_in_background()
time.sleep(0.3)
ext.build_in_background()
reason = ext.unavailable_reason()
asked = time.perf_counter() - t0
kernels._background.join()
print(first, second, live.kernel_building(), round(asked, 2), "being built" in reason, kernels.notice() is not None)
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, kernels.ENV_SWITCH: "1"})
    first, second, building, asked, being_built, failed = proc.stdout.split()
    assert (first, second, being_built, failed) == ("True", "True", "True", "True"), proc.stderr[-2000:]
    assert float(asked) < 2.5  # 0.6 s of sleeps (more on a loaded machine); waiting for the fake build takes 3 s


def test_a_shared_header_is_part_of_every_build(tmp_path, monkeypatch):
    """csrc/*.h (the blocked transposes both the fp32 and the int8 extension include) is copied beside each source and
    hashed into its build key, so editing it rebuilds both, and a build never compiles against a stale copy."""
    from sparsity_viz.backend import int8

    assert "transpose.h" in [h.name for h in kernels.headers()]
    keys = kernels.build_key(), kernels.build_key(int8.SOURCE)
    csrc = tmp_path / "csrc"
    shutil.copytree(kernels.SOURCE.parent, csrc)
    monkeypatch.setattr(kernels, "SOURCE", csrc / kernels.SOURCE.name)
    assert (kernels.build_key(), kernels.build_key(csrc / int8.SOURCE.name)) == keys  # the same text: the same builds
    (csrc / "transpose.h").write_text((csrc / "transpose.h").read_text() + "\n// edited\n")
    edited = kernels.build_key(), kernels.build_key(csrc / int8.SOURCE.name)
    assert edited[0] != keys[0] and edited[1] != keys[1]
    monkeypatch.undo()
    if kernels.available():
        assert (kernels.cache_dir() / "transpose.h").read_bytes() == (kernels.SOURCE.parent / "transpose.h").read_bytes()
