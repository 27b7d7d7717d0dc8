"""A shared link's workbench state, applied on the session's first run before any page draws.

``restore_link`` runs once per session from ``init`` (after ``settings.read_url_once``):
a link with a prune configuration prunes the dense model at once; a link with a trained
model's recipe (``model_recipe.ModelRecipe``) rebuilds it under a progress bar and a Stop
button. Rebuilt models are shared between sessions (the same link for a whole class trains
once) and handed out as copies. What happened is kept in ``keys.LINK_MSG`` for the sidebar.
"""

from __future__ import annotations

import copy

import streamlit as st

from sparsity_viz.model_recipe import ModelRecipe, Rebuilt, rebuild
from sparsity_viz.session import Workbench, replace_current

from . import keys
from .cache import REBUILT, shared_cache
from .runs import run_with_stop
from .url import not_understood, query, set_recipe
from .workbench import apply_prune, bench, dataset, device, prune_masks, set_bench



def restore_link() -> None:
    """Apply the URL's model state to this session's workbench (a rebuild reruns the script when done)."""
    url = query()
    said = []
    if url.recipe_error:
        said.append(f"This link's model recipe was not understood ({url.recipe_error}); the model shown is the one "
                    "its other settings describe.")
    if url.ignored:
        said.append(not_understood(url.ignored))
    if said:
        say("error" if url.recipe_error else "warning", " ".join(said))
    if url.recipe is not None and url.recipe.trained:
        rebuild_from_link(url.recipe)
    elif url.recipe is not None and url.recipe.prune is not None:
        apply_prune(url.recipe.prune)
    elif url.prune is not None and url.prune.sparsity > 0:  # at 0 % the dense model is already what it shows
        apply_prune(url.prune)


def link_carries(wb: Workbench) -> tuple[str, str] | None:
    """(level, text) saying plainly what a link made now does with the current model; None for a plain pruned one."""
    if not wb.linkable:
        return ("warning", "**A link cannot carry an uploaded checkpoint.** A link holds settings and training "
                           "recipes, never weights: it opens a bundled model with these settings instead. To share "
                           "this model, download its checkpoint below and upload it on Home.")
    if wb.recipe is None:
        return ("warning", f"**A link cannot rebuild the current model** ({wb.origin}): it was not made by a "
                           "seeded recipe (a training stopped early is one). The link opens the dense model pruned "
                           "by its settings.")
    if wb.recipe.trained:
        return ("info", f"The current model came from training. The link carries its seeded recipe "
                        f"({wb.recipe.describe()}); opening it trains the same model again ({wb.recipe.epochs} "
                        "epochs) under a progress bar, once for a whole class.")
    return None


def say(level: str, text: str) -> None:
    st.session_state[keys.LINK_MSG] = (level, text)


def link_message() -> tuple[str, str] | None:
    """What restoring the link said (shown once)."""
    return st.session_state.pop(keys.LINK_MSG, None)


def _install(wb: Workbench, recipe: ModelRecipe, built: Rebuilt) -> None:
    from_dense = any(s.start == "dense" for s in recipe.steps)
    wb = replace_current(wb, copy.deepcopy(built.model), {k: v.clone() for k, v in built.masks.items()},
                         f"{built.origin} (rebuilt from the link)",
                         prune_config=None if from_dense else recipe.prune, recipe=recipe)
    set_bench(wb)
    set_recipe(recipe)


def rebuild_from_link(recipe: ModelRecipe) -> None:
    """Make the link's trained model again: from the shared cache, else by training under a progress bar (which
    vanishes when done: the page draws below it in the same run)."""
    wb = bench()
    key = (wb.fingerprint, wb.dataset, device(), recipe)
    cache = shared_cache(REBUILT)
    hit = cache.get(key)
    if hit is not None:
        _install(wb, recipe, hit)  # copies: the shared entry stays read-only
        say("success", f"Rebuilt from the link: {hit.origin}.")
        return

    def work(progress, stop):
        try:
            return rebuild(recipe, wb.dense, dataset(wb), device=device(), progress=progress, stop=stop,
                           prune_masks=lambda cfg: prune_masks(wb, cfg))
        except Exception as exc:  # noqa: BLE001 - a link is anyone's input: whatever it makes fail is a message
            return exc

    def keep(result) -> None:
        if isinstance(result, Rebuilt):
            cache[key] = result
            _install(wb, recipe, result)
            say("success", f"Rebuilt from the link ({_epochs(recipe)} of seeded training): {result.origin}.")
            return
        if recipe.prune is not None:
            apply_prune(recipe.prune)
        if result is None:
            say("warning", "Rebuilding the link's trained model was stopped; the model shown is "
                           + ("the dense model pruned as the link says." if recipe.prune else "the dense model."))
        else:
            say("error", f"The link's trained model could not be rebuilt: {result}")

    run_with_stop(work, keep, key="link", rerun=False,  # the page the link names draws below, in this run
                  text=f"Rebuilding the model this link describes ({_epochs(recipe)} of training)...")


def _epochs(recipe: ModelRecipe) -> str:
    return f"{recipe.epochs} epoch{'s' if recipe.epochs != 1 else ''}"
