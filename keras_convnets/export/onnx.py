"""ONNX export: the served graph (`InferenceGraph.graph`, the function of the SavedModel's `serving_default`)
converted by tf2onnx, checked with ONNX Runtime before it is put in place.

`model.onnx` takes `images`, a float32 batch `(N, H, W, C)` of raw pixel values (the recipe's preprocessing is
in the graph, auxiliary heads are removed), and returns `probabilities` (N, classes) and, where the head has
them, `logits`; the batch dimension is named `batch` and is free. A mixed-precision model is exported in
float32 (ONNX Runtime's CPU kernels take no bfloat16 convolutions): it is rebuilt with the float32 policy and
the same weights, and measured against that float32 Keras model.

`"int8"` (`model_int8.onnx`): static quantization by `onnxruntime.quantization` in the QDQ format, int8 weights
(per output channel) and uint8 activations whose ranges are calibrated (min/max) on representative images; the
file keeps float32 `images` in and float32 outputs. It is checked by top-1 agreement with Keras on held-out
images, as the TFLite int8 file is. uint8 activations with int8 weights (U8S8) run on ONNX Runtime's x86
integer kernels (`python -m benchmarks.infer --formats keras,onnx_float32,onnx_int8` compares them); ONNX
Runtime's documentation notes that U8S8 can saturate on x86 CPUs without VNNI, and the parity check runs on the
exporting machine's CPU.

The packages are optional: `pip install "keras_convnets[onnx]"` (tf2onnx, onnx, onnxruntime).
"""

from __future__ import annotations

import importlib
import os
import tempfile
from typing import Any

import numpy as np

from keras_convnets.data.preprocessing import Preprocessing
from keras_convnets.export.constants import INPUT_NAME
from keras_convnets.export.graph import InferenceGraph
from keras_convnets.export.parity import (
    MAX_CALIBRATION_IMAGES,
    Parity,
    as_images,
    as_pixels,
    measure_parity,
    require_parity,
    split_calibration,
)
from keras_convnets.export.staging import staged
from keras_convnets.utils.backend import require_tensorflow_backend
from keras_convnets.utils.io import atomic_write
from keras_convnets.utils.validation import check_choice, check_int

__all__ = [
    "ONNX_OPSET",
    "ONNX_QUANTIZATIONS",
    "OnnxModel",
    "check_onnx",
    "convert_onnx",
    "export_onnx",
    "float32_model",
    "onnx_artifact",
    "onnx_card",
    "onnx_filename",
    "onnx_versions",
    "quantize_onnx_int8",
    "require_onnx",
    "write_bundle_onnx",
]

ONNX_QUANTIZATIONS = (None, "int8")
ONNX_OPSET = 17  # tf2onnx 1.17 writes opsets up to 18; ONNX Runtime 1.31 runs them all
ONNX_PACKAGES = ("tf2onnx", "onnx", "onnxruntime")
INSTALL_HINT = 'pip install "keras_convnets[onnx]"'
CALIBRATION_BATCH = 16  # images a calibration step runs at once


def onnx_filename(quantization: str | None) -> str:
    return "model.onnx" if quantization is None else f"model_{quantization}.onnx"


def onnx_artifact(quantization: str | None) -> str:
    return f"onnx_{quantization or 'float32'}"


def require_onnx(packages: tuple[str, ...] = ONNX_PACKAGES) -> None:
    """Raise `ImportError` naming the missing packages and the install line when one of `packages` is absent."""
    missing = []
    for name in packages:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ImportError(
            f"ONNX export needs {', '.join(ONNX_PACKAGES)}; not installed: {', '.join(missing)}. "
            f"Install them with: {INSTALL_HINT}",
            name=missing[0],
        )


def cpu_has_vnni() -> bool | None:
    """Whether this machine's CPU has the VNNI dot-product instructions (AVX512-VNNI or AVX-VNNI), where
    ONNX Runtime's U8S8 kernels do not saturate; None where /proc/cpuinfo cannot tell (not Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), None)
    except OSError:
        return None
    if flags is None:
        return None
    return "avx512_vnni" in flags or "avx_vnni" in flags


def onnx_card(model, quantizations, calibration_images: int | None) -> dict:
    """The model card's "onnx" entry: the opset and input, what the parity reference was (the Keras model itself,
    or its float32 rebuild for a mixed-precision model), and for int8 the scheme, the number of calibration
    images and whether the exporting CPU has VNNI (the parity check ran on it)."""
    mixed = not _compute_dtypes(model) <= {"float32"}
    card = {
        "opset": ONNX_OPSET,
        INPUT_NAME: "float32 images",
        "parity_reference": "the Keras model rebuilt in float32 with the same weights (it computes in "
        f"{', '.join(sorted(_compute_dtypes(model) - {'float32'}))})"
        if mixed
        else "the Keras model",
    }
    if "int8" in quantizations:
        card["int8"] = {
            "format": "QDQ",
            "weights": "int8, per output channel",
            "activations": "uint8, min/max calibration",
            "calibration_images": calibration_images,
            "exporting_cpu_has_vnni": cpu_has_vnni(),
        }
    return card


def onnx_versions() -> dict[str, str]:
    """The versions of the packages that wrote and checked an ONNX file, for the model card."""
    return {name: importlib.import_module(name).__version__ for name in ONNX_PACKAGES}


def _compute_dtypes(model) -> set[str]:
    return {layer.dtype_policy.compute_dtype for layer in model._flatten_layers() if hasattr(layer, "dtype_policy")}


def float32_model(model):
    """`model` itself when every layer computes in float32; otherwise the same network rebuilt with the float32
    policy (`keras.models.clone_model`, each layer from its config) holding the same weights."""
    import keras

    if _compute_dtypes(model) <= {"float32"}:
        return model

    def clone(layer):
        config = layer.get_config()
        config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    left = _compute_dtypes(copy) - {"float32"}
    if left:
        raise ValueError(
            f"`model` {model.name!r} could not be rebuilt in float32 for ONNX: layers still compute in "
            f"{', '.join(sorted(left))}. Rebuild it under `keras.config.set_dtype_policy('float32')` and load its "
            "weights."
        )
    return copy


def convert_onnx(graph: InferenceGraph, *, opset: int = ONNX_OPSET) -> bytes:
    """The ONNX model (serialized) of `graph.graph`: input `images` float32 (batch, H, W, C), outputs
    `graph.output_names`, converted by tf2onnx (`convert.from_function`)."""
    import tensorflow as tf
    import tf2onnx

    spec = (tf.TensorSpec((None, *graph.input_shape), tf.float32, name=INPUT_NAME),)
    function = tf.function(graph.graph, input_signature=spec)
    proto, _ = tf2onnx.convert.from_function(function, input_signature=spec, opset=opset)
    for value in (*proto.graph.input, *proto.graph.output):  # tf2onnx names the free batch size 'unk__N'
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    names = sorted(output.name for output in proto.graph.output)
    if [value.name for value in proto.graph.input] != [INPUT_NAME] or names != graph.output_names:
        raise ValueError(
            f"tf2onnx returned inputs {[v.name for v in proto.graph.input]} and outputs {names}; expected "
            f"[{INPUT_NAME!r}] and {graph.output_names}."
        )
    return proto.SerializeToString()


def quantize_onnx_int8(content: bytes, calibration: np.ndarray, scratch: str) -> bytes:
    """Static int8 quantization (QDQ, int8 weights per channel, uint8 activations, min/max ranges calibrated on
    `calibration`, raw-pixel images) of a float32 ONNX model; files go under `scratch`."""
    from onnxruntime import quantization

    directory = tempfile.mkdtemp(prefix="onnx-int8-", dir=scratch)
    source, prepared, target = (os.path.join(directory, name) for name in ("float.onnx", "pre.onnx", "int8.onnx"))
    with atomic_write(source, "wb") as f:
        f.write(content)
    quantization.quant_pre_process(source, prepared)  # shape inference and graph clean-up, as ORT recommends

    class Reader(quantization.CalibrationDataReader):
        def __init__(self, images: np.ndarray):
            self._batches = iter(
                [{INPUT_NAME: images[i : i + CALIBRATION_BATCH]} for i in range(0, len(images), CALIBRATION_BATCH)]
            )

        def get_next(self):
            return next(self._batches, None)

    reader = Reader(np.asarray(calibration, dtype="float32"))
    quantization.quantize_static(
        prepared,
        target,
        reader,
        quant_format=quantization.QuantFormat.QDQ,
        activation_type=quantization.QuantType.QUInt8,
        weight_type=quantization.QuantType.QInt8,
        per_channel=True,
    )
    with open(target, "rb") as f:
        return f.read()


class OnnxModel:
    """An `.onnx` file (or its bytes) run with ONNX Runtime on the CPU: float raw-pixel images in, float
    probabilities (and logits) out, float32 or int8 alike."""

    def __init__(self, model: str | os.PathLike | bytes, *, num_threads: int | None = None):
        require_onnx(("onnxruntime",))
        import onnxruntime

        if num_threads is not None:
            check_int("num_threads", num_threads, minimum=1)
        if not isinstance(model, (bytes, str, os.PathLike)):
            raise TypeError(f"`model` must be the path of an .onnx file or its bytes. Received: model={model!r}")
        source = "the converted model" if isinstance(model, bytes) else repr(os.fspath(model))
        if not isinstance(model, bytes) and not os.path.isfile(model):
            raise ValueError(f"`model` must be an .onnx file. Received: model={source} (no such file)")
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: the CPU provider's notes are not the caller's business
        if num_threads is not None:
            options.intra_op_num_threads = num_threads
        try:
            self.session = onnxruntime.InferenceSession(
                model if isinstance(model, bytes) else os.fspath(model), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # ONNX Runtime's errors derive from Exception only (InvalidProtobuf, Fail ...)
            raise ValueError(
                f"`model` could not be loaded by ONNX Runtime. Received: model={source} ({error})"
            ) from error
        inputs = self.session.get_inputs()
        self.output_names = sorted(output.name for output in self.session.get_outputs())
        shape = inputs[0].shape[1:] if len(inputs) == 1 else []
        if (
            [i.name for i in inputs] != [INPUT_NAME]
            or inputs[0].type != "tensor(float)"
            or len(shape) != 3
            or not all(isinstance(d, int) for d in shape)
            or "probabilities" not in self.output_names
        ):
            raise ValueError(
                f"`model` must be an ONNX file exported by keras_convnets (float32 input {INPUT_NAME!r} of a "
                f"defined size, output 'probabilities'). Received: model={source} with inputs "
                f"{[(i.name, i.type, i.shape) for i in inputs]} and outputs {self.output_names}"
            )
        self.input_shape = tuple(int(d) for d in shape)

    def __call__(self, images: np.ndarray, *, batch_size: int = 32) -> dict[str, np.ndarray]:
        """The outputs for a float batch `(N, H, W, C)` at the model's size, `batch_size` images a run (N may be
        0: empty outputs of the right width)."""
        check_int("batch_size", batch_size, minimum=1)
        images = np.asarray(images, dtype="float32")
        if images.ndim != 4 or tuple(images.shape[1:]) != self.input_shape:
            raise ValueError(
                f"`images` must be a batch of shape (N, {', '.join(map(str, self.input_shape))}). "
                f"Received: images.shape={images.shape}"
            )
        outputs = self.session.get_outputs()
        names = [output.name for output in outputs]
        if len(images) == 0:  # the outputs of one blank image, none of its rows: the widths, named or not
            return {name: value[:0] for name, value in self(np.zeros((1, *self.input_shape), "float32")).items()}
        chunks: dict[str, list] = {name: [] for name in names}
        for start in range(0, len(images), batch_size):
            for name, value in zip(names, self.session.run(names, {INPUT_NAME: images[start : start + batch_size]})):
                chunks[name].append(np.asarray(value, dtype="float32"))
        return {name: np.concatenate(values) for name, values in chunks.items()}


def check_onnx(content: bytes, quantization: str | None, images: np.ndarray, reference: np.ndarray) -> Parity:
    """Run the ONNX model on `images` and require its parity with the Keras `reference` probabilities."""
    outputs = OnnxModel(content)(images)["probabilities"]
    return require_parity(measure_parity(onnx_artifact(quantization), outputs, reference))


def _source(model_or_run, preprocessing):
    """`(keras model, preprocessing, run or None)` of what `export_onnx` was given."""
    import keras

    from keras_convnets.export.bundle import Run, load_run

    if isinstance(model_or_run, keras.Model):
        return model_or_run, preprocessing, None
    if isinstance(model_or_run, (Run, str, os.PathLike)):
        if preprocessing is not None:
            raise ValueError(
                "`preprocessing` applies to a keras.Model only: a run carries its own (preprocessing.json). "
                f"Received: preprocessing={preprocessing!r}"
            )
        run = model_or_run if isinstance(model_or_run, Run) else load_run(model_or_run)
        return run.model, run.preprocessing, run
    raise TypeError(
        "`model_or_run` must be a keras.Model, a keras_convnets.export.Run, a run directory or a .keras file. "
        f"Received: model_or_run={model_or_run!r}"
    )


def export_onnx(
    model_or_run,
    path: str | os.PathLike,
    *,
    quantization: str | None = None,
    representative_data: Any = None,
    parity_data: Any = None,
    preprocessing: Preprocessing | None = None,
    strip_aux: bool = True,
    opset: int = ONNX_OPSET,
    overwrite: bool = False,
) -> Parity:
    """Write `model_or_run`'s inference graph as an ONNX file at `path`; return its parity with Keras.

    Args:
        model_or_run: a `keras.Model` with a defined input size, or a training run (`Run`, a run directory or
            a `.keras` file: its preprocessing.json goes into the graph). Auxiliary heads are removed.
        quantization: None (float32) or `"int8"` (static, calibrated on `representative_data`).
        representative_data: raw-pixel images to calibrate int8 on (at most 500 are read).
        parity_data: raw-pixel images to compare on. Default: for float32, the representative images, else 100
            images of a run's test split when it is on this machine, else 8 random images; for int8, the last
            quarter of `representative_data`, held out of the calibration.
        preprocessing: put it in the graph (for a keras.Model; identity when None), so callers send raw pixels.
        opset: the ONNX opset, 13 to 18.
        overwrite: replace an existing regular file at `path`.

    Thresholds (`CRITERIA`): float32 max abs difference in probabilities < 1e-4, int8 top-1 agreement >= 98%.
    A failed check raises `ParityError` and writes nothing; so does a missing package (`ImportError`).
    """
    require_tensorflow_backend("`export_onnx`")
    from keras_convnets.export.run_images import run_parity_images

    check_choice("quantization", quantization, ONNX_QUANTIZATIONS)
    check_int("opset", opset, minimum=13, maximum=18)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`path` must be a path. Received: path={path!r}")
    require_onnx()
    model, preprocessing, run = _source(model_or_run, preprocessing)
    graph = InferenceGraph(float32_model(model), strip_aux=strip_aux, preprocessing=preprocessing)
    if run is not None and parity_data is None and (quantization is None or representative_data is not None):
        # as export_bundle: the run's test split, none of it a calibration image, when it is on this machine
        excluded = None
        if representative_data is not None:
            excluded = as_pixels(
                as_images(
                    representative_data, graph.input_shape, argument="representative_data", limit=MAX_CALIBRATION_IMAGES
                )
            )
        parity_data, _ = run_parity_images(run.info, run.metrics, graph.input_shape, exclude=excluded)
    calibration, images = split_calibration(quantization, graph.input_shape, representative_data, parity_data)
    reference = graph.reference(images)
    sources = () if run is None or run.path is None else (run.path,)
    with staged(path, overwrite=overwrite, kind="file", sources=sources) as (staging, scratch):
        content = convert_onnx(graph, opset=opset)
        if quantization == "int8":
            check_onnx(content, None, images, reference)  # the float32 conversion first, then its quantization
            content = quantize_onnx_int8(content, calibration, scratch)
        parity = check_onnx(content, quantization, images, reference)
        with atomic_write(staging, "wb") as f:
            f.write(content)
    return parity


def write_bundle_onnx(
    model,
    preprocessing: Preprocessing | None,
    quantizations: list,
    float_images: np.ndarray,
    int8_split: tuple[np.ndarray | None, np.ndarray] | None,
    staging: str,
    scratch: str,
) -> list[Parity]:
    """`export_bundle`'s ONNX files: `model.onnx` (float32) and/or `model_int8.onnx` in `staging`, each checked.
    The float32 conversion is checked on `float_images` even when only int8 is written (int8 is quantized from
    it); int8 on the held-out images of `int8_split` (calibration, held out)."""
    graph = InferenceGraph(float32_model(model), preprocessing=preprocessing)
    content = convert_onnx(graph)
    float_parity = check_onnx(content, None, float_images, graph.reference(float_images))
    parities = []
    if None in quantizations:
        with atomic_write(os.path.join(staging, onnx_filename(None)), "wb") as f:
            f.write(content)
        parities.append(float_parity)
    if "int8" in quantizations:
        calibration, images = int8_split
        quantized = quantize_onnx_int8(content, calibration, scratch)
        parities.append(check_onnx(quantized, "int8", images, graph.reference(images)))
        with atomic_write(os.path.join(staging, onnx_filename("int8")), "wb") as f:
            f.write(quantized)
    return parities
