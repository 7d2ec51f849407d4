"""Parity of an export with the Keras model, and the images it is measured on.

Every export is measured against the Keras model on the same batch of images before it is put in place
(`Parity`); one that misses its threshold (`CRITERIA`) raises `ParityError` with the numbers.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

__all__ = [
    "CRITERIA",
    "MAX_CALIBRATION_IMAGES",
    "PARITY_IMAGES",
    "Parity",
    "ParityError",
    "as_images",
    "as_pixels",
    "measure_parity",
    "random_images",
    "require_parity",
    "split_calibration",
]

# artifact kind -> (metric, threshold). "max_abs_diff" (of the probabilities) passes below the threshold,
# "top1_agreement" (fraction of images with the same top class as Keras) at or above it.
CRITERIA: dict[str, tuple[str, float]] = {
    "saved_model": ("max_abs_diff", 1e-4),  # fused graph kernels: up to 1.7e-5 seen on 100 real test images
    "keras": ("max_abs_diff", 1e-5),
    "tflite_float32": ("max_abs_diff", 1e-4),
    "tflite_float16": ("max_abs_diff", 1e-2),
    "tflite_dynamic": ("top1_agreement", 0.98),
    "tflite_int8": ("top1_agreement", 0.98),
    "onnx_float32": ("max_abs_diff", 1e-4),  # tf2onnx + ONNX Runtime: up to 3e-6 seen (GoogLeNet at 224)
    "onnx_int8": ("top1_agreement", 0.98),
}
PARITY_IMAGES = 8  # random raw-pixel images for the float checks when no images are given
MAX_CALIBRATION_IMAGES = 500


@dataclasses.dataclass(frozen=True)
class Parity:
    """How an exported artifact compares with the Keras model on the same images."""

    artifact: str  # "saved_model", "keras", "tflite_<quantization>", "onnx_float32", "onnx_int8"
    images: int
    max_abs_diff: float  # of the probabilities
    top1_agreement: float
    metric: str
    threshold: float

    @property
    def value(self) -> float:
        return getattr(self, self.metric)

    @property
    def passed(self) -> bool:
        if self.metric == "max_abs_diff":
            return self.max_abs_diff < self.threshold
        return self.top1_agreement >= self.threshold

    def to_dict(self) -> dict:
        return {
            "images": self.images,
            "max_abs_diff": self.max_abs_diff,
            "top1_agreement": self.top1_agreement,
            "criterion": f"{self.metric} {'<' if self.metric == 'max_abs_diff' else '>='} {self.threshold:g}",
            "passed": self.passed,
        }

    def __str__(self) -> str:
        required = f"{'<' if self.metric == 'max_abs_diff' else '>='} {self.threshold:g}"
        return (
            f"{self.artifact}: max abs difference in probabilities {self.max_abs_diff:.3g}, top-1 agreement "
            f"{self.top1_agreement:.2%} on {self.images} images ({self.metric} must be {required})"
        )


class ParityError(ValueError):
    """An export whose outputs differ from the Keras model's by more than its threshold; nothing was written."""

    def __init__(self, parity: Parity):
        self.parity = parity
        super().__init__(f"Export refused, parity check failed: {parity}. Nothing was written.")


def measure_parity(artifact: str, outputs: np.ndarray, reference: np.ndarray) -> Parity:
    """Compare probabilities `outputs` with the Keras `reference` (both (N, classes))."""
    outputs = np.asarray(outputs, dtype="float64")
    reference = np.asarray(reference, dtype="float64")
    if outputs.shape != reference.shape:
        raise ValueError(
            f"{artifact} returned probabilities of shape {outputs.shape}, the Keras model {reference.shape}."
        )
    diff = float(np.max(np.abs(outputs - reference))) if outputs.size else 0.0
    if np.isnan(outputs).any():
        diff = float("inf")
    agreement = float(np.mean(np.argmax(outputs, -1) == np.argmax(reference, -1)))
    metric, threshold = CRITERIA[artifact]
    return Parity(artifact, len(reference), diff, agreement, metric, threshold)


def require_parity(parity: Parity) -> Parity:
    if not parity.passed:
        raise ParityError(parity)
    return parity


def as_images(data: Any, shape: Sequence[int], *, argument: str, limit: int | None = None) -> np.ndarray:
    """Raw-pixel images `(N, H, W, C)` float32 from an array, a list of arrays, or a tf.data.Dataset of
    images or `(images, labels)`, batched or not. The size must be the model's: nothing is resized."""
    import tensorflow as tf

    shape = tuple(shape)
    if isinstance(data, tf.data.Dataset):
        chunks, count = [], 0
        for element in data.as_numpy_iterator():
            images = element[0] if isinstance(element, tuple) else element
            images = np.asarray(images)
            if images.ndim == 3:
                images = images[None]
            chunks.append(images)
            count += len(images)
            if limit is not None and count >= limit:
                break
        array = np.concatenate(chunks) if chunks else np.zeros((0, *shape))
    else:
        try:
            array = np.asarray(data if not isinstance(data, (list, tuple)) else np.stack(data))
        except (ValueError, TypeError) as error:
            raise TypeError(
                f"`{argument}` must be an array of images (N, H, W, C), a list of images or a tf.data.Dataset. "
                f"Received: {argument} of type {type(data).__name__}"
            ) from error
    if array.ndim != 4 or tuple(array.shape[1:]) != shape:
        raise ValueError(
            f"`{argument}` must hold images of the model's size {shape} (raw pixels, batch first). "
            f"Received: {argument} of shape {tuple(array.shape)}"
        )
    if len(array) == 0:
        raise ValueError(f"`{argument}` must hold at least one image. Received: {argument} with 0 images")
    if not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"`{argument}` must hold numbers (raw pixels). Received: dtype {array.dtype}")
    if limit is not None:
        array = array[:limit]
    return array.astype("float32")


def as_pixels(images: np.ndarray) -> np.ndarray:
    """Parity images as whole pixel values in [0, 255], so that the float32 and the uint8 signatures see
    the same batch."""
    return np.clip(np.round(images), 0, 255).astype("float32")


def random_images(shape: Sequence[int], count: int = PARITY_IMAGES, seed: int = 0) -> np.ndarray:
    """Integer-valued raw pixels, so the same batch feeds the float and the uint8 signatures."""
    return np.random.default_rng(seed).integers(0, 256, (count, *shape)).astype("float32")


def split_calibration(
    quantization: str | None,
    shape: Sequence[int],
    representative_data: Any,
    parity_data: Any,
) -> tuple[np.ndarray | None, np.ndarray]:
    """`(calibration_images, parity_images)` for one quantization mode.

    Full-integer quantization calibrates on `representative_data` and measures top-1 agreement on held-out
    images: `parity_data` if given, otherwise the last quarter of `representative_data` (not used to
    calibrate). The float modes compare on `parity_data`, else the representative images, else
    `PARITY_IMAGES` random images.
    """
    representative = None
    if representative_data is not None:
        representative = as_images(
            representative_data, shape, argument="representative_data", limit=MAX_CALIBRATION_IMAGES
        )
    held_out = as_images(parity_data, shape, argument="parity_data") if parity_data is not None else None
    if quantization == "int8":
        if representative is None:
            raise ValueError(
                "`quantization='int8'` needs `representative_data`: images (raw pixels at the model's size) "
                "to calibrate the activation ranges. Received: representative_data=None"
            )
        if held_out is None:
            if len(representative) < 2:
                raise ValueError(
                    "`representative_data` must hold at least 2 images when no `parity_data` is given "
                    "(a quarter is held out to measure top-1 agreement). "
                    f"Received: {len(representative)} image"
                )
            cut = len(representative) - max(1, len(representative) // 4)
            representative, held_out = representative[:cut], representative[cut:]
        return representative, as_pixels(held_out)
    if held_out is None:
        held_out = representative if representative is not None else random_images(shape)
    return None, as_pixels(held_out)
