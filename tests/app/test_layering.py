"""The shell's rules, read from the source: pages import no torch; every session key is spelled once."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VIEWS = sorted((ROOT / "views").glob("*.py"))
STATE = sorted((ROOT / "app_state").glob("*.py"))
KEYS = ROOT / "app_state" / "keys.py"
SESSION_KEY = re.compile(r"^sv_\w+$")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("view", VIEWS, ids=lambda p: p.name)
def test_views_import_no_torch(view):
    torch_imports = {n for n in _imports(view) if n == "torch" or n.startswith("torch.")}
    assert not torch_imports, f"{view.name} imports {sorted(torch_imports)}: put that work in the library"


def test_there_are_views():
    assert len(VIEWS) >= 12 and (ROOT / "app_state" / "__init__.py").exists()
    assert not (ROOT / "app_state.py").exists(), "app_state is a package now"


def _string_literals(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [(n.lineno, n.value) for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def test_every_session_key_is_defined_once_in_keys():
    defined = [v for _, v in _string_literals(KEYS) if SESSION_KEY.match(v)]
    assert len(defined) == len(set(defined)), "a key is defined twice in keys.py"
    elsewhere = [f"{p.relative_to(ROOT)}:{line}: {v}" for p in [ROOT / "app.py", *VIEWS, *STATE] if p != KEYS
                 for line, v in _string_literals(p) if SESSION_KEY.match(v)]
    assert not elsewhere, "session keys spelled outside app_state/keys.py:\n" + "\n".join(elsewhere)


def test_only_the_state_layer_touches_session_state_and_caches():
    for view in [ROOT / "app.py", *VIEWS]:
        text = view.read_text()
        for needle in ("st.session_state", "st.cache_data", "st.cache_resource"):
            assert needle not in text, f"{view.name} uses {needle}: go through app_state"


def test_the_library_imports_no_streamlit():
    library = sorted((ROOT / "sparsity_viz").rglob("*.py"))
    assert library
    offenders = [str(p.relative_to(ROOT)) for p in library
                 if any(n == "streamlit" or n.startswith("streamlit.") for n in _imports(p))]
    assert not offenders, f"library modules importing streamlit: {offenders}"
