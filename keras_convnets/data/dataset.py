"""`ImageData`, the two (or three) splits of an image-classification dataset, and the ways to cut it:
`holdout_validation` (a seeded validation split out of the training set)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

__all__ = ["ImageData", "holdout_validation"]


@dataclass
class ImageData:
    """A dataset split in two: `train` and `test` yield unbatched `(image, label)` with raw uint8 pixels
    (H, W, 3) and int32 labels. `image_size` is the side of every image when they all share one, else None."""

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

    @property
    def num_classes(self) -> int:
        return len(self.labels)


def _select(ds: tf.data.Dataset, count: int, indices: np.ndarray) -> tf.data.Dataset:
    """The elements of `ds` (of `count` elements) at the sorted `indices`, in their order."""
    keep = np.zeros(count, dtype=bool)
    keep[indices] = True
    mask = tf.constant(keep)
    return ds.enumerate().filter(lambda i, xy: mask[i]).map(lambda i, xy: xy)


def holdout_validation(data: ImageData, size: int | float, *, seed: int = 0) -> ImageData:
    """A copy of `data` whose `validation` split holds `size` training examples (a count, or a fraction in
    (0, 1) of the training set) drawn at random from `seed`, and whose `train` holds the others, in their order.
    The test split is untouched: model selection sees the validation split, the test split is reported once."""
    if isinstance(size, bool) or not isinstance(size, (int, float)):
        raise TypeError(f"`size` must be an integer count or a fraction in (0, 1). Received: size={size!r}")
    if isinstance(size, float):
        if not 0 < size < 1:
            raise ValueError(f"`size` must be an integer count or a fraction in (0, 1). Received: size={size!r}")
        count = max(1, int(round(size * data.num_train)))
    else:
        count = size
    if not 1 <= count < data.num_train:
        raise ValueError(
            f"`size` must leave at least one training example and hold out at least one: between 1 and "
            f"{data.num_train - 1} for the {data.num_train} training examples of {data.name!r}. Received: size={size!r}"
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"`seed` must be an integer. Received: seed={seed!r}")
    order = np.random.RandomState(int(seed) % (1 << 32)).permutation(data.num_train)
    held, kept = np.sort(order[:count]), np.sort(order[count:])
    if data.train_arrays is not None and len(data.train_arrays[0]) == data.num_train:
        images, labels = data.train_arrays
        train_arrays = (images[kept], labels[kept])
        train = tf.data.Dataset.from_tensor_slices(train_arrays)
        validation = tf.data.Dataset.from_tensor_slices((images[held], labels[held]))
    else:
        train_arrays = None
        train = _select(data.train, data.num_train, kept)
        validation = _select(data.train, data.num_train, held)
    return dataclasses.replace(
        data,
        train=train,
        num_train=len(kept),
        train_arrays=train_arrays,
        validation=validation,
        num_validation=count,
    )
