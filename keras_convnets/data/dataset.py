"""`ImageData`, the splits of an image-classification dataset, and the ways to cut it: `holdout_validation` (a
seeded validation split out of the training set) and `subset` (seeded samples of the training and test splits).

A split is a `tf.data.Dataset` of unbatched `(raw uint8 image, int32 label)`. Beside it, a source may keep the
split's files (`train_files`, `test_files`, `validation_files`: paths and labels; the pipelines permute those
before decoding), its encoded images (`train_encoded`, `test_encoded`, `validation_encoded`: an `EncodedSplit`,
for TFRecord shards and tensorflow-datasets; the pipelines decode only the crops they keep) or the training images
themselves (`train_arrays`). `subset` and `holdout_validation` cut all of them with the datasets; a split cut by
hand no longer matches them (their count differs), and they are then left alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import tensorflow as tf

from keras_convnets.utils.validation import check_int, check_number

__all__ = ["EncodedSplit", "ImageData", "holdout_validation", "subset"]

AUTOTUNE = tf.data.AUTOTUNE


@dataclass(frozen=True)
class EncodedSplit:
    """A split as `count` encoded images (JPEG, PNG, ...) with int32 labels. `read(shard, shards)` is the dataset of
    unbatched `(encoded bytes, label)` of shard `shard` of `shards` in a fixed order: one shard per input pipeline,
    so that each worker reads only its own part of the files (`files`, when the split is a list of record files).
    The pipelines shuffle it and decode only what they keep (`keras_convnets.data.decode`).

    `read_numbered(shard, shards)`, where the source can number its examples in any shard (TFRecord files, whose
    record counts are known), yields `(position in the split, bytes, label)`: a cut of the split (`subset`,
    `holdout_validation`) then keeps each worker reading only its files; without it, a cut is read whole and each
    pipeline keeps every `shards`-th example."""

    count: int
    read: Callable[[int, int], tf.data.Dataset]
    files: tuple[str, ...] = ()
    read_numbered: Callable[[int, int], tf.data.Dataset] | None = None

    def cut(self, indices: np.ndarray) -> EncodedSplit:
        """The examples at the sorted `indices` (positions in the split's order, that of `read(0, 1)` without a
        `read_numbered`), renumbered 0 .. len(indices) - 1 in their order."""
        keep = np.zeros(self.count, dtype=bool)
        keep[indices] = True
        kept, rank = tf.constant(keep), tf.constant(np.cumsum(keep) - 1, tf.int64)
        source = self

        def kept_position(position, *example):
            return tf.gather(kept, position)

        if source.read_numbered is not None:

            def renumbered(position, x, y):
                return tf.gather(rank, position), x, y

            def without_position(position, x, y):
                return x, y

            def read_numbered(shard: int, shards: int) -> tf.data.Dataset:
                return source.read_numbered(shard, shards).filter(kept_position).map(renumbered)

            def read(shard: int, shards: int) -> tf.data.Dataset:
                return read_numbered(shard, shards).map(without_position)

            return EncodedSplit(len(indices), read, source.files, read_numbered)

        def example_only(position, example):
            return example

        def read(shard: int, shards: int) -> tf.data.Dataset:
            ds = source.read(0, 1).enumerate().filter(kept_position).map(example_only)
            return ds if shards == 1 else ds.shard(shards, shard)

        return EncodedSplit(len(indices), read, source.files)


@dataclass
class ImageData:
    """A dataset split in two (three with a `validation` split): `train`, `test` (and `validation`) yield
    unbatched `(image, label)` with raw uint8 pixels (H, W, 3) and int32 labels. `image_size` is the side of every
    image when they all share one, else None."""

    name: str
    train: tf.data.Dataset
    test: tf.data.Dataset
    num_train: int
    num_test: int
    labels: list[str]
    image_size: int | None = None
    horizontal_flip: bool = True  # False where a mirrored image changes meaning (digits)
    suggested_epochs: int | None = None  # a good short run (the embedded data)
    suggested_batch_size: int | None = None
    notes: list[str] = field(default_factory=list)
    train_arrays: tuple[np.ndarray, np.ndarray] | None = None  # (images, labels) when already in memory
    validation: tf.data.Dataset | None = None  # held out of the training set (`holdout_validation`)
    num_validation: int = 0
    train_files: tuple[np.ndarray, np.ndarray] | None = None  # (paths, labels) of an image folder's train split
    test_files: tuple[np.ndarray, np.ndarray] | None = None  # the same for its test split
    validation_files: tuple[np.ndarray, np.ndarray] | None = None  # and for a validation split held out of them
    train_encoded: EncodedSplit | None = None  # the training images encoded (TFRecord shards, tensorflow-datasets)
    test_encoded: EncodedSplit | None = None  # the same for the test split
    validation_encoded: EncodedSplit | None = None  # and for a validation split held out of them

    @property
    def num_classes(self) -> int:
        return len(self.labels)


def _matching(pair, count: int):
    """`pair` (arrays or files) when it still describes a split of `count` examples, else None (a split cut by
    hand, e.g. `dataclasses.replace(data, train=data.train.take(n), num_train=n)`, leaves them behind)."""
    return pair if pair is not None and len(pair[0]) == count else None


def train_arrays_of(data: ImageData):
    return _matching(data.train_arrays, data.num_train)


def train_files_of(data: ImageData):
    return _matching(data.train_files, data.num_train)


def files_of(data: ImageData, split: str):
    """The (paths, labels) of `split` ("train", "validation" or "test") when they still describe it, else None."""
    return _matching(getattr(data, f"{split}_files"), getattr(data, f"num_{split}"))


def encoded_of(data: ImageData, split: str) -> EncodedSplit | None:
    """The encoded images of `split` when they still describe it (same count), else None."""
    encoded = getattr(data, f"{split}_encoded", None)
    return encoded if encoded is not None and encoded.count == getattr(data, f"num_{split}") else None


def decode_image(path, label):
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return tf.cast(image, tf.uint8), label


def read_file(path, label):
    """`(encoded bytes, label)` of an image file, for the fused decode."""
    return tf.io.read_file(path), label


def files_dataset(paths, labels) -> tf.data.Dataset:
    """The images of `paths`, decoded in parallel in their order, with `labels`; unreadable files are dropped."""
    paths = tf.constant(np.asarray(paths, dtype=object).astype(str) if len(paths) else [], tf.string)
    labels = tf.constant(np.asarray(labels, dtype="int32"), tf.int32)
    ds = tf.data.Dataset.from_tensor_slices((paths, labels))
    return ds.map(decode_image, num_parallel_calls=AUTOTUNE, deterministic=True).ignore_errors()


def _select(ds: tf.data.Dataset, count: int, indices: np.ndarray) -> tf.data.Dataset:
    """The elements of `ds` (of `count` elements) at the sorted `indices`, in their order."""
    keep = np.zeros(count, dtype=bool)
    keep[indices] = True
    mask = tf.constant(keep)

    def kept(i, xy):
        return mask[i]

    def element(i, xy):
        return xy

    return ds.enumerate().filter(kept).map(element)


def _pick(ds, count: int, indices: np.ndarray, *, files=None, arrays=None, encoded=None):
    """The examples at the sorted `indices` of a split: (dataset, files, arrays, encoded), each cut from what
    exists."""
    encoded = encoded.cut(indices) if encoded is not None else None
    if files is not None:
        files = (files[0][indices], files[1][indices])
        return files_dataset(*files), files, None, encoded
    if arrays is not None:
        arrays = (arrays[0][indices], arrays[1][indices])
        return tf.data.Dataset.from_tensor_slices(arrays), None, arrays, encoded
    return _select(ds, count, indices), None, None, encoded


def _check_seed(seed) -> int:
    check_int("seed", seed, types=(int, np.integer))
    return int(seed) % (1 << 32)


def holdout_validation(data: ImageData, size: int | float, *, seed: int = 0) -> ImageData:
    """A copy of `data` whose `validation` split holds `size` training examples (a count, or a fraction in
    (0, 1) of the training set) drawn at random from `seed`, and whose `train` holds the others, in their order.
    The test split is untouched: model selection sees the validation split, the test split is reported once."""
    requirement = "must be an integer count or a fraction in (0, 1)"
    check_number("size", size, requirement=requirement)
    if isinstance(size, float):
        check_number(
            "size", size, minimum=0, maximum=1, exclusive_minimum=True, exclusive_maximum=True, requirement=requirement
        )
        count = max(1, int(round(size * data.num_train)))
    else:
        count = size
    if not 1 <= count < data.num_train:
        raise ValueError(
            f"`size` must leave at least one training example and hold out at least one: between 1 and "
            f"{data.num_train - 1} for the {data.num_train} training examples of {data.name!r}. Received: size={size!r}"
        )
    order = np.random.RandomState(_check_seed(seed)).permutation(data.num_train)
    held, kept = np.sort(order[:count]), np.sort(order[count:])
    sources = dict(files=train_files_of(data), arrays=train_arrays_of(data), encoded=encoded_of(data, "train"))
    train, train_files, train_arrays, train_encoded = _pick(data.train, data.num_train, kept, **sources)
    validation, validation_files, _, validation_encoded = _pick(data.train, data.num_train, held, **sources)
    return dataclasses.replace(
        data,
        train=train,
        num_train=len(kept),
        train_arrays=train_arrays,
        train_files=train_files,
        train_encoded=train_encoded,
        validation=validation,
        num_validation=count,
        validation_files=validation_files,
        validation_encoded=validation_encoded,
    )


def subset(data: ImageData, max_train: int | None = None, max_test: int | None = None, *, seed: int = 0) -> ImageData:
    """A copy of `data` with at most `max_train` training and `max_test` test examples, each a sample drawn at
    random from `seed` (in the split's order), so that a folder listed class by class keeps all its classes.
    `None` keeps a split whole. The in-memory arrays, the file lists and the encoded images are cut with the
    datasets."""
    rng = np.random.RandomState(_check_seed(seed))
    changes = {}
    for split, limit in (("train", max_train), ("test", max_test)):
        if limit is None:
            continue
        check_int(
            f"max_{split}", limit, minimum=1, types=(int, np.integer), requirement="must be a positive integer or None"
        )
        count = getattr(data, f"num_{split}")
        if limit >= count:
            continue
        indices = np.sort(rng.permutation(count)[: int(limit)])
        files = _matching(getattr(data, f"{split}_files"), count)
        arrays = train_arrays_of(data) if split == "train" else None
        ds, files, arrays, encoded = _pick(
            getattr(data, split), count, indices, files=files, arrays=arrays, encoded=encoded_of(data, split)
        )
        changes.update({split: ds, f"num_{split}": int(limit), f"{split}_files": files, f"{split}_encoded": encoded})
        if split == "train":
            changes["train_arrays"] = arrays
    return dataclasses.replace(data, **changes) if changes else data
