"""keras_convnets: the classic convnets of the ResNet and Inception papers for Keras 3.

The package imports lazily (PEP 562): `import keras_convnets` is light and loads neither TensorFlow nor Keras, so
that `convnets --help` answers at once. The first use of a public name (`keras_convnets.ResNet50`, `from
keras_convnets import train`, `dir(keras_convnets)`) or of a flat module of before 0.2 (`keras_convnets.resnet`)
imports them all, as importing the package did before; so does importing the package once Keras or TensorFlow is
loaded, and so does importing `keras_convnets.export` or `keras_convnets.tuning`. That import registers the
package's serializable classes (layers, losses, schedules), which the runs' `model.keras` files need.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types

__version__ = "0.1.0"

# public name -> the module that defines it
_PUBLIC = {
    "AuxClassifierModel": "models.aux",
    "strip_aux": "models.aux",
    "GoogLeNet": "models.googlenet",
    "decode_predictions": "models.imagenet",
    "preprocess_input": "models.imagenet",
    "InceptionV3": "models.inception_v3",
    "IdentityShortcut": "models.layers",
    "LocalResponseNormalization": "models.layers",
    "FeatureStage": "models.features",
    "feature_extractor": "models.features",
    "feature_info": "models.features",
    "get_model": "models.registry",
    "list_models": "models.registry",
    "register_model": "models.registry",
    **dict.fromkeys(
        [
            "CifarResNet",
            "PlainNet18",
            "PlainNet20",
            "PlainNet32",
            "PlainNet34",
            "PlainNet44",
            "PlainNet56",
            "PlainNet110",
            "ResNet",
            "ResNet18",
            "ResNet20",
            "ResNet32",
            "ResNet34",
            "ResNet44",
            "ResNet50",
            "ResNet56",
            "ResNet101",
            "ResNet110",
            "ResNet152",
            "ResNet1202",
        ],
        "models.resnet",
    ),
    **dict.fromkeys(["VGG", "VGG11", "VGG13", "VGG16", "VGG19"], "models.vgg"),
    "lesion": "analysis.lesion",
    "list_blocks": "analysis.lesion",
    "grad_cam": "explain",
    "ModelProfile": "analysis.profiler",
    "bottleneck_cost": "analysis.profiler",
    "profile": "analysis.profiler",
    # registered serializable (runs' model.keras need them)
    "TrainResult": "trainer",
    "losses": "trainer",
    "schedules": "trainer",
    "train": "trainer",
}

__all__ = sorted(_PUBLIC)

# The modules of the flat layout before 0.2 keep their import paths (`keras_convnets.resnet`, ...): each is the
# module of its subpackage under the old name.
_MOVED_MODULES = {
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

_loaded = False


def _load_all() -> None:
    """Import the public names and alias the flat modules: what importing the package did before it was lazy."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    namespace = globals()
    for name, module in _PUBLIC.items():
        namespace[name] = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    for old, new in _MOVED_MODULES.items():
        module = importlib.import_module(f"{__name__}.{new}")
        sys.modules.setdefault(f"{__name__}.{old}", module)
        if old not in namespace:  # `lesion` stays the function, as before
            namespace[old] = module


def __getattr__(name: str):
    if name in _PUBLIC or name in _MOVED_MODULES:
        _load_all()
        if name in globals():
            return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    _load_all()
    return sorted(globals())


class _Package(types.ModuleType):
    """The package module: importing the flat `keras_convnets.lesion` leaves `keras_convnets.lesion` the function."""

    def __setattr__(self, name: str, value) -> None:
        if name == "lesion" and isinstance(value, types.ModuleType) and "lesion" in self.__dict__:
            return
        super().__setattr__(name, value)


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """`import keras_convnets.resnet` before anything is loaded: loads the package and answers with the module of
    its subpackage (the same object, its `__spec__` kept)."""

    def find_spec(self, fullname, path=None, target=None):
        package, _, old = fullname.rpartition(".")
        if package != __name__ or old not in _MOVED_MODULES:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec):
        _load_all()
        module = importlib.import_module(f"{__name__}.{_MOVED_MODULES[spec.name.rpartition('.')[2]]}")
        self._spec = module.__spec__
        return module

    def exec_module(self, module) -> None:
        module.__spec__ = self._spec  # the import system set the alias's spec: the module keeps its own


class _RegisteringFinder(importlib.abc.MetaPathFinder):
    """`import keras_convnets.export` (or `.tuning`), which load `.keras` files, first imports the public names, as
    importing the package did before it was lazy: the files' layers, losses and schedules are then registered.
    It finds nothing itself: the import goes on as usual (none of the modules loaded imports these two)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in _REGISTERING and not _loaded:
            _load_all()
        return None


_REGISTERING = (f"{__name__}.export", f"{__name__}.tuning")
sys.modules[__name__].__class__ = _Package
if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
    sys.meta_path.append(_MovedModuleFinder())
    sys.meta_path.insert(0, _RegisteringFinder())
if "keras" in sys.modules or "tensorflow" in sys.modules:  # nothing to save: load as before
    _load_all()
