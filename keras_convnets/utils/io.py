"""Writes that are all or nothing, and durable once they return.

A file is written to a temporary name in its own directory, flushed and fsynced, renamed over the final name, and
the directory is fsynced so that the rename itself survives a power loss. A reader sees the old file or the new
one, never a part. `atomic_directory` does the same for a directory built file by file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from typing import Any, Iterator

__all__ = [
    "atomic_directory",
    "atomic_path",
    "atomic_write",
    "fsync_directory",
    "fsync_tree",
    "write_json_atomic",
    "write_text_atomic",
]


def fsync_directory(path: str | os.PathLike) -> None:
    """Make the entries of a directory (a rename, a new file) durable. A no-op where directories cannot be opened."""
    try:
        fd = os.open(os.fspath(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(root: str | os.PathLike) -> None:
    """fsync every file and directory under `root` (for a directory written by a library that does not)."""
    for directory, _, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            if os.path.islink(path):
                continue
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
        fsync_directory(directory)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", *, encoding: str | None = "utf-8") -> Iterator[Any]:
    """`with atomic_write(path) as f: f.write(...)`: the file appears under `path` only when the block ends
    without an exception; on an exception the temporary file is removed and `path` is untouched."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_directory(directory)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = "", sync_directory: bool = True) -> Iterator[str]:
    """`with atomic_path(path) as tmp: writer(tmp)`, for writers that take a path rather than a file object
    (`tf.io.TFRecordWriter`, `model.save`): the file is written to `.NAME.tmp-PID{suffix}` beside `path`, fsynced
    and renamed over `path` when the block ends without an exception, and the directory fsynced (unless
    `sync_directory=False`: the caller fsyncs it once after several files). On an exception the temporary file
    is removed and `path` is untouched."""
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp-{os.getpid()}{suffix}")
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    if sync_directory:
        fsync_directory(directory)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path) as handle:
        handle.write(text)


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, *, replace: bool = False) -> Iterator[str]:
    """`with atomic_directory(final) as tmp:` fill `tmp`; when the block ends it is fsynced and renamed to `final`.

    `replace=False` refuses an existing `final` (FileExistsError); with `replace=True` the old directory is moved
    aside, the new one put in place, then the old one deleted (deciding *whether* a destination may be replaced is
    the caller's job). On an exception nothing is left but what was at `final` before.
    """
    final = os.path.abspath(os.fspath(path))
    parent = os.path.dirname(final)
    if os.path.lexists(final) and not replace:
        raise FileExistsError(f"{final} exists")
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(final)}.", suffix=".partial", dir=parent)
    try:
        yield tmp
        fsync_tree(tmp)
        if os.path.lexists(final):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(final)}.", suffix=".old", dir=parent)
            os.replace(final, os.path.join(old, "previous"))
            os.replace(tmp, final)
            fsync_directory(parent)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
            fsync_directory(parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
