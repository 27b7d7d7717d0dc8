"""The native extensions built for plain ``x86-64`` (SSE2 only: no AVX, no FMA) pass the backend's tests; the
``x86-64-v3`` build is checked in ``test_portable_build.py``, which this file shares its check with."""

from __future__ import annotations

from test_portable_build import check_portable_build


def test_the_backend_builds_and_passes_with_sse2_only():
    check_portable_build("x86-64")
