"""Architectures as data: a JSON (or YAML) layer spec the app can build, never code it runs.

A spec is a mapping::

    {"name": "my_mlp", "input": [1, 28, 28], "dataset": "mnist5k",     # "name", "dataset", "description" optional
     "layers": [{"type": "flatten"},
                {"name": "fc1", "type": "linear", "in": 784, "out": 300},
                {"type": "relu"},
                {"name": "fc2", "type": "linear", "in": 300, "out": 10}]}

Each layer's ``type`` is a key of ``LAYER_TYPES`` (one line each: which ``torch.nn`` class, its
required and optional fields); nothing in a spec is evaluated, imported by name or unpickled.
Layers with weights need a ``name``: the built model's parameter names are ``<name>.weight``, so
checkpoints of the bundled models load into models built from their specs (``spec_of``).

``validate_spec`` checks everything before a single weight is allocated: the structure (each
problem one line of a ``SpecError``), the sizes (``MAX_LAYERS`` layers, ``MAX_PARAMETERS``
parameters, ``MAX_ACTIVATION`` values per layer output), then the shapes, by a dry forward on a
zero input of the spec's input shape on PyTorch's ``meta`` device (shapes only, no memory).
"""

from __future__ import annotations

import json
import keyword
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import bounded_json
from .models import MAX_PARAMETERS

MAX_SPEC_BYTES = 1 << 20  # a spec file is a few hundred bytes; 1 MiB is generous
MAX_LAYERS = 64
MAX_SIZE = 1 << 20  # any single size field (features, channels, kernel)
MAX_INPUT_VALUES = 1 << 22  # values in one input sample
MAX_ACTIVATION = 1 << 24  # values in one sample's output of any layer
# multiply-adds of one sample's forward (LeNet-5: 2.3 M). Memory limits alone let a 64-layer conv spec cost ~32 s a
# sample on one core, and loading it hours (an audit); a class server runs every page on the uploaded model
MAX_MACS = 200_000_000
MAX_NODES = 10_000  # JSON / YAML values in the whole document (bounds YAML alias expansion too)
MAX_DEPTH = 6  # nesting of the document (a spec needs 4)
SPEC_SUFFIXES = (".json", ".yaml", ".yml")


class SpecError(ValueError):
    """An architecture spec that cannot be read or built; the message lists every problem, one per line."""


@dataclass(frozen=True)
class LayerType:
    """One layer type of a spec: how to build it from its fields, which fields it needs and allows."""

    build: Callable[..., nn.Module]
    required: tuple[str, ...] = ()
    optional: Mapping[str, Any] = field(default_factory=dict)  # field -> default
    input_dims: tuple[int, ...] | None = None  # (dims of one sample) it accepts; None: any
    in_field: str | None = None  # the field that must equal the input's features / channels

    @property
    def has_weights(self) -> bool:
        return self.in_field is not None


def _pool_stride(cls: type[nn.Module]) -> Callable[..., nn.Module]:
    return lambda kernel, stride=None: cls(kernel, stride=stride)


# One line per layer type. Fields: sizes are positive ints, ``bias`` a bool, ``p`` / ``slope`` numbers.
LAYER_TYPES: dict[str, LayerType] = {
    "linear": LayerType(lambda **f: nn.Linear(f["in"], f["out"], bias=f["bias"]), ("in", "out"), {"bias": True},
                        None, "in"),
    "conv1d": LayerType(lambda **f: nn.Conv1d(f["in"], f["out"], f["kernel"], stride=f["stride"], padding=f["padding"],
                                              bias=f["bias"]),
                        ("in", "out", "kernel"), {"stride": 1, "padding": 0, "bias": True}, (2,), "in"),
    "conv2d": LayerType(lambda **f: nn.Conv2d(f["in"], f["out"], f["kernel"], stride=f["stride"], padding=f["padding"],
                                              bias=f["bias"]),
                        ("in", "out", "kernel"), {"stride": 1, "padding": 0, "bias": True}, (3,), "in"),
    "batchnorm1d": LayerType(lambda **f: nn.BatchNorm1d(f["features"]), ("features",), {}, (1, 2), "features"),
    "batchnorm2d": LayerType(lambda **f: nn.BatchNorm2d(f["features"]), ("features",), {}, (3,), "features"),
    "layernorm": LayerType(lambda **f: nn.LayerNorm(f["features"]), ("features",), {}, None, "features"),
    "maxpool1d": LayerType(lambda **f: nn.MaxPool1d(f["kernel"], stride=f["stride"]), ("kernel",), {"stride": None},
                           (2,)),
    "maxpool2d": LayerType(lambda **f: nn.MaxPool2d(f["kernel"], stride=f["stride"]), ("kernel",), {"stride": None},
                           (3,)),
    "avgpool2d": LayerType(lambda **f: nn.AvgPool2d(f["kernel"], stride=f["stride"]), ("kernel",), {"stride": None},
                           (3,)),
    "flatten": LayerType(lambda **f: nn.Flatten(1)),
    "dropout": LayerType(lambda **f: nn.Dropout(f["p"]), (), {"p": 0.5}),
    "relu": LayerType(lambda **f: nn.ReLU()),
    "leaky_relu": LayerType(lambda **f: nn.LeakyReLU(f["slope"]), (), {"slope": 0.01}),
    "tanh": LayerType(lambda **f: nn.Tanh()),
    "sigmoid": LayerType(lambda **f: nn.Sigmoid()),
    "gelu": LayerType(lambda **f: nn.GELU()),
}
WEIGHTED_TYPES = ("linear", "conv1d", "conv2d")  # the layers pruning works on (a spec needs at least one)
_SIZE_FIELDS = {"in", "out", "kernel", "features", "stride"}
_NUMBER_FIELDS = {"p": (0.0, 1.0, "in [0, 1)"), "slope": (-1e3, 1e3, "in [-1000, 1000]")}
_TOP_FIELDS = {"name", "description", "input", "dataset", "layers", "version"}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_RESERVED = set(dir(nn.Module)) | set(vars(nn.Module())) | {"order", "arch_spec"}  # + per-instance ones: training, _modules


@dataclass(frozen=True)
class Layer:
    """One validated layer: its name (given or ``<type><index>``), type and complete fields."""

    name: str
    type: str
    fields: dict = field(hash=False)


@dataclass(frozen=True, eq=False)
class ArchSpec:
    """A validated spec: everything needed to build the model, plus what the dry forward found."""

    name: str
    input_shape: tuple[int, ...]
    layers: tuple[Layer, ...]
    num_classes: int
    parameters: int
    dataset: str | None = None
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain JSON-able data (the canonical form: defaults filled in, names given)."""
        out: dict[str, Any] = {"name": self.name, "input": list(self.input_shape)}
        if self.dataset:
            out["dataset"] = self.dataset
        if self.description:
            out["description"] = self.description
        out["layers"] = [{"name": ly.name, "type": ly.type, **ly.fields} for ly in self.layers]
        return out

    def describe(self) -> str:
        """One line, e.g. ``my_mlp: flatten, linear 784->300, relu, linear 300->10 (238,510 params)``."""
        parts = []
        for ly in self.layers:
            f = ly.fields
            if "in" in f and "out" in f:
                parts.append(f"{ly.type} {f['in']}->{f['out']}")
            else:
                parts.append(ly.type)
        return f"{self.name}: {', '.join(parts)} ({self.parameters:,} params)"


class SpecModel(nn.Module):
    """A chain of layers built from an ``ArchSpec``; each layer is an attribute named as in the spec."""

    def __init__(self, spec: ArchSpec):
        super().__init__()
        self.arch_spec = spec
        self.order = tuple(ly.name for ly in spec.layers)
        for ly in spec.layers:
            self.add_module(ly.name, LAYER_TYPES[ly.type].build(**ly.fields))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.order:  # x: (N, *input_shape) -> ... -> (N, num_classes)
            x = getattr(self, name)(x)
        return x


# ---------------------------------------------------------------------------
# Reading


def parse_spec(data: bytes | str, filename: str = "spec.json") -> Any:
    """The plain data of a spec file: JSON, or YAML for ``.yaml`` / ``.yml`` (``yaml.safe_load``: no tags, no code).

    Raises:
        SpecError: too large, not UTF-8, not valid JSON / YAML, or nested too deeply.
    """
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if not raw.strip():
        raise SpecError(f"{filename}: the file is empty.")
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(f"{filename}: {len(raw):,} bytes is larger than the {MAX_SPEC_BYTES:,}-byte limit for a spec.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{filename}: not UTF-8 text (byte {exc.start}); save the spec as UTF-8 JSON.") from None
    if Path(filename).suffix.lower() in (".yaml", ".yml"):
        obj = _parse_yaml(text, filename)
    else:
        try:
            obj = bounded_json.loads(text)
        except ValueError as exc:
            raise SpecError(f"{filename}: not valid JSON ({str(exc).splitlines()[0][:160]}).") from None
    _check_size(obj, filename)
    return obj


def _parse_yaml(text: str, filename: str) -> Any:
    try:
        import yaml
    except ImportError:  # PyYAML is a pinned dependency; a trimmed install may lack it
        raise SpecError(f"{filename}: YAML specs need PyYAML (pip install pyyaml); JSON works without it.") from None
    try:  # plain data only (SafeLoader): no python/ tags, nothing constructed from names
        return yaml.load(text, Loader=_unique_key_loader(yaml))
    except RecursionError:
        raise SpecError(f"{filename}: nested too deeply (a spec is at most {MAX_DEPTH} levels).") from None
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: an integer of more than 4,300 digits
        raise SpecError(f"{filename}: not valid YAML ({str(exc).splitlines()[0][:160]}).") from None


def _unique_key_loader(yaml):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (SafeLoader keeps the last, as JSON does)."""

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # ``<<: *base``: keys written next to it override the base's, as YAML means
                key = self.construct_object(key_node, deep=deep)
                try:
                    repeated = key in seen
                except TypeError:  # an unhashable key: SafeLoader refuses it itself
                    continue
                if repeated:
                    raise yaml.constructor.ConstructorError(None, None, f"the key {str(key)[:80]!r} appears twice in "
                                                            f"one mapping", key_node.start_mark)
                seen.add(key)
            return super().construct_mapping(node, deep)

    return UniqueKeyLoader


def _check_size(obj: Any, filename: str) -> None:
    """At most ``MAX_DEPTH`` levels and ``MAX_NODES`` values (YAML aliases are counted each time they are used)."""
    stack, nodes = [(obj, 1)], 0
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if depth > MAX_DEPTH:
            raise SpecError(f"{filename}: nested too deeply (a spec is at most {MAX_DEPTH} levels).")
        if nodes > MAX_NODES:
            raise SpecError(f"{filename}: more than {MAX_NODES:,} values; a spec is a short list of layers.")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


# ---------------------------------------------------------------------------
# Validation


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_field(where: str, key: str, value: Any, kind: str) -> str | None:
    """The problem with one layer field's value, or None."""
    if key == "name":
        return None  # checked with the other names
    if key == "bias":
        return None if isinstance(value, bool) else f"{where}: 'bias' must be true or false, got {value!r:.40}."
    if key in _NUMBER_FIELDS:
        lo, hi, text = _NUMBER_FIELDS[key]
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (  # 10**400: isfinite overflowed
            isinstance(value, int) or math.isfinite(value))
        ok = ok and lo <= value < hi if key == "p" else ok and lo <= value <= hi
        return None if ok else f"{where}: '{key}' must be a number {text}, got {value!r:.40}."
    if key == "padding":
        return None if _is_int(value) and 0 <= value <= MAX_SIZE else \
            f"{where}: 'padding' must be a whole number >= 0, got {value!r:.40}."
    if key == "stride" and value is None and "pool" in kind:
        return None  # a pool's stride defaults to its kernel
    if key in _SIZE_FIELDS:
        if not _is_int(value) or value < 1:
            return f"{where}: '{key}' must be a whole number >= 1, got {value!r:.40}."
        if value > MAX_SIZE:
            return f"{where}: '{key}' = {value:,} is larger than the {MAX_SIZE:,} limit."
    return None


def _layer(i: int, raw: Any, problems: list[str]) -> Layer | None:
    """One layer checked field by field (problems appended); None when it cannot be used."""
    where = f"layer {i + 1}"
    if not isinstance(raw, dict):
        problems.append(f"{where}: expected an object like {{\"type\": \"relu\"}}, got {type(raw).__name__}.")
        return None
    kind = raw.get("type")
    if kind is None:
        problems.append(f"{where}: missing field 'type' (one of {', '.join(LAYER_TYPES)}).")
        return None
    if not isinstance(kind, str) or kind not in LAYER_TYPES:
        problems.append(f"{where}: unknown layer type {str(kind)[:40]!r}; known: {', '.join(LAYER_TYPES)}.")
        return None
    lt = LAYER_TYPES[kind]
    where = f"{where} ({raw['name']!s:.40} {kind})" if isinstance(raw.get("name"), str) else f"{where} ({kind})"
    before = len(problems)
    allowed = {"name", "type", *lt.required, *lt.optional}
    for key in raw:
        if key not in allowed:
            problems.append(f"{where}: unknown field {str(key)[:40]!r}; {kind} takes "
                            f"{', '.join(sorted(allowed - {'type'}))}.")
    for key in lt.required:
        if key not in raw:
            problems.append(f"{where}: missing field '{key}'.")
    fields = {**lt.optional, **{k: v for k, v in raw.items() if k not in ("name", "type") and k in allowed}}
    for key, value in fields.items():
        if key in raw and (problem := _check_field(where, key, value, kind)):
            problems.append(problem)
    name = raw.get("name")
    if name is None and lt.has_weights:
        problems.append(f"{where}: a layer with weights needs a 'name' (its parameters are '<name>.weight').")
    elif name is not None and (not isinstance(name, str) or not _NAME.match(name) or keyword.iskeyword(name)):
        problems.append(f"{where}: name {str(name)[:40]!r} must be letters, digits and _ (not starting with a digit), "
                        "at most 64 characters.")
    elif name in _RESERVED:
        problems.append(f"{where}: name {name!r} is reserved (a torch.nn.Module attribute); choose another.")
    if len(problems) > before:
        return None
    return Layer(name or f"{kind}{i + 1}", kind, fields)


def _input_shape(value: Any, problems: list[str]) -> tuple[int, ...] | None:
    if value is None:
        problems.append("missing field 'input': the shape of one sample, e.g. [784] or [1, 28, 28].")
        return None
    if not isinstance(value, list) or not 1 <= len(value) <= 3 or not all(_is_int(v) and v >= 1 for v in value):
        problems.append(f"'input' must be a list of 1 to 3 whole numbers >= 1 (one sample's shape), got {value!r:.60}.")
        return None
    if math.prod(value) > MAX_INPUT_VALUES:
        problems.append(f"'input' {value} has {math.prod(value):,} values per sample; the limit is {MAX_INPUT_VALUES:,}.")
        return None
    return tuple(value)


def validate_spec(obj: Any, source: str = "spec") -> ArchSpec:
    """Check a parsed spec completely and return it as an ``ArchSpec``.

    Raises:
        SpecError: every structural problem, one per line; or the first layer whose input does not
            fit, the parameter or activation limits, or an output that is not ``(N, classes)``.
    """
    if isinstance(obj, ArchSpec):
        return obj
    if not isinstance(obj, dict):
        raise SpecError(f"{source}: expected an object with 'input' and 'layers', got {type(obj).__name__}.")
    problems: list[str] = []
    unknown = [str(k)[:40] for k in obj if k not in _TOP_FIELDS]
    if unknown:
        problems.append(f"unknown field(s) {', '.join(map(repr, unknown))}; a spec has {', '.join(sorted(_TOP_FIELDS))}.")
    name = obj.get("name", "custom")
    if not isinstance(name, str) or not _NAME.match(name):
        problems.append(f"'name' must be letters, digits and _ (at most 64), got {name!r:.60}.")
    for key in ("description", "dataset"):
        if obj.get(key) is not None and not (isinstance(obj[key], str) and len(obj[key]) <= 500):
            problems.append(f"'{key}' must be text (at most 500 characters).")
    shape = _input_shape(obj.get("input"), problems)
    raw_layers = obj.get("layers")
    layers: list[Layer] = []
    if not isinstance(raw_layers, list) or not raw_layers:
        problems.append("'layers' must be a non-empty list of layers, e.g. [{\"name\": \"fc1\", \"type\": \"linear\", "
                        "\"in\": 784, \"out\": 10}].")
    elif len(raw_layers) > MAX_LAYERS:
        problems.append(f"{len(raw_layers)} layers is more than the limit of {MAX_LAYERS}.")
    else:
        layers = [ly for i, raw in enumerate(raw_layers) if (ly := _layer(i, raw, problems)) is not None]
        seen: dict[str, int] = {}
        for ly in layers:
            seen[ly.name] = seen.get(ly.name, 0) + 1
        problems += [f"layer name {n!r} is used {c} times; names must be unique." for n, c in seen.items() if c > 1]
        if layers and not any(ly.type in WEIGHTED_TYPES for ly in layers):  # 8 pages raised on such a model
            problems.append(f"the model has no layer with weights to prune; add one of {', '.join(WEIGHTED_TYPES)}.")
    if problems:
        raise SpecError(f"{source}: " + "\n".join(problems) if len(problems) == 1 else
                        f"{source} has {len(problems)} problems:\n" + "\n".join(f"- {p}" for p in problems))
    assert shape is not None
    spec = ArchSpec(str(name), shape, tuple(layers), num_classes=0, parameters=0,
                    dataset=obj.get("dataset"), description=str(obj.get("description") or ""))
    classes, params = _dry_forward(spec, source)
    return ArchSpec(spec.name, shape, spec.layers, classes, params, spec.dataset, spec.description)


def _dry_forward(spec: ArchSpec, source: str) -> tuple[int, int]:
    """``(classes, parameters)`` from a forward of a zero input on the meta device (no memory is allocated)."""
    with torch.device("meta"):
        model = SpecModel(spec).eval()
    params = sum(p.numel() for p in model.parameters())
    if params > MAX_PARAMETERS:
        raise SpecError(f"{source}: {params:,} parameters is more than the limit of {MAX_PARAMETERS:,}.")
    x = torch.zeros((1, *spec.input_shape), device="meta")
    prev, macs = "the input", 0
    for i, ly in enumerate(spec.layers):
        where = f"layer {i + 1} ({ly.name}, {ly.type})"
        shape = tuple(x.shape[1:])  # one sample
        lt = LAYER_TYPES[ly.type]
        if lt.input_dims is not None and len(shape) not in lt.input_dims:
            want = " or ".join(f"{d}-D" for d in lt.input_dims)
            raise SpecError(f"{source}: {where} takes {want} samples, but {prev} gives shape {shape}"
                            f"{'; add a flatten layer before it' if ly.type.startswith('batchnorm1') else ''}.")
        if lt.in_field is not None:
            have = shape[-1] if ly.type in ("linear", "layernorm") else shape[0]
            what = "features (last dimension)" if ly.type in ("linear", "layernorm") else "channels"
            if have != ly.fields[lt.in_field]:
                hint = "; add a flatten layer before it" if ly.type == "linear" and len(shape) > 1 else ""
                raise SpecError(f"{source}: {where} expects {ly.fields[lt.in_field]} input {what}, but {prev} gives "
                                f"shape {shape} ({have}){hint}.")
        try:
            x = getattr(model, ly.name)(x)
        except (RuntimeError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
            raise SpecError(f"{source}: {where} cannot take shape {shape} from {prev} ({first}).") from None
        if x.numel() > MAX_ACTIVATION:
            raise SpecError(f"{source}: {where} outputs {x.numel():,} values per sample; the limit is {MAX_ACTIVATION:,}.")
        if ly.type in WEIGHTED_TYPES:  # each output value took one row of the weight: weight / outputs-per-position
            out_units = x.shape[-1] if ly.type == "linear" else x.shape[1]
            macs += getattr(model, ly.name).weight.numel() * (x.numel() // max(out_units, 1))
            if macs > MAX_MACS:
                raise SpecError(f"{source}: by {where} a sample takes {macs:,} multiply-adds; the limit is "
                                f"{MAX_MACS:,} (every page runs the model on a shared server).")
        prev = f"layer {i + 1} ({ly.name})"
    if x.dim() != 2 or x.shape[1] < 2:
        raise SpecError(f"{source}: the last layer gives shape {tuple(x.shape[1:])} per sample; a classifier ends in "
                        "one score per class (at least 2): end with a linear layer (after a flatten).")
    return int(x.shape[1]), int(params)


# ---------------------------------------------------------------------------
# Building and loading


def build_from_spec(spec: Any, seed: int | None = None) -> SpecModel:
    """A freshly initialised model of ``spec`` (a parsed mapping or an ``ArchSpec``); seeded if ``seed`` is given.

    Raises:
        SpecError: the spec is not valid (see ``validate_spec``).
    """
    spec = validate_spec(spec)
    if seed is None:
        return SpecModel(spec)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SpecModel(spec)


def read_spec(data: bytes | str, filename: str = "spec.json") -> ArchSpec:
    """Parse and validate spec bytes (``parse_spec`` then ``validate_spec``)."""
    return validate_spec(parse_spec(data, filename), filename)


def load_spec_checkpoint(spec: Any, data: bytes, filename: str = "checkpoint.safetensors") -> SpecModel:
    """The model of ``spec`` with the weights of checkpoint bytes (safetensors or a weights-only ``.pt``), in eval mode.

    Raises:
        SpecError: an invalid spec. checkpoints.CheckpointError: an unreadable checkpoint, or one that does not fit
            (missing / unexpected keys, shapes, NaN, overflow), every mismatch named.
    """
    from .checkpoints import load_into, read_state_dict

    model = build_from_spec(spec)
    return load_into(model, read_state_dict(data, filename), filename).eval()


def output_classes(spec: Any, input_shape: tuple[int, ...]) -> int | None:
    """How many classes the model of ``spec`` gives for samples of ``input_shape``; None if they do not fit it."""
    spec = validate_spec(spec)
    if tuple(input_shape) == spec.input_shape:
        return spec.num_classes
    if math.prod(input_shape) > MAX_INPUT_VALUES:
        return None
    try:
        with torch.device("meta"):
            out = SpecModel(spec).eval()(torch.zeros((1, *input_shape)))
    except (RuntimeError, ValueError):
        return None
    return int(out.shape[1]) if out.dim() == 2 else None


def bundled_datasets_for(spec: Any) -> list[str]:
    """The bundled datasets whose samples the model of ``spec`` takes, with as many classes as it gives.

    The spec's own ``dataset`` comes first when it fits, then ``data.DATASET_NAMES`` order.
    """
    from .data import DATASET_NAMES, DATASET_SHAPES

    spec = validate_spec(spec)
    fits = [n for n in DATASET_NAMES if output_classes(spec, DATASET_SHAPES[n][0]) == DATASET_SHAPES[n][1]]
    return sorted(fits, key=lambda n: n != spec.dataset)


def choose_bundled_dataset(spec: Any) -> str:
    """The first of ``bundled_datasets_for(spec)``.

    Raises:
        SpecError: no bundled dataset fits (the message lists what each one has).
    """
    from .data import DATASET_SHAPES

    spec = validate_spec(spec)
    fits = bundled_datasets_for(spec)
    if not fits:
        have = ", ".join(f"{n} {shape} {c} classes" for n, (shape, c) in DATASET_SHAPES.items())
        raise SpecError(f"No bundled dataset fits {spec.name} (samples {spec.input_shape}, {spec.num_classes} classes); "
                        f"they are: {have}. Upload your dataset with the model.")
    return fits[0]


# ---------------------------------------------------------------------------
# The bundled models' specs


def spec_of(name: str) -> dict[str, Any]:
    """The spec of bundled chain model ``name``, generated from its registry entry (``models.MODELS``).

    An ``MLP`` flattens its input, then ``fc1`` .. ``fcN`` with its activation between them;
    ``LeNet5`` is conv1 -> relu -> pool -> conv2 -> relu -> pool -> flatten -> fc1 -> relu -> fc2.
    """
    from .data import DATASET_SHAPES
    from .models import get_spec

    entry = get_spec(name)
    kw = entry.kwargs
    shape = list(DATASET_SHAPES[entry.dataset][0])
    if entry.architecture == "mlp":
        sizes = [kw["in_features"], *kw["hidden"], kw["num_classes"]]
        act = kw.get("activation", "relu")
        layers: list[dict[str, Any]] = [{"type": "flatten"}]
        for i in range(len(sizes) - 1):
            if i:
                layers.append({"type": act})
            layers.append({"name": f"fc{i + 1}", "type": "linear", "in": sizes[i], "out": sizes[i + 1]})
    elif entry.architecture == "lenet5":
        c1, c2 = kw.get("channels", (20, 50))
        hidden, classes = kw.get("hidden", 500), kw.get("num_classes", 10)
        layers = [{"name": "conv1", "type": "conv2d", "in": shape[0], "out": c1, "kernel": 5}, {"type": "relu"},
                  {"type": "maxpool2d", "kernel": 2},
                  {"name": "conv2", "type": "conv2d", "in": c1, "out": c2, "kernel": 5}, {"type": "relu"},
                  {"type": "maxpool2d", "kernel": 2}, {"type": "flatten"},
                  {"name": "fc1", "type": "linear", "in": c2 * 4 * 4, "out": hidden}, {"type": "relu"},
                  {"name": "fc2", "type": "linear", "in": hidden, "out": classes}]
    else:
        raise SpecError(f"No spec for architecture {entry.architecture!r} of {name!r}.")
    return {"name": name, "description": entry.description, "input": shape, "dataset": entry.dataset,
            "layers": layers}


def spec_json(name: str) -> str:
    """``spec_of(name)`` as the JSON text of ``sample_models/<name>.spec.json`` (one layer per line)."""
    spec = spec_of(name)
    head = [f"  {json.dumps(k)}: {json.dumps(v)}," for k, v in spec.items() if k != "layers"]
    body = ",\n".join(f"    {json.dumps(ly)}" for ly in spec["layers"])
    return "{\n" + "\n".join(head) + '\n  "layers": [\n' + body + "\n  ]\n}\n"
