"""The names an export is served under, and the formats and quantization modes it can be written in."""

from __future__ import annotations

__all__ = ["DEFAULT_FORMATS", "FORMATS", "INPUT_NAME", "INT8_IO", "QUANTIZATIONS", "SIGNATURE", "UINT8_SIGNATURE"]

SIGNATURE = "serving_default"
UINT8_SIGNATURE = "serving_uint8"
INPUT_NAME = "images"
QUANTIZATIONS = (None, "float16", "dynamic", "int8")
INT8_IO = ("uint8", "int8", None)
FORMATS = ("saved_model", "tflite", "keras", "onnx")
DEFAULT_FORMATS = ("saved_model", "tflite", "keras")  # "onnx" needs the optional packages of the [onnx] extra
