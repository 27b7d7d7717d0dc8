"""A save is whole or absent: a failed write leaves the previous file as it was and no half-written one (an audit
filled a small disk under every saving subcommand: each truncated the existing output to a fragment, or left an
empty file)."""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path

import pytest

from sparsity_viz import atomic_write
from sparsity_viz.atomic_write import write_atomically

ROOT = Path(__file__).resolve().parent.parent


def test_writes_bytes_and_text_with_a_plain_files_mode(tmp_path):
    write_atomically(tmp_path / "a.bin", b"\x00\x01")
    write_atomically(tmp_path / "b.csv", "x,y\n1,é\n")
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "b.csv").read_text(encoding="utf-8") == "x,y\n1,é\n"
    assert stat.S_IMODE((tmp_path / "a.bin").stat().st_mode) == 0o666 & ~atomic_write._UMASK
    (tmp_path / "a.bin").chmod(0o640)
    write_atomically(tmp_path / "a.bin", b"new")  # a replaced file keeps its mode
    assert stat.S_IMODE((tmp_path / "a.bin").stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.csv"]  # no temporary file left


@pytest.mark.parametrize("failing", ["write", "fsync", "replace"])
def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path, monkeypatch, failing):
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"the previous good output")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    if failing == "write":
        real = os.fdopen
        monkeypatch.setattr(os, "fdopen", lambda fd, mode: _FailingFile(real(fd, mode)))
    else:
        monkeypatch.setattr(os, failing, full)
    with pytest.raises(OSError, match=f"cannot write {re.escape(str(target))}: No space left on device"):
        write_atomically(target, b"x" * 10_000)
    assert target.read_bytes() == b"the previous good output"
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]
    with pytest.raises(OSError):
        write_atomically(tmp_path / "new.csv", "a,b\n")
    assert not (tmp_path / "new.csv").exists()


class _FailingFile:
    def __init__(self, fh):
        self.fh = fh

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.fh.close()

    def write(self, data):
        self.fh.write(data[:100])
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_link_keeps_pointing_at_the_file_it_names(tmp_path):
    (tmp_path / "real.csv").write_text("old")
    (tmp_path / "link.csv").symlink_to(tmp_path / "real.csv")
    write_atomically(tmp_path / "link.csv", "new")
    assert (tmp_path / "link.csv").is_symlink() and (tmp_path / "real.csv").read_text() == "new"


def test_devices_and_folders_are_refused_not_replaced(tmp_path):
    for target in (tmp_path, Path("/dev/null")):
        with pytest.raises(OSError, match="not a regular file"):
            write_atomically(target, b"x")
    assert Path("/dev/null").is_char_device()
    with pytest.raises(OSError, match="cannot write"):
        write_atomically(tmp_path / "missing" / "x.csv", "x")


def test_every_save_goes_through_it():
    """No module of the library writes a user's file another way (the kernel build cache is its own business, and a
    results store is an append-only log whose torn last line is dropped when it is read)."""
    allowed = {"atomic_write.py", "kernels.py", "results_store.py"}
    pattern = re.compile(r"\.write_bytes\(|\.write_text\(|open\([^)]*['\"][wa]b?['\"]|\.write_html\(|\.write_image\(")
    offenders = [f"{p.relative_to(ROOT)}:{i}" for p in (ROOT / "sparsity_viz").rglob("*.py") if p.name not in allowed
                 for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == []
