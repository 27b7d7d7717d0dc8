"""Process-wide resources (``st.cache_resource``): bundled models, datasets, cards, the thread policy.

Shared by every session and **read-only**: a session never gets a cached model to
change, only a deep copy inside its own ``Workbench`` (see ``sparsity_viz.session``).
"""

from __future__ import annotations

import streamlit as st
from torch import nn

from sparsity_viz.checkpoints import available_samples, load_card, load_sample
from sparsity_viz.data import TOY_DATASETS, Dataset, load_dataset
from sparsity_viz.devices import configure_threads
from sparsity_viz.models import get_spec

DEFAULT_MODEL = "lenet300"


@st.cache_resource(show_spinner=False)
def configure_threads_once() -> int:
    """The library's thread policy, applied once per process."""
    return configure_threads()


@st.cache_resource(show_spinner="Loading the model...")
def bundled(name: str) -> tuple[nn.Module, dict]:
    """The bundled checkpoint and its card, shared by every session: NEVER modify it (sessions deep-copy)."""
    model, card = load_sample(name)
    for p in model.parameters():
        p.requires_grad_(False)  # a cheap tripwire: in-place training of the shared copy fails loudly
    return model, card


def shared_model(name: str) -> nn.Module:
    """The cached shared model itself (read-only; for tests that check it stays dense)."""
    return bundled(name)[0]


@st.cache_resource(show_spinner="Loading the data...")
def dataset_named(name: str) -> Dataset:
    """A dataset by name, loaded once per process."""
    return load_dataset(name)


@st.cache_resource(show_spinner=False)
def _card(name: str) -> dict:
    return load_card(name)


def sample_card(name: str) -> dict:
    """The JSON card of a bundled model (a copy: the cached one stays as read)."""
    return dict(_card(name))


def sample_names() -> list[str]:
    """The bundled sample models."""
    return available_samples()


def default_model() -> str:
    names = sample_names()
    return DEFAULT_MODEL if DEFAULT_MODEL in names else names[0]


def compatible_datasets(model_name: str) -> list[str]:
    """Datasets with the input shape the model was built for (all four toys are 2-D points)."""
    spec = get_spec(model_name)
    if spec.dataset in TOY_DATASETS:
        return [spec.dataset] + [d for d in TOY_DATASETS if d != spec.dataset]
    return [spec.dataset]
