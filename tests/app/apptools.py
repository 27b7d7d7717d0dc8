"""Helpers shared by the AppTest modules: open the app on a model and page, read its figures."""

from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
MODELS = ["moons_mlp", "circles_mlp", "xor_mlp", "spiral_mlp", "digits_mlp", "lenet300", "lenet5"]
PAGES = ["1_home", "2_prune", "3_regularize", "4_weights", "5_connections", "6_attribution", "7_curves", "8_export",
         "9_compare", "10_survival", "11_lottery", "12_speed", "13_quantize",
         "14_activations", "15_experts", "16_sensitivity",
         "17_lessons", "18_playground", "19_units"]


def open_app(model: str | None = None, page: str | None = None, query: dict | None = None) -> AppTest:
    """The app after its first run, with ``model`` chosen in the sidebar and ``page`` opened."""
    at = AppTest.from_file(APP, default_timeout=60)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    check(at)
    if model is not None and at.selectbox(key="sv_model").value != model:
        at.selectbox(key="sv_model").set_value(model).run()
        check(at)
    if page is not None:
        at.switch_page(f"views/{page}.py").run()
        check(at)
    return at


def check(at: AppTest) -> None:
    """No uncaught exception in the last run."""
    assert not at.exception, [e.value for e in at.exception]


def charts(at: AppTest) -> list[dict]:
    """Every Plotly figure of the last run, as figure JSON."""
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def chart_specs(at: AppTest) -> list[str]:
    return [c.proto.spec for c in at.get("plotly_chart")]


