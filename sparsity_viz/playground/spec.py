"""What a playground run is, as plain data: the toy, the network, the training regime, and hand cuts.

A ``PlaygroundSpec`` (frozen, validated) fixes everything a run depends on; with the
hand ``Cut``s and the number of epochs trained it describes the network exactly (the
run is seeded and deterministic, see ``run.py``), so the whole state fits in the URL:
``to_params`` writes ``pg_*`` query parameters and ``from_params`` reads them back,
ignoring unknown or out-of-range values (each falls back to its default).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

from ..data import TOY_DATASETS
from ..models import ACTIVATIONS
from ..whole_numbers import is_whole

INITS = ("dense", "erdos_renyi", "snip", "synflow")  # dense, or sparse at initialisation (registry strategies)
DYNAMICS = ("none", "gradual", "set", "rigl")  # none, AGP during training, or dynamic sparse training
MAX_LAYERS = 4  # TensorFlow Playground's network sizes: up to a few layers of up to 8 units
MAX_UNITS = 8
MAX_EPOCHS = 300
MAX_SEED = 9999  # the page's Seed box: a link's pg_seed=50000 passed here and crashed that widget (an audit)
POINTS = 500  # points of the toy (train + test)
PREFIX = "pg_"


def _real(value) -> bool:
    """A plain number (True is not a learning rate; an audit found bools accepted)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class PlaygroundSpec:
    """One playground run. Frozen: it doubles as a cache key."""

    dataset: str = "circles"
    noise: float = 0.1  # Gaussian noise of the toy (input units)
    test_fraction: float = 0.5  # share of the points held out for the test loss (TF Playground's default split)
    hidden: tuple[int, ...] = (6, 6)  # units per hidden layer
    activation: str = "tanh"
    lr: float = 0.03
    batch_size: int = 16
    epochs: int = 100  # the run's budget: schedules (AGP, SET/RigL updates) are laid out over it
    init: str = "dense"  # one of INITS
    sparsity: float = 0.5  # sparsity at init (sparse inits) and the fixed budget of SET / RigL
    dynamics: str = "none"  # one of DYNAMICS
    target: float = 0.8  # final sparsity of the gradual (AGP) schedule
    l1: float = 0.0  # L1 strength (proximal: exact zeros)
    dropout: float = 0.0  # dropout rate on hidden activations
    seed: int = 0

    def __post_init__(self):
        problems = []
        if self.dataset not in TOY_DATASETS:
            problems.append(f"dataset must be one of {', '.join(TOY_DATASETS)}, not {self.dataset!r}")
        if not (_real(self.noise) and 0.0 <= self.noise <= 0.5):
            problems.append(f"noise must be in [0, 0.5], got {self.noise!r}")
        if not (_real(self.test_fraction) and 0.1 <= self.test_fraction <= 0.9):
            problems.append(f"test share must be in [0.1, 0.9], got {self.test_fraction!r}")
        if not (isinstance(self.hidden, tuple) and 1 <= len(self.hidden) <= MAX_LAYERS
                and all(is_whole(u) and 1 <= u <= MAX_UNITS for u in self.hidden)):
            problems.append(f"hidden layers: 1 to {MAX_LAYERS} layers of 1 to {MAX_UNITS} units, got {self.hidden!r}")
        if self.activation not in ACTIVATIONS:
            problems.append(f"activation must be one of {', '.join(ACTIVATIONS)}, not {self.activation!r}")
        if not (_real(self.lr) and math.isfinite(self.lr) and 0 < self.lr <= 1):
            problems.append(f"learning rate must be in (0, 1], got {self.lr!r}")
        if not (is_whole(self.batch_size) and 1 <= self.batch_size <= 256):
            problems.append(f"batch size must be in [1, 256], got {self.batch_size!r}")
        if not (is_whole(self.epochs) and 1 <= self.epochs <= MAX_EPOCHS):
            problems.append(f"epochs must be in [1, {MAX_EPOCHS}], got {self.epochs!r}")
        if self.init not in INITS:
            problems.append(f"init must be one of {', '.join(INITS)}, not {self.init!r}")
        if self.dynamics not in DYNAMICS:
            problems.append(f"training regime must be one of {', '.join(DYNAMICS)}, not {self.dynamics!r}")
        for name in ("sparsity", "target"):
            v = getattr(self, name)
            if not (_real(v) and 0.0 <= v <= 0.99):
                problems.append(f"{name} must be in [0, 0.99], got {v!r}")
        if not (_real(self.l1) and math.isfinite(self.l1) and 0.0 <= self.l1 <= 1.0):
            problems.append(f"L1 strength must be in [0, 1], got {self.l1!r}")
        if not (_real(self.dropout) and 0.0 <= self.dropout <= 0.9):
            problems.append(f"dropout must be in [0, 0.9], got {self.dropout!r}")
        if not (is_whole(self.seed) and 0 <= self.seed <= MAX_SEED):
            problems.append(f"seed must be a whole number from 0 to {MAX_SEED}, got {self.seed!r}")
        if problems:
            raise ValueError("Invalid playground settings: " + "; ".join(problems) + ".")

    @property
    def sizes(self) -> tuple[int, ...]:
        """Units per column: 2 inputs, the hidden layers, 2 classes."""
        return (2, *self.hidden, 2)

    @property
    def sparse_start(self) -> bool:
        """Training starts from a mask: a sparse init, or SET / RigL (which need a starting topology)."""
        return self.init != "dense" or self.dynamics in ("set", "rigl")

    def describe(self) -> str:
        net = "-".join(str(s) for s in self.sizes)
        parts = [f"{self.dataset} (noise {self.noise:g}, {100 * self.test_fraction:.0f} % test)",
                 f"MLP {net} {self.activation}"]
        if self.sparse_start and self.sparsity > 0:  # SET at 0 % read "sparse at init (erdos_renyi, 0 %)"
            start = self.init if self.init != "dense" else "erdos_renyi"
            parts.append(f"sparse at init ({start}, {100 * self.sparsity:.0f} %)")
        if self.dynamics == "gradual":
            parts.append(f"gradual pruning to {100 * self.target:.0f} %")
        elif self.dynamics in ("set", "rigl"):
            parts.append(f"{self.dynamics.upper() if self.dynamics == 'set' else 'RigL'} regrowth")
        if self.l1:
            parts.append(f"L1 {self.l1:g}")
        if self.dropout:
            parts.append(f"dropout {self.dropout:g}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Cut:
    """A hand cut, made before training epoch ``epoch + 1``: a connection or a whole hidden unit.

    ``kind == "edge"``: the weight ``fc{layer}.weight[a, b]`` (unit ``a`` of the next column,
    unit ``b`` of the previous one). ``kind == "unit"``: hidden unit ``a`` of hidden layer
    ``layer`` (1-based): its incoming row and outgoing column. Cutting the same thing again
    restores it (a toggle).
    """

    epoch: int
    kind: str  # "edge" | "unit"
    layer: int  # 1-based
    a: int
    b: int = 0

    def text(self) -> str:
        """The URL form: ``<epoch>e<layer>x<a>x<b>`` or ``<epoch>u<layer>x<a>``."""
        return (f"{self.epoch}e{self.layer}x{self.a}x{self.b}" if self.kind == "edge"
                else f"{self.epoch}u{self.layer}x{self.a}")

    def target(self) -> tuple:
        """What is cut, without the epoch (two cuts of the same target toggle)."""
        return (self.kind, self.layer, self.a, self.b)

    def label(self, last: int | None = None) -> str:
        """``unit h1.3`` or ``connection x1 → h1.3``; ``last`` is the output column (its units read ``class k``)."""
        if self.kind == "unit":
            return f"unit {unit_name(self.layer, self.a)}"
        return f"connection {unit_name(self.layer - 1, self.b, last)} → {unit_name(self.layer, self.a, last)}"


def unit_name(column: int, index: int, last: int | None = None) -> str:
    """``x1``/``x2`` for inputs, ``h<layer>.<unit>`` for hidden units (1-based), ``class k`` in column ``last``."""
    if column == 0:
        return f"x{index + 1}"
    if column == last:
        return f"class {index}"
    return f"h{column}.{index + 1}"


_CUT = re.compile(r"^(\d+)([eu])(\d+)x(\d+)(?:x(\d+))?$")


def check_cut(spec: PlaygroundSpec, cut: Cut) -> None:
    """Raise ``ValueError`` unless ``cut`` names a weight or hidden unit of ``spec``'s network."""
    sizes = spec.sizes
    if cut.epoch < 0 or cut.epoch > spec.epochs:
        raise ValueError(f"A cut's epoch must be in [0, {spec.epochs}], got {cut.epoch}.")
    if cut.kind == "edge":
        if not (1 <= cut.layer < len(sizes) and 0 <= cut.a < sizes[cut.layer] and 0 <= cut.b < sizes[cut.layer - 1]):
            raise ValueError(f"No connection fc{cut.layer}[{cut.a}, {cut.b}] in a {'-'.join(map(str, sizes))} network.")
    elif cut.kind == "unit":
        if not (1 <= cut.layer <= len(spec.hidden) and 0 <= cut.a < spec.hidden[cut.layer - 1]):
            raise ValueError(f"No hidden unit {cut.a} in layer {cut.layer} of a {'-'.join(map(str, sizes))} network.")
    else:
        raise ValueError(f"A cut is an 'edge' or a 'unit', not {cut.kind!r}.")


def parse_cuts(text: str, spec: PlaygroundSpec) -> list[Cut]:
    """Cuts from their URL form (comma-separated); entries that do not fit ``spec`` are dropped."""
    cuts = []
    for part in (text or "").split(","):
        m = _CUT.match(part.strip())
        if not m:
            continue
        epoch, kind, layer, a, b = m.groups()
        cut = Cut(int(epoch), "edge" if kind == "e" else "unit", int(layer), int(a), int(b or 0))
        try:
            check_cut(spec, cut)
        except ValueError:
            continue
        cuts.append(cut)
    return sorted(cuts, key=lambda c: c.epoch)  # stable: the order within an epoch is kept


# --- URL parameters ------------------------------------------------------------------------------

_NAMES = {"dataset": "data", "noise": "noise", "test_fraction": "test", "hidden": "layers", "activation": "act",
          "lr": "lr", "batch_size": "batch", "epochs": "epochs", "init": "init", "sparsity": "s",
          "dynamics": "dyn", "target": "target", "l1": "l1", "dropout": "drop", "seed": "seed"}
PERCENT = ("test_fraction", "sparsity", "target")  # shown and linked in %
HUNDREDTHS = ("noise", "dropout")  # the page's sliders hold two decimals: a link's 0.123 made the page start anew


def _text(name: str, value) -> str:
    if name == "hidden":
        return "-".join(str(u) for u in value)
    if name in PERCENT:
        return str(round(100 * value))
    return repr(value) if isinstance(value, float) else str(value)  # shortest exact: ":g" cut lr 0.0123456789


def _value(name: str, text: str, default):
    if name == "hidden":
        return tuple(int(u) for u in text.split("-"))
    if isinstance(default, str):
        return text
    if isinstance(default, int):
        return int(text)
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    if name in PERCENT:
        return round(value) / 100  # whole percent, as the page's sliders
    return round(value, 2) if name in HUNDREDTHS else value


def to_params(spec: PlaygroundSpec, epochs_done: int = 0, cuts: list[Cut] | tuple[Cut, ...] = ()) -> dict[str, str]:
    """The ``pg_*`` query parameters of a playground state (every field, the epochs trained, the cuts)."""
    params = {PREFIX + short: _text(name, getattr(spec, name)) for name, short in _NAMES.items()}
    params[PREFIX + "at"] = str(int(epochs_done))
    params[PREFIX + "cuts"] = ",".join(c.text() for c in cuts)
    return params


def from_params(params: Mapping[str, str]) -> tuple[PlaygroundSpec, int, list[Cut]]:
    """``(spec, epochs trained, cuts)`` from query parameters; invalid values fall back to the defaults."""
    spec = PlaygroundSpec()
    for f in fields(PlaygroundSpec):
        key = PREFIX + _NAMES[f.name]
        if key not in params:
            continue
        try:
            spec = replace(spec, **{f.name: _value(f.name, str(params[key]), getattr(spec, f.name))})
        except (ValueError, TypeError):
            continue  # unparsable or out of range: this field keeps its value
    try:
        at = int(params.get(PREFIX + "at", 0))
    except (TypeError, ValueError):
        at = 0
    if not 0 <= at <= spec.epochs:  # out of range: the default, as for every other field (it was clamped)
        at = 0
    cuts = [c for c in parse_cuts(str(params.get(PREFIX + "cuts", "")), spec) if c.epoch <= at]
    return spec, at, cuts
