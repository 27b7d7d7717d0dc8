"""Datasets: offline loading, shapes and metadata, fixed seeded stratified splits, normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sparsity_viz import DATASET_NAMES, load_dataset
from sparsity_viz.data import IMAGE_DATASETS, TOY_DATASETS, _split

# ``load_dataset`` is cached; the uncached function checks that the *computation* is seeded.
fresh_load = load_dataset.__wrapped__

EXPECTED = {
    # name: (n_total, input_shape, num_classes, kind)
    "moons": (1000, (2,), 2, "points"),
    "circles": (1000, (2,), 2, "points"),
    "xor": (1000, (2,), 2, "points"),
    "spiral": (1000, (2,), 2, "points"),
    "digits": (1797, (1, 8, 8), 10, "image"),
    "mnist5k": (5000, (1, 28, 28), 10, "image"),
}


def test_names_cover_every_dataset():
    assert set(DATASET_NAMES) == set(EXPECTED)
    assert set(TOY_DATASETS) | set(IMAGE_DATASETS) == set(DATASET_NAMES)


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_loads_offline_with_shapes_dtypes_and_metadata(name):
    n_total, shape, classes, kind = EXPECTED[name]
    d = load_dataset(name)
    assert d.name == name
    assert d.kind == kind and d.is_image == (kind == "image")
    assert d.input_shape == shape
    assert d.num_classes == classes == len(d.class_names)
    assert d.num_features == int(np.prod(shape))
    assert d.description
    for x, y in ((d.x_train, d.y_train), (d.x_test, d.y_test)):
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert tuple(x.shape[1:]) == shape
        assert x.shape[0] == y.shape[0] and y.dim() == 1
        assert torch.isfinite(x).all()
        assert int(y.min()) >= 0 and int(y.max()) < classes
    assert len(d.y_train) + len(d.y_test) == n_total
    # 80/20 split (per class rounding moves it by at most one per class)
    assert abs(len(d.y_test) - 0.2 * n_total) <= classes
    # every class appears on both sides
    assert set(d.y_train.tolist()) == set(range(classes)) == set(d.y_test.tolist())


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_same_seed_same_tensors_different_seed_different_split(name):
    a, b = load_dataset(name, seed=0), fresh_load(name, seed=0)  # cached vs recomputed
    assert a is not b
    for field in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    c = load_dataset(name, seed=1)
    assert not torch.equal(a.x_test, c.x_test)
    assert not torch.equal(a.x_train, c.x_train)


def test_cached_load_is_shared():
    assert load_dataset("moons", seed=0) is load_dataset("moons", seed=0)


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_split_is_stratified(name):
    d = load_dataset(name)
    y = torch.cat([d.y_train, d.y_test])
    for c in range(d.num_classes):
        n_c = int((y == c).sum())
        assert int((d.y_test == c).sum()) == int(round(0.2 * n_c)), f"class {c}"


@pytest.mark.parametrize("name", TOY_DATASETS)
def test_toy_train_and_test_share_no_point(name):
    d = load_dataset(name)
    # continuous noisy points: any shared row would be a leaked sample
    train = {tuple(r) for r in d.x_train.tolist()}
    assert not any(tuple(r) in train for r in d.x_test.tolist())


@pytest.mark.parametrize("name", TOY_DATASETS)
def test_toy_size_follows_n_even_when_odd(name):
    d = fresh_load(name, n=201)
    assert len(d.y_train) + len(d.y_test) == 201


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_split_indices_partition_without_overlap(seed):
    labels = np.repeat(np.arange(5), [10, 11, 3, 40, 1])
    rng = np.random.default_rng(99)
    rng.shuffle(labels)
    tr, te = _split(len(labels), 0.2, labels, seed)
    assert len(set(tr) & set(te)) == 0
    assert sorted(np.concatenate([tr, te]).tolist()) == list(range(len(labels)))
    for c, n_c in zip(range(5), [10, 11, 3, 40, 1]):
        assert int((labels[te] == c).sum()) == int(round(0.2 * n_c))
    tr2, te2 = _split(len(labels), 0.2, labels, seed)
    assert np.array_equal(tr, tr2) and np.array_equal(te, te2)


def test_digits_split_has_no_overlap_with_the_source_rows():
    """Every source image lands on exactly one side (multiset of rows equals the source's)."""
    from sklearn.datasets import load_digits

    d = load_dataset("digits")
    raw = np.round(d.denormalize(torch.cat([d.x_train, d.x_test])).reshape(-1, 64).numpy() * 16).astype(int)
    src = load_digits().data.astype(int)
    key = lambda rows: sorted(map(bytes, rows.astype(np.int8)))  # noqa: E731
    assert key(raw) == key(src)


@pytest.mark.parametrize("name", IMAGE_DATASETS)
def test_images_normalised_with_train_statistics(name):
    d = load_dataset(name)
    # the training split has zero mean and unit variance (population std, as stored)
    assert abs(float(d.x_train.mean())) < 1e-4
    assert abs(float(d.x_train.double().std(unbiased=False)) - 1.0) < 1e-4
    # the stored statistics are the raw train-split statistics
    raw_train = d.denormalize(d.x_train).double()
    assert float(raw_train.mean()) == pytest.approx(d.mean, abs=1e-5)
    assert float(raw_train.std(unbiased=False)) == pytest.approx(d.std, abs=1e-5)
    # ... and not the test split's (which would leak): the test mean is not re-centred
    assert abs(float(d.x_test.mean())) > 1e-6
    assert 0.0 < d.mean < 1.0 and d.std > 0.0


@pytest.mark.parametrize("name", IMAGE_DATASETS)
def test_denormalize_gives_unit_interval(name):
    d = load_dataset(name)
    for x in (d.x_train, d.x_test):
        raw = d.denormalize(x)
        assert raw.dtype == torch.float32
        assert float(raw.min()) >= -1e-6 and float(raw.max()) <= 1.0 + 1e-6
        assert float(raw.min()) == pytest.approx(0.0, abs=1e-6)
        assert float(raw.max()) == pytest.approx(1.0, abs=1e-6)


def test_toy_denormalize_is_identity():
    d = load_dataset("xor")
    assert torch.equal(d.denormalize(d.x_test), d.x_test)


def test_unknown_dataset_raises_with_choices():
    with pytest.raises(ValueError, match="mnist5k"):
        load_dataset("cifar10")


# ---------------------------------------------------------------------------
# train_subset: a seeded, stratified share of the training split


@pytest.mark.parametrize("name, fraction, size, per_class", [
    ("mnist5k", 0.1, 400, [40] * 10),  # 4,000 training digits, 400 per class: exact shares
    ("moons", 0.25, 200, [100, 100]),
    ("digits", 0.001, 10, [1] * 10),  # round(1.4) = 1 sample, but every class keeps one
])
def test_train_subset_sizes_are_exact_and_stratified(name, fraction, size, per_class):
    from sparsity_viz.data import train_subset, train_subset_size

    ds = load_dataset(name)
    sub = train_subset(ds, fraction, seed=0)
    assert len(sub.y_train) == len(sub.x_train) == size == train_subset_size(ds, fraction)
    assert np.bincount(sub.y_train.numpy(), minlength=ds.num_classes).tolist() == per_class


def test_train_subset_keeps_class_shares_up_to_rounding():
    from sparsity_viz.data import train_subset

    ds = load_dataset("digits")  # 1,438 training images, 139-146 per class
    full = np.bincount(ds.y_train.numpy())
    sub = np.bincount(train_subset(ds, 0.25).y_train.numpy())
    assert sub.sum() == round(0.25 * full.sum()) == 360
    assert np.all(np.abs(sub - 0.25 * full) < 1.0)  # largest remainder: each class within one sample of its quota


def test_train_subset_is_seeded_rows_of_the_split_and_leaves_the_input_alone():
    from sparsity_viz.data import train_subset

    ds = load_dataset("moons")
    before = (ds.x_train.clone(), ds.y_train.clone(), dict(ds.params))
    a, b, c = train_subset(ds, 0.1, seed=1), train_subset(ds, 0.1, seed=1), train_subset(ds, 0.1, seed=2)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert not torch.equal(a.x_train, c.x_train)
    rows = {tuple(r) for r in ds.x_train.tolist()}
    assert all(tuple(r) in rows for r in a.x_train.tolist())  # rows of the training split, never of the test split
    assert a.x_test is ds.x_test and a.y_test is ds.y_test  # test split untouched
    assert (a.mean, a.std, a.input_shape, a.class_names) == (ds.mean, ds.std, ds.input_shape, ds.class_names)
    assert torch.equal(ds.x_train, before[0]) and torch.equal(ds.y_train, before[1]) and ds.params == before[2]
    assert load_dataset("moons") is ds and len(ds.y_train) == 800  # the cached, shared dataset is unchanged
    assert a.params["train_fraction"] == 0.1 and "80 of 800 training samples" in a.description
    assert train_subset(ds, 1.0) is ds and train_subset(ds, 1) is ds


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, 1.5, float("nan"), float("inf"), "0.5", None, True])
def test_train_subset_rejects_bad_fractions(bad):
    from sparsity_viz.data import train_subset

    with pytest.raises(ValueError, match=r"train fraction must be a number in \(0, 1\]"):
        train_subset(load_dataset("moons"), bad)
