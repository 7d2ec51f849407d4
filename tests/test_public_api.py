"""The public face: `keras_convnets.__all__`, the subpackages' `__all__`, and the flat import paths of before the
subpackages, which stay the same module objects as the new ones."""

from __future__ import annotations

import importlib

import pytest

import keras_convnets

PUBLIC_API = [
    "AuxClassifierModel",
    "CifarResNet",
    "FeatureStage",
    "GoogLeNet",
    "IdentityShortcut",
    "InceptionV3",
    "LocalResponseNormalization",
    "ModelProfile",
    "PlainNet110",
    "PlainNet18",
    "PlainNet20",
    "PlainNet32",
    "PlainNet34",
    "PlainNet44",
    "PlainNet56",
    "ResNet",
    "ResNet101",
    "ResNet110",
    "ResNet1202",
    "ResNet152",
    "ResNet18",
    "ResNet20",
    "ResNet32",
    "ResNet34",
    "ResNet44",
    "ResNet50",
    "ResNet56",
    "TrainResult",
    "VGG",
    "VGG11",
    "VGG13",
    "VGG16",
    "VGG19",
    "bottleneck_cost",
    "decode_predictions",
    "feature_extractor",
    "feature_info",
    "get_model",
    "grad_cam",
    "lesion",
    "list_blocks",
    "list_models",
    "losses",
    "preprocess_input",
    "profile",
    "register_model",
    "schedules",
    "strip_aux",
    "train",
]

WEIGHTS_API = [
    "BASE_URL_ENVIRONMENT_VARIABLE",
    "KERAS_APPLICATIONS_BASE_URL",
    "KERAS_APPLICATIONS_BN_EPSILON",
    "KERAS_APPLICATIONS_FILES",
    "KERAS_APPLICATIONS_MODELS",
    "TORCHVISION_RESNETS",
    "TorchvisionFamily",
    "WeightsFile",
    "fix_builder_options",
    "from_keras_applications",
    "from_torchvision",
    "keras_applications_file",
    "load_imagenet",
    "load_keras_applications",
    "load_torchvision",
    "preprocessing_mode",
    "read_state_dict",
    "resnet_architecture",
    "resnet_imagenet_name",
]

# The flat modules of before 0.2 and the module each one now is.
MOVED = {
    "aux": "models.aux",
    "common": "models.common",
    "googlenet": "models.googlenet",
    "imagenet": "models.imagenet",
    "inception_v3": "models.inception_v3",
    "layers": "models.layers",
    "registry": "models.registry",
    "resnet": "models.resnet",
    "vgg": "models.vgg",
    "preprocessing": "data.preprocessing",
    "callbacks": "trainer.callbacks",
    "distribute": "trainer.distribute",
    "losses": "trainer.losses",
    "recipes": "trainer.recipes",
    "schedules": "trainer.schedules",
    "lesion": "analysis.lesion",
    "model_table": "analysis.model_table",
    "profiler": "analysis.profiler",
}

SUBPACKAGE_API = {
    "explain": ["cam_paths", "default_layer", "export_keras_model", "grad_cam", "overlay", "write_cams"],
    "analysis": [
        "ModelProfile",
        "bottleneck_cost",
        "lesion",
        "list_blocks",
        "profile",
    ],
    "data": [
        "AUGMENTATIONS",
        "DECODES",
        "EMBEDDED",
        "EncodedSplit",
        "IMAGE_SIGNATURES",
        "IN_GRAPH_LIMIT",
        "ImageData",
        "Preprocessing",
        "compute_preprocessing",
        "crop_flip_batch",
        "distributed_train_pipeline",
        "eval_pipeline",
        "eval_transform",
        "fits_in_memory",
        "holdout_validation",
        "load_builtin",
        "load_dataset",
        "load_digits",
        "load_idx_dir",
        "load_image_folder",
        "load_tfds",
        "load_tfrecord_dir",
        "materialize",
        "read_idx",
        "spread_sample",
        "steps_per_epoch_for",
        "subset",
        "train_pipeline",
        "write_tfrecord_shards",
    ],
    "export": [
        "BUNDLE_MARKER",
        "CRITERIA",
        "DEFAULT_FORMATS",
        "FORMATS",
        "IMAGE_EXTENSIONS",
        "INPUT_NAME",
        "INT8_IO",
        "InferenceGraph",
        "MAX_CALIBRATION_IMAGES",
        "ONNX_OPSET",
        "ONNX_QUANTIZATIONS",
        "OnnxModel",
        "PARITY_IMAGES",
        "Parity",
        "ParityError",
        "Predictor",
        "QUANTIZATIONS",
        "RUN_PARITY_IMAGES",
        "Run",
        "SIGNATURE",
        "SavedModel",
        "TFLiteModel",
        "UINT8_SIGNATURE",
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
    ],
    "models": [
        "AuxClassifierModel",
        "CifarResNet",
        "FeatureStage",
        "FusedBatchNormalization",
        "GoogLeNet",
        "IdentityShortcut",
        "InceptionV3",
        "LocalResponseNormalization",
        "PlainNet110",
        "PlainNet18",
        "PlainNet20",
        "PlainNet32",
        "PlainNet34",
        "PlainNet44",
        "PlainNet56",
        "ResNet",
        "ResNet101",
        "ResNet110",
        "ResNet1202",
        "ResNet152",
        "ResNet18",
        "ResNet20",
        "ResNet32",
        "ResNet34",
        "ResNet44",
        "ResNet50",
        "ResNet56",
        "VGG",
        "VGG11",
        "VGG13",
        "VGG16",
        "VGG19",
        "decode_predictions",
        "feature_extractor",
        "feature_info",
        "get_builder",
        "get_model",
        "list_models",
        "preprocess_input",
        "register_model",
        "strip_aux",
    ],
    "trainer": [
        "IDENTITY",
        "JIT_COMPILE",
        "MIXED_PRECISION",
        "RECIPE_IMAGE_SIZE",
        "TrainConfig",
        "TrainResult",
        "callbacks",
        "check_run_dir",
        "cpu_flags",
        "distribute",
        "export_model",
        "losses",
        "recipes",
        "resolve_config",
        "resolve_jit_compile",
        "resolve_mixed_precision",
        "schedules",
        "train",
    ],
    "tuning": [
        "BottleneckHyperModel",
        "BudgetExceededError",
        "COST_METRICS",
        "Cost",
        "DEFAULT_SCALES",
        "DEFAULT_VALIDATION_SPLIT",
        "GRANULARITIES",
        "INCEPTION_BRANCHES",
        "InceptionHyperModel",
        "OBJECTIVE",
        "ResNetHyperModel",
        "SEARCH_IDENTITY",
        "SearchPlan",
        "SearchResult",
        "TUNERS",
        "format_trial_table",
        "hypermodel_for",
        "make_tuner",
        "model_cost",
        "pareto_front",
        "plot_pareto",
        "search",
        "trial_rows",
        "write_trial_csv",
    ],
    "utils": [
        "atomic_directory",
        "atomic_write",
        "canonical_model_name",
        "check_choice",
        "check_fraction",
        "check_int",
        "check_number",
        "fsync_directory",
        "fsync_tree",
        "write_json_atomic",
        "write_text_atomic",
    ],
    "weights": [
        "BASE_URL_ENVIRONMENT_VARIABLE",
        "KERAS_APPLICATIONS_BASE_URL",
        "KERAS_APPLICATIONS_BN_EPSILON",
        "KERAS_APPLICATIONS_FILES",
        "KERAS_APPLICATIONS_MODELS",
        "TORCHVISION_RESNETS",
        "TorchvisionFamily",
        "WeightsFile",
        "fix_builder_options",
        "from_keras_applications",
        "from_torchvision",
        "keras_applications_file",
        "load_imagenet",
        "load_keras_applications",
        "load_torchvision",
        "preprocessing_mode",
        "read_state_dict",
        "resnet_architecture",
        "resnet_imagenet_name",
    ],
}

SUBPACKAGE_MODULES = [
    "models.aux",
    "models.common",
    "models.features",
    "models.googlenet",
    "models.imagenet",
    "models.inception_v3",
    "models.layers",
    "models.registry",
    "models.resnet",
    "models.resnet_builder",
    "models.resnet_specs",
    "models.vgg",
    "weights",
    "weights._common",
    "weights.keras_applications",
    "weights.torchvision",
    "analysis.lesion",
    "analysis.model_table",
    "analysis.profiler",
]


def test_top_level_all_is_pinned():
    assert sorted(keras_convnets.__all__) == sorted(PUBLIC_API)
    assert len(set(keras_convnets.__all__)) == len(keras_convnets.__all__)
    for name in keras_convnets.__all__:
        assert getattr(keras_convnets, name) is not None, name


def test_star_import_gives_exactly_the_public_names():
    namespace: dict = {}
    exec("from keras_convnets import *", namespace)
    assert sorted(n for n in namespace if n != "__builtins__") == sorted(PUBLIC_API)


def test_weights_all_is_pinned():
    from keras_convnets import weights

    assert sorted(weights.__all__) == sorted(WEIGHTS_API)
    assert weights.from_torchvision is weights.torchvision.from_torchvision
    assert weights.from_keras_applications is weights.keras_applications.from_keras_applications


@pytest.mark.parametrize("module", SUBPACKAGE_MODULES)
def test_every_module_declares_all_and_its_names_exist(module):
    loaded = importlib.import_module(f"keras_convnets.{module}")
    assert isinstance(loaded.__all__, list) and loaded.__all__, module
    assert len(set(loaded.__all__)) == len(loaded.__all__)
    missing = [name for name in loaded.__all__ if not hasattr(loaded, name)]
    assert not missing, f"{module}.__all__ names what it lacks: {missing}"


@pytest.mark.parametrize("old, new", list(MOVED.items()))
def test_flat_import_paths_are_the_new_modules(old, new):
    assert importlib.import_module(f"keras_convnets.{old}") is importlib.import_module(f"keras_convnets.{new}")


def test_flat_from_imports_still_work():
    from keras_convnets.analysis.profiler import profile as new_profile
    from keras_convnets.profiler import profile
    from keras_convnets.recipes import RECIPES
    from keras_convnets.registry import get_model
    from keras_convnets.resnet import IMAGENET_SPECS, ResNet50, build_resnet, cifar_spec
    from keras_convnets.trainer.recipes import RECIPES as new_recipes

    assert profile is new_profile is keras_convnets.profile
    assert RECIPES is new_recipes
    assert get_model is keras_convnets.get_model
    assert ResNet50 is keras_convnets.ResNet50
    assert IMAGENET_SPECS[50].repeats == (3, 4, 6, 3) and cifar_spec(20).repeats == (3, 3, 3)
    assert callable(build_resnet)
    import keras_convnets.resnet as flat_resnet

    assert flat_resnet is importlib.import_module("keras_convnets.models.resnet")
    # `keras_convnets.lesion` stays the function; the module is `keras_convnets.analysis.lesion`.
    assert callable(keras_convnets.lesion) and keras_convnets.lesion.__module__ == "keras_convnets.analysis.lesion"


def test_builders_are_explicit_functions():
    """Each public variant is a `def` of its own name in its module (grep, IDEs and tracebacks see it)."""
    import inspect

    for name in keras_convnets.list_models():
        builder = keras_convnets.models.registry.get_builder(name)
        assert inspect.isfunction(builder)
        assert builder.__code__.co_name == builder.__name__, name
        assert builder.__doc__ and builder.__doc__.strip(), name
        module = importlib.import_module(builder.__module__)
        assert getattr(module, builder.__name__) is builder
        assert builder.__name__ in module.__all__
        source = inspect.getsource(module)
        assert f"def {builder.__name__}(" in source and f'@register_model("{name}")' in source


def test_names_of_0_1_still_import():
    """`keras_convnets.data.AUTOTUNE` and `keras_convnets.resnet.IdentityShortcut` were imported by users of 0.1."""
    import tensorflow as tf

    from keras_convnets.data import AUTOTUNE
    from keras_convnets.models.layers import IdentityShortcut as new
    from keras_convnets.models.resnet import IdentityShortcut
    from keras_convnets.resnet import IdentityShortcut as flat

    assert AUTOTUNE == tf.data.AUTOTUNE
    assert IdentityShortcut is new is flat is keras_convnets.IdentityShortcut


def _public_modules() -> list[str]:
    """Every module of the package whose own name and whose packages' names do not start with `_` (the CLI and
    the top-level package, which declare theirs elsewhere, left out)."""
    import pkgutil

    names = []
    for info in pkgutil.walk_packages(keras_convnets.__path__, "keras_convnets."):
        parts = info.name.split(".")[1:]
        if parts[0] == "cli" or any(part.startswith("_") for part in parts):
            continue
        names.append(info.name)
    return names


def test_the_walk_finds_the_modules():
    modules = _public_modules()
    assert {"keras_convnets.data.tfds", "keras_convnets.experiments.presets", "keras_convnets.models"} <= set(modules)
    assert not any(name.startswith("keras_convnets.cli") or "._" in name for name in modules)


@pytest.mark.parametrize("module", _public_modules())
def test_every_public_module_declares_all(module):
    loaded = importlib.import_module(module)
    names = getattr(loaded, "__all__", None)
    assert isinstance(names, list) and names, f"{module} has no __all__"
    assert len(set(names)) == len(names), module
    missing = [name for name in names if not hasattr(loaded, name)]
    assert not missing, f"{module}.__all__ names what it lacks: {missing}"


def test_cli_modules_declare_all():
    import pkgutil

    import keras_convnets.cli

    for info in pkgutil.walk_packages(keras_convnets.cli.__path__, "keras_convnets.cli."):
        assert isinstance(getattr(importlib.import_module(info.name), "__all__", None), list), info.name


@pytest.mark.parametrize("package", sorted(SUBPACKAGE_API))
def test_subpackage_all_is_pinned(package):
    loaded = importlib.import_module(f"keras_convnets.{package}")
    assert sorted(loaded.__all__) == SUBPACKAGE_API[package]
    for name in loaded.__all__:
        assert getattr(loaded, name) is not None, f"keras_convnets.{package}.{name}"


def test_validators_raise_type_error_for_a_type_and_value_error_for_a_range():
    from keras_convnets.utils.validation import check_fraction, check_int, check_number

    with pytest.raises(TypeError, match=r"^`rate` must be a number in \[0, 1\). Received: rate='0.5'$"):
        check_fraction("rate", "0.5")
    with pytest.raises(ValueError, match=r"^`rate` must be a number in \[0, 1\). Received: rate=1$"):
        check_fraction("rate", 1)
    with pytest.raises(TypeError, match=r"^`n` must be a positive integer. Received: n=True$"):
        check_int("n", True, minimum=1, requirement="must be a positive integer")
    with pytest.raises(ValueError, match=r"^`n` widths must be positive. Received: n=\[4, 0\]$"):
        check_int("n", 0, minimum=1, requirement="widths must be positive", received="n=[4, 0]")
    with pytest.raises(ValueError, match=r"^`x` must be greater than 0. Received: x=0$"):
        check_number("x", 0, minimum=0, exclusive_minimum=True)
    check_fraction("rate", 0.0)
    check_int("n", 3, minimum=1)
