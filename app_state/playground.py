"""The Playground page's state: this session's run, its ``pg_*`` URL parameters, live training, hand cuts.

The run (``sparsity_viz.playground.PlaygroundRun``) lives in ``keys.PLAYGROUND``; it never
touches the workbench (the sidebar's model stays as it was). On the page's first open in
a session the run is rebuilt from the URL (``from_params`` + ``replay``: the spec, the
epochs trained and the hand cuts; deterministic, so the class sees the teacher's network),
and every run writes the state back into the URL. Training runs live, epoch by epoch
through ``train_epochs`` (``training.train``), every figure redrawn in place at most every
``REDRAW_SECONDS``, until the budget or Stop (``runs.Interruptions``). A click on a connection or hidden unit of the
network (``st.plotly_chart(on_select="rerun")``) cuts or restores it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, NoReturn

import streamlit as st

from sparsity_viz.figures.playground import playground_figures
from sparsity_viz.playground import (
    Cut,
    PlaygroundRun,
    PlaygroundSpec,
    describe_changes,
    from_params,
    is_cut,
    replay,
    start,
    to_params,
    toggle,
    train_epochs,
)
from sparsity_viz.playground.spec import DYNAMICS, INITS, PREFIX
from sparsity_viz.pruning import STRATEGIES
from sparsity_viz.training import TrainingDiverged

from . import keys
from .runs import Interruptions
from .url import drop_url, set_url
from .widgets import display_figure, display_options, show_figure, show_message

REDRAW_SECONDS = 0.4  # a live run redraws its figures at most this often (and after the last epoch)


@dataclass
class Slots:
    """Where the page draws: a status line (messages, progress, Stop) and the four figures."""

    status: Any
    network: Any
    boundary: Any
    maps: Any
    loss: Any


def playground() -> PlaygroundRun:
    """This session's run; on the first open, rebuilt from the URL's ``pg_*`` parameters."""
    run = st.session_state.get(keys.PLAYGROUND)
    if run is None:
        spec, at, cuts = from_params(st.query_params.to_dict())
        bar = st.progress(0.0, text=f"Rebuilding the linked network: {at} epochs...") if at else None
        try:
            run = replay(spec, at, cuts, progress=None if bar is None else
                         lambda f: bar.progress(f, text=f"Rebuilding the linked network: epoch {round(f * at)} of {at}"))
        except (TrainingDiverged, ValueError) as exc:
            run = start(spec)
            _message("error", f"The link's network could not be rebuilt ({exc}); it starts untrained.")
        else:
            if at or cuts:
                _message("info", f"Rebuilt from the link: {spec.describe()}, {run.epoch} "
                                 f"epoch{'s' if run.epoch != 1 else ''} trained, "
                                 f"{len(cuts)} hand cut{'s' if len(cuts) != 1 else ''}.")
        if bar is not None:
            bar.empty()
        st.session_state[keys.PLAYGROUND] = run
    sync_url(run)
    return run


def sync_url(run: PlaygroundRun) -> None:
    """Write the run's state into the URL (only what changed); an empty cut list leaves no parameter."""
    params = to_params(run.spec, run.epoch, run.cuts)
    drop_url(*(k for k, v in params.items() if v == ""))
    set_url(**{k: v for k, v in params.items() if v != ""})


def set_playground_spec(spec: PlaygroundSpec) -> PlaygroundRun:
    """Use ``spec``; any change starts a fresh, untrained run (a run's settings are fixed, so links replay it)."""
    run = playground()
    return _fresh(spec) if spec != run.spec else run


def reset_playground() -> None:
    """Back to the untrained network of the same settings."""
    _fresh(playground().spec)


def _fresh(spec: PlaygroundSpec) -> PlaygroundRun:
    run = start(spec)
    st.session_state[keys.PLAYGROUND] = run
    st.session_state.pop(keys.PLAYGROUND_MSG, None)
    sync_url(run)
    return run


def _message(level: str, text: str) -> None:
    st.session_state[keys.PLAYGROUND_MSG] = (level, text)


def show_playground_message() -> None:
    msg = st.session_state.get(keys.PLAYGROUND_MSG)
    if msg:
        show_message(*msg)


def playground_numbers(run: PlaygroundRun) -> dict[str, float | int | None]:
    """The numbers above the figures: epoch, losses, accuracy, connections alive."""
    last = run.history[-1] if run.history else None
    return {"epoch": run.epoch, "budget": run.spec.epochs,
            "train_loss": last.train_eval_loss if last else None, "test_loss": last.test_loss if last else None,
            "test_accuracy": last.test_accuracy if last else None, **describe_changes(run)}


# --- figures --------------------------------------------------------------------------------------


def show_playground(slots: Slots) -> None:
    """Draw the run; a click on a connection or hidden unit cuts / restores it (the page reruns)."""
    run = playground()
    figs = playground_figures(run)
    with slots.network:
        # a new key after every epoch or cut: a selection is handled once, never again on the next rerun
        event = st.plotly_chart(display_figure(figs["network"]),
                                key=keys.figure(f"pg_network_{run.epoch}_{len(run.cuts)}"),
                                theme=None, on_select="rerun", selection_mode="points",
                                config={"displaylogo": False, "displayModeBar": False})
        target = clicked(event)
        if target is not None:
            cut_by_hand(*target)
    with slots.boundary:
        show_figure(figs["boundary"], "pg_boundary")
    with slots.maps:
        show_figure(figs["maps"], "pg_unit_maps")
    with slots.loss:
        if figs["loss"] is None:
            st.info("Train and test loss appear here once the first epoch is trained.")
        else:
            show_figure(figs["loss"], "pg_loss")


def clicked(event: Any) -> tuple[str, int, int, int] | None:
    """``(kind, layer, a, b)`` of the connection or unit a chart selection names, else None."""
    try:
        points = event.selection.points
    except AttributeError:
        return None
    for p in points or []:
        data = p.get("customdata") if isinstance(p, dict) else None
        if isinstance(data, (list, tuple)) and len(data) == 4 and data[0] in ("edge", "unit"):
            try:
                return str(data[0]), int(data[1]), int(data[2]), int(data[3])
            except (TypeError, ValueError):
                return None
    return None


def cut_by_hand(kind: str, layer: int, a: int, b: int = 0) -> NoReturn:
    """Cut (or restore) a connection or hidden unit, say what happened, rerun the page."""
    run = playground()
    try:
        restoring = is_cut(run, Cut(run.epoch, kind, layer, a, b))
        new = toggle(run, kind, layer, a, b)
    except (ValueError, IndexError, KeyError) as exc:
        _message("error", f"Could not cut that: {exc}")
    else:
        st.session_state[keys.PLAYGROUND] = new
        sync_url(new)
        what = new.cuts[-1].label(len(new.spec.sizes) - 1)
        _message("success", f"{'Restored' if restoring else 'Cut'} {what} at epoch {new.epoch}"
                            + (" with the weights it had when it was cut." if restoring else
                               ": the boundary and the unit maps show the network without it."))
    st.rerun()


def cut_choices(run: PlaygroundRun) -> dict[str, tuple[tuple[str, int, int, int], bool]]:
    """Every hidden unit and connection by name, with its target and whether it is cut now (for the keyboard
    alternative to clicking). The names do not say the state: a name that changed with it ("(alive)" to "(cut)")
    sent the selectbox back to its first option after every cut, so a second press cut a whole unit (an audit)."""
    sizes = run.spec.sizes
    cuts = [Cut(0, "unit", layer, u) for layer, units in enumerate(run.spec.hidden, start=1) for u in range(units)]
    cuts += [Cut(0, "edge", layer, a, b) for layer in range(1, len(sizes)) for a in range(sizes[layer])
             for b in range(sizes[layer - 1])]
    return {cut.label(len(sizes) - 1) if cut.kind == "edge" else cut.label(): (cut.target(), is_cut(run, cut))
            for cut in cuts}


# --- live training --------------------------------------------------------------------------------


def train_live(slots: Slots, epochs: int) -> NoReturn:
    """Train up to ``epochs`` more epochs, redrawing every figure in place; Stop keeps what was trained.

    Epochs run one ``train`` call each; the figures are redrawn when ``REDRAW_SECONDS`` have
    passed (and at the end), showing what vanished and (re)appeared since the previous redraw.
    """
    run = playground()
    target = min(run.spec.epochs, run.epoch + max(1, epochs))
    inter = Interruptions()
    with slots.status:
        st.button("Stop", key=keys.stop_button("pg_train"), icon=":material/stop:",
                  help="Stops after the current epoch; what was trained so far is kept.")
        bar = st.progress(0.0, text="Training...")
    places = {name: getattr(slots, name).empty() for name in ("network", "boundary", "maps", "loss")}
    first, t0, drawn = run.epoch, time.perf_counter(), 0.0
    options = display_options()  # the sidebar's projector / axis toggles, read once
    shown = run.alive()  # what the figures showed last
    level, text = "success", ""
    try:
        while run.epoch < target and not inter.stop():
            run = train_epochs(run, 1, stop=inter.stop)
            if time.perf_counter() - drawn >= REDRAW_SECONDS or run.epoch >= target:
                run = replace(run, before=shown)
                shown = run.alive()
                figs = playground_figures(run)
                for name, place in places.items():
                    if figs[name] is not None:
                        key = keys.figure(f"pg_live_{name}_{run.epoch}")  # unique: equal figures never clash
                        inter.ui(lambda p=place, f=figs[name], k=key: p.plotly_chart(display_figure(f, options),
                                                                                     theme=None, key=k))
                done = (run.epoch - first) / max(target - first, 1)
                inter.ui(lambda: bar.progress(min(1.0, done), text=f"Epoch {run.epoch} of {target}"))
                drawn = time.perf_counter()
        trained = run.epoch - first
        text = f"Trained {trained} epoch{'s' if trained != 1 else ''} in {time.perf_counter() - t0:.1f} s"
        if run.epoch < target:
            level, text = "warning", text + " (stopped)"
        if run.history:
            h = run.history[-1]
            text += (f". Epoch {run.epoch}: train loss {h.train_eval_loss:.3f}, test loss {h.test_loss:.3f}, "
                     f"test accuracy {100 * h.test_accuracy:.1f} %.")
    except TrainingDiverged as exc:
        level, text = "error", (f"Training diverged in epoch {exc.epoch}: {exc.reason}. The network was kept at "
                                f"epoch {run.epoch}; try a smaller learning rate or L1 strength.")
    finally:
        st.session_state[keys.STOP] = False
    st.session_state[keys.PLAYGROUND] = run
    _message(level, text)
    sync_url(run)
    inter.resume()
    st.rerun()


def init_labels() -> dict[str, str]:
    """Start choices, name -> label (the sparse ones from the strategy registry)."""
    return {n: "Dense" if n == "dense" else STRATEGIES[n].label for n in INITS}


def dynamics_labels() -> dict[str, str]:
    """Training regimes, name -> label (from the strategy registry)."""
    return {n: "Nothing (plain training)" if n == "none" else STRATEGIES[n].label for n in DYNAMICS}


__all__ = ["PREFIX", "Slots", "clicked", "cut_by_hand", "cut_choices", "dynamics_labels", "init_labels", "playground",
           "playground_numbers", "reset_playground", "set_playground_spec", "show_playground",
           "show_playground_message", "sync_url", "train_live"]
