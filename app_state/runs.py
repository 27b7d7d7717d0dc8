"""Long runs under a progress bar and a Stop button: live training (Prune's fine-tune, Regularize) and lab runs.

Any interaction during a run (the Stop button included) makes Streamlit interrupt the
script at its next UI update or session-state read. ``Interruptions`` catches that, the
library's ``stop=`` flag ends the work at its next step, the partial result is kept,
and the interruption then continues as Streamlit intended. A diverging training ends
in ``st.error`` with the epoch and the reason, and the current model stays as it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any, NoReturn

import streamlit as st
from streamlit.runtime.scriptrunner_utils.exceptions import RerunException, StopException
from torch import nn

from sparsity_viz import figures
from sparsity_viz.devices import DeviceUnavailableError
from sparsity_viz.executors import PointFailedError
from sparsity_viz.figures.training import accuracy_gap
from sparsity_viz.masks import Masks
from sparsity_viz.model_recipe import ModelRecipe, TrainStep
from sparsity_viz.session import PruneConfig, replace_current
from sparsity_viz.training import EpochStats, TrainConfig, TrainingDiverged, train

from . import keys
from .url import set_recipe
from .widgets import display_figure, display_options, rerun_keeping_messages, show_figure, show_message
from .workbench import bench, dataset, device, set_bench

Progress = Callable[[float, str], None]
StopFlag = Callable[[], bool]
CHANCE_FACTOR = 1.5  # accuracy below 1.5 / classes after a finished run: it fell to chance


class Interruptions:
    """Catches the rerun Streamlit delivers when the user clicks during a long run."""

    def __init__(self):
        self.caught: list[RerunException | StopException] = []

    def ui(self, fn: Callable[[], None]) -> None:
        """Run one UI update unless the run is already interrupted."""
        if self.caught:
            return
        try:
            fn()
        except (RerunException, StopException) as exc:
            self.caught.append(exc)

    def stop(self) -> bool:
        """The library-side stop flag: a click happened, or a test set ``keys.STOP``."""
        if self.caught:
            return True
        try:
            return bool(st.session_state.get(keys.STOP))
        except (RerunException, StopException) as exc:
            self.caught.append(exc)
            return True

    def resume(self) -> None:
        """Re-raise the caught interruption (if any)."""
        if self.caught:
            raise self.caught[0]


def request_stop() -> None:
    """Set the library-side stop flag: the next or running training stops at its next step."""
    st.session_state[keys.STOP] = True


# ---------------------------------------------------------------------------
# Live training


def training_log(page: str) -> dict | None:
    return (st.session_state.get(keys.TRAIN_LOG) or {}).get(page)


def show_training_log(page: str) -> None:
    """The last run's charts and message (live placeholders vanish on the next rerun)."""
    log = training_log(page)
    if not log:
        return
    show_message(log["level"], log["message"])
    if log["history"]:
        show_figure(figures.training_history(log["history"], log["title"]), f"{page}_training")


def diverged_message(exc: TrainingDiverged) -> str:
    """What a user reads when training diverged: the epoch and the reason, and that the last good model stays."""
    return (f"Training diverged in epoch {exc.epoch}: {exc.reason}. The current model was left unchanged "
            "(the last good one); try a smaller learning rate or penalty strength.")


def run_training(page: str, model: nn.Module, config: TrainConfig, masks: Masks | None, origin: str,
                 prune_config: PruneConfig | None = None) -> NoReturn:
    """Train live: progress bar, charts updated every epoch, a Stop button; the result becomes current.

    Every epoch also measures the training split in eval mode (``eval_train``), so the
    charts and the final message show train vs test accuracy and their gap.
    """
    wb = bench()
    ds = dataset(wb)
    interruptions = Interruptions()
    history: list[dict] = []
    title = f"Training: {origin}"
    st.button("Stop training", key=keys.stop_button(page),
              help="Stops after the current step; what was trained so far is kept.")
    bar = st.progress(0.0, text="Starting...")
    chart = st.empty()
    last = [0.0]
    options = display_options()  # the live chart follows projector mode like every other figure

    def on_progress(fraction: float) -> None:
        if fraction - last[0] >= 0.02 or fraction >= 1.0:
            last[0] = fraction
            interruptions.ui(lambda: bar.progress(fraction, text=f"Training... {100 * fraction:.0f} %"))

    def on_epoch(stats: EpochStats) -> None:
        history.append(asdict(stats))
        interruptions.ui(lambda: chart.plotly_chart(display_figure(figures.training_history(history, title), options),
                                                    key=None, theme=None))

    start = time.perf_counter()
    level, result = "success", None
    try:
        result = train(model, ds, replace(config, device=device(), eval_train=True), masks=masks, callback=on_epoch,
                       progress=on_progress, stop=interruptions.stop)
        done = len(result.history)
        if result.stopped:
            level = "warning"
            message = (f"Stopped after {done} of {config.epochs} epochs; the model trained so far is now the "
                       "current model.")
        else:
            message = f"Finished {done} epochs in {time.perf_counter() - start:.1f} s."
    except TrainingDiverged as exc:
        level, message = "error", diverged_message(exc)
    except (ValueError, DeviceUnavailableError) as exc:
        level, message = "error", f"Training could not start: {exc}"
    finally:
        st.session_state[keys.STOP] = False
    if result is not None and result.history:
        final = result.model.to("cpu")
        wb = replace_current(wb, final, {k: v.cpu() for k, v in (result.masks or {}).items()} or None,
                             origin + (" (stopped early)" if result.stopped else ""), prune_config=prune_config,
                             recipe=None if result.stopped else _recipe_after(wb, model, config, masks))
        set_bench(wb)
        set_recipe(wb.recipe)
        h = result.history[-1]
        message += f" Test accuracy {100 * h.test_accuracy:.1f} %, {100 * h.sparsity:.1f} % of weights are exact zeros."
        gap = accuracy_gap(history)
        if gap is not None:
            message += (f" Train accuracy (eval mode, on the samples trained on) {100 * h.train_eval_accuracy:.1f} %: "
                        f"a train/test gap of {gap:+.1f} points.")
        if h.test_accuracy < CHANCE_FACTOR / ds.num_classes and level == "success":
            level = "warning"
            message += (" The accuracy fell to chance level: the learning rate or the penalty was too large "
                        "(every neuron died or every weight was zeroed). Press Reset or train again with smaller "
                        "values.")
    elif result is not None and level != "error":
        level, message = "warning", "Stopped before the first epoch finished; the current model was left unchanged."
    logs = dict(st.session_state.get(keys.TRAIN_LOG) or {})
    logs[page] = {"history": history, "message": message, "level": level, "title": title}
    st.session_state[keys.TRAIN_LOG] = logs
    interruptions.resume()
    st.rerun()  # redraw the page around the new current model; the log above keeps the charts


def _recipe_after(wb, model: nn.Module, config: TrainConfig, masks: Masks | None):
    """The current model's recipe after training ``model`` (the dense one without masks, or the current one with
    its masks); None when neither (then no link can rebuild it)."""
    if wb.recipe is not None and model is wb.current and masks is wb.masks:
        return wb.recipe.then_train(TrainStep(config, start="current"))
    if model is wb.dense and masks is None:
        return (wb.recipe or ModelRecipe()).then_train(TrainStep(config, start="dense"))
    return None


# ---------------------------------------------------------------------------
# Lab runs


def run_with_stop(work: Callable[[Progress, StopFlag], Any], keep: Callable[[Any], None], *, key: str,
                  text: str = "Working...", rerun: bool = True,
                  on_diverged: Callable[[str], None] | None = None) -> None:
    """Run ``work(progress, stop)`` with a progress bar and a Stop button, ``keep`` its result, rerun the page.

    ``progress(fraction, text)`` updates the bar; ``stop()`` turns True when the user
    clicks anything or when ``keys.STOP`` is set (tests). A partial result is kept too;
    the interruption then continues as Streamlit intended. Never returns, unless ``rerun`` is False:
    then the bar and the button vanish and the script goes on (a link's rebuild, before ``st.navigation``
    has chosen the page a rerun would need), or unless training diverged (``TrainingDiverged``) or a Ray worker
    running a point died (``PointFailedError``): then nothing is kept, ``on_diverged(message)`` is called, the
    message is shown in the bar's place and the script goes on.
    """
    interruptions = Interruptions()
    slot = st.empty()
    with slot.container():
        st.button("Stop", key=keys.stop_button(key), icon=":material/stop:",
                  help="Stops after the current step; finished work is kept.")
        bar = st.progress(0.0, text=text)
    last = [-1.0]

    def progress(fraction: float, label: str = "") -> None:
        if fraction - last[0] < 0.01 and fraction < 1.0:
            return
        last[0] = fraction
        interruptions.ui(lambda: bar.progress(min(1.0, max(0.0, fraction)),
                                              text=f"{100 * fraction:.0f} % · {label}" if label else text))

    try:
        result = work(progress, interruptions.stop)
    except (TrainingDiverged, PointFailedError) as exc:  # a message where the bar was, not a traceback
        slot.empty()
        message = diverged_message(exc) if isinstance(exc, TrainingDiverged) else str(exc)  # a Ray worker died
        if on_diverged is not None:
            on_diverged(message)
        st.error(message)
        interruptions.resume()  # a click during the run still reruns the page
        return
    finally:
        st.session_state[keys.STOP] = False
    keep(result)
    interruptions.resume()
    if rerun:
        rerun_keeping_messages()  # redraw the page from the kept result (no stale bar, Stop or Compute button)
    slot.empty()
