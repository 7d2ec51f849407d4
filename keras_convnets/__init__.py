"""keras_convnets: the classic convnets of the ResNet and Inception papers for Keras 3."""

from keras_convnets.analysis.lesion import lesion, list_blocks
from keras_convnets.analysis.profiler import ModelProfile, bottleneck_cost, profile
from keras_convnets.models.aux import AuxClassifierModel, strip_aux
from keras_convnets.models.googlenet import GoogLeNet
from keras_convnets.models.imagenet import decode_predictions, preprocess_input
from keras_convnets.models.inception_v3 import InceptionV3
from keras_convnets.models.layers import IdentityShortcut, LocalResponseNormalization
from keras_convnets.models.registry import get_model, list_models, register_model
from keras_convnets.models.resnet import (
    CifarResNet,
    PlainNet18,
    PlainNet20,
    PlainNet32,
    PlainNet34,
    PlainNet44,
    PlainNet56,
    PlainNet110,
    ResNet,
    ResNet18,
    ResNet20,
    ResNet32,
    ResNet34,
    ResNet44,
    ResNet50,
    ResNet56,
    ResNet101,
    ResNet110,
    ResNet152,
    ResNet1202,
)
from keras_convnets.models.vgg import VGG, VGG11, VGG13, VGG16, VGG19
from keras_convnets.trainer import (  # registered serializable (runs' model.keras need them)
    TrainResult,
    losses,
    schedules,
    train,
)

__version__ = "0.1.0"

__all__ = [
    "AuxClassifierModel",
    "CifarResNet",
    "GoogLeNet",
    "IdentityShortcut",
    "InceptionV3",
    "LocalResponseNormalization",
    "ModelProfile",
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


def _alias_moved_modules() -> None:
    import importlib
    import sys

    for old, new in _MOVED_MODULES.items():
        module = importlib.import_module(f"{__name__}.{new}")
        sys.modules.setdefault(f"{__name__}.{old}", module)
        if old not in globals():  # `lesion` stays the function, as before
            globals()[old] = module


_alias_moved_modules()
