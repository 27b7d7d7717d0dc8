"""Architecture specs: every layer type, every validation message, the bundled specs, hostile input."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from sparsity_viz import arch_spec as A
from sparsity_viz.checkpoints import SAMPLE_DIR, CheckpointError, check_fits, load_sample, read_state_dict
from sparsity_viz.data import DATASET_SHAPES, load_dataset
from sparsity_viz.models import MODELS, prunable_layers


def spec(layers, input_shape=(4,), **top):
    return {"input": list(input_shape), "layers": layers, **top}


def head(n):  # flatten + a linear classifier over n values
    return [{"type": "flatten"}, {"name": "out", "type": "linear", "in": n, "out": 3}]


# (input shape, layer, torch class, output shape of one sample) - hand computed
LAYER_CASES = {
    "linear": ((4,), {"name": "l", "type": "linear", "in": 4, "out": 6}, nn.Linear, (6,)),
    "conv1d": ((2, 10), {"name": "c", "type": "conv1d", "in": 2, "out": 3, "kernel": 3, "stride": 2, "padding": 1},
               nn.Conv1d, (3, 5)),  # floor((10 + 2 - 3) / 2) + 1 = 5
    "conv2d": ((1, 8, 8), {"name": "c", "type": "conv2d", "in": 1, "out": 4, "kernel": 3}, nn.Conv2d, (4, 6, 6)),
    "batchnorm1d": ((5,), {"name": "b", "type": "batchnorm1d", "features": 5}, nn.BatchNorm1d, (5,)),
    "batchnorm2d": ((3, 4, 4), {"name": "b", "type": "batchnorm2d", "features": 3}, nn.BatchNorm2d, (3, 4, 4)),
    "layernorm": ((6,), {"name": "n", "type": "layernorm", "features": 6}, nn.LayerNorm, (6,)),
    "maxpool1d": ((2, 9), {"type": "maxpool1d", "kernel": 3}, nn.MaxPool1d, (2, 3)),
    "maxpool2d": ((1, 8, 8), {"type": "maxpool2d", "kernel": 2}, nn.MaxPool2d, (1, 4, 4)),
    "avgpool2d": ((1, 9, 9), {"type": "avgpool2d", "kernel": 3, "stride": 2}, nn.AvgPool2d, (1, 4, 4)),
    "flatten": ((2, 3, 4), {"type": "flatten"}, nn.Flatten, (24,)),
    "dropout": ((4,), {"type": "dropout", "p": 0.25}, nn.Dropout, (4,)),
    "relu": ((4,), {"type": "relu"}, nn.ReLU, (4,)),
    "leaky_relu": ((4,), {"type": "leaky_relu", "slope": 0.2}, nn.LeakyReLU, (4,)),
    "tanh": ((4,), {"type": "tanh"}, nn.Tanh, (4,)),
    "sigmoid": ((4,), {"type": "sigmoid"}, nn.Sigmoid, (4,)),
    "gelu": ((4,), {"type": "gelu"}, nn.GELU, (4,)),
}


def test_every_registered_layer_type_has_a_case():
    assert set(LAYER_CASES) == set(A.LAYER_TYPES)


@pytest.mark.parametrize("kind", sorted(LAYER_CASES))
def test_layer_type_builds_its_module_with_the_right_output_shape(kind):
    shape, layer, cls, out_shape = LAYER_CASES[kind]
    n = int(torch.tensor(out_shape).prod())
    model = A.build_from_spec(spec([layer, *head(n)], shape), seed=0).eval()
    module = getattr(model, model.order[0])
    assert isinstance(module, cls)
    x = torch.randn(5, *shape)
    assert tuple(module(x).shape) == (5, *out_shape)
    assert model(x).shape == (5, 3)
    expected = model.out(module(x).flatten(1))  # the chain is exactly layer -> flatten -> out
    torch.testing.assert_close(model(x), expected)


def test_fields_reach_the_module_and_defaults_fill_in():
    m = A.build_from_spec(spec([{"name": "c", "type": "conv2d", "in": 1, "out": 2, "kernel": 3, "stride": 2,
                                 "padding": 1, "bias": False}, *head(2 * 4 * 4)], (1, 8, 8)))
    assert (m.c.stride, m.c.padding, m.c.bias) == ((2, 2), (1, 1), None)
    s = A.validate_spec(spec([{"type": "dropout"}, {"name": "fc", "type": "linear", "in": 4, "out": 2}]))
    assert s.layers[0].fields == {"p": 0.5} and s.layers[0].name == "dropout1"
    assert s.layers[1].fields == {"in": 4, "out": 2, "bias": True}
    assert s.parameters == 4 * 2 + 2 and s.num_classes == 2


def test_parameter_names_are_the_layer_names():
    m = A.build_from_spec(A.spec_of("lenet5"))
    assert [k for k in m.state_dict()] == ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
                                          "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert [n for n, _ in prunable_layers(m)] == ["conv1", "conv2", "fc1", "fc2"]


def test_seeded_builds_are_identical():
    a, b = (A.build_from_spec(A.spec_of("digits_mlp"), seed=3) for _ in range(2))
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(v, w), k


# --- the bundled models -------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MODELS))
def test_bundled_spec_file_matches_the_registry_and_its_checkpoint(name):
    path = SAMPLE_DIR / f"{name}.spec.json"
    assert json.loads(path.read_text()) == A.spec_of(name)
    assert path.read_text() == A.spec_json(name)
    built = A.build_from_spec(A.read_spec(path.read_bytes(), path.name)).eval()
    ckpt = SAMPLE_DIR / f"{name}.safetensors"
    state = read_state_dict(ckpt.read_bytes(), ckpt.name)
    check_fits(built, state, ckpt.name)  # raises on any key / shape mismatch
    built.load_state_dict(state)
    reference, card = load_sample(name)
    ds = load_dataset(MODELS[name].dataset)
    x = ds.x_test[:128]
    with torch.no_grad():
        torch.testing.assert_close(built(x), reference(x))
    assert A.validate_spec(A.spec_of(name)).parameters == card["parameters"]


def test_dataset_shapes_table_matches_the_data():
    for name in ("moons", "circles", "xor", "spiral", "digits"):
        ds = load_dataset(name)
        assert DATASET_SHAPES[name] == (ds.input_shape, ds.num_classes), name


def test_load_spec_checkpoint_and_its_mismatch_message():
    data = (SAMPLE_DIR / "digits_mlp.safetensors").read_bytes()
    model = A.load_spec_checkpoint(A.spec_of("digits_mlp"), data, "d.safetensors")
    reference, _ = load_sample("digits_mlp")
    torch.testing.assert_close(model.fc1.weight, reference.fc1.weight)
    buf = io.BytesIO()
    torch.save(reference.state_dict(), buf)
    torch.testing.assert_close(A.load_spec_checkpoint(A.spec_of("digits_mlp"), buf.getvalue(), "d.pt").fc2.bias,
                               reference.fc2.bias)
    wider = A.spec_of("digits_mlp")
    wider["layers"][1]["out"], wider["layers"][3]["in"] = 40, 40
    with pytest.raises(CheckpointError, match=r"shape mismatch fc1\.weight: checkpoint \(32, 64\) vs model \(40, 64\)"):
        A.load_spec_checkpoint(wider, data, "d.safetensors")
    renamed = A.spec_of("digits_mlp")
    renamed["layers"][1]["name"] = "first"
    with pytest.raises(CheckpointError, match=r"missing first\.weight, first\.bias \| unexpected fc1\.(weight|bias), fc1\.(weight|bias)\."):
        A.load_spec_checkpoint(renamed, data, "d.safetensors")


def test_output_classes_for_other_input_shapes():
    s = A.spec_of("lenet300")
    assert A.output_classes(s, (1, 28, 28)) == 10
    assert A.output_classes(s, (784,)) == 10  # it starts with flatten
    assert A.output_classes(s, (2,)) is None
    assert A.output_classes(A.spec_of("lenet5"), (784,)) is None


# --- every validation message --------------------------------------------------------------

LIN = {"name": "fc", "type": "linear", "in": 4, "out": 2}
BAD_SPECS = {
    "unknown type": (spec([{"type": "softmaxx"}, LIN]), r"layer 1: unknown layer type 'softmaxx'; known: linear"),
    "missing type": (spec([{"name": "a"}, LIN]), r"layer 1: missing field 'type'"),
    "missing field": (spec([{"name": "fc", "type": "linear", "in": 4}]), r"layer 1 \(fc linear\): missing field 'out'"),
    "unknown field": (spec([{**LIN, "outs": 3}]), r"unknown field 'outs'; linear takes bias, in, name, out"),
    "size not int": (spec([{**LIN, "out": 2.5}]), r"'out' must be a whole number >= 1, got 2\.5"),
    "size bool": (spec([{**LIN, "out": True}]), r"'out' must be a whole number >= 1, got True"),
    "size zero": (spec([{**LIN, "in": 0}]), r"'in' must be a whole number >= 1, got 0"),
    "size huge": (spec([{**LIN, "out": 10**12}]), r"'out' = 1,000,000,000,000 is larger than the 1,048,576 limit"),
    "bias": (spec([{**LIN, "bias": "yes"}]), r"'bias' must be true or false"),
    "dropout p": (spec([{"type": "dropout", "p": 1.0}, LIN]), r"'p' must be a number in \[0, 1\), got 1\.0"),
    "padding": (spec([{"name": "c", "type": "conv1d", "in": 1, "out": 1, "kernel": 1, "padding": -1}, LIN], (1, 4)),
                r"'padding' must be a whole number >= 0"),
    "conv stride none": (spec([{"name": "c", "type": "conv1d", "in": 1, "out": 1, "kernel": 1, "stride": None}], (1, 4)),
                         r"'stride' must be a whole number >= 1, got None"),
    "weights need a name": (spec([{"type": "linear", "in": 4, "out": 2}]), r"a layer with weights needs a 'name'"),
    "bad name": (spec([{**LIN, "name": "fc.1"}]), r"name 'fc\.1' must be letters, digits and _"),
    "reserved name": (spec([{**LIN, "name": "forward"}]), r"name 'forward' is reserved"),
    "dunder name": (spec([{**LIN, "name": "__class__"}]), r"name '__class__' is reserved"),
    "instance attribute name": (spec([{**LIN, "name": "training"}]), r"name 'training' is reserved"),  # was a KeyError
    "module table name": (spec([{**LIN, "name": "_modules"}]), r"name '_modules' is reserved"),
    "duplicate name": (spec([{"name": "a", "type": "relu"}, {"name": "a", "type": "tanh"}, LIN]),
                       r"layer name 'a' is used 2 times"),
    "layer not object": (spec(["relu", LIN]), r"layer 1: expected an object like"),
    "no layers": (spec([]), r"'layers' must be a non-empty list"),
    "too many layers": (spec([{"type": "relu"}] * 65 + [LIN]), r"66 layers is more than the limit of 64"),
    "no input": ({"layers": [LIN]}, r"missing field 'input'"),
    "bad input": (spec([LIN], (0,)), r"'input' must be a list of 1 to 3 whole numbers >= 1"),
    "input 4-D": (spec([LIN], (1, 1, 1, 4)), r"'input' must be a list of 1 to 3"),
    "huge input": (spec([LIN], (1, 4096, 4096)), r"16,777,216 values per sample; the limit is 4,194,304"),
    "unknown top field": ({**spec([LIN]), "code": "x"}, r"unknown field\(s\) 'code'"),
    "bad spec name": (spec([LIN], name="my model"), r"'name' must be letters, digits and _"),
    "not chaining": (spec([{"name": "a", "type": "linear", "in": 4, "out": 8}, {"name": "b", "type": "linear",
                                                                                 "in": 9, "out": 2}]),
                     r"layer 2 \(b, linear\) expects 9 input features \(last dimension\), but layer 1 \(a\) gives "
                     r"shape \(8,\) \(8\)\."),
    "linear on images": (spec([{"name": "a", "type": "linear", "in": 64, "out": 2}], (1, 8, 8)),
                         r"expects 64 input features .* the input gives shape \(1, 8, 8\) \(8\); add a flatten layer"),
    "conv channels": (spec([{"name": "c", "type": "conv2d", "in": 3, "out": 2, "kernel": 3}, *head(72)], (1, 8, 8)),
                      r"layer 1 \(c, conv2d\) expects 3 input channels, but the input gives shape \(1, 8, 8\) \(1\)"),
    "conv on vectors": (spec([{"name": "c", "type": "conv2d", "in": 1, "out": 2, "kernel": 3}, LIN], (4,)),
                        r"layer 1 \(c, conv2d\) takes 3-D samples, but the input gives shape \(4,\)"),
    "kernel too big": (spec([{"name": "c", "type": "conv2d", "in": 1, "out": 2, "kernel": 9}, *head(2)], (1, 8, 8)),
                       r"layer 1 \(c, conv2d\) cannot take shape \(1, 8, 8\) from the input \(.*Kernel size"),
    "bn features": (spec([{"name": "b", "type": "batchnorm1d", "features": 3}, LIN]),
                    r"expects 3 input channels, but the input gives shape \(4,\) \(4\)"),
    "too many parameters": (spec([{"name": "a", "type": "linear", "in": 4, "out": 1 << 20},
                                  {"name": "b", "type": "linear", "in": 1 << 20, "out": 100}]),  # 4M+1M + 100M+100
                            r"110,100,580 parameters is more than the limit of 50,000,000"),
    "activation too large": (spec([{"name": "c", "type": "conv2d", "in": 1, "out": 4096, "kernel": 1}, *head(2)],
                                  (1, 100, 100)),
                             r"layer 1 \(c, conv2d\) outputs 40,960,000 values per sample; the limit is 16,777,216"),
    "output not classes": (spec([{"name": "c", "type": "conv2d", "in": 1, "out": 2, "kernel": 3}], (1, 8, 8)),
                           r"the last layer gives shape \(2, 6, 6\) per sample; a classifier ends in one score"),
    "one class": (spec([{"name": "fc", "type": "linear", "in": 4, "out": 1}]), r"gives shape \(1,\) per sample"),
    "list": ([LIN], r"expected an object with 'input' and 'layers', got list"),
    "string": ("linear", r"got str"),
    "null": (None, r"got NoneType"),
}


@pytest.mark.parametrize("case", list(BAD_SPECS))
def test_each_problem_has_its_message(case):
    obj, message = BAD_SPECS[case]
    with pytest.raises(A.SpecError, match=message):
        A.validate_spec(obj)


def test_several_problems_are_listed_one_per_line():
    with pytest.raises(A.SpecError) as err:
        A.validate_spec(spec([{"type": "nope"}, {"name": "fc", "type": "linear", "in": 4}], (0,)))
    lines = str(err.value).splitlines()
    assert lines[0] == "spec has 3 problems:"
    assert [ln[:9] for ln in lines[1:]] == ["- 'input'", "- layer 1", "- layer 2"]


# --- hostile input -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["__import__", "eval", "os.system", "torch.nn.Linear", "Linear", "exec"])
def test_names_of_code_are_unknown_types(kind):
    with pytest.raises(A.SpecError, match=r"unknown layer type"):
        A.read_spec(json.dumps(spec([{"name": "x", "type": kind, "args": ["rm -rf /"]}, LIN])))


def test_yaml_spec_is_plain_data_and_python_tags_never_run(tmp_path):
    yaml_text = "input: [4]\nlayers:\n  - {name: fc, type: linear, in: 4, out: 2}\n"
    assert A.read_spec(yaml_text, "s.yaml").num_classes == 2
    marker = tmp_path / "ran"
    hostile = f"!!python/object/apply:os.system ['touch {marker}']\n"
    with pytest.raises(A.SpecError, match=r"s\.yml: not valid YAML"):
        A.read_spec(hostile, "s.yml")
    assert not marker.exists()


def test_yaml_alias_bomb_is_refused_by_the_value_count():
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
              f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]"
              for i in range(4)]
    with pytest.raises(A.SpecError, match=r"nested too deeply|more than 10,000 values"):
        A.parse_spec("\n".join(lines), "bomb.yaml")


@pytest.mark.parametrize("text, filename", [
    ('{"input": [4], "layers": [{"type": "linear", "in": 4, "out": 3}], '
     '"layers": [{"type": "linear", "in": 4, "out": 2}]}', "s.json"),
    ('{"input": [4], "layers": [{"type": "linear", "in": 4, "out": 3, "out": 2}]}', "s.json"),
    ("input: [4]\nlayers:\n  - {type: linear, in: 4, out: 3}\nlayers:\n  - {type: linear, in: 4, out: 2}\n",
     "s.yaml"),
    ("input: [4]\nlayers:\n  - {type: linear, in: 4, out: 3, out: 2}\n", "s.yml"),
])
def test_a_key_given_twice_is_refused(text, filename):
    """Found by an audit: JSON and YAML keep the last of two equal keys without a word, so a spec with two
    "layers" lists (or a layer with two "out") built a model its author did not read."""
    with pytest.raises(A.SpecError, match=r"the key '(layers|out)' appears twice"):
        A.read_spec(text, filename)


def test_yaml_merge_keys_still_override_their_base():
    text = ("base: &b {type: linear, in: 4, out: 3}\ninput: [4]\n"
            "layers:\n  - {<<: *b, out: 2}\n")
    assert A.parse_spec(text, "s.yaml")["layers"] == [{"type": "linear", "in": 4, "out": 2}]


def test_deep_nesting_is_refused():
    with pytest.raises(A.SpecError, match=r"nested too deeply"):
        A.parse_spec("[" * 200_000 + "]" * 200_000)
    with pytest.raises(A.SpecError, match=r"nested too deeply"):
        A.parse_spec(json.dumps({"input": [4], "layers": [{"type": [[[[[["relu"]]]]]]}]}))


def test_non_utf8_empty_and_invalid_json():
    with pytest.raises(A.SpecError, match=r"s\.json: not UTF-8 text \(byte 0\)"):
        A.parse_spec(b"\xff\xfe{\x00}", "s.json")
    with pytest.raises(A.SpecError, match=r"the file is empty"):
        A.parse_spec(b"  \n", "s.json")
    with pytest.raises(A.SpecError, match=r"not valid JSON \(Expecting"):
        A.parse_spec(b"{'input': [4]}", "s.json")
    with pytest.raises(A.SpecError, match=r"expected an object .* got int"):
        A.read_spec(b"42")


def test_a_100_mb_string_is_refused_before_parsing():
    big = b'{"name": "' + b"a" * (100 * 2**20) + b'"}'
    with pytest.raises(A.SpecError, match=r"104,857,612 bytes is larger than the 1,048,576-byte limit"):
        A.parse_spec(big)


def test_a_checkpoint_pickle_never_runs_for_a_spec_model(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    buf = io.BytesIO()
    torch.save({"fc1.weight": Payload()}, buf)
    with pytest.raises(CheckpointError, match=r"not a weights-only PyTorch state dict"):
        A.load_spec_checkpoint(A.spec_of("digits_mlp"), buf.getvalue(), "evil.pt")
    assert not marker.exists()


def test_a_spec_with_no_layer_to_prune_is_refused():
    """Found by an audit: {"layers": [{"type": "relu"}]} loaded with 0 parameters, then eight pages raised."""
    with pytest.raises(A.SpecError, match="no layer with weights to prune; add one of linear, conv1d, conv2d"):
        A.validate_spec({"name": "nothing", "input": [2], "layers": [{"type": "relu"}]})


def test_numbers_too_large_for_a_float_are_one_spec_error():
    """Found by an audit: a slope of 10**400 raised OverflowError, and a YAML integer of 5,000 digits numbers'
    own ValueError, instead of a SpecError."""
    spec = {"name": "big", "input": [2], "layers": [{"name": "fc", "type": "linear", "in": 2, "out": 2},
                                                    {"type": "leaky_relu", "slope": 10**400}]}
    with pytest.raises(A.SpecError, match="'slope' must be a number in"):
        A.validate_spec(spec)
    yaml_text = "name: big\ninput: [2]\nlayers:\n  - {name: fc, type: linear, in: 2, out: " + "9" * 5000 + "}\n"
    with pytest.raises(A.SpecError, match="not valid YAML"):
        A.read_spec(yaml_text.encode(), "big.yaml")


def test_a_spec_is_bounded_in_compute_not_only_in_memory():
    """Found by an audit: 64 conv layers inside every memory limit cost ~32 s a sample on one core, and loading it
    (the overflow check on 512 samples) hours, all inside one click."""
    def spec(convs: int) -> dict:  # each 64 -> 64 conv: 64 * 64 * 9 weights at 784 positions, 28.9 M multiply-adds
        layers = [{"name": "c0", "type": "conv2d", "in": 1, "out": 64, "kernel": 3, "padding": 1}]
        layers += [{"name": f"c{i}", "type": "conv2d", "in": 64, "out": 64, "kernel": 3, "padding": 1}
                   for i in range(1, convs + 1)]
        layers += [{"type": "flatten"}, {"name": "fc", "type": "linear", "in": 64 * 28 * 28, "out": 10}]
        return {"name": "heavy", "input": [1, 28, 28], "layers": layers}

    with pytest.raises(A.SpecError, match=r"by layer 8 \(c7, conv2d\) a sample takes 202,\d{3},\d{3} multiply-adds; "
                                          r"the limit is 200,000,000"):
        A.validate_spec(spec(7))
    assert A.validate_spec(spec(6)).parameters > 0  # 174 M: allowed
