"""A results store: a sweep's finished points on disk as they arrive, so an interrupted sweep resumes.

One CSV file (or a directory holding one ``<run_id>.csv`` per run). Each row is
one finished point, keyed by ``run_id`` and ``point`` (``strategy/seed/level``),
then the sweep's columns; each run's configuration is written once, before its
first row, as ``# run_id: ...`` / ``# key: <json>`` comment lines
(``run_config.header_lines``). A row is written with one ``write`` and flushed,
so a killed sweep loses at most the row being written: a truncated last line
is ignored with a warning when read, and cut before the next row is appended.
``pandas.read_csv(path, comment="#")`` reads the rows of every run.
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from .run_config import header_lines, read_header, run_id

KEY_COLUMNS = ["run_id", "point"]


def point_key(strategy: str, seed: int, level: float) -> str:
    """A point's key within a run: ``strategy/seed/level`` (the level as its shortest exact repr)."""
    return f"{strategy}/{int(seed)}/{float(level)!r}"


def store_path(store: str | Path, run_id: str) -> Path:
    """The file a run is stored in: ``store`` itself, or ``store/<run_id>.csv`` when it is a directory
    (an existing one, a path ending in a slash, or a path without a suffix)."""
    path = Path(store).expanduser()
    named_folder = str(store).endswith(("/", os.sep))  # pathlib drops the slash: runs.v2/ became a file runs.v2
    if path.is_dir() or named_folder or (not path.exists() and not path.suffix):
        return path / f"{run_id}.csv"
    return path


class ResultsStore:
    """The rows of one run in a store file: read what is there, append finished points one by one."""

    def __init__(self, store: str | Path, run_id: str, config: Mapping[str, Any] | None = None,
                 columns: list[str] | None = None):
        """
        Args:
            store: a ``.csv`` file, or a directory (one file per run id); created on the first row.
            run_id: the run's id (``run_config.run_id``); rows of other runs are never read back.
            config: the run's configuration, written once before its first row.
            columns: the columns this run's rows have (after the key columns); a file with others is refused when
                it is read, before any work.
        """
        if not run_id or any(c in run_id for c in "/,\n#"):
            raise ValueError(f"A run id is a short plain name (no '/', ',', '#' or newline), got {run_id!r}.")
        self.run_id = run_id
        self.config = dict(config) if config is not None else None
        self.path = store_path(store, run_id)
        if self.path.exists() and not self.path.is_file():  # a FIFO waited forever, /dev/full was read until OOM
            raise ValueError(f"The results store {self.path} is not a regular file; give a .csv file or a folder.")
        blocking = next((a for a in self.path.parents if a.exists()), None)  # its folder is made on the first row:
        if blocking is not None and not blocking.is_dir():  # a file in the way failed only after the work
            raise ValueError(f"The results store {self.path} cannot be made: {blocking} is a file, not a folder.")
        writable = os.access(self.path, os.W_OK) if self.path.exists() else (
            blocking is not None and os.access(blocking, os.W_OK | os.X_OK))
        if not writable:  # a read-only folder failed on the first row, after its work
            raise ValueError(f"The results store {self.path} is not writable here; give another store path.")
        self._expected = KEY_COLUMNS + list(columns) if columns is not None else None
        self._columns: list[str] | None = None
        self._has_config = False

    def rows(self) -> dict[str, dict]:
        """``{point key: row}`` of this run already in the store (without the key columns)."""
        frame = self._read()
        if frame is None:
            return {}
        mine = frame[frame["run_id"] == self.run_id]
        return {key: {c: v for c, v in row.items() if c not in KEY_COLUMNS}
                for key, row in zip(mine["point"], mine.to_dict("records"))}

    def frame(self) -> pd.DataFrame:
        """This run's rows as a DataFrame (key columns dropped; empty when none)."""
        rows = list(self.rows().values())
        return pd.DataFrame(rows, columns=self._columns[len(KEY_COLUMNS):] if self._columns else None)

    def append(self, key: str, row: Mapping[str, Any]) -> None:
        """Write one finished point and flush it to the file."""
        columns = KEY_COLUMNS + list(row)
        if self._columns is None:
            self._read()  # learns the file's columns and whether this run's configuration is there
        if self._columns is not None and self._columns != columns:
            raise ValueError(f"The results store {self.path} has columns {self._columns[len(KEY_COLUMNS):]}, "
                             f"this sweep writes {list(row)}: use another store file.")
        out = io.StringIO()
        if self.config is not None and not self._has_config:
            out.write("\n".join(header_lines(self.config)) + "\n")
        writer = csv.writer(out, lineterminator="\n")
        if self._columns is None:
            writer.writerow(columns)
        writer.writerow([self.run_id, key, *row.values()])
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _drop_torn_line(self.path)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(out.getvalue())
            fh.flush()
        self._columns, self._has_config = columns, self._has_config or self.config is not None

    def _read(self) -> pd.DataFrame | None:
        """Every complete row in the file (a torn last line is dropped with a warning); None: no file or rows."""
        if not self.path.exists():
            return None
        try:
            text = self.path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:  # the CLI printed "error: utf-8"
            raise ValueError(f"{self.path} is not a sparsity_viz results store: not UTF-8 text (byte {exc.start}). "
                             "Give another store path.") from None
        lines = text.split("\n")
        if lines and lines[-1] != "":
            if not _store_start(lines[0]):  # cutting the "torn" line wiped a one-line JSON file given as --store
                shown = lines[0][:40] + ("..." if len(lines[0]) > 40 else "")
                raise ValueError(f"{self.path} is not a sparsity_viz results store: it starts {shown!r}; a store starts "
                                 f"with '# run_id:' or '{','.join(KEY_COLUMNS)}'. Give another store path.")
            warnings.warn(f"{self.path}: the last line is incomplete (a sweep stopped while writing it); "
                          "ignoring it.", stacklevel=3)
        lines = lines[:-1]
        comments = [ln for ln in lines if ln.startswith("#")]
        starts = [i for i, ln in enumerate(comments) if ln.startswith("# run_id:")]
        for start, end in zip(starts, [*starts[1:], len(comments)]):
            if self._complete_header(comments[start:end]):
                self._has_config = True
        data = [ln for ln in lines if ln and not ln.startswith("#")]
        if not data:
            return None
        header = next(csv.reader([data[0]]))
        if header[:len(KEY_COLUMNS)] != KEY_COLUMNS:
            shown = ", ".join(header[:4]) + (", ..." if len(header) > 4 else "")
            raise ValueError(f"{self.path} is not a sparsity_viz results store: its columns start {shown or '(none)'}, "
                             f"a store's start {', '.join(KEY_COLUMNS)}. Give another store path.")
        if self._expected is not None and header != self._expected:  # an edited header read values as other columns
            raise ValueError(f"The results store {self.path} has columns {header[len(KEY_COLUMNS):]}, "
                             f"this sweep writes {self._expected[len(KEY_COLUMNS):]}: use another store file.")
        self._columns = header
        good, bad = [data[0]], 0
        for ln in data[1:]:
            fields = next(csv.reader([ln]), [])
            if fields == header:  # the column row again (two stores joined with cat): every value was read as text
                continue
            if len(fields) == len(header) and fields[0] and not fields[0].startswith("#"):
                good.append(ln)
            else:
                bad += 1
        if bad:
            warnings.warn(f"{self.path}: ignoring {bad} incomplete row(s) (a sweep stopped while writing).",
                          stacklevel=3)
        frame = pd.read_csv(io.StringIO("\n".join(good) + "\n"),  # pandas >= 3: floats round-trip
                            dtype={"run_id": str, "point": str})
        return frame.drop_duplicates(KEY_COLUMNS, keep="first")


    def _complete_header(self, block: list[str]) -> bool:
        """Whether ``block`` (one ``# run_id:`` line and the comments after it) states this run's whole configuration:
        its lines hash to the run id. A store cut inside the header kept the run id line only, and the missing
        configuration was never written again (an audit)."""
        try:
            config, stated = read_header(block)
        except ValueError:
            return False
        return stated == self.run_id and bool(config) and run_id(config) == self.run_id


def _store_start(line: str) -> bool:
    """Whether a file whose first line is ``line`` can be a store (or one torn while its first line was written)."""
    return any(line.startswith(start) or start.startswith(line) for start in ("# run_id:", ",".join(KEY_COLUMNS)))


def _drop_torn_line(path: Path) -> None:
    """Cut a torn last line (no newline: its writer was killed) so the next row starts on a line of its own."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as fh:
        data = fh.read()
        if not data.endswith(b"\n"):
            fh.truncate(data.rfind(b"\n") + 1)
