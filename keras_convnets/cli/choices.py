"""The choices the sub-commands' arguments offer, as plain constants: parsing the command line (and `--help`)
imports neither TensorFlow nor Keras. `tests/test_cli.py` checks that each equals the list of the module it
mirrors."""

from __future__ import annotations

__all__ = ["EXPORT_FORMATS", "GRANULARITIES", "MIXED_PRECISION", "RECIPES", "STRATEGIES", "TUNERS"]

RECIPES = (
    "cifar",
    "imagenet",
    "googlenet",
    "inception_v3",
    "vgg",
    "cifar_fast",
)  # keras_convnets.trainer.recipes.list_recipes()
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")  # keras_convnets.trainer.distribute
MIXED_PRECISION = ("auto", "float32", "mixed_bfloat16", "mixed_float16")  # keras_convnets.trainer.precision
TUNERS = ("random", "bayesian", "hyperband")  # keras_convnets.tuning
GRANULARITIES = ("stage", "module")  # keras_convnets.tuning
EXPORT_FORMATS = ("saved_model", "tflite", "keras", "onnx")  # keras_convnets.export.FORMATS
