"""Any image-classification dataset of tensorflow-datasets by name (`load_tfds`), read from `data_dir`.

Beside the decoded splits, a dataset whose images are a `tfds.features.Image` keeps them encoded
(`ImageData.train_encoded`, `test_encoded`): read with `decoders={"image": tfds.decode.SkipDecoding()}`, they feed
the pipelines' fused decode (`keras_convnets.data.decode`), and each input pipeline reads only its share of the
files (`tfds.ReadConfig(input_context=...)`).

Its own module so that `sources` (which dispatches names) and `keras_datasets` (which falls back to it) both
import it: the data modules depend one way, sources -> keras_datasets -> idx -> dataset, with tfds -> dataset.
"""

from __future__ import annotations

import functools
import os

import tensorflow as tf

from keras_convnets.data.dataset import AUTOTUNE, EncodedSplit, ImageData

__all__ = ["load_tfds"]


def load_tfds(name: str, *, data_dir: str | os.PathLike | None = None) -> ImageData:
    """An image-classification dataset of tensorflow-datasets: its "train" split, and "validation" or "test"
    (or the last 10% of "train" when it has neither)."""
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=None if data_dir is None else os.fspath(data_dir))
    except tfds.core.registered.DatasetNotFoundError:
        raise ValueError(
            f"Unknown dataset. Use 'digits' (embedded), a directory of class folders, or a tensorflow-datasets "
            f"image-classification name such as 'cifar10', 'cifar100', 'imagenette', 'imagenet2012' "
            f"(`tfds.list_builders()` lists them all). Received: dataset={name!r}"
        ) from None
    try:
        builder.download_and_prepare()
    except Exception as error:  # network, manual-download and preparation failures all end here
        raise ValueError(
            f"tensorflow-datasets could not download or prepare {name!r} ({type(error).__name__}: "
            f"{str(error)[:300]}). Prepare it where there is internet access (for imagenet2012, put the manual "
            f"files under DATA_DIR/downloads/manual) and pass its directory with `--data-dir` / `data_dir=`. "
            f"Received: dataset={name!r}, data_dir={data_dir!r}"
        ) from None
    info = builder.info
    if not info.supervised_keys or "label" not in info.features:
        raise ValueError(f"`dataset` must be an image-classification dataset with labels. Received: dataset={name!r}")
    split_names = list(info.splits.keys()) or ["train", "test"]  # no split metadata (e.g. under tfds mocking)
    if "train" not in split_names:
        raise ValueError(f"Dataset {name!r} has no 'train' split (it has {split_names}).")
    test_split = next((s for s in ("validation", "test") if s in split_names), None)
    train_split = "train"
    if test_split is None:
        train_split, test_split = "train[:90%]", "train[90%:]"

    def split(which):
        ds = builder.as_dataset(split=which, as_supervised=True, shuffle_files=False)
        count = int(ds.cardinality())
        if count < 0:
            count = info.splits[which].num_examples
        if count <= 0:
            raise ValueError(f"The {which!r} split of dataset {name!r} is empty.")
        ds = ds.map(lambda x, y: (tf.cast(x, tf.uint8), tf.cast(y, tf.int32)), num_parallel_calls=AUTOTUNE)
        return ds, count

    train, num_train = split(train_split)
    test, num_test = split(test_split)
    image_key = info.supervised_keys[0]
    encoded = {}
    if isinstance(info.features[image_key], tfds.features.Image):
        for which, count, key in ((train_split, num_train, "train_encoded"), (test_split, num_test, "test_encoded")):
            encoded[key] = EncodedSplit(count=count, read=functools.partial(_read_encoded, builder, which, image_key))
    shape = info.features[image_key].shape
    size = shape[0] if shape and shape[0] is not None and shape[0] == shape[1] else None
    if shape and shape[-1] == 1:
        train = train.map(lambda x, y: (tf.image.grayscale_to_rgb(x), y))
        test = test.map(lambda x, y: (tf.image.grayscale_to_rgb(x), y))
    return ImageData(
        name=name,
        train=train,
        test=test,
        num_train=num_train,
        num_test=num_test,
        labels=list(info.features["label"].names),
        image_size=size,
        **encoded,
    )


def _read_encoded(builder, split: str, image_key: str, shard: int, shards: int) -> tf.data.Dataset:
    """`(encoded image bytes, int32 label)` of shard `shard` of `shards` of a tensorflow-datasets split, its files
    divided between the input pipelines; with fewer files than pipelines, every `shards`-th example of all."""
    import tensorflow_datasets as tfds

    decoders = {image_key: tfds.decode.SkipDecoding()}

    def read(read_config):
        return builder.as_dataset(
            split=split, decoders=decoders, read_config=read_config, shuffle_files=False, as_supervised=True
        )

    if shards == 1:
        ds = read(tfds.ReadConfig())
    else:
        context = tf.distribute.InputContext(num_input_pipelines=shards, input_pipeline_id=shard)
        try:
            ds = read(tfds.ReadConfig(input_context=context))
        except ValueError:  # "Cannot shard the pipeline with given `input_context`": fewer files than pipelines
            ds = read(tfds.ReadConfig()).shard(shards, shard)
    return ds.map(lambda x, y: (x, tf.cast(y, tf.int32)), num_parallel_calls=AUTOTUNE, deterministic=True)
