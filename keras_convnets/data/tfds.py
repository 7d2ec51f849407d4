"""Any image-classification dataset of tensorflow-datasets by name (`load_tfds`), read from `data_dir`.

Its own module so that `sources` (which dispatches names) and `keras_datasets` (which falls back to it) both
import it: the data modules depend one way, sources -> keras_datasets -> idx -> dataset, with tfds -> dataset.
"""

from __future__ import annotations

import os

import tensorflow as tf

from keras_convnets.data.dataset import AUTOTUNE, ImageData

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
    shape = info.features[info.supervised_keys[0]].shape
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
    )
