"""The native extensions on CPUs without AVX-512: built for ``x86-64-v3`` (AVX2, FMA, no AVX-512) here and for plain
``x86-64`` (SSE2) in ``test_portable_build_sse2.py``, whose code this CPU runs too, and the backend's kernel tests run
against those builds.

Every kernel was first written on AVX-512 machines. One helper defined only under ``__AVX512F__`` but used outside
it (the chain's chunk buffers) made the main kernel fail to compile on any CPU without AVX-512 (Zen 2 and 3, most
Intel desktops), which left such machines on the pure-torch fallback; nothing here had built for one.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# what x86-64-v3 code needs (the x86-64 psABI's level 3), as /proc/cpuinfo names the flags (LZCNT is "abm" on AMD)
V3_FLAGS = {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "movbe", "xsave"}
# each extension loads (a failed build would make the backend's tests skip, not fail) and is built for MARCH
PROBE = """
import sys
from sparsity_viz.backend import act_sparse, conv_sparse, int8, kernels
loaded = {"main": kernels.load(), "int8": int8.EXTENSION.load(), "act": act_sparse.EXTENSION.load(),
          "conv": conv_sparse.EXTENSION.load()}
missing = [name for name, module in loaded.items() if module is None]
print(" ".join(kernels.CFLAGS), "|", kernels.notice(), "|", missing)
sys.exit(1 if missing or f"-march={sys.argv[1]}" not in kernels.CFLAGS else 0)
"""


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return set(line.partition(":")[2].split())


def _runs(march: str) -> bool:
    flags = _cpu_flags()
    return platform.machine() == "x86_64" and (march == "x86-64" or (V3_FLAGS <= flags and bool({"lzcnt", "abm"} & flags)))


# Not run against the other builds: the build cache's mechanics (tiny sources) and the timing, report and CLI code
# above the kernels are the same for every -march.
MARCH_FREE = ("test_kernel_build.py", "test_stable_timing.py", "test_speed_report.py", "test_checkpoint_cli_bench.py")


def check_portable_build(march: str) -> None:
    """Build the four extensions for ``march`` (its own build key: the -march=native builds stay as they are) and run
    the backend's tests against them. One march per test file, so that xdist's loadfile runs the two on two workers."""
    if not _runs(march):
        pytest.skip(f"this CPU ({platform.machine()}) cannot run {march} code")
    env = dict(os.environ, SPARSITY_VIZ_MARCH=march)
    probe = subprocess.run([sys.executable, "-c", PROBE, march], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=900)
    assert probe.returncode == 0, probe.stdout + probe.stderr[-3000:]
    ignored = [arg for name in MARCH_FREE for arg in ("--ignore", f"tests/backend/{name}")]
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", "tests/backend",
                          *ignored], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout.splitlines()[-1]


def test_the_backend_builds_and_passes_with_avx2_and_without_avx512():
    check_portable_build("x86-64-v3")


def test_march_must_be_a_plain_compiler_value(monkeypatch):
    """SPARSITY_VIZ_MARCH becomes a compiler flag: anything but a plain -march value is refused."""
    from sparsity_viz.backend import kernels

    monkeypatch.setenv(kernels.ENV_MARCH, "native -fplugin=/tmp/x.so")
    with pytest.raises(ValueError, match="is not a -march value"):
        kernels._march()
    monkeypatch.setenv(kernels.ENV_MARCH, " x86-64-v3 ")
    assert kernels._march() == "x86-64-v3"
    monkeypatch.delenv(kernels.ENV_MARCH)
    assert kernels._march() == "native"
