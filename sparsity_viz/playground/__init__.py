"""The playground: a TensorFlow-Playground-style MLP on a 2-D toy, trained live from scratch, sparse or dense.

spec.py   what a run is (validated), hand cuts, the ``pg_*`` URL parameters
run.py    start / train_epochs (through ``training.train``) / toggle / replay
units.py  every hidden unit's output over the input plane
"""

from .run import (
    PlaygroundRun,
    alive_masks,
    describe_changes,
    initial_masks,
    is_cut,
    playground_dataset,
    replay,
    start,
    toggle,
    train_epochs,
)
from .spec import DYNAMICS, INITS, MAX_EPOCHS, MAX_LAYERS, MAX_SEED, MAX_UNITS, Cut, PlaygroundSpec, from_params, to_params
from .units import UnitMaps, dead_hidden_units, unit_maps

__all__ = ["Cut", "DYNAMICS", "INITS", "MAX_EPOCHS", "MAX_LAYERS", "MAX_SEED", "MAX_UNITS", "PlaygroundRun",
           "PlaygroundSpec", "UnitMaps", "alive_masks", "dead_hidden_units", "describe_changes", "from_params", "initial_masks", "is_cut",
           "playground_dataset", "replay", "start", "to_params", "toggle", "train_epochs", "unit_maps"]
