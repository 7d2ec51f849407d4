"""Shared fixtures. Profiles of the models built with their defaults are cached per test process: the
parameter, MAC and README-table tests all read the same ones (they share an xdist group)."""

from __future__ import annotations

import functools
import gc
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402

import keras_convnets  # noqa: E402
from keras_convnets.analysis import model_table  # noqa: E402


@functools.lru_cache(maxsize=2)
def default_model(name: str) -> keras.Model:
    """The registered model `name` built with its defaults. Only the last two are kept: all of them
    together (VGGs of 140M parameters, ResNet-1202) would hold gigabytes in one test worker."""
    gc.collect()
    return keras_convnets.get_model(name)


@functools.cache
def default_profile(name: str) -> tuple[keras_convnets.ModelProfile, model_table.ModelRow]:
    """The profile and README-table row of the registered model `name` built with its defaults (cached)."""
    model = default_model(name)
    return keras_convnets.profile(model), model_table.model_row(name, model)


@pytest.fixture(autouse=True)
def _clear_keras_names():
    """Keep Keras's global name counters from growing across tests."""
    yield
    keras.backend.clear_session(free_memory=False)


def tiny_digits(n_train: int = 64, n_test: int = 32, size: int = 16):
    """The first `n_train` training and `n_test` test images of the embedded digits, as an `ImageData`."""
    import tensorflow as tf

    from keras_convnets import data

    digits = data.load_digits(image_size=size)
    images, labels = digits.train_arrays
    return data.ImageData(
        name="tiny",
        train=tf.data.Dataset.from_tensor_slices((images[:n_train], labels[:n_train])),
        test=digits.test.take(n_test),
        num_train=n_train,
        num_test=n_test,
        labels=digits.labels,
        image_size=size,
        horizontal_flip=False,
        train_arrays=(images[:n_train], labels[:n_train]),
    )
