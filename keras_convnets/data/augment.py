"""Augmentations and the evaluation transforms that go with them:
- `"crop_flip"` (He et al. 2016, Section 4.2): pad 4 pixels, random crop back to size, horizontal flip; vectorised
  on whole batches. The pipelines apply it to the normalised images, so the zero padding is the mean colour.
- `"scale"` (Section 3.4): shorter side resized at random in [256, 480] (scaled by size / 224), random crop, flip;
  evaluation resizes the shorter side to 256 and takes the central crop.
- `"inception"`: a random crop of 8%-100% of the area with aspect ratio in [3/4, 4/3], resized, flipped;
  evaluation takes the central 87.5%. Both resize with bilinear interpolation without antialiasing, as TF-slim's
  `inception_preprocessing` (fast mode) and the TF Model Garden do, training and evaluation alike (their TF1
  resize samples on the legacy grid, without half-pixel centres; this one has them); the others antialias.
All random draws are stateless: their seeds are explicit.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["AUGMENTATIONS", "crop_flip_batch", "eval_transform"]

AUGMENTATIONS = ("crop_flip", "scale", "inception", "none")


def _check_augmentation(augmentation: str) -> None:
    if augmentation not in AUGMENTATIONS:
        raise ValueError(
            f"`augmentation` must be one of {', '.join(map(repr, AUGMENTATIONS))}. "
            f"Received: augmentation={augmentation!r}"
        )


def _resize_square(image, size: int, *, antialias: bool = True):
    return tf.image.resize(tf.cast(image, tf.float32), (size, size), method="bilinear", antialias=antialias)


def _to_uint8(image):
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def _resize_shorter(image, side):
    shape = tf.shape(image)
    h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    scale = tf.cast(side, tf.float32) / tf.minimum(h, w)
    new = tf.cast(tf.round(tf.stack([h * scale, w * scale])), tf.int32)
    return tf.image.resize(tf.cast(image, tf.float32), new, method="bilinear", antialias=True)


def _central_crop(image, size: int):
    shape = tf.shape(image)
    top, left = (shape[0] - size) // 2, (shape[1] - size) // 2
    return image[top : top + size, left : left + size]


def eval_transform(image, *, augmentation: str, size: int):
    """One raw image -> the float (size, size, 3) image evaluation sees."""
    if augmentation == "scale":
        return _central_crop(_resize_shorter(image, round(size * 256 / 224)), size)
    if augmentation == "inception":
        return _resize_square(tf.image.central_crop(image, 0.875), size, antialias=False)
    return _resize_square(image, size)


def _inception_box(shape, seed):
    """`(begin, extent)` of the "inception" random crop of an image of `shape` (H, W, C), drawn from the stateless
    `seed`: 8%-100% of the area, aspect ratio 3/4-4/3 (Szegedy et al. 2015, Section 6). The decode-then-crop
    path and the fused decode (`decode`) draw their box here, so they crop the same pixels."""
    begin, extent, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape,
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=seed,
        min_object_covered=0.0,
        aspect_ratio_range=(3 / 4, 4 / 3),
        area_range=(0.08, 1.0),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    return begin, extent


def _train_transform(image, seed, *, augmentation: str, size: int, flip: bool):
    """One raw image -> an augmented float (size, size, 3) image ("scale" and "inception")."""
    seeds = tf.random.experimental.stateless_split(seed, 3)
    if augmentation == "scale":
        low, high = round(size * 256 / 224), round(size * 480 / 224)
        side = tf.random.stateless_uniform([], seeds[0], minval=low, maxval=high + 1, dtype=tf.int32)
        image = tf.image.stateless_random_crop(_resize_shorter(image, side), [size, size, 3], seed=seeds[1])
    else:
        begin, extent = _inception_box(tf.shape(image), seeds[0])
        image = _resize_square(tf.slice(image, begin, extent), size, antialias=False)
    if flip:
        image = tf.image.stateless_random_flip_left_right(image, seeds[2])
    return image


def crop_flip_batch(images, seed, *, pad: int = 4, flip: bool = True):
    """Pad a batch (B, H, W, C) by `pad` zero pixels, crop each image back to H x W at its own random offset and
    flip half of them, all vectorised. `seed` is a stateless seed (2 integers). Give it normalised images
    (fb.resnet.torch normalises, then pads): the padding is then the mean colour."""
    images = tf.convert_to_tensor(images)
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)
    offsets = tf.random.stateless_uniform([batch, 2], seeds[0], minval=0, maxval=2 * pad + 1, dtype=tf.int32)
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    rows = offsets[:, :1] + tf.range(height)[None, :]
    cols = offsets[:, 1:] + tf.range(width)[None, :]
    out = tf.gather(padded, rows, axis=1, batch_dims=1)
    out = tf.gather(out, cols, axis=2, batch_dims=1)
    if flip:
        mirror = tf.random.stateless_uniform([batch], seeds[1]) < 0.5
        out = tf.where(mirror[:, None, None, None], tf.reverse(out, axis=[2]), out)
    return out
