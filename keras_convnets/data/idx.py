"""IDX files, the format of the MNIST family (MNIST, Fashion-MNIST, KMNIST, EMNIST), read without network.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions), one big-endian
uint32 per dimension, then the values in C order (big-endian for multi-byte types). Files may be gzipped (detected
by their content, not their name). `read_idx` validates all of it and raises a `ValueError` naming the file on a
corrupt header, a truncated body or trailing bytes.

`load_idx_dir(path)` reads a directory holding the four files of the family (`train-images-idx3-ubyte`,
`train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, each optionally `.gz`) as an
`ImageData`. Grayscale is repeated to 3 channels at the source, so every registered (3-channel) model trains on it
and the exported model takes 3 channels; images keep their size (28x28), the pipelines resize them to the recipe's.
"""

from __future__ import annotations

import gzip
import os
import zlib
from typing import Sequence

import numpy as np

from keras_convnets.data.dataset import ImageData

__all__ = ["IDX_FILES", "find_idx_files", "is_idx_dir", "load_idx_dir", "read_idx", "read_idx_dir", "to_rgb"]

# type code -> numpy dtype (big-endian where it matters)
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        raw = f.read()
    if not raw.startswith(GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:  # BadGzipFile is an OSError; a cut stream ends in EOFError
        raise ValueError(
            f"IDX file {path!r} is a corrupt or truncated gzip file ({type(error).__name__}: {error})"
        ) from None


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """The array stored in the IDX file `path` (gzipped or raw), in native byte order."""
    path = os.fspath(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise ValueError(f"IDX file {path!r} is truncated: {len(raw)} bytes, shorter than the 4-byte magic number.")
    zero, code, ndim = raw[:2], raw[2], raw[3]
    if zero != b"\x00\x00" or code not in IDX_DTYPES or ndim == 0:
        raise ValueError(
            f"IDX file {path!r} has a corrupt header: magic number 0x{raw[:4].hex()} (expected 0x0000, a type code "
            f"in {', '.join(f'0x{c:02x}' for c in IDX_DTYPES)} and at least 1 dimension)."
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"IDX file {path!r} is truncated: {len(raw)} bytes, shorter than its {header}-byte header.")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_DTYPES[code])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    body = len(raw) - header
    if body < expected:
        raise ValueError(
            f"IDX file {path!r} is truncated: its header declares shape {dims} of {dtype.name} ({expected} bytes of "
            f"data) but it holds {body}."
        )
    if body > expected:
        raise ValueError(
            f"IDX file {path!r} is corrupt: {body - expected} bytes follow the {expected} bytes of data that its "
            f"header declares (shape {dims} of {dtype.name})."
        )
    array = np.frombuffer(raw, dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="))


def find_idx_files(path: str | os.PathLike) -> dict[str, str] | None:
    """`{"train_images": file, ...}` for the directory `path` when it holds all four files of the MNIST family
    (each raw or `.gz`; raw preferred when both exist), else None."""
    path = os.fspath(path)
    found = {}
    for key, stem in IDX_FILES.items():
        candidates = [os.path.join(path, stem + suffix) for suffix in ("", ".gz")]
        existing = [c for c in candidates if os.path.isfile(c)]
        if not existing:
            return None
        found[key] = existing[0]
    return found


def is_idx_dir(path: str | os.PathLike) -> bool:
    """Whether the directory `path` holds the four IDX files of the MNIST family."""
    return os.path.isdir(path) and find_idx_files(path) is not None


def _check_split(images: np.ndarray, labels: np.ndarray, split: str, files: dict[str, str]) -> None:
    image_file, label_file = files[f"{split}_images"], files[f"{split}_labels"]
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3)):
        raise ValueError(
            f"IDX images {image_file!r} must have shape (N, H, W) or (N, H, W, 1 or 3). Received: shape={images.shape}"
        )
    if images.dtype != np.uint8:
        raise ValueError(f"IDX images {image_file!r} must hold uint8 pixels. Received: dtype={images.dtype}")
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"IDX labels {label_file!r} must be one integer per image. Received: shape={labels.shape}, "
            f"dtype={labels.dtype}"
        )
    if len(labels) != len(images):
        raise ValueError(
            f"IDX files disagree: {image_file!r} holds {len(images)} images but {label_file!r} {len(labels)} labels."
        )
    if len(labels) and labels.min() < 0:
        raise ValueError(f"IDX labels {label_file!r} must not be negative. Received: min={labels.min()}")


def read_idx_dir(path: str | os.PathLike) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """`(x_train, y_train), (x_test, y_test)` of an MNIST-family directory, as `keras.datasets.*.load_data()`
    returns them: uint8 images as stored ((N, H, W) for grayscale) and int32 labels."""
    path = os.fspath(path)
    files = find_idx_files(path) if os.path.isdir(path) else None
    if files is None:
        names = ", ".join(f"{stem}[.gz]" for stem in IDX_FILES.values())
        raise ValueError(f"`path` must be a directory holding the IDX files {names}. Received: path={path!r}")
    arrays = {key: read_idx(file) for key, file in files.items()}
    splits = []
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        _check_split(images, labels, split, files)
        splits.append((images, labels.astype("int32")))
    return splits[0], splits[1]


def to_rgb(images: np.ndarray) -> np.ndarray:
    """uint8 images (N, H, W), (N, H, W, 1) or (N, H, W, 3) as (N, H, W, 3): grayscale is repeated to 3 channels."""
    if images.ndim == 3:
        images = images[..., None]
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    return np.ascontiguousarray(images, dtype=np.uint8)


def load_idx_dir(
    path: str | os.PathLike,
    *,
    name: str | None = None,
    labels: Sequence[str] | None = None,
    horizontal_flip: bool = False,
    notes: Sequence[str] = (),
) -> ImageData:
    """The MNIST-family directory `path` as an `ImageData` of uint8 (H, W, 3) images (grayscale repeated to 3
    channels) and int32 labels, its arrays kept in memory. `labels` (class names) defaults to "0", "1", ...;
    `horizontal_flip` defaults to False (a mirrored digit is another character)."""
    import tensorflow as tf

    path = os.fspath(path)
    (x_train, y_train), (x_test, y_test) = read_idx_dir(path)
    num_classes = int(max(y_train.max(initial=-1), y_test.max(initial=-1))) + 1
    if labels is None:
        labels = [str(i) for i in range(num_classes)]
    labels = [str(label) for label in labels]
    if num_classes > len(labels):
        raise ValueError(
            f"The IDX labels under {path!r} reach class {num_classes - 1} but `labels` names {len(labels)} classes."
        )
    grayscale = x_train.ndim == 3 or x_train.shape[-1] == 1
    x_train, x_test = to_rgb(x_train), to_rgb(x_test)
    height, width = x_train.shape[1:3]
    notes = list(notes) + (["grayscale is repeated to 3 channels"] if grayscale else [])
    return ImageData(
        name=name or os.path.basename(os.path.normpath(path)),
        train=tf.data.Dataset.from_tensor_slices((x_train, y_train)),
        test=tf.data.Dataset.from_tensor_slices((x_test, y_test)),
        num_train=len(x_train),
        num_test=len(x_test),
        labels=labels,
        image_size=int(height) if height == width else None,
        horizontal_flip=horizontal_flip,
        notes=notes,
        train_arrays=(x_train, y_train),
    )
