"""SavedModel export: signatures with stable names, checked against Keras before they are put in place.

`serving_default` takes `images`, a float32 batch `(N, H, W, C)` of raw pixel values (what TensorFlow Serving's
JSON API sends); `serving_uint8` takes the same input as uint8 (decoded JPEG/PNG bytes, a quarter of the
payload). Both return `probabilities` (N, classes) and, where the head has them, `logits`.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from keras_convnets.data.preprocessing import Preprocessing
from keras_convnets.export.constants import INPUT_NAME, SIGNATURE, UINT8_SIGNATURE
from keras_convnets.export.graph import InferenceGraph
from keras_convnets.export.parity import Parity, as_images, as_pixels, measure_parity, random_images, require_parity
from keras_convnets.export.staging import staged
from keras_convnets.utils.backend import require_tensorflow_backend

__all__ = ["SavedModel", "check_saved_model", "export_saved_model", "write_saved_model"]


def write_saved_model(graph: InferenceGraph, path: str) -> None:
    import keras
    import tensorflow as tf

    # Not `archive.track(model)`: the endpoints' variables are tracked anyway, and tracking the model
    # as well stores every variable twice (Keras 3.15), doubling the SavedModel.
    archive = keras.export.ExportArchive()
    for key, dtype in ((SIGNATURE, tf.float32), (UINT8_SIGNATURE, tf.uint8)):
        spec = tf.TensorSpec((None, *graph.input_shape), dtype, name=INPUT_NAME)
        archive.add_endpoint(key, graph.graph, [spec])
    archive.write_out(path, verbose=False)


class SavedModel:
    """An exported SavedModel directory run through its signatures (float32 or uint8 images)."""

    def __init__(self, path: str | os.PathLike):
        import tensorflow as tf

        path = os.fspath(path)
        if not os.path.isfile(os.path.join(path, "saved_model.pb")):
            raise ValueError(f"`model` must be a SavedModel directory (with saved_model.pb). Received: model={path!r}")
        try:
            self._loaded = tf.saved_model.load(path)
        except Exception as error:  # TF raises several types for a corrupt SavedModel
            raise ValueError(
                f"`model` could not be loaded as a SavedModel. Received: model={path!r} ({error})"
            ) from error
        self.path = path
        if SIGNATURE not in self._loaded.signatures:
            raise ValueError(
                f"`model` must have a {SIGNATURE!r} signature. Received: model={path!r} with signatures "
                f"{sorted(self._loaded.signatures)}"
            )
        _, spec = self._loaded.signatures[SIGNATURE].structured_input_signature
        if list(spec) != [INPUT_NAME] or any(d is None for d in spec[INPUT_NAME].shape[1:]):
            raise ValueError(
                f"`model` must take one input {INPUT_NAME!r} of a defined size. Received: model={path!r} with "
                f"inputs {spec}"
            )
        self.input_shape = tuple(int(d) for d in spec[INPUT_NAME].shape[1:])

    @property
    def signatures(self) -> dict:
        return self._loaded.signatures

    def __call__(self, images: np.ndarray, *, signature: str = SIGNATURE, batch_size: int = 32) -> dict:
        import tensorflow as tf

        function = self._loaded.signatures[signature]
        dtype = function.structured_input_signature[1][INPUT_NAME].dtype
        chunks: dict[str, list] = {}
        for start in range(0, len(images), batch_size):
            batch = tf.constant(np.asarray(images[start : start + batch_size]), dtype=dtype)
            for name, value in function(**{INPUT_NAME: batch}).items():
                chunks.setdefault(name, []).append(value.numpy())
        return {name: np.concatenate(values) for name, values in chunks.items()}


def check_saved_model(path: str, images: np.ndarray, reference: np.ndarray) -> Parity:
    loaded = SavedModel(path)
    worst = None
    for signature in (SIGNATURE, UINT8_SIGNATURE):
        parity = measure_parity("saved_model", loaded(images, signature=signature)["probabilities"], reference)
        if worst is None or parity.max_abs_diff > worst.max_abs_diff:
            worst = parity
    return require_parity(worst)


def export_saved_model(
    model,
    path: str | os.PathLike,
    *,
    strip_aux: bool = True,
    include_preprocessing: bool = True,
    preprocessing: Preprocessing | None = None,
    overwrite: bool = False,
    parity_data: Any = None,
) -> Parity:
    """Write `model`'s inference graph as a SavedModel at `path`; return its parity with Keras.

    Args:
        model: a `keras.Model` with a defined input size; auxiliary heads are removed (`strip_aux`).
        path: the SavedModel directory to create; with `overwrite`, only an empty directory or a previous
            SavedModel (with saved_model.pb) is replaced.
        include_preprocessing: put `preprocessing` (identity when None) in the graph so that callers send
            raw pixels; False serves the model's own input.
        parity_data: raw-pixel images at the model's size to compare on (default: 8 random images).

    Signatures `serving_default` (float32 `images`) and `serving_uint8` (uint8 `images`) both return
    `probabilities` and, where the head has them, `logits`. Raises `ParityError` (nothing written) when the
    probabilities of either signature differ from Keras by 1e-5 or more.
    """
    require_tensorflow_backend("`export_saved_model`")
    graph = InferenceGraph(
        model, strip_aux=strip_aux, include_preprocessing=include_preprocessing, preprocessing=preprocessing
    )
    images = (
        as_pixels(as_images(parity_data, graph.input_shape, argument="parity_data"))
        if parity_data is not None
        else random_images(graph.input_shape)
    )
    reference = graph.reference(images)
    with staged(path, overwrite=overwrite, marker="saved_model.pb") as (staging, _):
        write_saved_model(graph, staging)
        parity = check_saved_model(staging, images, reference)
    return parity
