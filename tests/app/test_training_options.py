"""Dropout, DropConnect and "Train on" on Regularize and Prune's fine-tune: real widget changes, a real run,
train (eval mode) vs test accuracy per epoch, the stated gap equal to the history's, the origin naming the options,
and the options surviving a page change."""

from __future__ import annotations

import re

import pytest
from apptools import chart_specs, check, open_app

import app_state
from app_state import keys
from sparsity_viz.data import load_dataset, train_subset_size


def _log(at, page: str) -> dict:
    return at.session_state[keys.TRAIN_LOG][page]


def _check_run(at, page: str, epochs: int) -> None:
    """The log has train_eval_accuracy every epoch; the message states the last epoch's gap; the chart shows it."""
    check(at)
    assert not at.error, [e.value for e in at.error]
    log = _log(at, page)
    history = log["history"]
    assert [h["epoch"] for h in history] == list(range(1, epochs + 1))
    assert all(0.0 <= h["train_eval_accuracy"] <= 1.0 for h in history)
    gap = 100 * (history[-1]["train_eval_accuracy"] - history[-1]["test_accuracy"])
    stated = re.search(r"train/test gap of ([+-]\d+\.\d) points", log["message"])
    assert stated and float(stated.group(1)) == pytest.approx(round(gap, 1), abs=0.051), log["message"]
    assert f"{100 * history[-1]['train_eval_accuracy']:.1f} %" in log["message"]
    shown = [*at.success, *at.warning]
    assert shown and stated.group(0) in shown[0].value  # the page shows the same message
    assert any('"train accuracy (eval mode)"' in spec and f"gap {gap:+.1f} pts" in spec for spec in chart_specs(at))


def test_regularize_with_dropout_on_a_quarter_of_the_data():
    at = open_app("digits_mlp", "3_regularize")
    at.number_input(key="reg_epochs").set_value(2).run()
    at.slider(key=keys.training_option("regularize", "dropout")).set_value(0.3).run()
    at.radio(key=keys.training_option("regularize", "train_fraction")).set_value(0.25).run()
    check(at)
    n = train_subset_size(load_dataset("digits"), 0.25)
    assert f"25 % ({n:,})" in at.radio(key=keys.training_option("regularize", "train_fraction")).options
    at.button(key="reg_train").click().run()
    _check_run(at, "regularize", 2)
    origin = at.session_state[app_state.KEY_BENCH].origin
    assert "dropout 0.3" in origin and f"on 25 % of the training split ({n:,} samples)" in origin
    assert "DropConnect" not in origin
    at.switch_page("views/4_weights.py").run()
    at.switch_page("views/3_regularize.py").run()
    check(at)
    assert at.slider(key=keys.training_option("regularize", "dropout")).value == pytest.approx(0.3)
    assert at.radio(key=keys.training_option("regularize", "train_fraction")).value == 0.25


def test_prune_finetune_with_dropconnect_keeps_masks_and_its_own_settings():
    at = open_app("digits_mlp", "2_prune")
    at.slider(key="prune_sparsity").set_value(80).run()
    at.number_input(key="prune_ft_epochs").set_value(2).run()
    at.slider(key=keys.training_option("prune", "dropconnect")).set_value(0.4).run()
    at.button(key="prune_finetune").click().run()
    _check_run(at, "prune", 2)
    wb = at.session_state[app_state.KEY_BENCH]
    assert "fine-tuned 2 epochs" in wb.origin and "DropConnect 0.4" in wb.origin
    assert "dropout" not in wb.origin and "training split" not in wb.origin  # only what is on is named
    assert wb.sparsity == pytest.approx(0.8, abs=0.005)  # pruned weights stayed zero under DropConnect
    at.switch_page("views/3_regularize.py").run()
    check(at)
    assert at.slider(key=keys.training_option("regularize", "dropconnect")).value == 0.0  # per page
    at.switch_page("views/2_prune.py").run()
    check(at)
    assert at.slider(key=keys.training_option("prune", "dropconnect")).value == pytest.approx(0.4)
    assert at.radio(key=keys.training_option("prune", "train_fraction")).value == 1.0
