"""The command line's argument types: each parses one value or list and refuses a bad one with argparse's
one line, before any work (an output file's folder exists and is writable, lists are never empty or repeated,
seeds, epochs, threads and learning rates are bounded)."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from .devices import DEVICE_CHOICES


class CliError(Exception):
    """A user mistake; printed as one line."""


def number_arg(text: str, ok, not_a_number: str, out_of_range: str) -> float:
    """``float(text)`` when ``ok`` says it is in range; otherwise argparse's error with the message that fits."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(not_a_number) from None
    if not ok(value):  # NaN fails every comparison: out of range
        raise argparse.ArgumentTypeError(out_of_range)
    return value + 0.0  # -0 reads as 0 (printed "-0.0%" before)


def fraction_arg(text: str) -> float:
    return number_arg(text, lambda v: 0.0 <= v <= 1.0, f"sparsity must be a number in [0, 1], got {text!r}",
                      f"sparsity must be in [0, 1], got {text}")


def rate_arg(text: str) -> float:
    return number_arg(text, lambda v: 0.0 <= v < 1.0, f"rate must be a number in [0, 1), got {text!r}",
                      f"rate must be in [0, 1), got {text}")


def train_fraction_arg(text: str) -> float:
    """A share of the training split, in (0, 1]."""
    return number_arg(text, lambda v: 0.0 < v <= 1.0, f"train fraction must be a number in (0, 1], got {text!r}",
                      f"train fraction must be in (0, 1], got {text}")


MAX_EPOCHS = 10_000  # a typo guard: 10**12 epochs would run until killed
MAX_NAME_BYTES = 255  # one file name (Linux NAME_MAX)


def listed_items(text: str) -> list[str]:
    """The items of a comma-separated list: at least one, none empty (``0.5,,0.9`` is a typo, not two levels)."""
    items = [t.strip() for t in text.split(",")]
    if not any(items):
        raise argparse.ArgumentTypeError(f"expected at least one comma-separated value, got {_clipped(text)}")
    if not all(items):
        raise argparse.ArgumentTypeError(f"an empty item in the list {_clipped(text)}")
    return items


def distinct_items(values: list, text: str) -> list:
    """``values`` when no two are equal (a repeated level or seed would be counted twice, or dropped silently)."""
    seen = set()
    for v in values:
        if v in seen:
            raise argparse.ArgumentTypeError(f"{v} is listed twice in {_clipped(text)}")
        seen.add(v)
    return values


def _clipped(text: str, limit: int = 80) -> str:
    """``text`` quoted for a message, at most ``limit`` characters of it (a 100 kB argument is not echoed whole)."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text):,} characters)"


def fractions_arg(text: str) -> list[float]:
    """A non-empty comma-separated list of distinct fractions in [0, 1]."""
    return distinct_items([fraction_arg(t) for t in listed_items(text)], text)


def ints_arg(text: str) -> list[int]:
    """Comma-separated distinct integers (may be empty: ``--prune-experts ''``)."""
    if not text.strip():
        return []
    try:
        values = [int(t) for t in listed_items(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if len(set(values)) != len(values):  # `--prune-experts 0,0` was taken as two experts pruned
        raise argparse.ArgumentTypeError(f"each integer once, got {text!r}")
    return values


def bounded_int_arg(text: str, low: int, high: int, what: str) -> int:
    """A whole number in [low, high]; the message names ``what``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be a whole number from {low} to {high}, got {text!r}") from None
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"{what} must be from {low} to {high}, got {value}")
    return value


def epochs_arg(text: str) -> int:
    return bounded_int_arg(text, 0, MAX_EPOCHS, "epochs")


def seed_arg(text: str) -> int:
    from .pruning.base import MAX_SEED

    return bounded_int_arg(text, 0, MAX_SEED, "a seed")


def seeds_arg(text: str) -> list[int]:
    """A non-empty comma-separated list of distinct seeds."""
    return distinct_items([seed_arg(t) for t in listed_items(text)], text)


def repeats_arg(text: str) -> int:
    return bounded_int_arg(text, 1, 10_000, "repeats")


def workers_arg(text: str) -> int:
    """Sweep worker processes: 1 to the CPUs this process may use (more only take turns on them)."""
    from .devices import usable_cpus

    return bounded_int_arg(text, 1, usable_cpus(), "workers")


def threads_arg(text: str) -> int:
    """Torch threads: 1 to this machine's CPU count (more never helps, and 10**5 threads crash library imports)."""
    return bounded_int_arg(text, 1, os.cpu_count() or 1, "threads")


def lr_arg(text: str) -> float:
    """A learning rate: a finite number in (0, ``training.MAX_LR``], checked even where no epoch would use it."""
    from .training import MAX_LR

    return number_arg(text, lambda v: math.isfinite(v) and 0 < v <= MAX_LR,
                      f"a learning rate is a number, got {_clipped(text)}",
                      f"a learning rate is a positive number up to {MAX_LR:g}, got {text}")


def finite_nonnegative_arg(text: str) -> float:
    return number_arg(text, lambda v: math.isfinite(v) and v >= 0, f"expected a finite number >= 0, got {text!r}",
                      f"expected a finite number >= 0, got {text}")


def nonempty_arg(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, got ''")
    return text


def names_arg(text: str) -> list[str]:
    """A non-empty comma-separated list of distinct names."""
    return distinct_items(listed_items(text), text)


def output_arg(text: str) -> str:
    """A file to write: not empty, not a directory, in a writable directory that exists (checked before any work)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected an output file name, got ''")
    path = Path(text).expanduser()
    if any(len(part.encode()) > MAX_NAME_BYTES for part in path.parts):  # stat() itself would fail on it
        raise argparse.ArgumentTypeError(f"a file or folder name is longer than {MAX_NAME_BYTES} bytes")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory; give a file name")
    if path.exists() and not path.is_file():  # a device or FIFO: a save would not be a file
        raise argparse.ArgumentTypeError(f"{text} is not a regular file; give a file name")
    folder = path.parent
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"the folder {folder} does not exist (or is not a folder); create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"the folder {folder} is not writable")
    if _is_bundled_file(path):  # `--out sample_models/moons_mlp.safetensors` replaced a bundled model (an audit)
        raise argparse.ArgumentTypeError(f"{text} is a bundled model's file; write elsewhere (the bundled models are "
                                         "made again by `python -m sparsity_viz train-samples`)")
    return str(path)  # "~" expanded: the writers open it as given


def _is_bundled_file(path: Path) -> bool:
    """Whether ``path`` is an existing file of the bundled models' folder (``checkpoints.SAMPLE_DIR``)."""
    from . import checkpoints  # noqa: PLC0415 - read now: the folder can be set by SPARSITY_VIZ_SAMPLES

    folder = Path(checkpoints.SAMPLE_DIR)
    if not path.is_file() or not folder.is_dir():
        return False
    return any(f.is_file() and os.path.samefile(f, path) for f in folder.iterdir())


def directory_arg(text: str) -> str:
    """A folder to write into: not empty, an existing writable folder or a new one in a writable folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a folder, got ''")
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder")
    existing = path if path.is_dir() else path.parent
    if not existing.is_dir():
        raise argparse.ArgumentTypeError(f"the folder {existing} does not exist (or is not a folder); create it first")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"the folder {existing} is not writable")
    return str(path)


def safetensors_output_arg(text: str) -> str:
    """An ``output_arg`` that is a .safetensors file (a name without a suffix gets it; any other suffix is refused)."""
    path = Path(output_arg(text))
    if path.suffix == "":
        return str(path.with_suffix(".safetensors"))
    if path.suffix != ".safetensors":
        raise argparse.ArgumentTypeError(f"this writes safetensors: name the file .safetensors, not {path.suffix}")
    return str(path)


def add_common_args(p: argparse.ArgumentParser, model: bool = True) -> None:
    if model:
        p.add_argument("--model", required=True, help="bundled model name (see `python -m sparsity_viz models`)")
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    p.add_argument("--threads", type=threads_arg, default=None, help="torch threads (default: 1, measured fastest here)")


def same_file(a: str, b: str) -> bool:
    """Whether two output arguments name one file (the same path, or two names of one existing file)."""
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    if pa.exists() and pb.exists():
        return os.path.samefile(pa, pb)
    return pa.resolve() == pb.resolve()
