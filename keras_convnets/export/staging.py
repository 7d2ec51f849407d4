"""Exports are staged: written into a hidden temporary directory beside the destination, made durable (fsync), and
renamed into place only when complete, so that an interrupted export never leaves a partial model under its
final name."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Iterator

from keras_convnets.utils.io import fsync_directory, fsync_tree

__all__ = ["check_destination", "staged"]


def check_destination(path: str, overwrite: bool) -> None:
    if os.path.lexists(path) and not overwrite:
        raise FileExistsError(f"The destination {path!r} exists; pass `overwrite=True` (`--overwrite`) to replace it.")


def _fsync(path: str) -> None:
    """fsync a staged file, or every file and directory of a staged directory (Keras and TensorFlow do not)."""
    if os.path.isdir(path):
        fsync_tree(path)
    elif not os.path.islink(path):
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())


@contextlib.contextmanager
def staged(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[tuple[str, str]]:
    """Yield `(staging_path, scratch_dir)` in a hidden directory beside `path`; when the block completes,
    fsync the staged file or directory and rename it to `path` (replacing it only with `overwrite`), then fsync
    the parent directory. On any error or interruption the staging directory is removed and `path` is left as
    it was."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`path` must be a path. Received: path={path!r}")
    path = os.path.abspath(os.fspath(path))
    check_destination(path, overwrite)
    parent, base = os.path.split(path)
    os.makedirs(parent, exist_ok=True)
    root = tempfile.mkdtemp(prefix=f".{base}.partial-", dir=parent)
    try:
        scratch = os.path.join(root, "scratch")
        os.mkdir(scratch)
        staging = os.path.join(root, base)
        yield staging, scratch
        if not os.path.lexists(staging):
            raise RuntimeError(f"Nothing was staged for {path!r}.")
        _fsync(staging)
        fsync_directory(root)
        check_destination(path, overwrite)
        if os.path.lexists(path) and (os.path.isdir(path) or os.path.isdir(staging)):
            os.rename(path, os.path.join(root, "previous"))  # removed with the staging directory
        os.replace(staging, path)
        fsync_directory(parent)
    finally:
        shutil.rmtree(root, ignore_errors=True)
