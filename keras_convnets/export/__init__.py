"""Export to SavedModel, TFLite and ONNX, checked against Keras, and prediction from the exported files.

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
written into a hidden temporary directory beside the destination, fsynced, and renamed into place when
complete: an interrupted export never leaves a partial model under its final name.

TFLite files are run with the LiteRT interpreter (`ai_edge_litert`), never `tf.lite.Interpreter`.

ONNX files (`export_onnx`, the "onnx" format of a bundle; optional packages: `pip install "keras_convnets[onnx]"`)
are converted by tf2onnx from the same served function: input `images` (float32 raw pixels), outputs
`probabilities` and `logits`, run with ONNX Runtime (`OnnxModel`); `"int8"` is static QDQ quantization
calibrated on representative images.

Modules: `constants` (signature names, formats, quantizations), `parity` (Parity, thresholds, parity and
calibration images), `graph` (the served InferenceGraph), `staging` (staged, durable writes), `saved_model`,
`tflite`, `onnx`, `bundle` (runs, export bundles and the model card), `run_images` (a run's test images, the
parity images of its export) and `predict` (Predictor and image readers).
"""

from keras_convnets.export.bundle import Run, export_bundle, load_run, read_labels
from keras_convnets.export.constants import (
    DEFAULT_FORMATS,
    FORMATS,
    INPUT_NAME,
    INT8_IO,
    QUANTIZATIONS,
    SIGNATURE,
    UINT8_SIGNATURE,
)
from keras_convnets.export.graph import InferenceGraph, check_input_size
from keras_convnets.export.onnx import ONNX_OPSET, ONNX_QUANTIZATIONS, OnnxModel, export_onnx, require_onnx
from keras_convnets.export.parity import (
    CRITERIA,
    MAX_CALIBRATION_IMAGES,
    PARITY_IMAGES,
    Parity,
    ParityError,
    as_images,
    as_pixels,
    measure_parity,
    random_images,
    split_calibration,
)
from keras_convnets.export.predict import IMAGE_EXTENSIONS, Predictor, dataset_images, directory_images, load_image
from keras_convnets.export.run_images import RUN_PARITY_IMAGES, run_parity_images
from keras_convnets.export.saved_model import SavedModel, export_saved_model
from keras_convnets.export.staging import BUNDLE_MARKER, check_destination, staged
from keras_convnets.export.tflite import TFLiteModel, export_tflite, tflite_converter, tflite_filename

__all__ = [
    "BUNDLE_MARKER",
    "CRITERIA",
    "DEFAULT_FORMATS",
    "FORMATS",
    "IMAGE_EXTENSIONS",
    "INPUT_NAME",
    "INT8_IO",
    "MAX_CALIBRATION_IMAGES",
    "ONNX_OPSET",
    "ONNX_QUANTIZATIONS",
    "PARITY_IMAGES",
    "QUANTIZATIONS",
    "RUN_PARITY_IMAGES",
    "SIGNATURE",
    "UINT8_SIGNATURE",
    "InferenceGraph",
    "OnnxModel",
    "Parity",
    "ParityError",
    "Predictor",
    "Run",
    "SavedModel",
    "TFLiteModel",
    "as_images",
    "as_pixels",
    "check_destination",
    "check_input_size",
    "dataset_images",
    "directory_images",
    "export_bundle",
    "export_onnx",
    "export_saved_model",
    "export_tflite",
    "load_image",
    "load_run",
    "measure_parity",
    "random_images",
    "read_labels",
    "require_onnx",
    "run_parity_images",
    "split_calibration",
    "staged",
    "tflite_converter",
    "tflite_filename",
]
