"""Datasets uploaded as CSV or NPZ: parsed without running anything, validated, split and normalised.

**CSV**: UTF-8 text with a **header row** (required: a first row of numbers is refused, so no sample
is silently eaten as a header); numeric feature columns and one label column, the one named
``label`` (any case) or else the last. Labels are whole numbers ``0..C-1`` (every class present)
or class names (text, mapped to ``0..C-1`` in sorted order).

**NPZ** (``numpy.savez``): arrays ``x`` and ``y``. ``x`` is tabular ``(N, F)`` or images ``(N, H, W)``
/ ``(N, C, H, W)`` (channels first, C <= 4); ``y`` is ``(N,)`` labels as above. Each member's
header (shape, dtype) is read before its data: object arrays are refused without unpickling
(``allow_pickle=False``) and oversized arrays without decompressing them. ``uint8`` images are
scaled to [0, 1].

Then, as for the bundled data (``data._split``): a seeded, stratified split (80 / 20) and
normalisation with training-split statistics only: per feature for tables, one mean / std over
all pixels for images. Every problem raises ``DataError`` with one clear sentence.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import zipfile
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from .data import Dataset, _split

MAX_DATA_BYTES = 64 * 1024 * 1024
MAX_ROWS = 100_000
MAX_VALUES = 20_000_000  # rows x features (80 MB as float32)
MAX_CLASSES = 100
MIN_PER_CLASS = 5  # so the 20 % test split holds at least one sample of each class
MAX_CHANNELS = 4
TEST_FRACTION = 0.2
MAX_ABS_FEATURE = 1e30  # beyond it the variance overflows or float32 training loses the feature (it rounds to inf)
DATA_SUFFIXES = (".csv", ".npz")


class DataError(ValueError):
    """An uploaded dataset that cannot be used; the message says why in one sentence."""


def dataset_name(data: bytes, filename: str) -> str:
    """The uploaded dataset's name: the file name and a content hash (different files never share a name)."""
    return f"{Path(filename).name[:60]} #{hashlib.sha1(data).hexdigest()[:8]}"


def read_dataset(data: bytes, filename: str, *, seed: int = 0, test_fraction: float = TEST_FRACTION) -> Dataset:
    """A ``Dataset`` from CSV or NPZ bytes: validated, split (seeded, stratified) and normalised.

    Raises:
        DataError: the first problem found (format, shape, values, labels, size), in one sentence.
    """
    if not data:
        raise DataError(f"{filename}: the file is empty.")
    if len(data) > MAX_DATA_BYTES:
        raise DataError(f"{filename}: {len(data) / 2**20:.1f} MiB is larger than the "
                        f"{MAX_DATA_BYTES // 2**20} MiB limit.")
    suffix = Path(filename).suffix.lower()
    if suffix == ".csv":
        x, labels = _read_csv(data, filename)
    elif suffix == ".npz":
        x, labels = _read_npz(data, filename)
    else:
        raise DataError(f"{filename}: upload a .csv or .npz file (got {suffix or 'no extension'!r}).")
    y, class_names = _labels(labels, filename)
    return _make_dataset(x, y, class_names, dataset_name(data, filename), filename, seed, test_fraction)


# ---------------------------------------------------------------------------
# CSV


def is_number_text(text: str) -> bool:
    """Whether ``text`` reads as a float (Python's ``float``: "1e-3", "-2", "nan", "inf")."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_csv(data: bytes, filename: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x (N, F) float64, labels (N,) str)`` from CSV bytes.

    Python's ``csv`` reader, not pandas: pandas builds a string array per column, 7 s for a 2.7 MB file of
    100,000 columns (an audit), where this reads it in 0.1 s; the width is checked from the header before any row.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{filename}: not UTF-8 text (byte {exc.start}); save the CSV as UTF-8.") from None
    lines = _csv_rows(text, filename)
    _, header = next(lines, (0, None))
    if header is None:
        raise DataError(f"{filename}: no rows.")
    columns = [c.strip() for c in header]
    if all(is_number_text(c) for c in columns):
        raise DataError(f"{filename}: the first row is all numbers; the CSV needs a header row naming the columns "
                        "(the label column 'label', or the last one).")
    if len(columns) < 2:
        raise DataError(f"{filename}: needs at least one feature column and a label column; found {len(columns)} "
                        "column (is the separator a comma?).")
    if len(columns) - 1 > MAX_VALUES:
        raise DataError(f"{filename}: {len(columns) - 1:,} features is more than {MAX_VALUES:,} values.")
    lower = [c.lower() for c in columns]
    repeated = sorted(c for c, n in Counter(lower).items() if n > 1 and c)  # `label` and `LABEL`: one became a feature
    if repeated:
        raise DataError(f"{filename}: the header names a column twice ({', '.join(map(repr, repeated[:5]))}, any "
                        "case); every column needs a name of its own.")
    label = lower.index("label") if "label" in lower else len(columns) - 1
    features = [c for j, c in enumerate(columns) if j != label]
    values: list[np.ndarray] = []  # one (F,) float64 row a line, converted as read: the cells as Python strings
    labels: list[str] = []  # then a string array took ~3 GB for a file at the size limit (an audit)
    bad: dict[int, list] = {}  # feature index -> [first line, first cell, count] of cells that are no number
    for line, row in lines:
        if len(row) != len(columns):
            raise DataError(f"{filename}: not a readable CSV (line {line} has {len(row)} fields, the header "
                            f"{len(columns)}).")
        if len(labels) == MAX_ROWS:
            raise DataError(f"{filename}: more than {MAX_ROWS:,} rows; the limit is {MAX_ROWS:,}.")
        if (len(labels) + 1) * len(features) > MAX_VALUES:
            raise DataError(f"{filename}: more than {MAX_VALUES:,} values: {len(features):,} features a row "
                            f"pass the limit at row {len(labels) + 1:,}.")
        labels.append(row.pop(label).strip())
        try:
            values.append(np.array(row, dtype=np.float64))  # (F,); "nan" and "inf" read as such
        except ValueError:
            values.append(np.array([_cell_value(c, j, line, bad) for j, c in enumerate(row)], dtype=np.float64))
    if not labels:
        raise DataError(f"{filename}: a header but no rows.")
    if bad:
        j = min(bad)  # the first column with a bad cell, its first bad line
        line, cell, count = bad[j]
        what = "an empty cell" if cell == "" else f"{cell[:30]!r}"
        raise DataError(f"{filename}: column {features[j]!r} is not numeric: {what} in line {line} "
                        f"({count} such cell{'s' if count > 1 else ''}).")
    return np.stack(values), np.array(labels, dtype=str)


def _cell_value(cell: str, column: int, line: int, bad: dict[int, list]) -> float:
    """``cell`` as a float, or NaN with the cell noted in ``bad`` (first line and cell, count) by column."""
    try:
        return float(cell)
    except ValueError:
        first = bad.setdefault(column, [line, cell.strip(), 0])
        first[2] += 1
        return math.nan


def _csv_rows(text: str, filename: str):
    """``(line number, cells)`` of each row that is not blank, the header first; ``DataError`` for a malformed
    one (an unclosed quote, a field past the csv module's limit)."""
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True)
    try:
        for row in reader:
            if row and (len(row) > 1 or row[0].strip()):  # blank lines are skipped, as pandas did
                yield reader.line_num, row
    except csv.Error as exc:
        raise DataError(f"{filename}: not a readable CSV (line {reader.line_num}: {exc}).") from None


# ---------------------------------------------------------------------------
# NPZ


def _npz_member(archive: zipfile.ZipFile, key: str, filename: str) -> np.ndarray:
    """Array ``key`` of an .npz archive, its header checked before any data is read; never unpickles."""
    try:
        info = archive.getinfo(f"{key}.npy")
    except KeyError:
        names = ", ".join(n.removesuffix(".npy") for n in archive.namelist()[:8]) or "none"
        raise DataError(f"{filename}: no array {key!r} (found: {names}); save with np.savez(f, x=..., y=...).") from None
    with archive.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(f)
        except (ValueError, OSError, EOFError, SyntaxError, zipfile.BadZipFile) as exc:
            raise DataError(f"{filename}: {key!r} is not a valid .npy array ({str(exc)[:120]}).") from None
        if dtype.hasobject:
            raise DataError(f"{filename}: {key!r} is an object array (pickled Python objects); it is refused unread. "
                            "Save numeric (or, for labels, string) arrays.")
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes > 4 * MAX_DATA_BYTES:
            raise DataError(f"{filename}: {key!r} holds {nbytes / 2**20:.0f} MiB once decompressed; "
                            f"the limit is {4 * MAX_DATA_BYTES // 2**20} MiB.")
    with archive.open(info) as f:
        try:
            return np.lib.format.read_array(f, allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise DataError(f"{filename}: {key!r} could not be read ({str(exc)[:120]}).") from None


def _read_npz(data: bytes, filename: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, labels)`` from .npz bytes; x as (N, F), (N, 1, H, W) or (N, C, H, W)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError):
        raise DataError(f"{filename}: not a valid .npz file (save it with numpy.savez).") from None
    with archive:
        x = _npz_member(archive, "x", filename)
        y = _npz_member(archive, "y", filename)
    if x.dtype.kind not in "biuf":
        raise DataError(f"{filename}: 'x' must be numeric, got dtype {x.dtype}.")
    if x.ndim not in (2, 3, 4):
        raise DataError(f"{filename}: 'x' has shape {x.shape}; expected (N, features), (N, H, W) or (N, C, H, W).")
    if 0 in x.shape[1:]:
        raise DataError(f"{filename}: 'x' has shape {x.shape}: a sample holds no values.")
    if x.ndim == 4 and x.shape[1] > MAX_CHANNELS:
        raise DataError(f"{filename}: 'x' has shape {x.shape}: {x.shape[1]} channels; images are channels first, "
                        f"(N, C, H, W) with C <= {MAX_CHANNELS} (is it (N, H, W, C)? use x.transpose(0, 3, 1, 2)).")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{filename}: 'y' has shape {y.shape}; expected one label per sample, (N,).")
    if len(y) != len(x):
        raise DataError(f"{filename}: 'x' has {len(x):,} samples but 'y' has {len(y):,} labels.")
    if len(x) > MAX_ROWS:
        raise DataError(f"{filename}: {len(x):,} samples is more than the limit of {MAX_ROWS:,}.")
    if len(x) == 0:  # a ValueError from a reduction on nothing (an audit)
        raise DataError(f"{filename}: 'x' holds no samples.")
    if x.size > MAX_VALUES:
        raise DataError(f"{filename}: 'x' holds {x.size:,} values; the limit is {MAX_VALUES:,}.")
    if y.dtype.kind not in "biufUS":
        raise DataError(f"{filename}: 'y' must hold whole numbers or class names, got dtype {y.dtype}.")
    scale = 255.0 if x.dtype == np.uint8 and x.ndim >= 3 else 1.0  # 8-bit images -> [0, 1], as the bundled ones
    x = x.astype(np.float64) / scale
    if x.ndim == 3:
        x = x[:, None]  # (N, H, W) -> (N, 1, H, W)
    if y.dtype.kind == "S":  # bytes: class names, if they are text
        try:
            y = np.array([v.decode("utf-8") for v in y.tolist()])
        except UnicodeDecodeError as exc:
            raise DataError(f"{filename}: the labels in 'y' are bytes that are not UTF-8 text ({exc.reason} at "
                            f"byte {exc.start}); store whole numbers or str class names.") from None
    labels = y.astype(str) if y.dtype.kind in "US" else y
    return x, labels


# ---------------------------------------------------------------------------
# Labels, checks, split and normalisation


def _labels(labels: np.ndarray, filename: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """``(y int64 0..C-1, class names)`` from whole-number labels or class names."""
    if labels.dtype.kind in "US":
        numeric = all(is_number_text(v) for v in np.unique(labels))
        if not numeric:
            names, y = np.unique(labels, return_inverse=True)
            return _check_classes(y, tuple(str(n) for n in names), filename)
        labels = labels.astype(np.float64)
    if labels.dtype.kind == "f":
        finite = np.isfinite(labels)
        if not finite.all():
            raise DataError(f"{filename}: the labels hold NaN or infinity (first at sample {int(np.argmin(finite))}).")
        if (labels != np.round(labels)).any():
            i = int(np.flatnonzero(labels != np.round(labels))[0])
            raise DataError(f"{filename}: labels must be whole numbers 0..C-1 or class names; sample {i} has "
                            f"{labels[i]:g}.")
    if labels.min() < 0:  # compared in the labels' own dtype: a cast first would wrap 2**64 - 1 or 1e20 around
        raise DataError(f"{filename}: labels must be 0..C-1; found {labels.min():g}.")
    if labels.max() >= MAX_CLASSES:
        raise DataError(f"{filename}: label {labels.max():g} means more than {MAX_CLASSES} classes, the limit.")
    y = labels.astype(np.int64)
    missing = sorted(set(range(int(y.max()) + 1)) - set(np.unique(y).tolist()))
    if missing:
        raise DataError(f"{filename}: labels must be 0..C-1 with every class present; "
                        f"{', '.join(map(str, missing[:10]))} never appear{'s' if len(missing) == 1 else ''}.")
    return _check_classes(y, tuple(str(c) for c in range(int(y.max()) + 1)), filename)


def _check_classes(y: np.ndarray, names: tuple[str, ...], filename: str) -> tuple[np.ndarray, tuple[str, ...]]:
    if len(names) < 2:
        raise DataError(f"{filename}: every sample has the same label ({names[0][:30]!r}); a classifier needs at "
                        "least 2 classes.")
    if len(names) > MAX_CLASSES:
        raise DataError(f"{filename}: {len(names)} classes is more than the limit of {MAX_CLASSES}.")
    counts = np.bincount(y, minlength=len(names))
    few = [f"{names[c][:20]} ({counts[c]})" for c in np.flatnonzero(counts < MIN_PER_CLASS)]
    if few:
        raise DataError(f"{filename}: each class needs at least {MIN_PER_CLASS} samples (one or more for the test "
                        f"split); too few: {', '.join(few[:10])}.")
    return y.astype(np.int64), names


def _make_dataset(x: np.ndarray, y: np.ndarray, class_names: tuple[str, ...], name: str, filename: str,
                  seed: int, test_fraction: float) -> Dataset:
    finite = np.isfinite(x)
    if not finite.all():
        sample = int(np.flatnonzero(~finite.reshape(len(x), -1).all(axis=1))[0])
        raise DataError(f"{filename}: {int((~finite).sum()):,} NaN or infinite value(s) in the features "
                        f"(first in sample {sample}); fill or drop them before uploading.")
    huge = np.abs(x) > MAX_ABS_FEATURE
    if huge.any():
        sample = int(np.flatnonzero(huge.reshape(len(x), -1).any(axis=1))[0])
        raise DataError(f"{filename}: {int(huge.sum()):,} feature value(s) beyond ±{MAX_ABS_FEATURE:g} (first in "
                        f"sample {sample}); rescale them before uploading.")
    tr, te = _split(len(y), test_fraction, y, seed)
    image = x.ndim == 4
    if image:  # x: (N, C, H, W); one mean / std over every training pixel
        mean, std = float(x[tr].mean()), float(x[tr].std())
        std = std if std > 0 else 1.0
        normed = (x - mean) / std
        stats = {"mean": mean, "std": std}
    else:  # x: (N, F); per feature
        mean_f, std_f = x[tr].mean(axis=0), x[tr].std(axis=0)
        std_f = np.where(std_f > 0, std_f, 1.0)  # a constant feature stays 0 after centring
        normed = (x - mean_f) / std_f
        mean, std = 0.0, 1.0
        stats = {"feature_mean": mean_f.tolist(), "feature_std": std_f.tolist()}
    xt = torch.as_tensor(normed, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.int64)
    shape = tuple(int(s) for s in x.shape[1:])
    what = f"{'x'.join(map(str, shape[1:]))} images" if image else f"{shape[0]} features"
    return Dataset(
        name=name,
        x_train=xt[tr].contiguous(),
        y_train=yt[tr].contiguous(),
        x_test=xt[te].contiguous(),
        y_test=yt[te].contiguous(),
        input_shape=shape,
        class_names=class_names,
        kind="image" if image else "points",
        mean=mean,
        std=std,
        description=f"uploaded {Path(filename).name}: {len(y):,} samples, {what}, {len(class_names)} classes",
        params={"source": Path(filename).name, "seed": seed, "test_fraction": test_fraction, **stats},
    )


def fit_to_model(ds: Dataset, input_shape: tuple[int, ...], num_classes: int) -> Dataset:
    """``ds`` with samples of the model's ``input_shape`` (reshaped when only the layout differs).

    Raises:
        DataError: a different number of values per sample, or of classes.
    """
    input_shape = tuple(input_shape)
    if math.prod(input_shape) != ds.num_features:
        raise DataError(f"The model takes samples of shape {input_shape} ({math.prod(input_shape):,} values); "
                        f"{ds.params.get('source', ds.name)} has samples of shape {ds.input_shape} "
                        f"({ds.num_features:,} values).")
    if num_classes != ds.num_classes:
        raise DataError(f"The model gives {num_classes} class scores; {ds.params.get('source', ds.name)} has "
                        f"{ds.num_classes} classes.")
    if input_shape == ds.input_shape:
        return ds
    return replace(ds, x_train=ds.x_train.reshape(-1, *input_shape), x_test=ds.x_test.reshape(-1, *input_shape),
                   input_shape=input_shape, kind="image" if len(input_shape) == 3 else "points")
