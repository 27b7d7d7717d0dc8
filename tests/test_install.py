"""The package installs: importable from any folder, the kernel source ships with it,
every pin in one place, and CI runs exactly the README's test command."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_package_imports_from_another_working_directory(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # only the installed package can answer
    code = "import sparsity_viz, sys; print(sparsity_viz.__file__)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    hint = "import from another folder failed (is it installed? pip install -e '.[test]')\n"
    assert proc.returncode == 0, hint + proc.stderr[-2000:]
    assert Path(proc.stdout.strip()).resolve() == ROOT / "sparsity_viz" / "__init__.py"


def test_the_wheel_carries_the_kernel_source(tmp_path):
    pytest.importorskip("setuptools")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "sparsity_viz", src / "sparsity_viz", ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("sparsity_viz-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "sparsity_viz/backend/csrc/sparse_kernels.cpp" in names
    assert "sparsity_viz/backend/kernels.py" in names
    assert not any(n.startswith(("tests/", "views/", "app")) for n in names)


def test_every_runtime_dependency_is_pinned_exactly_and_torch_to_the_cpu_wheel_version():
    project = PYPROJECT["project"]
    deps = project["dependencies"] + [
        d for extra in project["optional-dependencies"].values() for d in extra if not d.startswith("sparsity_viz")
    ]
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][0-9A-Za-z.]*", d) for d in deps), deps
    assert "torch==2.13.0" in project["dependencies"]
    assert {"app", "test", "ray"} <= set(project["optional-dependencies"])
    assert any(d.startswith("sparsity_viz[") and "app" in d for d in project["optional-dependencies"]["test"])


def test_requirements_txt_points_at_the_one_source_of_pins():
    lines = [ln.strip() for ln in (ROOT / "requirements.txt").read_text().splitlines()]
    assert [ln for ln in lines if ln and not ln.startswith("#")] == ["-e .[test]"]


def _readme_command(label: str) -> str:
    readme = (ROOT / "README.md").read_text()
    match = re.search(re.escape(label) + r"\s*```bash\n(.+?)\n```", readme, re.S)
    assert match, f"README has no command after {label!r}"
    return match.group(1).strip()


def test_ci_runs_exactly_the_readme_test_command_and_both_commands_install_the_package():
    test_cmd, app_cmd = _readme_command("Run the tests:"), _readme_command("Run the app:")
    ci_lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_cmd in ci_lines
    assert "set -euo pipefail" in ci_lines  # pytest's exit 5 (no tests) fails CI
    assert "pip install -q -e '.[test]'" in test_cmd and test_cmd.endswith("python -m pytest")
    assert "pip install -q -e '.[app]'" in app_cmd and app_cmd.endswith("streamlit run app.py")


def test_the_readme_command_runs_on_three_xdist_workers_with_each_file_on_one():
    """CI's time budget: `python -m pytest` runs on three workers (pytest.ini); each file (an e2e module shares one
    streamlit server) stays on one worker."""
    import configparser

    ini = configparser.ConfigParser()
    ini.read(ROOT / "pytest.ini")
    addopts = ini["pytest"]["addopts"].split()
    assert addopts[addopts.index("-n") + 1] == "3" and addopts[addopts.index("--dist") + 1] == "loadfile", addopts
    assert "pytest-xdist==3.8.0" in PYPROJECT["project"]["optional-dependencies"]["test"]
