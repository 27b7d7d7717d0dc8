"""Uploaded datasets: CSV and NPZ happy paths, the split and normalisation by hand, every bad input's message."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from sparsity_viz import data_upload as U


def csv_bytes(rows, header="f1,f2,label"):
    return (header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n").encode()


def npz_bytes(**arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


# f1 = row index 0..9 (unique, so each sample can be found again), f2 constant, 5 rows per class
HAND_ROWS = [(i, 7, "b" if i >= 5 else "a") for i in range(10)]


def test_csv_split_and_normalisation_by_hand():
    ds = U.read_dataset(csv_bytes(HAND_ROWS), "hand.csv", seed=0)
    assert ds.class_names == ("a", "b") and ds.kind == "points" and ds.input_shape == (2,)
    assert (len(ds.y_train), len(ds.y_test)) == (8, 2)
    assert sorted(ds.y_test.tolist()) == [0, 1]  # stratified: round(5 * 0.2) = 1 test sample per class
    m, s = ds.params["feature_mean"], ds.params["feature_std"]
    test_rows = [round(v) for v in (ds.x_test[:, 0].double() * s[0] + m[0]).tolist()]
    train_rows = sorted(set(range(10)) - set(test_rows))
    mean = sum(train_rows) / 8
    std = (sum((r - mean) ** 2 for r in train_rows) / 8) ** 0.5  # population std of the training rows only
    assert m[0] == pytest.approx(mean, abs=1e-12) and s[0] == pytest.approx(std, abs=1e-12)
    assert (m[1], s[1]) == (7.0, 1.0)  # a constant feature: centred to 0, std taken as 1
    expected = torch.tensor([[(r - mean) / std, 0.0] for r in sorted(train_rows)], dtype=torch.float32)
    order = torch.argsort(ds.x_train[:, 0])
    torch.testing.assert_close(ds.x_train[order], expected)
    labels = [0 if r < 5 else 1 for r in sorted(train_rows)]
    assert ds.y_train[order].tolist() == labels
    for row, label in zip(test_rows, ds.y_test.tolist()):
        assert label == (0 if row < 5 else 1)


def test_split_is_seeded():
    a, b = (U.read_dataset(csv_bytes(HAND_ROWS), "h.csv", seed=1) for _ in range(2))
    assert torch.equal(a.x_test, b.x_test) and torch.equal(a.y_train, b.y_train)
    others = [U.read_dataset(csv_bytes(HAND_ROWS), "h.csv", seed=s).x_test for s in range(2, 8)]
    assert any(not torch.equal(a.x_test, o) for o in others)


def test_csv_label_column_by_name_whole_number_labels_and_bom():
    rows = [(c, i * 0.5, i) for i in range(15) for c in [i % 3]]
    data = b"\xef\xbb\xbf" + csv_bytes(rows, header="Label, x1, x2")
    ds = U.read_dataset(data, "t.csv")
    assert ds.class_names == ("0", "1", "2") and ds.input_shape == (2,)
    raw = ds.x_train.double() * torch.tensor(ds.params["feature_std"]) + torch.tensor(ds.params["feature_mean"])
    torch.testing.assert_close(raw[:, 1].round() % 3, ds.y_train.double())  # x2 = i, label = i % 3: the label column left out
    assert ds.name.startswith("t.csv #") and ds.name != U.dataset_name(data + b"\n", "t.csv")


@pytest.mark.parametrize("header", ["label,x1,LABEL", "x,x,label", "a, Label ,label"])
def test_a_csv_naming_a_column_twice_is_refused(header):
    """With `label` and `LABEL` the first was the label and the other silently a feature (an audit)."""
    rows = [(i % 2, i, i % 2) for i in range(10)]
    with pytest.raises(U.DataError, match=r"t.csv: the header names a column twice \('.+'\, any case\)"):
        U.read_dataset(csv_bytes(rows, header=header), "t.csv")


def test_npz_tabular_and_labels_as_floats_or_strings():
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    ds = U.read_dataset(npz_bytes(x=x, y=np.repeat([0.0, 1.0], 10)), "t.npz")
    assert ds.input_shape == (2,) and ds.num_classes == 2 and ds.kind == "points"
    ds = U.read_dataset(npz_bytes(x=x, y=np.repeat(["dog", "cat"], 10)[:, None]), "t.npz")
    assert ds.class_names == ("cat", "dog")


def test_npz_uint8_images_scaled_and_normalised_by_hand():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(10, 4, 4), dtype=np.uint8)
    x[:, 0, 0] = np.arange(10)  # finds each image again
    ds = U.read_dataset(npz_bytes(x=x, y=np.repeat([0, 1], 5)), "img.npz")
    assert ds.kind == "image" and ds.input_shape == (1, 4, 4) and ds.is_image
    raw = ds.denormalize(ds.x_train.double()) * 255
    train_ids = sorted(round(v) for v in raw[:, 0, 0, 0].tolist())
    pixels = x[train_ids].astype(np.float64) / 255
    assert ds.mean == pytest.approx(pixels.mean(), abs=1e-12) and ds.std == pytest.approx(pixels.std(), abs=1e-12)
    torch.testing.assert_close(raw.round(), torch.tensor(x[np.sort(train_ids)], dtype=torch.float64)[:, None]
                               [torch.argsort(torch.argsort(raw[:, 0, 0, 0]))])


def test_npz_channels_first_images():
    x = np.random.default_rng(1).random((12, 3, 5, 5))
    ds = U.read_dataset(npz_bytes(x=x, y=np.repeat([0, 1], 6)), "rgb.npz")
    assert ds.input_shape == (3, 5, 5) and ds.x_train.shape == (10, 3, 5, 5)


def test_fit_to_model():
    rows = [tuple(range(i, i + 16)) + (i % 2,) for i in range(10)]
    ds = U.read_dataset(csv_bytes(rows, header=",".join(f"p{j}" for j in range(16)) + ",label"), "px.csv")
    assert U.fit_to_model(ds, (16,), 2) is ds
    image = U.fit_to_model(ds, (1, 4, 4), 2)
    assert image.kind == "image" and image.x_train.shape == (8, 1, 4, 4)
    torch.testing.assert_close(image.x_test.flatten(1), ds.x_test)
    with pytest.raises(U.DataError, match=r"model takes samples of shape \(1, 28, 28\) \(784 values\); px\.csv has "
                                          r"samples of shape \(16,\) \(16 values\)"):
        U.fit_to_model(ds, (1, 28, 28), 2)
    with pytest.raises(U.DataError, match=r"model gives 10 class scores; px\.csv has 2 classes"):
        U.fit_to_model(ds, (16,), 10)


# --- every bad input -------------------------------------------------------------------------

GOOD = [(i, i * 2, i % 2) for i in range(10)]
BAD_CSV = {
    "empty": (b"", r"the file is empty"),
    "not utf-8": (b"f1,label\n\xff\xfe,1\n", r"not UTF-8 text \(byte 9\)"),
    "no header": (csv_bytes(GOOD, header="0,1,2"), r"the first row is all numbers; the CSV needs a header row"),
    "one column": (b"label\n0\n1\n", r"needs at least one feature column and a label column; found 1 column"),
    "header only": (b"f1,label\n", r"a header but no rows"),
    "ragged": (b"a,label\n1,0\n1,2,3,4\n", r"not a readable CSV"),
    "text feature": (csv_bytes([*GOOD[:3], ("abc", 1, 0), *GOOD[3:]]),
                     r"column 'f1' is not numeric: 'abc' in line 5 \(1 such cell\)"),
    "empty cell": (csv_bytes([*GOOD[:1], ("", 1, 0), *GOOD[1:]]), r"column 'f1' is not numeric: an empty cell in line 3"),
    "nan": (csv_bytes([*GOOD, ("nan", 1, 0)]), r"1 NaN or infinite value\(s\) in the features \(first in sample 10\)"),
    "inf": (csv_bytes([("inf", 1, 0), ("-inf", 1, 0), *GOOD]), r"2 NaN or infinite value\(s\) .* sample 0\)"),
    "fractional label": (csv_bytes([*GOOD, (1, 1, 0.5)]), r"labels must be whole numbers 0\.\.C-1 or class names; "
                                                          r"sample 10 has 0\.5"),
    "negative label": (csv_bytes([(i, i, i % 2 - 1) for i in range(10)]), r"labels must be 0\.\.C-1; found -1"),
    "missing class": (csv_bytes([(i, i, 2 * (i % 2)) for i in range(10)]),
                      r"labels must be 0\.\.C-1 with every class present; 1 never appears"),
    "one class": (csv_bytes([(i, i, "cat") for i in range(10)]), r"every sample has the same label \('cat'\)"),
    "too many classes": (csv_bytes([(i, i, f"c{i % 101}") for i in range(505)]), r"101 classes is more than the limit of 100"),
    "label too large": (csv_bytes([(i, i, i % 2 + 100 * (i == 0)) for i in range(12)]),
                        r"label 100 means more than 100 classes"),
    "few per class": (csv_bytes([(i, i, "a" if i < 8 else "b") for i in range(12)]),
                      r"each class needs at least 5 samples .*; too few: b \(4\)"),
    "suffix": (b"x", r"upload a \.csv or \.npz file \(got '\.txt'\)"),
    # finite values whose variance overflows: the feature became NaN (or all zeros) without a word
    "overflowing values": (csv_bytes([(1.5e308 if i % 2 else 1e308, i, i % 2) for i in range(12)]),
                           r"12 feature value\(s\) beyond ±1e\+30 \(first in sample 0\); rescale them"),
    "huge values": (csv_bytes([(i * 1e200, i, i % 2) for i in range(12)]), r"11 feature value\(s\) beyond ±1e\+30 "
                                                                          r"\(first in sample 1\)"),
    "label 1e20": (csv_bytes([(i, i, 1e20 if i else 0) for i in range(12)]), r"label 1e\+20 means more than 100 classes"),
}


@pytest.mark.parametrize("case", list(BAD_CSV))
def test_each_bad_csv_has_its_message(case):
    data, message = BAD_CSV[case]
    with pytest.raises(U.DataError, match=message):
        U.read_dataset(data, "bad.txt" if case == "suffix" else "bad.csv")


def test_size_and_row_caps(monkeypatch):
    monkeypatch.setattr(U, "MAX_DATA_BYTES", 100)
    with pytest.raises(U.DataError, match=r"bad\.csv: 0\.0 MiB is larger than the 0 MiB limit|larger than the"):
        U.read_dataset(csv_bytes(GOOD * 3), "bad.csv")
    monkeypatch.setattr(U, "MAX_DATA_BYTES", 64 * 2**20)
    monkeypatch.setattr(U, "MAX_ROWS", 8)
    with pytest.raises(U.DataError, match=r"more than 8 rows; the limit is 8"):
        U.read_dataset(csv_bytes(GOOD), "bad.csv")
    with pytest.raises(U.DataError, match=r"10 samples is more than the limit of 8"):
        U.read_dataset(npz_bytes(x=np.zeros((10, 2)), y=np.arange(10) % 2), "bad.npz")
    monkeypatch.setattr(U, "MAX_ROWS", 1000)
    monkeypatch.setattr(U, "MAX_VALUES", 15)
    with pytest.raises(U.DataError, match=r"more than 15 values: 2 features a row pass the limit at row 8\."):
        U.read_dataset(csv_bytes(GOOD), "bad.csv")
    with pytest.raises(U.DataError, match=r"'x' holds 20 values; the limit is 15"):
        U.read_dataset(npz_bytes(x=np.zeros((10, 2)), y=np.arange(10) % 2), "bad.npz")


def test_compressed_npz_is_refused_from_its_header_before_decompressing(monkeypatch):
    buf = io.BytesIO()
    np.savez_compressed(buf, x=np.zeros((1000, 1000)), y=np.zeros(1000))  # 8 MB of zeros, a few KB compressed
    monkeypatch.setattr(U, "MAX_DATA_BYTES", 2**20)
    assert len(buf.getvalue()) < 2**20
    with pytest.raises(U.DataError, match=r"'x' holds 8 MiB once decompressed; the limit is 4 MiB"):
        U.read_dataset(buf.getvalue(), "zip.npz")


Y10 = np.arange(10) % 2
BAD_NPZ = {
    "not a zip": (b"PK\x03\x04 nonsense", r"not a valid \.npz file"),
    "missing y": (npz_bytes(x=np.zeros((10, 2)), labels=Y10), r"no array 'y' \(found: x, labels\)"),
    "complex x": (npz_bytes(x=np.zeros((10, 2), dtype=complex), y=Y10), r"'x' must be numeric, got dtype complex128"),
    "string x": (npz_bytes(x=np.array([["a", "b"]] * 10), y=Y10), r"'x' must be numeric, got dtype <U1"),
    "1-d x": (npz_bytes(x=np.zeros(10), y=Y10), r"'x' has shape \(10,\); expected \(N, features\), \(N, H, W\)"),
    "5-d x": (npz_bytes(x=np.zeros((10, 1, 1, 2, 2)), y=Y10), r"'x' has shape \(10, 1, 1, 2, 2\); expected"),
    "channels last": (npz_bytes(x=np.zeros((10, 8, 8, 3)), y=Y10),
                      r"8 channels; images are channels first, \(N, C, H, W\) with C <= 4 .*transpose\(0, 3, 1, 2\)"),
    "2-d y": (npz_bytes(x=np.zeros((10, 2)), y=np.zeros((10, 2))), r"'y' has shape \(10, 2\); expected one label"),
    "length mismatch": (npz_bytes(x=np.zeros((10, 2)), y=np.arange(12) % 2), r"'x' has 10 samples but 'y' has 12 labels"),
    "nan image": (npz_bytes(x=np.where(np.eye(4)[None] > 0, np.nan, 0.0).repeat(10, 0), y=Y10),
                  r"40 NaN or infinite value\(s\) in the features \(first in sample 0\)"),
    "nan label": (npz_bytes(x=np.zeros((10, 2)), y=np.where(Y10 > 0, np.nan, 0)), r"labels hold NaN or infinity"),
    "bool y": (npz_bytes(x=np.random.rand(10, 2), y=Y10.astype(bool)), None),  # True/False are labels 1/0
    "no features": (npz_bytes(x=np.zeros((10, 0)), y=Y10), r"'x' has shape \(10, 0\): a sample holds no values"),
    "no samples": (npz_bytes(x=np.zeros((0, 4)), y=np.zeros(0, dtype=np.int64)), r"'x' holds no samples"),  # audit
    "zero-width images": (npz_bytes(x=np.zeros((10, 5, 0)), y=Y10), r"shape \(10, 5, 0\): a sample holds no values"),
    "x beyond float32": (npz_bytes(x=np.full((10, 2), 1e308), y=Y10), r"20 feature value\(s\) beyond ±1e\+30"),
    "uint64 label": (npz_bytes(x=np.zeros((10, 2)), y=np.where(Y10 > 0, np.uint64(2**64 - 1), np.uint64(0))),
                     r"label 1\.84467e\+19 means more than 100 classes"),  # was "found -1": the cast wrapped around
    "bytes labels not text": (npz_bytes(x=np.zeros((10, 2)), y=np.array([b"\xff" if i % 2 else b"a" for i in range(10)])),
                              r"the labels in 'y' are bytes that are not UTF-8 text"),
    "bytes class names": (npz_bytes(x=np.random.rand(10, 2), y=np.array([b"cat", b"dog"] * 5)), ("cat", "dog")),
}


@pytest.mark.parametrize("case", list(BAD_NPZ))
def test_each_bad_npz_has_its_message(case):
    data, message = BAD_NPZ[case]
    if message is None or isinstance(message, tuple):
        assert U.read_dataset(data, "ok.npz").class_names == (message or ("0", "1"))
        return
    with pytest.raises(U.DataError, match=message):
        U.read_dataset(data, "bad.npz")


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("member", ["x", "y"])
def test_object_array_is_refused_without_unpickling(tmp_path, member):
    marker = tmp_path / "ran"
    evil = np.array([_Payload(marker)] * 10, dtype=object)
    arrays = {"x": np.zeros((10, 2)), "y": Y10, member: evil}
    data = npz_bytes(**arrays)
    with pytest.raises(U.DataError, match=rf"'{member}' is an object array \(pickled Python objects\); it is refused"):
        U.read_dataset(data, "evil.npz")
    assert not marker.exists()
    # numpy itself would run it: the payload is real
    with zipfile.ZipFile(io.BytesIO(data)) as z, z.open(f"{member}.npy") as f:
        np.lib.format.read_array(f, allow_pickle=True)
    assert marker.exists()


def test_a_wide_csv_is_read_whole_and_a_too_wide_header_is_refused_before_its_rows(monkeypatch):
    """pandas built a string array per column (7 s for 100,000 columns, an audit); the csv reader reads every cell."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 3000)).round(4)  # (N, F)
    lines = [",".join(f"p{j}" for j in range(3000)) + ",label"]
    lines += [",".join(f"{v:.4f}" for v in row) + f",{i % 2}" for i, row in enumerate(x)]
    ds = U.read_dataset(("\n".join(lines) + "\n").encode(), "wide.csv")
    std, mean = (torch.tensor(ds.params[k], dtype=torch.float64) for k in ("feature_std", "feature_mean"))
    both = torch.cat([ds.x_train, ds.x_test]).double() * std + mean  # (12, 3000), the values read back
    assert ds.x_train.shape[1] == 3000 and len(both) == 12
    torch.testing.assert_close(both.sort(0).values, torch.tensor(x).sort(0).values, rtol=1e-5, atol=1e-5)
    monkeypatch.setattr(U, "MAX_VALUES", 2999)
    with pytest.raises(U.DataError, match=r"3,000 features is more than 2,999 values"):
        U.read_dataset(("\n".join(lines[:1]) + "\n" + "garbage\n" * 3).encode(), "wide.csv")


@pytest.mark.parametrize("text,message", [
    (b"a,label\n1,0\n1,2,3,4\n", r"line 3 has 4 fields, the header 2"),
    (b"a,label\n1,0\n\"1,0\n", r"not a readable CSV"),
    (b"a,label\n\n1,0\n  \n2,1\n" + b"3,0\n4,1\n5,0\n6,1\n7,0\n8,1\n9,0\n10,1\n", None),  # blank lines skipped
])
def test_csv_rows_are_checked_line_by_line(text, message):
    if message is None:
        ds = U.read_dataset(text, "blank.csv")
        assert len(ds.y_train) + len(ds.y_test) == 10
        return
    with pytest.raises(U.DataError, match=message):
        U.read_dataset(text, "rows.csv")
