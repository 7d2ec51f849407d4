"""TFLite export: files converted from the SavedModel's `serving_default` signature, so the TFLite signature is
also `serving_default` with input `images` and outputs `probabilities`, `logits`. Full-integer (`"int8"`) files
take uint8 (default), int8 or float32 images (`int8_io`) and return quantized outputs, with their scale and zero
point in the tensor details.

TFLite files are run with the LiteRT interpreter (`ai_edge_litert`), never `tf.lite.Interpreter`.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from typing import Any

import numpy as np

from keras_convnets.data.preprocessing import Preprocessing
from keras_convnets.export.constants import INPUT_NAME, INT8_IO, QUANTIZATIONS, SIGNATURE
from keras_convnets.export.graph import InferenceGraph
from keras_convnets.export.parity import Parity, measure_parity, require_parity, split_calibration
from keras_convnets.export.saved_model import SavedModel, write_saved_model
from keras_convnets.export.staging import staged
from keras_convnets.utils.backend import require_tensorflow_backend
from keras_convnets.utils.io import atomic_write
from keras_convnets.utils.logs import quiet_native_logs
from keras_convnets.utils.validation import check_choice

__all__ = [
    "TFLiteModel",
    "check_tflite_options",
    "convert_checked",
    "export_tflite",
    "tflite_artifact",
    "tflite_converter",
    "tflite_filename",
]


def tflite_filename(quantization: str | None) -> str:
    return f"model_{quantization or 'float32'}.tflite"


def tflite_converter(
    saved_model_dir: str, quantization: str | None, calibration: np.ndarray | None, int8_io: str | None
):
    """The TFLite converter of the SavedModel's `serving_default` signature for one quantization mode."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=[SIGNATURE])
    if quantization is None:
        return converter
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "int8":
        converter.representative_dataset = lambda: ({INPUT_NAME: image[None]} for image in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io is not None:
            converter.inference_input_type = converter.inference_output_type = getattr(tf, int8_io)
    # "dynamic": Optimize.DEFAULT without representative data quantizes the weights to int8
    return converter


class TFLiteModel:
    """A `.tflite` file (or its bytes) run with the LiteRT interpreter through its `serving_default`
    signature: float raw-pixel images in, float probabilities (and logits) out, whatever the quantization."""

    def __init__(self, model: str | os.PathLike | bytes, *, num_threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        source = "the converted model" if isinstance(model, bytes) else repr(os.fspath(model))
        try:
            if isinstance(model, bytes):
                self._interpreter = Interpreter(model_content=model, num_threads=num_threads)
            else:
                self._interpreter = Interpreter(model_path=os.fspath(model), num_threads=num_threads)
            self._runner = self._interpreter.get_signature_runner(SIGNATURE)
        except (ValueError, RuntimeError) as error:
            raise ValueError(
                f"`model` must be a TFLite file exported by keras_convnets (a `{SIGNATURE}` signature with "
                f"input {INPUT_NAME!r}). Received: {source} ({error})"
            ) from error
        self.input_details = self._runner.get_input_details()
        self.output_details = self._runner.get_output_details()
        if list(self.input_details) != [INPUT_NAME] or "probabilities" not in self.output_details:
            raise ValueError(
                f"`model` must be a TFLite file with input {INPUT_NAME!r} and output 'probabilities'. "
                f"Received: {source} with inputs {list(self.input_details)} and outputs {list(self.output_details)}"
            )
        self.input_shape = tuple(int(d) for d in self.input_details[INPUT_NAME]["shape"][1:])
        self._called = False
        self.input_dtype = np.dtype(self.input_details[INPUT_NAME]["dtype"])

    @property
    def signatures(self) -> dict:
        return self._interpreter.get_signature_list()

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        detail = self.input_details[INPUT_NAME]
        x = np.asarray(images, dtype="float32")
        scale, zero_point = detail["quantization"]
        if np.issubdtype(self.input_dtype, np.integer):
            if scale:
                x = np.round(x / scale + zero_point)
            info = np.iinfo(self.input_dtype)
            x = np.clip(x, info.min, info.max)
        # the first call applies the XNNPACK delegate, which prints "INFO: Created TensorFlow Lite XNNPACK delegate"
        with quiet_native_logs() if not self._called else contextlib.nullcontext():
            outputs = self._runner(**{INPUT_NAME: x.astype(self.input_dtype)})
        self._called = True
        result = {}
        for name, value in outputs.items():
            scale, zero_point = self.output_details[name]["quantization"]
            value = np.asarray(value)
            if np.issubdtype(value.dtype, np.integer) and scale:
                value = (value.astype("float32") - zero_point) * scale
            result[name] = value.astype("float32")
        return result


def tflite_artifact(quantization: str | None) -> str:
    return f"tflite_{quantization or 'float32'}"


def convert_checked(
    saved_model_dir: str, quantization, calibration, int8_io, images, reference
) -> tuple[bytes, Parity]:
    converter = tflite_converter(saved_model_dir, quantization, calibration, int8_io)
    with warnings.catch_warnings():  # int8 calibration runs tf.lite.Interpreter internally; we run LiteRT
        warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
        content = converter.convert()
    outputs = TFLiteModel(content)(images)["probabilities"]
    return content, require_parity(measure_parity(tflite_artifact(quantization), outputs, reference))


def check_tflite_options(quantization: Any, int8_io: Any) -> None:
    check_choice("quantization", quantization, QUANTIZATIONS)
    check_choice("int8_io", int8_io, INT8_IO)


def export_tflite(
    model_or_saved_model,
    path: str | os.PathLike,
    *,
    quantization: str | None = None,
    representative_data: Any = None,
    int8_io: str | None = "uint8",
    parity_data: Any = None,
    preprocessing: Preprocessing | None = None,
    strip_aux: bool = True,
    overwrite: bool = False,
) -> Parity:
    """Convert a Keras model (through a temporary SavedModel) or an exported SavedModel directory to a
    `.tflite` file at `path`; return its parity with the Keras model (or with the SavedModel).

    `quantization`: None (float32), `"float16"` (float16 weights), `"dynamic"` (int8 weights, float
    activations) or `"int8"` (full integer, calibrated on `representative_data`; inputs and outputs
    `int8_io`: `"uint8"`, `"int8"` or None for float32). Thresholds: float32 max abs difference in
    probabilities < 1e-4, float16 < 1e-2, dynamic and int8 top-1 agreement >= 98% (int8 on held-out images:
    `parity_data`, or the last quarter of `representative_data`). A failed check raises `ParityError` and
    writes nothing.
    """
    import keras

    check_tflite_options(quantization, int8_io)
    if isinstance(model_or_saved_model, keras.Model):
        require_tensorflow_backend("`export_tflite` of a Keras model")
        graph = InferenceGraph(model_or_saved_model, strip_aux=strip_aux, preprocessing=preprocessing)
        shape, reference_fn = graph.input_shape, graph.reference
    elif isinstance(model_or_saved_model, (str, os.PathLike)):
        if preprocessing is not None:
            raise ValueError(
                "`preprocessing` applies to Keras models only: a SavedModel carries its own. "
                f"Received: preprocessing={preprocessing!r}"
            )
        graph = None
        loaded = SavedModel(model_or_saved_model)
        shape = loaded.input_shape
        reference_fn = lambda images: loaded(images)["probabilities"]  # noqa: E731
    else:
        raise TypeError(
            "`model_or_saved_model` must be a keras.Model or the path of a SavedModel directory. "
            f"Received: model_or_saved_model={model_or_saved_model!r}"
        )
    calibration, images = split_calibration(quantization, shape, representative_data, parity_data)
    reference = reference_fn(images)
    sources = () if graph is not None else (os.fspath(model_or_saved_model),)
    with staged(path, overwrite=overwrite, kind="file", sources=sources) as (staging, scratch):
        source = os.fspath(model_or_saved_model) if graph is None else os.path.join(scratch, "saved_model")
        if graph is not None:
            write_saved_model(graph, source)
        content, parity = convert_checked(source, quantization, calibration, int8_io, images, reference)
        with atomic_write(staging, "wb") as f:
            f.write(content)
    return parity
