"""Importing the library: no streamlit, in a fresh interpreter, even when streamlit is missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_fresh_import_does_not_import_streamlit():
    r = _run(
        "import sys, sparsity_viz\n"
        "assert 'streamlit' not in sys.modules, sorted(m for m in sys.modules if 'streamlit' in m)\n"
        "assert not any(m.startswith('streamlit.') for m in sys.modules)\n"
        "print(sparsity_viz.__version__)\n"
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()


def test_imports_with_streamlit_unimportable():
    r = _run(
        "import sys\n"
        "sys.modules['streamlit'] = None  # any `import streamlit` now raises ImportError\n"
        "import sparsity_viz\n"
        "from sparsity_viz import prune, build_model, load_checkpoint_bytes, resolve_device\n"
        "m = build_model('moons_mlp', seed=0)\n"
        "print(prune(m, 'magnitude', 0.5).masks['fc1.weight'].sum().item())\n"
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "8"


def test_public_api_is_flat():
    import sparsity_viz

    for name in (
        "load_dataset", "build_model", "prune", "STRATEGIES", "Masks", "to_torch_prune", "from_torch_prune",
        "load_checkpoint_bytes", "CheckpointError", "resolve_device", "DeviceUnavailableError",
    ):
        assert hasattr(sparsity_viz, name), name
