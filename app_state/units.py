"""The "What units see" page: receptive fields of the dense and current models, the clicked unit.

Receptive fields are the same for every student looking at the same weights, so they
live in the shared ``UNITS`` cache keyed by the model's content (``cache.content_key``)
and are handed out as copies. The page's settings (layer, tiles per page, first unit,
selected unit) go through ``settings.page_settings`` / ``settings.keep_page_settings``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import streamlit as st
from torch import nn

from sparsity_viz import figures
from sparsity_viz.layers import chain_layers
from sparsity_viz.receptive_fields import ReceptiveFields, receptive_fields
from sparsity_viz.session import Workbench

from . import keys
from .cache import UNITS, content_key, shared_cache
from .settings import keep_page_settings, page_settings
from .shared_figures import shared_figure
from .workbench import dataset
from .widgets import display_figure

PER_PAGE = (16, 25, 49, 100)  # tiles per grid (25 float32 28x28 tiles: about 100 KB of figure JSON)
DEFAULTS = {"layer": "", "per_page": 25, "first": 0, "unit": 0}  # "" layer: the first one
RANGES = {"per_page": (1, 400), "first": (0, 100_000), "unit": (0, 100_000)}


@dataclass(frozen=True, eq=False)
class UnitsView:
    """What the page draws: the layer's fields dense and now, or why there are none."""

    layers: tuple[str, ...]  # layers with receptive fields (first Linear over an image, every Conv2d)
    layer: str | None
    dense: ReceptiveFields | None
    current: ReceptiveFields | None
    input_shape: tuple[int, ...]
    class_names: tuple[str, ...] | None
    message: str | None = None  # set when there is nothing to draw


def field_layers(model: nn.Module, image: bool) -> list[str]:
    """Layers whose units have pictures: every Conv2d, and the first layer when it is a Linear over an image."""
    try:
        chain = chain_layers(model)
    except ValueError:
        return []
    convs = [c.name for c in chain if isinstance(c.module, nn.Conv2d)]
    first = [chain[0].name] if chain and image and isinstance(chain[0].module, nn.Linear) else []
    return first + convs


def shared_fields(model: nn.Module, masks: Any, layer: str, input_shape: tuple[int, ...]) -> ReceptiveFields:
    """``receptive_fields`` of ``model``, computed once per content for every session; a copy."""
    key = (content_key(model), layer, input_shape)  # masked weights are zero, so the weights say it all
    fields = shared_cache(UNITS).get_or_compute(
        key, lambda: receptive_fields(model, masks, input_shape=input_shape, layer=layer))
    return copy.deepcopy(fields)  # the shared entry stays read-only


def units_view(wb: Workbench) -> UnitsView:
    """The receptive fields of the stored layer (default the first) for the dense and the current model."""
    ds = dataset(wb)
    shape = tuple(ds.input_shape)
    layers = field_layers(wb.current, ds.is_image)
    names = tuple(ds.class_names) if ds.class_names else None
    if not layers:
        why = ("its inputs are not an image" if not ds.is_image else "it is not a chain of Linear / Conv2d layers")
        return UnitsView((), None, None, None, shape, names,
                         message=f"**{wb.name}** has no receptive fields to draw: {why}. Pick an image model in the "
                                 "sidebar (lenet300, digits_mlp or lenet5) to see what each unit looks at.")
    settings = stored_units()
    layer = settings["layer"] if settings["layer"] in layers else layers[0]
    try:
        dense = shared_fields(wb.dense, wb.dense_masks, layer, shape)
        current = shared_fields(wb.current, wb.masks, layer, shape)
    except ValueError as exc:
        return UnitsView(tuple(layers), layer, None, None, shape, names, message=str(exc))
    return UnitsView(tuple(layers), layer, dense, current, shape, names)


def stored_units() -> dict:
    """The page's settings (mirrored in the URL as ``units.<field>`` by ``settings``)."""
    return page_settings("units", DEFAULTS, RANGES)


def store_units(**settings: Any) -> None:
    keep_page_settings("units", DEFAULTS, **settings)


GRIDS = ("units_dense", "units_current")  # the two clickable grids (figure names)


def selected_unit(units: int) -> int:
    """The selected unit: a new click on a grid tile (the charts' selection state, read before they redraw), else
    the unit typed in the number input, else the stored one (kept within ``0 .. units - 1``).

    Each grid remembers the tile it last reported, so a stale selection never overrides a unit typed since.
    """
    seen = dict(st.session_state.get(keys.UNITS_CLICK) or {})
    for name in GRIDS:
        event = st.session_state.get(keys.figure(name)) or {}
        points = (event.get("selection") or {}).get("points") or []
        clicked = [p.get("customdata") for p in points if isinstance(p.get("customdata"), (int, float))]
        unit = int(clicked[-1]) if clicked else None
        if unit is not None and seen.get(name) != unit and 0 <= unit < units:
            store_units(unit=unit)
            st.session_state[keys.UNITS_UNIT] = unit  # the unit number input follows the click
        seen[name] = unit
    st.session_state[keys.UNITS_CLICK] = seen
    typed = st.session_state.get(keys.UNITS_UNIT)
    if not isinstance(typed, int) or not 0 <= typed < units:
        st.session_state[keys.UNITS_UNIT] = min(max(int(stored_units()["unit"]), 0), units - 1)
    return int(st.session_state[keys.UNITS_UNIT])


def show_grid(fig: Any, name: str) -> Any:
    """A receptive-field grid whose tiles can be clicked (returns the selection event), in projector mode too
    (it skipped ``display_figure``: the grids kept their small fonts; an audit)."""
    return st.plotly_chart(display_figure(fig), key=keys.figure(name), theme=None, on_select="rerun",
                           selection_mode="points", config={"displaylogo": False})


def unit_graph(wb: Workbench, view: UnitsView, layer: str, unit: int) -> Any:
    """The connection graph of the current model with ``unit`` of ``layer``'s fan-in and fan-out drawn over it
    (shared by every student at the same weights; read-only)."""
    return shared_figure(wb.current, wb.masks, ("unit_graph", layer, unit, view.input_shape, view.class_names),
                         lambda: figures.unit_graph(wb.current, wb.masks, layer, unit, input_shape=view.input_shape,
                                                    class_names=view.class_names))


def unit_grid(wb: Workbench, view: UnitsView, dense: bool, shown: list[int], *, zmax: float, selected: int,
              title: str) -> Any:
    """``figures.receptive_field_grid`` of the dense or the current model's fields (shared; read-only)."""
    fields, model = (view.dense, wb.dense) if dense else (view.current, wb.current)
    return shared_figure(model, {} if dense else wb.masks,
                         ("units_grid", view.layer, tuple(shown), zmax, selected, title),
                         lambda: figures.receptive_field_grid(fields, shown, zmax=zmax, selected=selected,
                                                              title=title))
