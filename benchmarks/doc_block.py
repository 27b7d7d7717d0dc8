"""Write a benchmark's result table into a doc, between its begin/end markers (appended if the markers are new)."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path


INTERLEAVED = "bursts of ~1 ms after one untimed call, order shuffled per round"  # how bench.interleaved_ratios times


def write_block(doc: Path, name: str, table: str) -> None:
    """Replace the text between ``<!-- {name}:begin -->`` and ``<!-- {name}:end -->`` in ``doc`` with ``table``."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = doc.read_text()
    block = f"{begin}\n{table}\n{end}"
    if begin in text:
        text = re.sub(re.escape(begin) + r".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    doc.write_text(text)
    print(f"wrote {doc}")


def rounds_args(description: str, argv: list[str] | None = None, default_rounds: int = 21) -> argparse.Namespace:
    """The command line of a timing benchmark: ``--rounds`` (interleaved rounds, >= 1) and ``--no-write``."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--rounds", type=int, default=default_rounds)
    ap.add_argument("--no-write", action="store_true", help="print the table, leave the doc alone")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be >= 1")
    return args


def command(script: str, argv: list[str] | None = None) -> str:
    """The command line that produced a table, as its header quotes it: ``python benchmarks/<script> <args>``."""
    args = sys.argv[1:] if argv is None else argv
    return " ".join(["python", f"benchmarks/{script}", *args])


def publish(doc: Path, name: str, table: str, write: bool) -> None:
    """Print ``table``; with ``write``, also put it into ``doc`` (``write_block``)."""
    print(table)
    if write:
        write_block(doc, name, table)


def cpu_line() -> str:
    """The CPU a table was measured on: model, family/model numbers, per-core L1d and L2, the widest vector ISA.

    The sandbox's machines change between sessions (an Intel core with a 48 KB L1d on one day, an AMD Zen 4
    with 32 KB on another), and the kernels' ratios move with them, so every timing table names its CPU.
    """
    import platform

    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
            if key.strip() == "flags":
                break
    except OSError:
        return platform.machine() or "unknown CPU"
    caches = []
    for level, kind, label in (("1", "Data", "L1d"), ("2", "Unified", "L2")):
        for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
            try:
                if (index / "level").read_text().strip() == level and (index / "type").read_text().strip() == kind:
                    caches.append(f"{label} {(index / 'size').read_text().strip()}B")
            except OSError:
                continue
    flags = set(info.get("flags", "").split())
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else platform.machine()
    parts = [f"family {info['cpu family']}, model {info['model']}"] if "cpu family" in info and "model" in info else []
    parts += [*caches, isa]
    return f"{info.get('model name', platform.machine())} ({', '.join(parts)})"
