"""Write a benchmark's result table into a doc, between its begin/end markers (appended if the markers are new)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path


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


def publish(doc: Path, name: str, table: str, write: bool) -> None:
    """Print ``table``; with ``write``, also put it into ``doc`` (``write_block``)."""
    print(table)
    if write:
        write_block(doc, name, table)
