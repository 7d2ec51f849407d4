"""ImageNet inputs and outputs: the preprocessing each pretrained weight set expects, and class names.

- `preprocess_input(x, mode=...)` turns raw RGB pixels in [0, 255] into what a weight set was
  trained on: `"caffe"` for the keras.applications ResNets (RGB to BGR, then the BGR channel means
  subtracted, no scaling), `"torch"` for torchvision's ResNets (x / 255, then the ImageNet mean and
  standard deviation per RGB channel), `"tf"` for x / 127.5 - 1 (Inception-style, and what
  torchvision's GoogLeNet and Inception v3 weights see once their `transform_input` is folded in).
- `decode_predictions(probs, top=5)` names the best classes of each row of a (N, 1000) probability
  array. The 1000 class names ship with the package (`keras_convnets/assets/imagenet_classes.json`:
  the WordNet id and the first lemma of each synset, in the standard class-index order of sorted
  WordNet ids, duplicates disambiguated as torchvision does); nothing is downloaded.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

import keras
import numpy as np

from keras_convnets.models import common

__all__ = [
    "CAFFE_BGR_MEAN",
    "CLASSES_FILE",
    "NUM_CLASSES",
    "PREPROCESS_MODES",
    "TORCH_RGB_MEAN",
    "TORCH_RGB_STD",
    "decode_predictions",
    "imagenet_classes",
    "preprocess_input",
]

PREPROCESS_MODES = ("caffe", "torch", "tf")
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
TORCH_RGB_MEAN = (0.485, 0.456, 0.406)
TORCH_RGB_STD = (0.229, 0.224, 0.225)
NUM_CLASSES = 1000
CLASSES_FILE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "assets", "imagenet_classes.json")


def preprocess_input(x: Any, mode: str = "caffe", data_format: str | None = None) -> Any:
    """Preprocess raw RGB pixels (values in [0, 255]) for a pretrained ImageNet weight set.

    `x` is a NumPy array (a float32 array is returned, the input is not modified) or a tensor (a
    tensor is returned). Any number of leading dimensions; the channel axis is the last one for
    `"channels_last"` and the third from the end for `"channels_first"` (default:
    `keras.config.image_data_format()`), and must have 3 channels in RGB order.

    Modes: `"caffe"` (keras.applications ResNet50/101/152), `"torch"` (torchvision ResNets),
    `"tf"` (x / 127.5 - 1; torchvision GoogLeNet and Inception v3 weights in our builders).
    """
    common.check_choice("mode", mode, PREPROCESS_MODES)
    if data_format is None:
        data_format = keras.config.image_data_format()
    common.check_choice("data_format", data_format, ("channels_last", "channels_first"))
    is_array = isinstance(x, (np.ndarray, list, tuple, int, float))
    ops = np if is_array else keras.ops
    x = np.asarray(x, dtype="float32") if is_array else keras.ops.cast(x, "float32")
    axis = -1 if data_format == "channels_last" else -3
    if len(x.shape) < 3 or x.shape[axis] != 3:
        raise ValueError(
            f"`x` must hold RGB images with 3 channels on axis {axis} ({data_format}). "
            f"Received: x with shape {tuple(x.shape)}"
        )
    shape = (3,) if axis == -1 else (3, 1, 1)
    if mode == "tf":
        return x / 127.5 - 1.0
    if mode == "torch":
        mean = np.reshape(np.asarray(TORCH_RGB_MEAN, "float32"), shape)
        std = np.reshape(np.asarray(TORCH_RGB_STD, "float32"), shape)
        return (x / 255.0 - mean) / std
    x = ops.flip(x, axis=axis)  # RGB -> BGR
    return x - np.reshape(np.asarray(CAFFE_BGR_MEAN, "float32"), shape)


@functools.lru_cache(maxsize=1)
def imagenet_classes() -> tuple[tuple[str, str], ...]:
    """The 1000 ImageNet classes as `(wordnet_id, name)` pairs in class-index order."""
    with open(CLASSES_FILE, encoding="utf-8") as handle:
        return tuple((wnid, name) for wnid, name in json.load(handle))


def decode_predictions(probs: Any, top: int = 5) -> list[list[tuple[str, str, float]]]:
    """The `top` best classes of each row of `probs` (N, 1000), as keras.applications returns them:
    one list per row of `(wordnet_id, name, score)` tuples, best first."""
    common.check_int("top", top, minimum=1)
    probs = np.asarray(keras.ops.convert_to_numpy(probs) if not isinstance(probs, np.ndarray) else probs)
    if probs.ndim != 2 or probs.shape[1] != NUM_CLASSES:
        raise ValueError(
            f"`probs` must be a batch of ImageNet predictions of shape (samples, {NUM_CLASSES}). "
            f"Received: probs with shape {probs.shape}"
        )
    top = min(top, NUM_CLASSES)
    classes = imagenet_classes()
    results = []
    for row in probs:
        best = np.argsort(-row, kind="stable")[:top]
        results.append([(*classes[i], float(row[i])) for i in best])
    return results
