"""The tf.data pipelines that feed `model.fit` and evaluation: they decode in parallel, cache in memory what fits,
augment (`keras_convnets.data.augment`), apply the recipe's `Preprocessing` and prefetch.

Training is reproducible and resumable: the order and the augmentation of epoch `e` depend only on `(seed, e)`,
so a run restarted at epoch `e` sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from keras_convnets.data.augment import (
    _check_augmentation,
    _resize_square,
    _to_uint8,
    _train_transform,
    crop_flip_batch,
    eval_transform,
)
from keras_convnets.data.dataset import ImageData
from keras_convnets.data.preprocessing import Preprocessing

__all__ = [
    "IN_GRAPH_LIMIT",
    "compute_preprocessing",
    "eval_pipeline",
    "fits_in_memory",
    "materialize",
    "steps_per_epoch_for",
    "train_pipeline",
]

AUTOTUNE = tf.data.AUTOTUNE
IN_GRAPH_LIMIT = 1 << 30  # a training set held as one tensor stays well under the 2 GB limit of a graph


def _memory_limit() -> int:
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        physical = 8 << 30
    return min(4 << 30, physical // 4)


def fits_in_memory(num_examples: int, image_size: int) -> bool:
    """Whether `num_examples` uint8 images of `image_size`^2 x 3 fit the in-memory cache (a quarter of the RAM,
    at most 4 GiB)."""
    return num_examples * image_size * image_size * 3 <= _memory_limit()


def _stored(
    ds: tf.data.Dataset, num_examples: int, *, augmentation: str, size: int, known_size: int | None, cache: bool
):
    """The raw images as they are kept between epochs: resized to `size` and cached in memory when the
    augmentation works on fixed-size images and they fit."""
    if augmentation in ("crop_flip", "none"):
        if known_size != size:
            ds = ds.map(lambda x, y: (_to_uint8(_resize_square(x, size)), y), num_parallel_calls=AUTOTUNE)
        if cache and fits_in_memory(num_examples, size):
            ds = ds.cache()
    elif cache and known_size is not None and fits_in_memory(num_examples, known_size):
        ds = ds.cache()
    return ds


def _finish(ds: tf.data.Dataset, preprocessing: Preprocessing | None) -> tf.data.Dataset:
    import keras

    channels_first = keras.config.image_data_format() == "channels_first"

    def finish(x, y):
        x = tf.cast(x, tf.float32)
        if preprocessing is not None:
            x = preprocessing(x)
        if channels_first:
            x = tf.transpose(x, [0, 3, 1, 2])
        return x, y

    ds = ds.map(finish, num_parallel_calls=AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(AUTOTUNE)


def steps_per_epoch_for(num_examples: int, batch_size: int) -> int:
    """Full batches per epoch; an error when the training set is smaller than one batch."""
    steps = num_examples // batch_size
    if steps < 1:
        raise ValueError(
            f"`batch_size` must not exceed the number of training examples ({num_examples}). "
            f"Received: batch_size={batch_size}"
        )
    return steps


def _split(data: ImageData, split: str) -> tuple[tf.data.Dataset, int]:
    if split not in ("train", "validation", "test"):
        raise ValueError(f"`split` must be one of 'train', 'validation', 'test'. Received: split={split!r}")
    if split == "validation" and data.validation is None:
        raise ValueError(
            f"Dataset {data.name!r} has no validation split: hold one out of the training set with "
            f"`holdout_validation(data, size)`. Received: split={split!r}"
        )
    return getattr(data, split), getattr(data, f"num_{split}")


def materialize(data: ImageData, *, image_size: int, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """The `split` as two arrays: uint8 images resized to `image_size` and int32 labels."""
    arrays = data.train_arrays
    if split == "train" and arrays is not None and len(arrays[0]) == data.num_train and data.image_size == image_size:
        return arrays
    source, count = _split(data, split)
    ds = _stored(source, count, augmentation="none", size=image_size, known_size=data.image_size, cache=False)
    images, labels = [], []
    for x, y in ds.batch(1024).as_numpy_iterator():
        images.append(x)
        labels.append(y)
    if not images:
        raise ValueError(f"The {split} split of {data.name!r} yielded no images.")
    return np.concatenate(images), np.concatenate(labels).astype("int32")


def train_pipeline(
    data: ImageData,
    *,
    batch_size: int,
    image_size: int,
    augmentation: str = "crop_flip",
    preprocessing: Preprocessing | None = None,
    seed: int = 0,
    epochs: int = 1,
    initial_epoch: int = 0,
    steps_per_epoch: int | None = None,
    horizontal_flip: bool | None = None,
    shuffle_buffer: int | None = None,
    cache: bool = True,
) -> tf.data.Dataset:
    """Batches of `(preprocessed float images, int32 labels)` for epochs `initial_epoch .. epochs - 1`, exactly
    `steps_per_epoch` full batches each (default: all full batches of the training set).

    When the training images fit in memory at `image_size` and the augmentation works on fixed-size images
    ("crop_flip", "none"), the set is held in memory and epoch `e` is a permutation and an augmentation drawn from
    `(seed, e)` only: a run resumed at epoch `e` sees the batches an uninterrupted run sees. Otherwise images stream
    through a shuffle buffer (`shuffle_buffer`, default 10,000) seeded with `(seed, initial_epoch)`.
    """
    _check_augmentation(augmentation)
    flip = data.horizontal_flip if horizontal_flip is None else horizontal_flip
    steps = steps_per_epoch or steps_per_epoch_for(data.num_train, batch_size)
    seed = int(seed)
    epoch_seeds = tf.data.Dataset.range(initial_epoch, max(epochs, initial_epoch))

    in_memory = data.num_train * image_size * image_size * 3 <= min(_memory_limit(), IN_GRAPH_LIMIT)
    if augmentation in ("crop_flip", "none") and cache and in_memory:
        images, labels = materialize(data, image_size=image_size)
        count = len(images)
        whole = tf.data.Dataset.from_tensors((images, labels))  # the training set as one element

        def epoch_dataset(epoch):
            order = tf.random.experimental.stateless_shuffle(
                tf.range(count, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), epoch])
            )
            indices = tf.data.Dataset.from_tensor_slices(order).repeat().batch(batch_size, drop_remainder=True)
            ds = tf.data.Dataset.zip((indices.take(steps), whole.repeat()))
            ds = ds.map(
                lambda i, xy: (tf.gather(xy[0], i), tf.gather(xy[1], i)),
                num_parallel_calls=AUTOTUNE,
                deterministic=True,
            )
            if augmentation == "crop_flip":
                ds = ds.enumerate().map(
                    lambda b, xy: (
                        crop_flip_batch(
                            xy[0], tf.stack([tf.constant(seed, tf.int64) * 1_000_003 + epoch, b]), flip=flip
                        ),
                        xy[1],
                    ),
                    num_parallel_calls=AUTOTUNE,
                    deterministic=True,
                )
            return ds

        return _finish(epoch_seeds.flat_map(epoch_dataset), preprocessing)

    base = _stored(
        data.train, data.num_train, augmentation=augmentation, size=image_size, known_size=data.image_size, cache=cache
    )
    buffer = shuffle_buffer or min(data.num_train, 10_000)
    stream = base.shuffle(buffer, seed=seed * 1_000_003 + initial_epoch + 1, reshuffle_each_iteration=True).repeat()
    first = initial_epoch * steps * batch_size
    stream = stream.enumerate(start=first)
    if augmentation in ("scale", "inception"):
        stream = stream.map(
            lambda i, xy: (
                _train_transform(
                    xy[0],
                    tf.stack([tf.constant(seed, tf.int64), i]),
                    augmentation=augmentation,
                    size=image_size,
                    flip=flip,
                ),
                xy[1],
            ),
            num_parallel_calls=AUTOTUNE,
            deterministic=True,
        )
    else:
        stream = stream.map(lambda i, xy: xy)
    total = max(0, epochs - initial_epoch) * steps
    ds = stream.batch(batch_size, drop_remainder=True).take(total)
    if augmentation == "crop_flip":
        ds = ds.enumerate(start=initial_epoch * steps).map(
            lambda b, xy: (crop_flip_batch(xy[0], tf.stack([tf.constant(seed, tf.int64), b]), flip=flip), xy[1]),
            num_parallel_calls=AUTOTUNE,
            deterministic=True,
        )
    return _finish(ds, preprocessing)


def eval_pipeline(
    data: ImageData,
    *,
    batch_size: int,
    image_size: int,
    augmentation: str = "crop_flip",
    preprocessing: Preprocessing | None = None,
    split: str = "test",
    cache: bool = True,
) -> tf.data.Dataset:
    """Batches of the `test` (or `validation`, or `train`) split as evaluation sees them (no augmentation), in a
    fixed order."""
    _check_augmentation(augmentation)
    source, count = _split(data, split)
    ds = _stored(source, count, augmentation=augmentation, size=image_size, known_size=data.image_size, cache=False)
    if augmentation in ("scale", "inception"):
        ds = ds.map(
            lambda x, y: (_to_uint8(eval_transform(x, augmentation=augmentation, size=image_size)), y),
            num_parallel_calls=AUTOTUNE,
        )
    if cache and fits_in_memory(count, image_size):
        ds = ds.cache()
    return _finish(ds.batch(batch_size), preprocessing)


def compute_preprocessing(
    mode: str,
    data: ImageData,
    *,
    image_size: int,
    augmentation: str = "crop_flip",
    max_examples: int = 10_000,
) -> Preprocessing:
    """The recipe's `Preprocessing` measured on (up to `max_examples` of) the training images as evaluation sees
    them: `"mean_image"` (per-pixel mean), `"mean_rgb"` (per-channel mean), `"inception"` or `"none"`."""
    if mode == "none":
        return Preprocessing.none()
    if mode == "inception":
        return Preprocessing.inception()
    if mode not in ("mean_image", "mean_rgb"):
        raise ValueError(
            f"`preprocessing` must be one of 'mean_image', 'mean_rgb', 'inception', 'none'. Received: preprocessing={mode!r}"
        )
    ds = _stored(
        data.train, data.num_train, augmentation=augmentation, size=image_size, known_size=data.image_size, cache=False
    )
    if augmentation in ("scale", "inception"):
        ds = ds.map(
            lambda x, y: (eval_transform(x, augmentation=augmentation, size=image_size), y), num_parallel_calls=AUTOTUNE
        )
    total, count = np.zeros((image_size, image_size, 3), "float64"), 0
    for images, _ in ds.take(max_examples).batch(512).as_numpy_iterator():
        total += images.astype("float64").sum(axis=0)
        count += len(images)
    if count == 0:
        raise ValueError(f"The training split of {data.name!r} yielded no images.")
    mean = (total / count).astype("float32")
    if mode == "mean_rgb":
        return Preprocessing.mean_rgb(mean.mean(axis=(0, 1)))
    return Preprocessing("mean_image", mean, np.float32(1.0))
