"""Exports are staged: written into a hidden temporary directory beside the destination, made durable (fsync), and
renamed into place only when complete, so that an interrupted export never leaves a partial model under its
final name.

`overwrite` replaces only what an export wrote: a directory that is a previous export (it holds the format's
marker file, `model_card.json` for a bundle, `saved_model.pb` for a SavedModel) or is empty, or a regular file
where the format writes a file (`.tflite`). A destination that is, or contains, the source of the export or the
working directory is refused, as is any other non-empty directory: nothing is deleted that an export did not
write."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Iterator, Sequence

from keras_convnets.utils.io import fsync_directory, fsync_tree

__all__ = ["BUNDLE_MARKER", "check_destination", "staged"]

BUNDLE_MARKER = "model_card.json"
KINDS = ("directory", "file")


def _within(inner: str, outer: str) -> bool:
    """Whether `inner` is `outer` or lies under it (both resolved: links, `..`)."""
    inner, outer = os.path.realpath(inner), os.path.realpath(outer)
    return inner == outer or inner.startswith(outer.rstrip(os.sep) + os.sep)


def _refused(path: str, why: str) -> ValueError:
    return ValueError(
        f"The destination {path!r} is not replaced: it {why}. `overwrite` replaces only a previous export; "
        f"choose another destination. Received: destination={path!r}"
    )


def check_destination(
    path: str | os.PathLike,
    overwrite: bool,
    *,
    kind: str = "directory",
    marker: str | None = BUNDLE_MARKER,
    sources: Sequence[str | os.PathLike] = (),
) -> None:
    """Raise unless an export of `kind` (`"directory"`, or `"file"`) may be written at `path`.

    A free path always passes. An existing one raises `FileExistsError` without `overwrite`; with it, raises
    `ValueError` when the path is, or contains, one of `sources` or the working directory, or is not what an
    export of this kind writes: for a directory, an empty one or one holding `marker` (a previous export); for a
    file, a regular file."""
    if kind not in KINDS:
        raise ValueError(f"`kind` must be one of {', '.join(map(repr, KINDS))}. Received: kind={kind!r}")
    path = os.path.abspath(os.fspath(path))
    if not os.path.lexists(path):
        return
    if not overwrite:
        raise FileExistsError(f"The destination {path!r} exists; pass `overwrite=True` (`--overwrite`) to replace it.")
    if os.path.islink(path):
        return  # the link is replaced, never what it points to
    for source in sources:
        if _within(os.path.abspath(os.fspath(source)), path):
            what = "is" if os.path.realpath(source) == os.path.realpath(path) else "contains"
            raise _refused(path, f"{what} the source of the export ({os.fspath(source)!r})")
    if _within(os.getcwd(), path):
        what = "is" if os.path.realpath(os.getcwd()) == os.path.realpath(path) else "contains"
        raise _refused(path, f"{what} the working directory")
    if os.path.isdir(path):
        if kind == "file":
            raise _refused(path, "is a directory, and this export writes a file")
        entries = os.listdir(path)
        if entries and not (marker and os.path.isfile(os.path.join(path, marker))):
            raise _refused(
                path,
                f"is a directory of {len(entries)} {'entry' if len(entries) == 1 else 'entries'} that is not a "
                f"previous export (no {marker or 'marker'})",
            )
    elif os.path.isfile(path):
        if kind == "directory":
            raise _refused(path, "is a file, and this export writes a directory")
    else:
        raise _refused(path, "is neither a regular file nor a directory")


def _fsync(path: str) -> None:
    """fsync a staged file, or every file and directory of a staged directory (Keras and TensorFlow do not)."""
    if os.path.isdir(path):
        fsync_tree(path)
    elif not os.path.islink(path):
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())


@contextlib.contextmanager
def staged(
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    kind: str = "directory",
    marker: str | None = BUNDLE_MARKER,
    sources: Sequence[str | os.PathLike] = (),
) -> Iterator[tuple[str, str]]:
    """Yield `(staging_path, scratch_dir)` in a hidden directory beside `path`; when the block completes,
    fsync the staged file or directory and rename it to `path` (replacing it only with `overwrite`, and only
    where `check_destination` allows it, checked before and again just before the rename), then fsync the
    parent directory. On any error or interruption the staging directory is removed and `path` is left as it
    was."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`path` must be a path. Received: path={path!r}")
    path = os.path.abspath(os.fspath(path))
    rules = dict(kind=kind, marker=marker, sources=sources)
    check_destination(path, overwrite, **rules)
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
        check_destination(path, overwrite, **rules)
        if os.path.lexists(path) and (os.path.isdir(path) or os.path.isdir(staging)):
            os.rename(path, os.path.join(root, "previous"))  # removed with the staging directory
        os.replace(staging, path)
        fsync_directory(parent)
    finally:
        shutil.rmtree(root, ignore_errors=True)
