"""Writing a file whole or not at all: the bytes go to a temporary file beside the target, which then replaces it.

A failed write (a full disk, a killed process) leaves the file that was there as it was, and no empty or half-written
file. Only a new name or a regular file is written: a device, FIFO or folder named as the target is refused, since
renaming a temporary file over it would replace the device itself. Every save of the library and the CLI goes
through ``write_atomically``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

_UMASK = os.umask(0)  # read once at import: os.umask can only be read by setting it
os.umask(_UMASK)


def write_atomically(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` in one step; an OSError names the path."""
    path = Path(path)
    if path.is_symlink():  # the link keeps pointing at the file it names, which is what gets replaced
        path = path.resolve()
    exists = path.exists()
    if exists and not path.is_file():
        raise OSError(f"cannot write {path}: it is not a regular file; give a file name")
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    mode = path.stat().st_mode & 0o777 if exists else 0o666 & ~_UMASK  # as a plain open would leave it
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}") from exc
        raise
    return path
