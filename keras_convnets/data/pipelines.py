"""The tf.data pipelines that feed `model.fit` and evaluation: they decode in parallel, cache in memory what fits,
augment (`keras_convnets.data.augment`), apply the recipe's `Preprocessing` and prefetch.

(One module over 450 lines: `train_pipeline`'s three sources share its epoch, seed and sharding closures, which
a split would pass around; decoding and augmentation already live in `decode` and `augment`.)

Training is reproducible and resumable: the order and the augmentation of epoch `e` depend only on `(seed, e)`
on every path (one dataset per epoch, seeded by its number), so a run restarted at epoch `e` sees exactly the
batches an uninterrupted run would. An image folder is read in a permutation of its whole file list, drawn anew
each epoch, so every batch mixes the classes however the folders are listed. "crop_flip" pads the preprocessed
image with zeros (fb.resnet.torch: normalise, then pad), so the border is the mean colour, not black.

"scale" and "inception" decode only the crop they keep from the encoded images of an image folder, TFRecord shards
or tensorflow-datasets (`decode="fused"`, `keras_convnets.data.decode`); `decode="full"` decodes the whole image
first and crops it (the path before the fused decode, kept for comparison).

Under `tf.distribute` (`distributed_train_pipeline`), each input pipeline (one per worker) reads and decodes only
its shard of the files, before any decoding: every `n`-th file of each epoch's permutation of an image folder, every
`n`-th TFRecord shard, its share of a tensorflow-datasets split's files; each replica's batches are prefetched to
its device.
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
from keras_convnets.data.dataset import (
    ImageData,
    decode_image,
    encoded_of,
    files_dataset,
    files_of,
    read_file,
    train_arrays_of,
    train_files_of,
)
from keras_convnets.data.decode import _check_decode, decode_eval, decode_image_bytes, decode_train
from keras_convnets.data.preprocessing import Preprocessing

__all__ = [
    "IN_GRAPH_LIMIT",
    "compute_preprocessing",
    "distributed_train_pipeline",
    "eval_pipeline",
    "fits_in_memory",
    "materialize",
    "spread_sample",
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


def _in_graph(num_examples: int, image_size: float) -> bool:
    """Whether the training set at `image_size` can be held as one tensor of the input pipeline."""
    return num_examples * image_size * image_size * 3 <= min(_memory_limit(), IN_GRAPH_LIMIT)


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


def _finish(ds: tf.data.Dataset, preprocessing: Preprocessing | None, *, sharded: bool = False) -> tf.data.Dataset:
    import keras

    channels_first = keras.config.image_data_format() == "channels_first"

    def finish(x, y):
        x = tf.cast(x, tf.float32)
        if preprocessing is not None:
            x = preprocessing(x)
        if channels_first:
            x = tf.transpose(x, [0, 3, 1, 2])
        return x, y

    if preprocessing is not None or channels_first or ds.element_spec[0].dtype != tf.float32:
        ds = ds.map(finish, num_parallel_calls=AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    options.deterministic = True
    # A dataset of one input pipeline is already its shard; any other is sharded by Keras's distribution, by example
    policy = tf.data.experimental.AutoShardPolicy
    options.experimental_distribute.auto_shard_policy = policy.OFF if sharded else policy.DATA
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
    arrays = train_arrays_of(data)
    if split == "train" and arrays is not None and arrays[0].shape[1:3] == (image_size, image_size):
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


def _epoch_seed(seed: int, epoch) -> tf.Tensor:
    """The stateless seed of epoch `epoch`: its order and its augmentation are drawn from it alone."""
    return tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])


def _permuted(count: int, seed: int, epoch) -> tf.data.Dataset:
    """Indices `0 .. count - 1` in the order of epoch `epoch`, repeated (an epoch may be longer than the set)."""
    order = tf.random.experimental.stateless_shuffle(tf.range(count, dtype=tf.int64), seed=_epoch_seed(seed, epoch))
    return tf.data.Dataset.from_tensor_slices(order).repeat()


def _sharding(input_context, batch_size: int, steps: int) -> tuple[int, int, int, int]:
    """(shards, this shard, batch size of one replica, batches of this pipeline per epoch) under `input_context`:
    each of the `shards` input pipelines feeds its replicas `steps` batches each per epoch."""
    if input_context is None:
        return 1, 0, batch_size, steps
    shards, shard = input_context.num_input_pipelines, input_context.input_pipeline_id
    replicas_here = max(1, input_context.num_replicas_in_sync // shards)
    return shards, shard, input_context.get_per_replica_batch_size(batch_size), steps * replicas_here


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
    decode: str = "fused",
    input_context: tf.distribute.InputContext | None = None,
) -> tf.data.Dataset:
    """Batches of `(preprocessed float images, int32 labels)` for epochs `initial_epoch .. epochs - 1`, exactly
    `steps_per_epoch` full batches each (default: all full batches of the training set).

    Epoch `e` is built from `(seed, e)` alone on every path, so a run resumed at epoch `e` sees the batches an
    uninterrupted run sees:
    - the training set held in memory (it fits at `image_size`, or the source keeps it as arrays): a permutation
      of the whole set drawn from `(seed, e)`;
    - an image folder (its file list): a permutation of all the files drawn from `(seed, e)`, then decoded in
      parallel, so that every batch mixes the classes however the folders are listed;
    - encoded images (TFRecord shards, tensorflow-datasets: `ImageData.train_encoded`) and any other source too
      large for memory: a shuffle buffer (`shuffle_buffer`, default 10,000) seeded with `(seed, e)`, of the encoded
      bytes where the source has them.
    Random crops ("scale", "inception") draw from `(seed, e, position in the epoch)` and, with `decode="fused"`,
    decode only the crop (`keras_convnets.data.decode`); "crop_flip" draws from `(seed, e, batch)` and pads the
    preprocessed images with zeros (fb.resnet.torch: normalise, then pad), so the border is the mean colour.

    With `input_context` (from `strategy.distribute_datasets_from_function`, see `distributed_train_pipeline`),
    this is the dataset of input pipeline `input_context.input_pipeline_id`: batches of one replica (the global
    `batch_size` divided by the replicas) of its own shard, cut before decoding. Every pipeline's epoch is exactly
    its share of the steps, so the workers stay in step. An image folder's files and arrays are dealt out one by
    one from the epoch's permutation: the shares are equal and cover the set. TFRecord shards and
    tensorflow-datasets files are dealt out by file, as `tf.distribute`'s file auto-sharding does, so the shares
    are only as equal as the files: a worker whose files hold more records than its share of an epoch leaves the
    ones its shuffle buffer reaches last out of that epoch, and one whose files hold fewer repeats some. Files of
    equal size (ImageNet's build scripts write 1,024 training shards of 1,251 or 1,252 records) keep that within a
    file's rounding.
    """
    _check_augmentation(augmentation)
    _check_decode(decode)
    flip = data.horizontal_flip if horizontal_flip is None else horizontal_flip
    steps = steps_per_epoch or steps_per_epoch_for(data.num_train, batch_size)
    shards, shard, local_batch, local_steps = _sharding(input_context, batch_size, steps)
    seed = int(seed)
    epoch_range = tf.data.Dataset.range(initial_epoch, max(epochs, initial_epoch))
    fixed_size = augmentation in ("crop_flip", "none")
    fused = decode == "fused" and not fixed_size

    def augmented(epoch, ds, transform):
        """`(transform(x, seed of its position), y)` in parallel: the example at position i of this pipeline's part
        of the epoch draws from (seed, epoch, i * shards + shard), distinct across the pipelines."""
        epoch_seed = _epoch_seed(seed, epoch)

        def one(i, xy):
            x, y = xy
            x = transform(x, tf.random.experimental.stateless_fold_in(epoch_seed, i * shards + shard))
            return (x if preprocessing is None else preprocessing(x)), y  # on one image, while in cache

        return ds.enumerate().map(one, num_parallel_calls=AUTOTUNE, deterministic=True)

    def examples(epoch, ds):
        """Unbatched raw examples of one epoch (in its order) -> its augmented, preprocessed batches."""
        if not fixed_size:
            ds = augmented(
                epoch, ds, lambda x, s: _train_transform(x, s, augmentation=augmentation, size=image_size, flip=flip)
            )
        return batches(epoch, ds.batch(local_batch, drop_remainder=True).take(local_steps))

    def encoded_examples(epoch, ds, *, files: bool):
        """Unbatched `(encoded bytes, label)` (or, with `files`, `(path, label)` of an image folder) of one epoch
        in its order -> its batches. An image folder's unreadable files are dropped; a record stream's errors are
        raised (`ignore_errors` over a corrupt TFRecord file would retry it forever)."""
        read = tf.io.read_file if files else tf.identity
        if fused:
            ds = augmented(
                epoch,
                ds,
                lambda x, s: decode_train(read(x), s, augmentation=augmentation, size=image_size, flip=flip),
            )
            ds = ds.ignore_errors() if files else ds
            return batches(epoch, ds.batch(local_batch, drop_remainder=True).take(local_steps))
        ds = ds.map(lambda x, y: (decode_image_bytes(read(x)), y), num_parallel_calls=AUTOTUNE, deterministic=True)
        return examples(epoch, resized(ds.ignore_errors() if files else ds))

    def resized(ds):
        if not fixed_size:
            return ds
        return ds.map(
            lambda x, y: (_to_uint8(_resize_square(x, image_size)), y), num_parallel_calls=AUTOTUNE, deterministic=True
        )

    def batches(epoch, ds):
        def finish(b, x, y):
            x = tf.cast(x, tf.float32)
            if preprocessing is not None and fixed_size:  # the random crops were preprocessed one by one
                x = preprocessing(x)
            if augmentation == "crop_flip":
                batch_seed = tf.stack(
                    [tf.constant(seed, tf.int64) * 1_000_003 + tf.cast(epoch, tf.int64), b * shards + shard]
                )
                x = crop_flip_batch(x, batch_seed, flip=flip)
            return x, y

        if not fixed_size:
            return ds
        return ds.enumerate().map(lambda b, xy: finish(b, *xy), num_parallel_calls=AUTOTUNE, deterministic=True)

    arrays, files, encoded = None, train_files_of(data), encoded_of(data, "train")
    if fixed_size and cache and _in_graph(data.num_train, image_size):
        arrays = materialize(data, image_size=image_size)  # resized once
    elif not fixed_size and cache:
        raw = train_arrays_of(data)
        if raw is not None and raw[0].nbytes <= min(_memory_limit(), IN_GRAPH_LIMIT):
            arrays = raw
    if encoded is not None and fixed_size and cache and fits_in_memory(data.num_train // shards, image_size):
        encoded = None  # decoded once and cached (below) beats decoding every epoch

    # `payload` is the big constant (the images, or the file list) as an element zipped to each epoch, so that it
    # is not copied into the graph of the epoch function.
    if arrays is not None:  # one tensor, gathered by batches of indices drawn from (seed, epoch)
        payload = tf.data.Dataset.from_tensors(arrays)

        def epoch_dataset(epoch, images_labels):
            images, labels = images_labels
            indices = _permuted(len(arrays[0]), seed, epoch).shard(shards, shard)
            indices = indices.batch(local_batch, drop_remainder=True)
            ds = indices.take(local_steps) if fixed_size else indices
            ds = ds.map(lambda i: (tf.gather(images, i), tf.gather(labels, i)))
            return batches(epoch, ds) if fixed_size else examples(epoch, ds.unbatch())

    elif files is not None:  # the whole file list, permuted from (seed, epoch), this pipeline's share decoded
        payload = tf.data.Dataset.from_tensors(
            (tf.constant(files[0].astype(str), tf.string), tf.constant(files[1], tf.int32))
        )

        def epoch_dataset(epoch, paths_labels):
            paths, labels = paths_labels
            order = _permuted(len(files[0]), seed, epoch).shard(shards, shard)
            if fused:  # read and decoded in the one parallel map of `augmented`
                return encoded_examples(epoch, order.map(lambda i: (paths[i], labels[i])), files=True)
            ds = order.map(
                lambda i: decode_image(tf.gather(paths, i), tf.gather(labels, i)),
                num_parallel_calls=AUTOTUNE,
                deterministic=True,
            )
            return examples(epoch, resized(ds.ignore_errors()))

    else:  # a stream (encoded where the source has it): a shuffle buffer seeded from (seed, epoch)
        count = max(1, data.num_train // shards)
        if encoded is not None:
            base = encoded.read(shard, shards)
        else:
            base = data.train if shards == 1 else data.train.shard(shards, shard)
            base = _stored(
                base, count, augmentation=augmentation, size=image_size, known_size=data.image_size, cache=cache
            )
        buffer = shuffle_buffer or min(count, 10_000)
        payload = tf.data.Dataset.from_tensors(tf.constant(0))

        def epoch_dataset(epoch, _):
            # The order is a function of (seed, epoch) alone, whatever the global seed: with a global seed of 0,
            # tf.data's seed logic would also compare the tensor seed in Python and fail to trace.
            tf.compat.v1.get_default_graph().seed = None
            shuffle_seed = tf.constant(seed, tf.int64) * 1_000_003 + tf.cast(epoch, tf.int64) + 1
            ds = base.shuffle(buffer, seed=shuffle_seed).repeat()
            return encoded_examples(epoch, ds, files=False) if encoded is not None else examples(epoch, ds)

    ds = tf.data.Dataset.zip((epoch_range, payload.repeat())).flat_map(epoch_dataset)
    return _finish(ds, None, sharded=input_context is not None)


def distributed_train_pipeline(strategy: tf.distribute.Strategy, data: ImageData, **kwargs):
    """`train_pipeline(data, **kwargs)` for `model.fit` under `strategy`. With more than one replica, a distributed
    dataset (`strategy.distribute_datasets_from_function`): each input pipeline (one per worker) reads and decodes
    only its shard of the files, and each replica's batches (the global `batch_size` divided by the replicas) are
    prefetched to its device. With one replica, the plain dataset (Keras places its batches)."""
    if not isinstance(strategy, tf.distribute.Strategy):
        raise TypeError(
            "`strategy` must be a tf.distribute.Strategy (e.g. tf.distribute.MirroredStrategy()). "
            f"Received: strategy={strategy!r}"
        )
    if strategy.num_replicas_in_sync == 1:
        return train_pipeline(data, **kwargs)
    if "input_context" in kwargs:
        raise TypeError("`input_context` is given by the strategy to each input pipeline; do not pass it.")
    return strategy.distribute_datasets_from_function(
        lambda context: train_pipeline(data, input_context=context, **kwargs),
        options=tf.distribute.InputOptions(experimental_fetch_to_device=True, experimental_per_replica_buffer_size=2),
    )


def _read_files(files) -> tf.data.Dataset:
    paths = tf.constant(np.asarray(files[0], dtype=object).astype(str), tf.string)
    ds = tf.data.Dataset.from_tensor_slices((paths, tf.constant(files[1], tf.int32)))
    return ds.map(read_file, num_parallel_calls=AUTOTUNE, deterministic=True)


def _decoded(encoded: tf.data.Dataset, transform, *, files: bool) -> tf.data.Dataset:
    """`(transform(encoded bytes), label)`; the unreadable files of an image folder are dropped, the errors of a
    record stream raised (`ignore_errors` over a corrupt TFRecord file would retry it forever)."""
    ds = encoded.map(lambda x, y: (transform(x), y), num_parallel_calls=AUTOTUNE, deterministic=True)
    return ds.ignore_errors() if files else ds


def _encoded_split(data: ImageData, split: str) -> tuple[tf.data.Dataset | None, bool]:
    """(`(encoded bytes, label)` of a split in its order, or None; whether it reads an image folder's files): the
    files of an image folder, or the encoded images of TFRecord shards and tensorflow-datasets."""
    files = files_of(data, split)
    if files is not None:
        return _read_files(files), True
    encoded = encoded_of(data, split)
    return (encoded.read(0, 1) if encoded is not None else None), False


def eval_pipeline(
    data: ImageData,
    *,
    batch_size: int,
    image_size: int,
    augmentation: str = "crop_flip",
    preprocessing: Preprocessing | None = None,
    split: str = "test",
    cache: bool = True,
    decode: str = "fused",
) -> tf.data.Dataset:
    """Batches of the `test` (or `validation`, or `train`) split as evaluation sees them (no augmentation), in a
    fixed order. "scale" and "inception" decode only the central window they keep where the source has the
    encoded images (`decode="fused"`). A split that fits is read into memory here, once (see `_read_into_memory`)."""
    _check_augmentation(augmentation)
    _check_decode(decode)
    source, count = _split(data, split)
    encoded, from_files = None, False
    if decode == "fused" and augmentation in ("scale", "inception"):
        encoded, from_files = _encoded_split(data, split)
    if encoded is not None:
        transform = lambda x: _to_uint8(decode_eval(x, augmentation=augmentation, size=image_size))  # noqa: E731
        ds = _decoded(encoded, transform, files=from_files)
    else:
        ds = _stored(source, count, augmentation=augmentation, size=image_size, known_size=data.image_size, cache=False)
        if augmentation in ("scale", "inception"):
            ds = ds.map(
                lambda x, y: (_to_uint8(eval_transform(x, augmentation=augmentation, size=image_size)), y),
                num_parallel_calls=AUTOTUNE,
            )
    if cache and _in_graph(count, image_size):
        ds = _read_into_memory(ds)
    elif cache and fits_in_memory(count, image_size):
        ds = ds.cache()
    return _finish(ds.batch(batch_size), preprocessing)


def _read_into_memory(ds: tf.data.Dataset) -> tf.data.Dataset:
    """`ds` read once, as a dataset of arrays. Unlike `ds.cache()`, it has a known size (an image folder's
    unreadable files are dropped while reading), so that Keras does not warn that the input "ran out of data" at
    the end of an evaluation, and it is complete before Keras's first look at one batch, which a cache being
    written discards with a warning ("did not fully read the dataset being cached")."""
    images, labels = [], []
    for x, y in ds.batch(1024).as_numpy_iterator():
        images.append(x)
        labels.append(y)
    if not images:
        return ds
    return tf.data.Dataset.from_tensor_slices((np.concatenate(images), np.concatenate(labels)))


def spread_sample(labels: np.ndarray, size: int, *, seed: int = 0) -> np.ndarray:
    """`size` sorted indices of `labels` drawn at random, each class in proportion to its share (stratified):
    the example of rank r (in a random order) among the n of its class has the key (r + u) / n, u uniform in
    [0, 1), and the `size` smallest keys are taken."""
    labels = np.asarray(labels)
    rng = np.random.RandomState(seed)
    keys = np.empty(len(labels), "float64")
    for value in np.unique(labels):
        where = np.flatnonzero(labels == value)
        ranks = rng.permutation(len(where))
        keys[where] = (ranks + rng.uniform(size=len(where))) / len(where)
    return np.sort(np.argsort(keys, kind="stable")[:size])


def compute_preprocessing(
    mode: str,
    data: ImageData,
    *,
    image_size: int,
    augmentation: str = "crop_flip",
    max_examples: int = 10_000,
) -> Preprocessing:
    """The recipe's `Preprocessing` measured on (up to `max_examples` of) the training images as evaluation sees
    them: `"mean_image"` (per-pixel mean), `"mean_rgb"` (per-channel mean), `"inception"` or `"none"`. A larger
    set is sampled with `spread_sample` (every class in proportion) where its labels are known without decoding
    (image folders, in-memory arrays); other sources give their first `max_examples`."""
    if mode == "none":
        return Preprocessing.none()
    if mode == "inception":
        return Preprocessing.inception()
    if mode not in ("mean_image", "mean_rgb"):
        raise ValueError(
            "`preprocessing` must be one of 'mean_image', 'mean_rgb', 'inception', 'none'. "
            f"Received: preprocessing={mode!r}"
        )
    ds, num = data.train, data.num_train
    files, arrays = train_files_of(data), train_arrays_of(data)
    labels = files[1] if files is not None else arrays[1] if arrays is not None else None
    indices = spread_sample(labels, max_examples) if num > max_examples and labels is not None else None
    if indices is not None:  # a sample spread over the classes, not the first files
        files = (files[0][indices], labels[indices]) if files is not None else None
        if files is None:
            ds = tf.data.Dataset.from_tensor_slices((arrays[0][indices], labels[indices]))
        num = len(indices)
    encoded = None
    if augmentation in ("scale", "inception") and arrays is None:
        if files is not None:
            encoded = _read_files(files)
        elif encoded_of(data, "train") is not None:
            encoded = encoded_of(data, "train").read(0, 1)
    if encoded is not None:  # the fused decode of the central window (`decode_eval`)
        transform = lambda x: decode_eval(x, augmentation=augmentation, size=image_size)  # noqa: E731
        ds = _decoded(encoded, transform, files=files is not None)
    else:
        if files is not None:
            ds = files_dataset(*files)
        ds = _stored(ds, num, augmentation=augmentation, size=image_size, known_size=data.image_size, cache=False)
        if augmentation in ("scale", "inception"):
            ds = ds.map(
                lambda x, y: (eval_transform(x, augmentation=augmentation, size=image_size), y),
                num_parallel_calls=AUTOTUNE,
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
