"""Every script in benchmarks/ loads: its imports resolve against the library and the other scripts.

A benchmark that no longer starts (an import of something renamed or removed) would only show when someone runs it;
importing each one (its benchmark, behind ``__main__``, is not run) catches that in the suite.
"""

from __future__ import annotations

from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPTS = sorted(p for p in BENCHMARKS.glob("*.py") if p.name != "doc_block.py")


def test_there_are_benchmark_scripts():
    assert len(SCRIPTS) >= 10, SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_benchmark_script_imports(script, benchmark_script):
    assert 'if __name__ == "__main__":' in script.read_text(), f"{script.name} would run its benchmark on import"
    benchmark_script(script.stem)  # runs the imports and definitions, not the benchmark
