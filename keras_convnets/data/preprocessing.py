"""Input preprocessing of the papers' recipes, as data that travels with a trained model.

Models take float images with raw pixel values in [0, 255]. A `Preprocessing` holds what the
recipe subtracts and divides by, applies it in a tf.data pipeline, becomes a Keras
`Normalization` layer for export (so that callers send raw pixels), and saves to JSON beside a run.

- `"mean_image"`: per-pixel mean subtraction (He et al. 2016, Sections 3.4 and 4.2): an HxWxC mean image.
- `"mean_rgb"`: per-channel mean subtraction.
- `"inception"`: scale to [-1, 1] (x / 127.5 - 1), as the Inception v3 reference code.
- `"none"`: the identity.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from keras_convnets.utils.io import write_json_atomic

__all__ = ["MODES", "Preprocessing"]

MODES = ("mean_image", "mean_rgb", "inception", "none")


@dataclass(frozen=True, eq=False)
class Preprocessing:
    mode: str
    mean: np.ndarray  # broadcastable to one image (H, W, C), (C,) or ()
    std: np.ndarray  # same

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"`mode` must be one of {', '.join(map(repr, MODES))}. Received: mode={self.mode!r}")
        object.__setattr__(self, "mean", np.asarray(self.mean, dtype="float32"))
        object.__setattr__(self, "std", np.asarray(self.std, dtype="float32"))
        if np.any(self.std <= 0):
            raise ValueError("`std` must be positive everywhere.")

    @classmethod
    def none(cls) -> Preprocessing:
        return cls("none", np.float32(0.0), np.float32(1.0))

    @classmethod
    def inception(cls) -> Preprocessing:
        return cls("inception", np.float32(127.5), np.float32(127.5))

    @classmethod
    def mean_rgb(cls, mean: Any, std: Any = 1.0) -> Preprocessing:
        return cls("mean_rgb", np.asarray(mean, "float32").reshape(-1), np.asarray(std, "float32"))

    @classmethod
    def mean_image(cls, images: np.ndarray) -> Preprocessing:
        """The per-pixel mean of `images` (N, H, W, C), raw pixel values."""
        images = np.asarray(images)
        if images.ndim != 4 or len(images) == 0:
            raise ValueError(f"`images` must be a non-empty batch (N, H, W, C). Received shape {images.shape}")
        return cls("mean_image", images.astype("float64").mean(axis=0).astype("float32"), np.float32(1.0))

    def __call__(self, images):
        """Apply to a tensor or array of raw pixels (any leading batch dimensions)."""
        import tensorflow as tf

        images = tf.cast(images, tf.float32)
        mean, std = self.mean, self.std
        width = images.shape[-2] if images.shape.rank is not None and images.shape.rank >= 3 else None
        if width is not None:  # a row of pixels: TF broadcasts a (C,) vector over H x W several times slower
            mean = mean if mean.ndim != 1 else np.broadcast_to(mean, (width, mean.shape[0]))
            std = std if std.ndim != 1 else np.broadcast_to(std, (width, std.shape[0]))
        if np.any(mean != 0):  # x - 0 and x / 1 are x: skipped
            images = images - mean
        if np.any(std != 1):
            images = images / std
        return images

    def layer(self, name: str = "preprocessing"):
        """The same computation as a serializable Keras layer (`keras.layers.Normalization`)."""
        import keras

        mean, variance = self.mean, np.square(self.std)
        if self.mean.ndim == 3:  # one value per pixel and channel
            return keras.layers.Normalization(
                axis=(-3, -2, -1), mean=mean, variance=np.broadcast_to(variance, mean.shape), name=name
            )
        if self.mean.ndim == 1:  # one value per channel
            return keras.layers.Normalization(
                axis=-1, mean=mean, variance=np.broadcast_to(variance, mean.shape), name=name
            )
        return keras.layers.Normalization(axis=None, mean=float(mean), variance=float(variance), name=name)

    def get_config(self) -> dict:
        return {"mode": self.mode, "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_config(cls, config: dict) -> Preprocessing:
        return cls(config["mode"], np.asarray(config["mean"], "float32"), np.asarray(config["std"], "float32"))

    def save(self, path: str | os.PathLike) -> None:
        """Write `get_config()` as JSON, all or nothing and durable (what `load` reads back)."""
        write_json_atomic(path, self.get_config())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Preprocessing:
        with open(path, encoding="utf-8") as f:
            return cls.from_config(json.load(f))
