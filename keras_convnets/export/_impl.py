"""Export to SavedModel and TFLite, checked against Keras, and prediction from the exported files.

What an export contains:

- The inference graph only: auxiliary heads are removed (`keras_convnets.strip_aux`).
- The recipe's preprocessing inside the graph, so that callers send raw pixels (0..255).
- SavedModel signatures with stable names. `serving_default` takes `images`, a float32 batch
  `(N, H, W, C)` of raw pixel values (what TensorFlow Serving's JSON API sends); `serving_uint8` takes the
  same input as uint8 (decoded JPEG/PNG bytes, a quarter of the payload). Both return `probabilities`
  (N, classes) and, where the head has them, `logits`: a softmax `Dense` head's pre-activation is rebuilt
  from its kernel and bias, a linear head's output is the logits and its softmax the probabilities.
- TFLite files converted from that `serving_default` signature, so the TFLite signature is also
  `serving_default` with input `images` and outputs `probabilities`, `logits`. Full-integer (`"int8"`)
  files take uint8 (default), int8 or float32 images (`int8_io`) and return quantized outputs, with
  their scale and zero point in the tensor details.

Every export is measured against the Keras model on the same batch of images before it is put in place
(`Parity`); one that misses its threshold (`CRITERIA`) raises `ParityError` with the numbers. Files are
written into a hidden temporary directory beside the destination and renamed into place when complete:
an interrupted export never leaves a partial model under its final name.

TFLite files are run with the LiteRT interpreter (`ai_edge_litert`), never `tf.lite.Interpreter`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import shutil
import tempfile
import warnings
from typing import Any, Iterator, Sequence

import numpy as np

from keras_convnets.data.preprocessing import Preprocessing
from keras_convnets.models import common

SIGNATURE = "serving_default"
UINT8_SIGNATURE = "serving_uint8"
INPUT_NAME = "images"
QUANTIZATIONS = (None, "float16", "dynamic", "int8")
INT8_IO = ("uint8", "int8", None)
FORMATS = ("saved_model", "tflite", "keras")

# artifact kind -> (metric, threshold). "max_abs_diff" (of the probabilities) passes below the threshold,
# "top1_agreement" (fraction of images with the same top class as Keras) at or above it.
CRITERIA: dict[str, tuple[str, float]] = {
    "saved_model": ("max_abs_diff", 1e-5),
    "keras": ("max_abs_diff", 1e-5),
    "tflite_float32": ("max_abs_diff", 1e-4),
    "tflite_float16": ("max_abs_diff", 1e-2),
    "tflite_dynamic": ("top1_agreement", 0.98),
    "tflite_int8": ("top1_agreement", 0.98),
}
PARITY_IMAGES = 8  # random raw-pixel images for the float checks when no images are given
MAX_CALIBRATION_IMAGES = 500


# --------------------------------------------------------------------------------------------- parity


@dataclasses.dataclass(frozen=True)
class Parity:
    """How an exported artifact compares with the Keras model on the same images."""

    artifact: str  # "saved_model", "keras", "tflite_float32", "tflite_float16", "tflite_dynamic", "tflite_int8"
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


def _require(parity: Parity) -> Parity:
    if not parity.passed:
        raise ParityError(parity)
    return parity


# ------------------------------------------------------------------------------------ the served graph


def check_input_size(model) -> tuple[int, int, int]:
    """The model's (height, width, channels); an undefined size cannot be exported."""
    if len(model.inputs) != 1:
        raise ValueError(
            f"`model` must have one image input to be exported. Received: a model {model.name!r} with "
            f"{len(model.inputs)} inputs"
        )
    shape = tuple(model.inputs[0].shape[1:])
    if len(shape) != 3 or any(d is None for d in shape):
        raise ValueError(
            "`model` must have a defined input size (height, width, channels) to be exported: rebuild it "
            f"with `input_shape=(224, 224, 3)` (or its size). Received: model {model.name!r} with "
            f"input_shape={shape}"
        )
    return tuple(int(d) for d in shape)


def _strip_aux(model):
    try:
        from keras_convnets.models.aux import strip_aux
    except ImportError:  # the aux heads are optional; a model without them is already the inference model
        if len(model.outputs) != 1:
            raise
        return model
    return strip_aux(model)


def _head(tensor) -> tuple[str, Any, Any]:
    """What an output tensor is: `("softmax_dense", dense_layer, features)`, `("softmax", layer, logits)`,
    `("linear", layer, None)` (the output is logits) or `("other", layer, None)`."""
    import keras

    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return "other", None, None
    layer = history.operation
    node = layer._inbound_nodes[history.node_index]
    inputs = node.input_tensors
    activation = getattr(layer, "activation", None)
    softmax = keras.activations.softmax
    if isinstance(layer, keras.layers.Dense) and len(inputs) == 1:
        if activation is softmax:
            return "softmax_dense", layer, inputs[0]
        if activation is keras.activations.linear:
            return "linear", layer, None
    if len(inputs) == 1 and (
        (isinstance(layer, keras.layers.Activation) and activation is softmax)
        or (isinstance(layer, keras.layers.Softmax) and layer.axis in (-1, len(tensor.shape) - 1))
    ):
        return "softmax", layer, inputs[0]
    return "other", layer, None


class InferenceGraph:
    """The inference model (aux heads stripped), its preprocessing and its output names.

    `graph(images)` maps raw-pixel images to `{"probabilities", "logits"}` (tf tensors), the function the
    SavedModel and TFLite signatures serve; `reference(images)` is the Keras model's own answer (numpy).
    With `strip_aux=False` auxiliary heads are served too, as `aux1_probabilities`, `aux1_logits`, ...
    """

    def __init__(
        self,
        model,
        *,
        strip_aux: bool = True,
        include_preprocessing: bool = True,
        preprocessing: Preprocessing | None = None,
    ):
        import keras

        if not isinstance(model, keras.Model):
            raise TypeError(f"`model` must be a keras.Model. Received: model={model!r}")
        if not isinstance(strip_aux, bool):
            raise TypeError(f"`strip_aux` must be True or False. Received: strip_aux={strip_aux!r}")
        if preprocessing is not None and not isinstance(preprocessing, Preprocessing):
            raise TypeError(
                "`preprocessing` must be None or a keras_convnets.data.preprocessing.Preprocessing. "
                f"Received: preprocessing={preprocessing!r}"
            )
        self.input_shape = check_input_size(model)
        self.source = model
        self.model = _strip_aux(model) if strip_aux else model
        outputs = self.model.output
        if isinstance(outputs, dict):
            named = sorted(outputs.items(), key=lambda kv: (kv[0] != "predictions", kv[0]))
            named = [("" if key == "predictions" else f"{key}_", tensor) for key, tensor in named]
        elif isinstance(outputs, (list, tuple)):
            if len(outputs) != 1:
                raise ValueError(
                    f"`model` must have one output, or a dict of outputs with a 'predictions' entry, to be "
                    f"exported. Received: model {model.name!r} with {len(outputs)} outputs"
                )
            named = [("", outputs[0])]
        else:
            named = [("", outputs)]
        self.preprocessing = (preprocessing or Preprocessing.none()) if include_preprocessing else None
        self.heads = []  # (prefix, kind, layer, index of output, index of pre-activation or None)
        tensors = []
        for prefix, tensor in named:
            kind, layer, pre = _head(tensor)
            tensors.append(tensor)
            pre_index = None
            if pre is not None:
                tensors.append(pre)
                pre_index = len(tensors) - 1
            self.heads.append((prefix, kind, layer, len(tensors) - 1 - (pre is not None), pre_index))
        self.classes = int(named[0][1].shape[-1])
        self.has_logits = self.heads[0][1] != "other"
        self._graph_model = keras.Model(self.model.inputs, tensors, name=f"{self.model.name}_serving")

    @property
    def output_names(self) -> list[str]:
        names = []
        for prefix, kind, *_ in self.heads:
            names.append(f"{prefix}probabilities")
            if kind != "other":
                names.append(f"{prefix}logits")
        return sorted(names)

    def _inputs(self, images):
        import tensorflow as tf

        images = tf.cast(images, tf.float32)
        return self.preprocessing(images) if self.preprocessing is not None else images

    def graph(self, images) -> dict:
        import tensorflow as tf

        values = self._graph_model(self._inputs(images), training=False)
        values = [tf.cast(v, tf.float32) for v in (values if isinstance(values, (list, tuple)) else [values])]
        result = {}
        for prefix, kind, layer, out_index, pre_index in self.heads:
            output = values[out_index]
            if kind == "softmax_dense":
                kernel = tf.cast(layer.kernel, tf.float32)
                logits = tf.matmul(values[pre_index], kernel)
                if layer.use_bias:
                    logits = logits + tf.cast(layer.bias, tf.float32)
                result[f"{prefix}logits"] = logits
                result[f"{prefix}probabilities"] = output
            elif kind == "softmax":
                result[f"{prefix}logits"] = values[pre_index]
                result[f"{prefix}probabilities"] = output
            elif kind == "linear":
                result[f"{prefix}logits"] = output
                result[f"{prefix}probabilities"] = tf.nn.softmax(output, axis=-1)
            else:
                result[f"{prefix}probabilities"] = output
        return result

    def reference(self, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """The Keras model's probabilities for raw-pixel `images` (the main head), in numpy."""
        import keras

        chunks = []
        for start in range(0, len(images), batch_size):
            x = self._inputs(images[start : start + batch_size])
            out = self.model(x, training=False)
            if isinstance(out, dict):
                out = out["predictions"]
            elif isinstance(out, (list, tuple)):
                out = out[0]
            chunks.append(keras.ops.convert_to_numpy(out).astype("float64"))
        probabilities = np.concatenate(chunks) if chunks else np.zeros((0, self.classes))
        if self.heads[0][1] == "linear":
            shifted = probabilities - probabilities.max(-1, keepdims=True)
            probabilities = np.exp(shifted) / np.exp(shifted).sum(-1, keepdims=True)
        return probabilities

    def keras_model(self):
        """The inference model with the preprocessing as a first layer: raw pixels in, as the signatures."""
        import keras

        # A new functional model over the same layers: uncompiled, so no optimizer state is saved with it.
        outputs = self.model.outputs[0] if len(self.model.outputs) == 1 else self.model.output
        model = keras.Model(self.model.inputs, outputs, name=self.model.name)
        if self.preprocessing is None:
            return model
        inputs = keras.Input(shape=self.input_shape, name=INPUT_NAME)
        outputs = model(self.preprocessing.layer()(inputs))
        return keras.Model(inputs, outputs, name=self.model.name)


def _write_saved_model(graph: InferenceGraph, path: str) -> None:
    import keras
    import tensorflow as tf

    # Not `archive.track(model)`: the endpoints' variables are tracked anyway, and tracking the model
    # as well stores every variable twice (Keras 3.15), doubling the SavedModel.
    archive = keras.export.ExportArchive()
    for key, dtype in ((SIGNATURE, tf.float32), (UINT8_SIGNATURE, tf.uint8)):
        spec = tf.TensorSpec((None, *graph.input_shape), dtype, name=INPUT_NAME)
        archive.add_endpoint(key, graph.graph, [spec])
    archive.write_out(path, verbose=False)


# ----------------------------------------------------------------------------------- atomic writing


def check_destination(path: str, overwrite: bool) -> None:
    if os.path.lexists(path) and not overwrite:
        raise FileExistsError(f"The destination {path!r} exists; pass `overwrite=True` (`--overwrite`) to replace it.")


@contextlib.contextmanager
def staged(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[tuple[str, str]]:
    """Yield `(staging_path, scratch_dir)` in a hidden directory beside `path`; when the block completes,
    rename the staged file or directory to `path` (replacing it only with `overwrite`). On any error or
    interruption the staging directory is removed and `path` is left as it was."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`path` must be a path. Received: path={path!r}")
    path = os.path.abspath(os.fspath(path))
    check_destination(path, overwrite)
    parent, base = os.path.split(path)
    os.makedirs(parent, exist_ok=True)
    root = tempfile.mkdtemp(prefix=f".{base}.partial-", dir=parent)
    try:
        scratch = os.path.join(root, "scratch")
        os.mkdir(scratch)
        staging = os.path.join(root, base)
        yield staging, scratch
        if not os.path.lexists(staging):
            raise RuntimeError(f"Nothing was staged for {path!r}.")
        check_destination(path, overwrite)
        if os.path.lexists(path) and (os.path.isdir(path) or os.path.isdir(staging)):
            os.rename(path, os.path.join(root, "previous"))  # removed with the staging directory
        os.replace(staging, path)
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------------------------------ images


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


# ------------------------------------------------------------------------------------------- TFLite


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
        outputs = self._runner(**{INPUT_NAME: x.astype(self.input_dtype)})
        result = {}
        for name, value in outputs.items():
            scale, zero_point = self.output_details[name]["quantization"]
            value = np.asarray(value)
            if np.issubdtype(value.dtype, np.integer) and scale:
                value = (value.astype("float32") - zero_point) * scale
            result[name] = value.astype("float32")
        return result


# -------------------------------------------------------------------------------------- SavedModel


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


def _check_saved_model(path: str, images: np.ndarray, reference: np.ndarray) -> Parity:
    loaded = SavedModel(path)
    worst = None
    for signature in (SIGNATURE, UINT8_SIGNATURE):
        parity = measure_parity("saved_model", loaded(images, signature=signature)["probabilities"], reference)
        if worst is None or parity.max_abs_diff > worst.max_abs_diff:
            worst = parity
    return _require(worst)


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
        path: the SavedModel directory to create.
        include_preprocessing: put `preprocessing` (identity when None) in the graph so that callers send
            raw pixels; False serves the model's own input.
        parity_data: raw-pixel images at the model's size to compare on (default: 8 random images).

    Signatures `serving_default` (float32 `images`) and `serving_uint8` (uint8 `images`) both return
    `probabilities` and, where the head has them, `logits`. Raises `ParityError` (nothing written) when the
    probabilities of either signature differ from Keras by 1e-5 or more.
    """
    graph = InferenceGraph(
        model, strip_aux=strip_aux, include_preprocessing=include_preprocessing, preprocessing=preprocessing
    )
    images = (
        as_pixels(as_images(parity_data, graph.input_shape, argument="parity_data"))
        if parity_data is not None
        else random_images(graph.input_shape)
    )
    reference = graph.reference(images)
    with staged(path, overwrite=overwrite) as (staging, _):
        _write_saved_model(graph, staging)
        parity = _check_saved_model(staging, images, reference)
    return parity


def _tflite_artifact(quantization: str | None) -> str:
    return f"tflite_{quantization or 'float32'}"


def _convert_checked(
    saved_model_dir: str, quantization, calibration, int8_io, images, reference
) -> tuple[bytes, Parity]:
    converter = tflite_converter(saved_model_dir, quantization, calibration, int8_io)
    with warnings.catch_warnings():  # int8 calibration runs tf.lite.Interpreter internally; we run LiteRT
        warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
        content = converter.convert()
    outputs = TFLiteModel(content)(images)["probabilities"]
    return content, _require(measure_parity(_tflite_artifact(quantization), outputs, reference))


def _check_tflite_options(quantization: Any, int8_io: Any) -> None:
    common.check_choice("quantization", quantization, QUANTIZATIONS)
    common.check_choice("int8_io", int8_io, INT8_IO)


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

    _check_tflite_options(quantization, int8_io)
    if isinstance(model_or_saved_model, keras.Model):
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
    with staged(path, overwrite=overwrite) as (staging, scratch):
        source = os.fspath(model_or_saved_model) if graph is None else os.path.join(scratch, "saved_model")
        if graph is not None:
            _write_saved_model(graph, source)
        content, parity = _convert_checked(source, quantization, calibration, int8_io, images, reference)
        with open(staging, "wb") as f:
            f.write(content)
    return parity


# ------------------------------------------------------------------------------- runs and bundles


@dataclasses.dataclass
class Run:
    """A trained model and what travels with it (a run directory of `convnets train`, or a `.keras` file)."""

    name: str
    model: Any
    preprocessing: Preprocessing | None
    labels: list[str] | None
    metrics: dict
    info: dict


def _read_json(path: str) -> dict:
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_labels(path: str) -> list[str] | None:
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def load_run(path: str | os.PathLike) -> Run:
    """A run directory (model.keras, preprocessing.json, labels.txt, metrics.json, run.json) or a `.keras`
    file (with those files beside it when present). The model loads with `safe_mode=True`."""
    import keras

    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path):
        directory, model_path, name = path, os.path.join(path, "model.keras"), os.path.basename(path)
    else:
        directory, model_path = os.path.dirname(path), path
        name = os.path.splitext(os.path.basename(path))[0]
    if not os.path.isfile(model_path) or not model_path.endswith(".keras"):
        raise ValueError(
            "`source` must be a training run directory (with model.keras) or a `.keras` file. "
            f"Received: source={path!r}"
        )
    try:
        model = keras.saving.load_model(model_path, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises ValueError, OSError, zipfile errors ... for a bad file
        raise ValueError(
            f"`source` could not be loaded as a Keras model. Received: source={model_path!r} ({error})"
        ) from error
    prep_path = os.path.join(directory, "preprocessing.json")
    preprocessing = Preprocessing.load(prep_path) if os.path.isfile(prep_path) else None
    return Run(
        name,
        model,
        preprocessing,
        read_labels(os.path.join(directory, "labels.txt")),
        _read_json(os.path.join(directory, "metrics.json")),
        _read_json(os.path.join(directory, "run.json")),
    )


def tflite_filename(quantization: str | None) -> str:
    return f"model_{quantization or 'float32'}.tflite"


def _file_sizes(root: str) -> dict[str, int]:
    sizes = {}
    for entry in sorted(os.listdir(root)):
        full = os.path.join(root, entry)
        if os.path.isdir(full):
            sizes[entry + "/"] = sum(
                os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(full) for f in files
            )
        else:
            sizes[entry] = os.path.getsize(full)
    return sizes


def _preprocessing_card(preprocessing: Preprocessing | None) -> dict:
    if preprocessing is None:
        return {"mode": "none", "in_graph": False}
    config = preprocessing.get_config()
    if preprocessing.mean.ndim == 3:  # a mean image: summarise, the full array is in the graph
        config["mean"] = {
            "shape": list(preprocessing.mean.shape),
            "per_channel_average": preprocessing.mean.reshape(-1, preprocessing.mean.shape[-1]).mean(0).tolist(),
        }
    return {**config, "in_graph": True}


def export_bundle(
    source,
    output: str | os.PathLike,
    *,
    formats: Sequence[str] = FORMATS,
    quantizations: Sequence[str | None] = (None,),
    representative_data: Any = None,
    parity_data: Any = None,
    int8_io: str | None = "uint8",
    overwrite: bool = False,
) -> dict:
    """Export a run (a `Run`, a run directory or a `.keras` file) to the directory `output`: `saved_model/`,
    `model.keras`, one `model_<quantization>.tflite` per quantization, `labels.txt` and `model_card.json`.

    Every artifact is checked against the Keras model (see `CRITERIA`); the directory is assembled beside
    `output` and renamed into place only when everything passed. Returns the model card.
    """
    import keras
    import tensorflow as tf

    from keras_convnets.analysis.profiler import profile

    formats = list(formats)
    for value in formats:
        common.check_choice("formats", value, FORMATS)
    if not formats:
        raise ValueError("`formats` must name at least one of 'saved_model', 'tflite', 'keras'. Received: formats=[]")
    quantizations = list(dict.fromkeys(quantizations)) if "tflite" in formats else []
    for value in quantizations:
        _check_tflite_options(value, int8_io)
    output = os.path.abspath(os.fspath(output))
    check_destination(output, overwrite)
    run = source if isinstance(source, Run) else load_run(source)
    graph = InferenceGraph(run.model, preprocessing=run.preprocessing)
    if run.labels is not None and len(run.labels) != graph.classes:
        raise ValueError(f"labels.txt has {len(run.labels)} names but the model has {graph.classes} classes.")
    splits = {q: split_calibration(q, graph.input_shape, representative_data, parity_data) for q in quantizations}
    float_images = split_calibration(None, graph.input_shape, representative_data, parity_data)[1]
    parities: dict[str, Parity] = {}
    with staged(output, overwrite=overwrite) as (staging, scratch):
        os.mkdir(staging)
        saved_model_dir = os.path.join(staging if "saved_model" in formats else scratch, "saved_model")
        if "saved_model" in formats or quantizations:  # the TFLite files are converted from it: always checked
            _write_saved_model(graph, saved_model_dir)
            parity = _check_saved_model(saved_model_dir, float_images, graph.reference(float_images))
            if "saved_model" in formats:
                parities["saved_model"] = parity
        if "keras" in formats:
            keras_path = os.path.join(staging, "model.keras")
            graph.keras_model().save(keras_path)
            reloaded = keras.saving.load_model(keras_path, compile=False, safe_mode=True)
            outputs = keras.ops.convert_to_numpy(reloaded(float_images, training=False))
            if graph.heads[0][1] == "linear":
                outputs = keras.ops.convert_to_numpy(keras.ops.softmax(outputs))
            parities["keras"] = _require(measure_parity("keras", outputs, graph.reference(float_images)))
        for quantization in quantizations:
            calibration, images = splits[quantization]
            content, parity = _convert_checked(
                saved_model_dir, quantization, calibration, int8_io, images, graph.reference(images)
            )
            with open(os.path.join(staging, tflite_filename(quantization)), "wb") as f:
                f.write(content)
            parities[parity.artifact] = parity
        labels = run.labels or [str(i) for i in range(graph.classes)]
        with open(os.path.join(staging, "labels.txt"), "w", encoding="utf-8") as f:
            f.write("".join(f"{label}\n" for label in labels))
        report = profile(graph.model)
        card = {
            "name": os.path.basename(output),
            "architecture": run.metrics.get("model", graph.model.name),
            "source": run.name,
            "input_size": list(graph.input_shape),
            "classes": graph.classes,
            "preprocessing": _preprocessing_card(graph.preprocessing),
            "parameters": {"trainable": report.trainable_params, "total": report.total_params},
            "macs": report.macs,
            "metrics": run.metrics,
            "signatures": {
                "saved_model": {SIGNATURE: "float32 images", UINT8_SIGNATURE: "uint8 images"},
                "inputs": [INPUT_NAME],
                "outputs": graph.output_names,
                "tflite_int8_io": int8_io if "int8" in quantizations else None,
            },
            "parity": {name: parity.to_dict() for name, parity in parities.items()},
            "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
        }
        card["files"] = _file_sizes(staging)
        with open(os.path.join(staging, "model_card.json"), "w", encoding="utf-8") as f:
            json.dump(card, f, indent=2)
    return card


# ------------------------------------------------------------------------------------------ predict


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
        common.check_int("k", k, minimum=1)
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

    errors = []
    for split in ("test", "validation", "train"):
        try:
            data = tfds.load(name, split=split, data_dir=data_dir, download=False, as_supervised=True)
        except Exception as error:  # tfds raises AssertionError, ValueError, DatasetNotFoundError ...
            errors.append(
                f"{split}: {str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__}"
            )
            continue
        height, width, _ = shape
        data = data.take(count).map(
            lambda image, label: tf.round(tf.image.resize(tf.cast(image, tf.float32), (height, width)))
        )
        return as_images(data.batch(64), shape, argument="dataset", limit=count)
    raise ValueError(
        f"The run's dataset {name!r} is not available offline ({errors[-1]}); pass images with `--representative-dir`."
    )
