"""What a served model is fed: an image file decoded as training decodes it, then the evaluation transform of the
run's augmentation, so that `convnets predict` and int8 calibration see the images evaluation saw.

- Decoding (`read_image`): `keras_convnets.data.dataset.decode_image`, the decoder of image folders in training
  (`tf.io.decode_image(channels=3, expand_animations=False)`): grayscale (L, LA) is repeated to 3 channels, alpha
  is dropped (not composited), palette (P) images are expanded to their colours, 16-bit PNGs keep their high byte
  (v >> 8), an animated GIF gives its first frame. `as_rgb` does the same to an array.
- Files (`evaluation_images`) go through `eval_pipeline` itself, as the test split of an image folder of those
  files: they get exactly the pixels an evaluation of that folder gets, however the pipeline decodes them.
- A decoded image (`evaluation_transform`) goes through `keras_convnets.data.augment.eval_transform` as
  `eval_pipeline` applies it to decoded images (arrays, streams), rounded to uint8 as evaluation stores it:
  - `"crop_flip"`, `"none"` (and None, a run that records no recipe): the whole image resized to the model's size;
  - `"scale"`: the shorter side resized to round(size * 256 / 224), the central size x size crop (He et al. 2016,
    Section 3.4: shorter side 256, centre 224);
  - `"inception"`: the central 87.5% of the image, resized to size x size.
  Resizes are bilinear, with antialiasing except for "inception" (none, as its training crops, TF-slim and the
  TF Model Garden). The pixels stay raw (0..255): the recipe's normalisation is inside the
  exported graph.
- The model card's `"evaluation"` entry (`evaluation_card`): `{"augmentation": mode or None, "transform": what it
  does in words, "size": [height, width], "antialias": whether its resize antialiases, "decoding": how files
  become RGB}`; `export_bundle` writes it, `Predictor`
  and the int8 calibration of `convnets export` read it back.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import tensorflow as tf

from keras_convnets.data.augment import AUGMENTATIONS, _resize_square, _to_uint8, eval_transform
from keras_convnets.data.dataset import ImageData, decode_image, files_dataset

__all__ = [
    "DECODING",
    "as_rgb",
    "describe_transform",
    "evaluation_card",
    "evaluation_images",
    "evaluation_transform",
    "read_image",
]

DECODING = (
    "RGB as training decodes image files: grayscale repeated to 3 channels, alpha dropped, palette expanded, "
    "16-bit reduced to its high byte"
)


def _check_augmentation(augmentation: Any) -> None:
    if augmentation is not None and augmentation not in AUGMENTATIONS:
        allowed = ", ".join(map(repr, AUGMENTATIONS))
        raise ValueError(f"`augmentation` must be one of {allowed} or None. Received: augmentation={augmentation!r}")


def _size_pair(size: Any, augmentation: str | None) -> tuple[int, int]:
    """`size` (an int, or (height, width)) as (height, width); the centre crops of "scale" and "inception" are
    square, as evaluation's are."""
    pair = (size, size) if isinstance(size, int) and not isinstance(size, bool) else tuple(size)
    if len(pair) != 2 or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in pair):
        raise ValueError(f"`size` must be a positive int or (height, width). Received: size={size!r}")
    if augmentation in ("scale", "inception") and pair[0] != pair[1]:
        raise ValueError(
            f"`size` must be square for the {augmentation!r} evaluation transform (a central square crop). "
            f"Received: size={size!r}"
        )
    return int(pair[0]), int(pair[1])


def describe_transform(augmentation: str | None, size: int | Sequence[int]) -> str:
    """The evaluation transform of `augmentation` at `size`, in words (the model card's `transform`)."""
    _check_augmentation(augmentation)
    height, width = _size_pair(size, augmentation)
    if augmentation == "scale":
        return (
            f"shorter side resized to {round(height * 256 / 224)}, central {height}x{width} crop "
            "(He et al. 2016, Section 3.4), bilinear with antialiasing, rounded to uint8"
        )
    if augmentation == "inception":
        return (
            f"central 87.5% of the image resized to {height}x{width}, bilinear without antialiasing (as TF-slim's "
            "inception_preprocessing), rounded to uint8"
        )
    return f"whole image resized to {height}x{width}, bilinear with antialiasing, rounded to uint8"


def evaluation_card(augmentation: str | None, size: int | Sequence[int]) -> dict:
    """The model card's `"evaluation"` entry: what `evaluation_transform(image, augmentation, size)` does."""
    return {
        "augmentation": augmentation,
        "transform": describe_transform(augmentation, size),
        "size": list(_size_pair(size, augmentation)),
        "antialias": augmentation != "inception",
        "decoding": DECODING,
    }


def as_rgb(image) -> tf.Tensor:
    """An image (H, W) or (H, W, C) with C in 1..4 as (H, W, 3), converted as the training decoder converts files:
    grayscale (with or without alpha) repeated to 3 channels, alpha dropped."""
    image = tf.convert_to_tensor(image)
    if image.shape.rank == 2:
        image = image[..., None]
    if image.shape.rank != 3 or image.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(
            f"`image` must be (height, width) or (height, width, channels) with 1 to 4 channels. "
            f"Received: an image of shape {tuple(image.shape)}"
        )
    channels = image.shape[-1]
    if channels in (1, 2):
        return tf.repeat(image[..., :1], 3, axis=-1)
    return image[..., :3]


def evaluation_transform(image, *, augmentation: str | None, size: int | Sequence[int]) -> tf.Tensor:
    """One decoded image of any size (raw pixels: uint8, or floats in 0..255; grayscale and alpha are converted
    with `as_rgb`) -> the uint8 (height, width, 3) image evaluation feeds the model under `augmentation`, before
    the recipe's normalisation. `size` is an int or (height, width); None for `augmentation` is the whole image
    resized (a run that records no recipe). Works eagerly and inside `tf.data` maps."""
    _check_augmentation(augmentation)
    height, width = _size_pair(size, augmentation)
    image = as_rgb(image)
    if not (image.dtype == tf.uint8 or image.dtype.is_floating):
        raise TypeError(f"`image` must hold uint8 or float raw pixels. Received: dtype {image.dtype.name}")
    if augmentation in ("scale", "inception"):
        return _to_uint8(eval_transform(image, augmentation=augmentation, size=height))
    if height == width:
        return _to_uint8(_resize_square(image, height))
    return _to_uint8(tf.image.resize(tf.cast(image, tf.float32), (height, width), method="bilinear", antialias=True))


def read_image(path: str | os.PathLike) -> tf.Tensor:
    """The uint8 (H, W, 3) pixels of an image file (JPEG, PNG, GIF, BMP), decoded as training decodes image folders.
    A missing file is a `FileNotFoundError`, one that does not decode a `ValueError` naming it."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such image: {path!r}")
    try:
        image, _ = decode_image(tf.constant(path), 0)
        return tf.convert_to_tensor(image)
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError, ValueError) as error:
        raise ValueError(
            f"`image` could not be decoded (JPEG, PNG, GIF or BMP expected). Received: image={path!r}"
        ) from error


def evaluation_images(
    paths: Sequence[str | os.PathLike], *, augmentation: str | None, size: int | Sequence[int]
) -> np.ndarray:
    """Image files (JPEG, PNG, GIF, BMP) -> the uint8 (N, height, width, 3) images evaluation feeds the model under
    `augmentation` (None: the whole image resized), in their order: `eval_pipeline` run on them as the test split
    of an image folder, so that they equal what an evaluation of that folder sees, bit for bit. A non-square `size`
    (a model no recipe trained) resizes the whole image with `evaluation_transform`. A missing file is a
    `FileNotFoundError`, one that does not decode a `ValueError` naming it."""
    from keras_convnets.data.pipelines import eval_pipeline

    _check_augmentation(augmentation)
    height, width = _size_pair(size, augmentation)
    paths = [os.fspath(p) for p in paths]
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No such image: {path!r}")
    if not paths:
        return np.zeros((0, height, width, 3), "uint8")
    if height != width:
        return np.stack([evaluation_transform(read_image(p), augmentation=None, size=(height, width)) for p in paths])
    labels = np.zeros(len(paths), "int32")
    files = (np.asarray(paths, dtype=object), labels)
    split = files_dataset(*files)
    folder = ImageData("files", split, split, len(paths), len(paths), ["0"], train_files=files, test_files=files)
    ds = eval_pipeline(folder, batch_size=64, image_size=height, augmentation=augmentation or "none", cache=False)
    batches = [x for x, _ in ds.as_numpy_iterator()]
    images = np.concatenate(batches) if batches else np.zeros((0, height, width, 3), "float32")
    if len(images) != len(paths):  # the pipeline drops what does not decode: name it
        for path in paths:
            read_image(path)
        raise ValueError(f"`paths` gave {len(images)} images for {len(paths)} files. Received: paths={paths!r}")
    return images.astype("uint8")
