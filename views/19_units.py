"""What units see: every first-layer unit's surviving incoming weights as an image, dense beside pruned."""

import streamlit as st

import app_state

app_state.sidebar()
st.title("What units see")
st.markdown(
    "Each tile is one unit of the first layer, drawn as the picture its incoming weights make: a pixel is **blue** "
    "where the weight is positive, **red** where it is negative, **grey** where the weight was pruned. "
    "Dead units (nothing left in or out) are greyed out. Compare the dense model with the current one: does "
    "pruning keep the strokes in the middle and drop the border, where the digits never have ink? "
    "**Click a tile** to see that unit's surviving connections in the graph below."
)

wb = app_state.bench()
view = app_state.units_view(wb)
if view.message:
    app_state.show_message("info", view.message)
else:
    settings = app_state.stored_units()
    c1, c2, c3 = st.columns([2, 2, 3])
    layer = c1.selectbox("Layer", view.layers, index=view.layers.index(view.layer), key="units_layer",
                         help="The first layer's units read the image itself; conv filters are drawn as kernels.")
    per_page = c2.selectbox("Tiles per grid", app_state.UNITS_PER_PAGE,
                            index=app_state.UNITS_PER_PAGE.index(settings["per_page"])
                            if settings["per_page"] in app_state.UNITS_PER_PAGE else 1, key="units_per_page",
                            help="Fewer tiles are larger (and lighter to send to every browser).")
    n = view.current.units if layer == view.layer else None
    if n is None:  # the layer just changed: the view follows on the next run
        app_state.store_units(layer=layer, first=0, unit=0)
        st.rerun()
    first, last_page = 0, (n - 1) // int(per_page) * int(per_page)  # the last grid's first unit
    if n > per_page:
        shown_first = min(int(settings["first"]), last_page)
        app_state.follow_model("units", {"units_first": shown_first})
        first = c3.slider("First unit shown", 0, n - 1, shown_first, step=int(per_page),
                          key="units_first", help="The grids show this unit and the next ones.")
    app_state.store_units(layer=layer, per_page=int(per_page),
                          first=app_state.kept_value(int(settings["first"]), int(first), last_page))
    shown = list(range(first, min(n, first + int(per_page))))
    selected = app_state.selected_unit(n)  # a tile clicked in the last run, or the unit typed below
    zmax = view.dense.zmax  # one colour scale for both grids
    left, right = st.columns(2)
    with left:
        dense_fig = app_state.unit_grid(wb, view, True, shown, zmax=zmax, selected=selected,
                                        title=f"Dense: {int(view.dense.dead.sum())} of {n} dead")  # fits half of 1280 px
        app_state.show_unit_grid(dense_fig, "units_dense")
    with right:
        current_fig = app_state.unit_grid(
            wb, view, False, shown, zmax=zmax, selected=selected,
            title=f"Now ({100 * wb.sparsity:.0f} %): {int(view.current.dead.sum())} of {n} dead")
        app_state.show_unit_grid(current_fig, "units_current")
    st.caption(f"Grey = a pruned weight. Current model: {wb.origin}. {view.current.inputs} incoming weights per "
               f"unit; on average "
               f"{view.current.alive.mean():.0f} survive now ({view.dense.alive.mean():.0f} in the dense model).")

    st.subheader("One unit's connections")
    unit = st.number_input("Unit", 0, n - 1, key=app_state.keys.UNITS_UNIT,
                           help="Set by clicking a tile above, or type a unit number.")
    app_state.store_units(unit=int(unit))
    graph = app_state.unit_graph(wb, view, layer, int(unit))
    app_state.show_figure(graph, "units_graph")
