"""The training options every page that trains shows: dropout, DropConnect and how much of the training split.

One widget group (``training_options``) for Regularize and Prune's fine-tune; the choice
is kept per page in a session key no widget owns (``settings.stored_train_options``), so
it survives page changes, and goes into ``TrainConfig`` through ``config_fields``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import streamlit as st

from sparsity_viz.data import Dataset, train_subset_size

from . import keys
from .settings import MAX_TRAIN_RATE, store_train_options, stored_train_options

MAX_RATE = MAX_TRAIN_RATE  # the sliders' top: beyond it too little of the network trains per step
TRAIN_SHARES = (1.0, 0.5, 0.25, 0.1)  # the "Train on" choices, shares of the training split


@dataclass(frozen=True)
class TrainingOptions:
    """Dropout / DropConnect rates and the share of the training split (``TrainConfig`` fields of the same names)."""

    dropout: float = 0.0
    dropconnect: float = 0.0
    train_fraction: float = 1.0

    def config_fields(self) -> dict:
        """The ``TrainConfig`` keyword arguments."""
        return asdict(self)

    def describe(self, dataset: Dataset) -> str:
        """For the current model's origin: what of these options is on ("" when none)."""
        parts = [f"dropout {self.dropout:g}"] if self.dropout else []
        parts += [f"DropConnect {self.dropconnect:g}"] if self.dropconnect else []
        if self.train_fraction < 1:
            parts.append(f"on {100 * self.train_fraction:g} % of the training split "
                         f"({train_subset_size(dataset, self.train_fraction):,} samples)")
        return ", ".join(parts)


def training_options(page: str, dataset: Dataset) -> TrainingOptions:
    """Draw the dropout and DropConnect sliders and the "Train on" choice in three columns; store and return them."""
    stored = stored_train_options(page)
    c1, c2, c3 = st.columns(3)
    dropout = c1.slider("Dropout rate", 0.0, MAX_RATE, float(stored.get("dropout", 0.0)), step=0.05,
                        key=keys.training_option(page, "dropout"),
                        help="Each training step zeroes this share of the hidden activations (off when evaluating).")
    dropconnect = c2.slider("DropConnect rate", 0.0, MAX_RATE, float(stored.get("dropconnect", 0.0)), step=0.05,
                            key=keys.training_option(page, "dropconnect"),
                            help="Each training step zeroes this share of the weights (off when evaluating).")
    share = float(stored.get("train_fraction", 1.0))
    n = len(dataset.y_train)
    train_fraction = c3.radio(
        "Train on (samples)", TRAIN_SHARES, index=TRAIN_SHARES.index(share) if share in TRAIN_SHARES else 0,
        horizontal=True, key=keys.training_option(page, "train_fraction"),
        format_func=lambda f: f"{100 * f:g} % ({train_subset_size(dataset, f):,})",
        help=f"Share of the {n:,} training samples (stratified, seeded); a small share overfits, which shows "
             "the train/test gap.")
    options = TrainingOptions(round(float(dropout), 2), round(float(dropconnect), 2), float(train_fraction))
    store_train_options(page, options.config_fields())
    return options
