"""The public face: `keras_convnets.__all__`, the subpackages' `__all__`, and the flat import paths of before the
subpackages, which stay the same module objects as the new ones."""

from __future__ import annotations

import importlib

import pytest

import keras_convnets

PUBLIC_API = [
    "AuxClassifierModel",
    "CifarResNet",
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
    "get_model",
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

SUBPACKAGE_MODULES = [
    "models.aux",
    "models.common",
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
