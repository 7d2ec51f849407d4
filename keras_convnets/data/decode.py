"""Decode only what is kept: the transforms of `augment` ("scale", "inception" and their evaluation crops) applied
to encoded images, decoding the JPEG window they keep with `tf.image.decode_and_crop_jpeg` (as the TF Model
Garden's and NVIDIA's ImageNet pipelines do) instead of the whole image.

Each fused transform draws exactly what its decode-then-crop twin in `augment` draws from the same seed:
- "inception": the box of `tf.image.stateless_sample_distorted_bounding_box` on the JPEG's shape
  (`tf.image.extract_jpeg_shape`), 8%-100% of the area, aspect ratio 3/4-4/3 (Szegedy et al. 2015, Section 6),
  decoded alone and resized to the output with bilinear interpolation without antialiasing, as TF-slim's
  `inception_preprocessing` and the TF Model Garden resize their crops, and as the decode-then-crop
  path and the evaluation crop do: the same pixels as decoding the whole image.
- "scale" (He et al. 2016, Section 3.4): the shorter side drawn in [256, 480] (scaled by size / 224) and the
  offset of the size x size crop in the resized image; only the window of the original image that this crop
  reads through the resize's (antialiased, triangle) kernel is decoded, and resized with the same scale and
  the matching translation (`ScaleAndTranslate`): the result equals resizing the whole image and cropping, up
  to float rounding.
- evaluation: "scale" resizes the shorter side to 256 (scaled) and takes the central crop, decoding only the
  window under it; "inception" decodes the whole image (its central 87.5% is most of it: decoding that window
  alone was no faster in `benchmarks/data.py`) and applies `augment.eval_transform`.
Files that are not JPEG (PNG, GIF, BMP) are decoded whole and cropped the same way; grayscale and CMYK JPEGs
decode to 3 channels.
"""

from __future__ import annotations

import tensorflow as tf

from keras_convnets.data.augment import _inception_box, eval_transform

__all__ = ["DECODES", "decode_eval", "decode_image_bytes", "decode_train"]

DECODES = ("fused", "full")
_INT32_MAX = 2**31 - 1


def _check_decode(decode: str) -> None:
    if decode not in DECODES:
        raise ValueError(f"`decode` must be one of {', '.join(map(repr, DECODES))}. Received: decode={decode!r}")


def decode_image_bytes(contents) -> tf.Tensor:
    """The whole image (uint8, (H, W, 3)) of encoded JPEG, PNG, GIF (first frame) or BMP bytes."""
    image = tf.io.decode_image(contents, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def _decode_window_jpeg(contents, shape, window):
    """The pixels of `window` (top, left, height, width) of a JPEG, equal to decoding it whole and slicing.
    libjpeg-turbo upsamples the chroma of a cropped decode's first and last columns without their neighbours
    (up to 11 levels off at 4:2:0 here), so one more column is decoded on each side where the image has one and
    dropped."""
    top, left, height, width = window
    extra_left = tf.minimum(left, 1)
    extra_right = tf.minimum(shape[1] - left - width, 1)
    crop = tf.stack([top, left - extra_left, height, width + extra_left + extra_right])
    pixels = tf.image.decode_and_crop_jpeg(contents, crop, channels=3)
    return pixels[:, extra_left : extra_left + width]


def _decode_cropped(contents, window_of):
    """`(pixels, extras)`: `window_of(height, width) -> ((top, left, height, width), extras)` picks the window from
    the image's size; a JPEG decodes that window only, other formats decode whole and are sliced."""

    def jpeg():
        shape = tf.image.extract_jpeg_shape(contents)
        window, extras = window_of(shape[0], shape[1])
        return _decode_window_jpeg(contents, shape, window), extras

    def other():
        image = decode_image_bytes(contents)
        shape = tf.shape(image)
        window, extras = window_of(shape[0], shape[1])
        top, left, height, width = window
        return image[top : top + height, left : left + width], extras

    pixels, extras = tf.cond(tf.io.is_jpeg(contents), jpeg, other)
    pixels.set_shape([None, None, 3])
    return pixels, extras


def _inception_window(seed):
    def window_of(height, width):
        begin, extent = _inception_box(tf.stack([height, width, 3]), seed)
        return (begin[0], begin[1], extent[0], extent[1]), ()

    return window_of


def _scaled_crop_window(side, size: int, offset_seed=None):
    """The window of the original image that a `size` x `size` crop of the image resized to shorter side `side`
    (as `augment._resize_shorter`) reads, with the resize's scale and the translation that maps the window onto
    the crop. The crop's offset is drawn as `tf.image.stateless_random_crop` draws it from `offset_seed`, or
    central (as `augment._central_crop`) without one."""

    def window_of(height, width):
        hw = tf.cast(tf.stack([height, width]), tf.float32)
        factor = tf.cast(side, tf.float32) / tf.reduce_min(hw)
        resized = tf.cast(tf.round(hw * factor), tf.int32)
        scale = tf.cast(resized, tf.float32) / hw  # what tf.image.resize passes to ScaleAndTranslate
        if offset_seed is None:
            offset = (resized - size) // 2
        else:
            limit = tf.concat([resized - size + 1, [1]], axis=0)
            draw = tf.random.stateless_uniform([3], offset_seed, maxval=_INT32_MAX, dtype=tf.int32)
            offset = (draw % limit)[:2]
        offset_f = tf.cast(offset, tf.float32)
        support = tf.maximum(1.0 / scale, 1.0)  # the triangle kernel's radius in input pixels (antialiased)
        start = tf.cast(tf.floor((offset_f + 0.5) / scale - 0.5 - support), tf.int32) - 1
        stop = tf.cast(tf.math.ceil((offset_f + size - 0.5) / scale - 0.5 + support), tf.int32) + 2
        start = tf.maximum(start, 0)
        stop = tf.minimum(stop, tf.stack([height, width]))
        translation = tf.cast(start, tf.float32) * scale - offset_f
        window = (start[0], start[1], stop[0] - start[0], stop[1] - start[1])
        return window, (scale, translation)

    return window_of


def _resize_window(pixels, size: int, scale, translation):
    """The `size` x `size` float crop of the resized image that `pixels` (the window under it) covers."""
    out = tf.raw_ops.ScaleAndTranslate(
        images=tf.cast(pixels, tf.float32)[None],
        size=tf.constant([size, size], tf.int32),
        scale=scale,
        translation=translation,
        kernel_type="triangle",
        antialias=True,
    )
    return out[0]


def decode_train(contents, seed, *, augmentation: str, size: int, flip: bool):
    """Encoded image bytes -> the augmented float (size, size, 3) image of "scale" or "inception", drawn from the
    stateless `seed` as `augment._train_transform` draws it."""
    seeds = tf.random.experimental.stateless_split(seed, 3)
    if augmentation == "scale":
        low, high = round(size * 256 / 224), round(size * 480 / 224)
        side = tf.random.stateless_uniform([], seeds[0], minval=low, maxval=high + 1, dtype=tf.int32)
        pixels, (scale, translation) = _decode_cropped(contents, _scaled_crop_window(side, size, seeds[1]))
        image = _resize_window(pixels, size, scale, translation)
    elif augmentation == "inception":
        pixels, _ = _decode_cropped(contents, _inception_window(seeds[0]))
        if flip:  # on the uint8 crop: the half-pixel bilinear resize commutes with the mirror
            pixels = tf.image.stateless_random_flip_left_right(pixels, seeds[2])
        return tf.image.resize(pixels, (size, size), method="bilinear")
    else:
        raise ValueError(f"`augmentation` must be 'scale' or 'inception'. Received: augmentation={augmentation!r}")
    if flip:
        image = tf.image.stateless_random_flip_left_right(image, seeds[2])
    return image


def decode_eval(contents, *, augmentation: str, size: int):
    """Encoded image bytes -> the float (size, size, 3) image evaluation sees ("scale": shorter side 256 (scaled)
    then the central crop; "inception": the central 87.5%, resized), as `augment.eval_transform`."""
    if augmentation == "scale":
        side = round(size * 256 / 224)
        pixels, (scale, translation) = _decode_cropped(contents, _scaled_crop_window(side, size))
        return _resize_window(pixels, size, scale, translation)
    if augmentation == "inception":  # the central 87.5% is most of the image: decoding it alone saves nothing
        return eval_transform(decode_image_bytes(contents), augmentation=augmentation, size=size)
    raise ValueError(f"`augmentation` must be 'scale' or 'inception'. Received: augmentation={augmentation!r}")
