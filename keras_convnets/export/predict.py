"""Prediction from exported files (an export directory, a SavedModel directory or a `.tflite` file), and the
image readers of `convnets predict` and `convnets export` (files, directory trees, TensorFlow Datasets on disk)."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from keras_convnets.export.bundle import read_labels
from keras_convnets.export.parity import as_images
from keras_convnets.export.saved_model import SavedModel
from keras_convnets.export.tflite import TFLiteModel, tflite_filename
from keras_convnets.utils.validation import check_int

__all__ = ["IMAGE_EXTENSIONS", "Predictor", "dataset_images", "directory_images", "load_image"]


def load_image(path: str | os.PathLike, size: Sequence[int]) -> np.ndarray:
    """Decode an image file (JPEG, PNG, GIF, BMP) to raw float pixels resized to `size` (H, W, C)."""
    import tensorflow as tf

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such image: {path!r}")
    with open(path, "rb") as f:
        data = f.read()
    try:
        image = tf.io.decode_image(data, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError, ValueError) as error:
        raise ValueError(
            f"`image` could not be decoded (JPEG, PNG, GIF or BMP expected). Received: image={path!r}"
        ) from error
    height, width, channels = size
    if image.shape[-1] != channels:
        raise ValueError(
            f"`image` must have {channels} channels for this model. Received: image={path!r} with "
            f"{image.shape[-1]} channels"
        )
    image = tf.cast(image, tf.float32)
    if tuple(image.shape[:2]) != (height, width):
        image = tf.clip_by_value(tf.round(tf.image.resize(image, (height, width), antialias=True)), 0, 255)
    return image.numpy()


class Predictor:
    """An exported model (an export directory, a SavedModel directory or a `.tflite` file) with its labels."""

    def __init__(self, path: str | os.PathLike):
        path = os.path.abspath(os.fspath(path))
        target = None
        if os.path.isfile(path) and path.endswith(".tflite"):
            target = path
        elif os.path.isdir(path):
            if os.path.isfile(os.path.join(path, "saved_model.pb")):
                target = path
            elif os.path.isfile(os.path.join(path, "saved_model", "saved_model.pb")):
                target = os.path.join(path, "saved_model")
            else:
                tflites = sorted(f for f in os.listdir(path) if f.endswith(".tflite"))
                preferred = tflite_filename(None)
                if tflites:
                    target = os.path.join(path, preferred if preferred in tflites else tflites[0])
        if target is None:
            raise ValueError(
                "`model` must be an export directory of `convnets export`, a SavedModel directory or a "
                f"`.tflite` file. Received: model={path!r}"
            )
        self.path = target
        self.model = TFLiteModel(target) if target.endswith(".tflite") else SavedModel(target)
        self.input_shape = self.model.input_shape
        here = os.path.dirname(target) if target.endswith(".tflite") else target
        self.labels = read_labels(os.path.join(here, "labels.txt")) or read_labels(
            os.path.join(os.path.dirname(here), "labels.txt")
        )

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Probabilities for raw-pixel images at the model's size."""
        return self.model(np.asarray(images, dtype="float32"))["probabilities"]

    def top_k(self, probabilities: np.ndarray, k: int = 5) -> list[list[tuple[str, float]]]:
        check_int("k", k, minimum=1)
        rows = []
        for row in np.asarray(probabilities):
            order = np.argsort(-row, kind="stable")[:k]
            names = [self.labels[i] if self.labels and i < len(self.labels) else str(i) for i in order]
            rows.append([(name, float(row[i])) for name, i in zip(names, order)])
        return rows

    def predict_files(self, paths: Sequence[str | os.PathLike], k: int = 5) -> list[list[tuple[str, float]]]:
        images = np.stack([load_image(p, self.input_shape) for p in paths])
        return self.top_k(self(images), k)


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")


def directory_images(
    directory: str | os.PathLike, shape: Sequence[int], *, count: int = 200, seed: int = 0
) -> np.ndarray:
    """Up to `count` images of a directory tree (JPEG, PNG, GIF, BMP; shuffled with `seed` so that class
    folders mix), decoded and resized to `shape`: representative data for int8 quantization."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise ValueError(f"`representative_dir` must be a directory of images. Received: {directory!r}")
    files = sorted(
        os.path.join(root, name)
        for root, _, names in os.walk(directory)
        for name in names
        if name.lower().endswith(IMAGE_EXTENSIONS)
    )
    if not files:
        raise ValueError(
            f"`representative_dir` holds no images ({', '.join(IMAGE_EXTENSIONS)}). Received: {directory!r}"
        )
    order = np.random.default_rng(seed).permutation(len(files))[:count]
    return np.stack([load_image(files[i], shape) for i in order])


def dataset_images(name: str, shape: Sequence[int], *, count: int = 200, data_dir: str | None = None) -> np.ndarray:
    """Up to `count` images of the held-out split of a TensorFlow Datasets dataset that is already on disk
    (nothing is downloaded), resized to `shape`."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    height, width, _ = shape  # outside the loop: the mapped function below binds no loop variable
    errors = []
    for split in ("test", "validation", "train"):
        try:
            data = tfds.load(name, split=split, data_dir=data_dir, download=False, as_supervised=True)
        except Exception as error:  # tfds raises AssertionError, ValueError, DatasetNotFoundError ...
            errors.append(
                f"{split}: {str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__}"
            )
            continue
        data = data.take(count).map(
            lambda image, label: tf.round(tf.image.resize(tf.cast(image, tf.float32), (height, width)))
        )
        return as_images(data.batch(64), shape, argument="dataset", limit=count)
    raise ValueError(
        f"The run's dataset {name!r} is not available offline ({errors[-1]}); pass images with `--representative-dir`."
    )
