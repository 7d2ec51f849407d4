"""Prediction from exported files (an export directory, a SavedModel directory, a `.tflite` or `.onnx` file), and the
image readers of `convnets predict` and `convnets export` (files, directory trees, TensorFlow Datasets on disk)."""

from __future__ import annotations

import json
import os
from typing import Sequence

import numpy as np

from keras_convnets.export.bundle import read_labels
from keras_convnets.export.onnx import onnx_filename
from keras_convnets.export.parity import as_images
from keras_convnets.export.saved_model import SavedModel
from keras_convnets.export.staging import BUNDLE_MARKER
from keras_convnets.export.tflite import TFLiteModel, tflite_filename
from keras_convnets.utils.validation import check_int

__all__ = ["IMAGE_EXTENSIONS", "Predictor", "dataset_images", "directory_images", "load_image", "load_images"]


def load_image(path: str | os.PathLike, size: Sequence[int], *, augmentation: str | None = None) -> np.ndarray:
    """An image file (JPEG, PNG, GIF, BMP) as the float32 raw pixels (H, W, 3) a model of input `size` (H, W, C)
    is fed: what the evaluation pipeline of `augmentation` gives for it (`keras_convnets.data.serving`: decoded as
    training decodes image folders, grayscale repeated, alpha dropped, palette expanded, 16-bit to 8; then the
    central crop of "scale" or "inception", or for None, "none" and "crop_flip" the whole image resized)."""
    return load_images([path], size, augmentation=augmentation)[0]


def load_images(
    paths: Sequence[str | os.PathLike], size: Sequence[int], *, augmentation: str | None = None
) -> np.ndarray:
    """`load_image` of several files, through one evaluation pipeline: float32 (N, H, W, 3)."""
    from keras_convnets.data.serving import evaluation_images

    height, width, channels = size
    if channels != 3:
        raise ValueError(
            f"`size` must have 3 channels: image files are decoded to RGB, as training decodes them. "
            f"Received: size={tuple(size)}"
        )
    return evaluation_images(paths, augmentation=augmentation, size=(height, width)).astype("float32")


def _find_card(here: str) -> tuple[dict | None, str | None]:
    """The model card of the export holding `here` (the directory of the SavedModel or the `.tflite` file, or its
    parent), and its path."""
    for directory in (here, os.path.dirname(here)):
        path = os.path.join(directory, BUNDLE_MARKER)
        if os.path.isfile(path):
            try:
                with open(path, encoding="utf-8") as f:
                    card = json.load(f)
            except (OSError, ValueError):
                continue
            if isinstance(card, dict):
                return card, path
    return None, None


class Predictor:
    """An exported model with its labels and evaluation transform: an export directory (its SavedModel, else its
    float32 `.tflite` file, else its float32 `.onnx` file), a SavedModel directory, a `.tflite` file or an `.onnx`
    file (ONNX Runtime: `pip install "keras_convnets[onnx]"`)."""

    def __init__(self, path: str | os.PathLike):
        path = os.path.abspath(os.fspath(path))
        target = None
        if os.path.isfile(path) and path.endswith((".tflite", ".onnx")):
            target = path
        elif os.path.isdir(path):
            if os.path.isfile(os.path.join(path, "saved_model.pb")):
                target = path
            elif os.path.isfile(os.path.join(path, "saved_model", "saved_model.pb")):
                target = os.path.join(path, "saved_model")
            else:
                names = os.listdir(path)
                # the float32 files first (TFLite, then ONNX), then any quantized one
                floats = [tflite_filename(None), onnx_filename(None)]
                found = [n for n in floats if n in names] or sorted(n for n in names if n.endswith(".tflite"))
                found = found or sorted(n for n in names if n.endswith(".onnx"))
                if found:
                    target = os.path.join(path, found[0])
        if target is None:
            raise ValueError(
                "`model` must be an export directory of `convnets export`, a SavedModel directory, a `.tflite` "
                f"or an `.onnx` file. Received: model={path!r}"
            )
        self.path = target
        if target.endswith(".tflite"):
            self.model = TFLiteModel(target)
        elif target.endswith(".onnx"):
            from keras_convnets.export.onnx import OnnxModel

            self.model = OnnxModel(target)
        else:
            self.model = SavedModel(target)
        self.input_shape = self.model.input_shape
        here = os.path.dirname(target) if os.path.isfile(target) else target
        self.labels = read_labels(os.path.join(here, "labels.txt")) or read_labels(
            os.path.join(os.path.dirname(here), "labels.txt")
        )
        self.card, card_path = _find_card(here)
        evaluation = self.card.get("evaluation") if self.card else None
        self.evaluation = evaluation if isinstance(evaluation, dict) else None
        self.notes: list[str] = []
        if (
            self.evaluation is not None
            and self.evaluation.get("augmentation") == "inception"
            and "antialias" not in self.evaluation
        ):
            self.notes.append(
                f"{card_path} was written when the 'inception' evaluation crop was resized with antialiasing; it is "
                "now resized with plain bilinear interpolation, as training resizes its crops, so predictions can "
                "differ slightly from that export's evaluation (export it again to record it)"
            )
        if self.evaluation is None:
            why = f"{card_path} records no evaluation transform" if card_path else "no model_card.json beside the model"
            self.notes.append(
                f"{why}: each image is resized whole to {self.input_shape[0]}x{self.input_shape[1]}, which is what "
                "evaluation fed the model only for the 'crop_flip' and 'none' recipes (export it again to record it)"
            )

    @property
    def augmentation(self) -> str | None:
        """The augmentation whose evaluation transform prepares the images (the card's), None for the whole image."""
        return self.evaluation.get("augmentation") if self.evaluation else None

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

    def load_files(self, paths: Sequence[str | os.PathLike]) -> np.ndarray:
        """The image files as the model is fed them: `load_image` with the export's evaluation transform."""
        return load_images(paths, self.input_shape, augmentation=self.augmentation)

    def predict_files(self, paths: Sequence[str | os.PathLike], k: int = 5) -> list[list[tuple[str, float]]]:
        return self.top_k(self(self.load_files(paths)), k)


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")


def directory_images(
    directory: str | os.PathLike,
    shape: Sequence[int],
    *,
    count: int = 200,
    seed: int = 0,
    augmentation: str | None = None,
) -> np.ndarray:
    """Up to `count` images of a directory tree (JPEG, PNG, GIF, BMP; shuffled with `seed` so that class
    folders mix), read with `load_image` (the evaluation transform of `augmentation`) at `shape`: representative
    data for int8 quantization."""
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
    return load_images([files[i] for i in order], shape, augmentation=augmentation)


def dataset_images(
    name: str,
    shape: Sequence[int],
    *,
    count: int = 200,
    data_dir: str | None = None,
    augmentation: str | None = None,
) -> np.ndarray:
    """Up to `count` images of the held-out split of a TensorFlow Datasets dataset that is already on disk
    (nothing is downloaded), through the evaluation transform of `augmentation` at `shape` (grayscale repeated to
    3 channels, as training loads it)."""
    import tensorflow_datasets as tfds

    from keras_convnets.data.serving import evaluation_transform

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
            lambda image, label: evaluation_transform(image, augmentation=augmentation, size=(height, width))
        )
        return as_images(data.batch(64), shape, argument="dataset", limit=count)
    raise ValueError(
        f"The run's dataset {name!r} is not available offline ({errors[-1]}); pass images with `--representative-dir`."
    )
