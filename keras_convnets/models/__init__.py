"""The builders: the four families (`resnet` with `resnet_specs` and `resnet_builder`, `vgg`, `googlenet`,
`inception_v3`), their layers (`layers`), auxiliary-classifier training (`aux`), the registry (`registry`), the
pieces every builder shares (`common`), ImageNet preprocessing and class names (`imagenet`) and the stage outputs
of every family as a dict-output model (`features`).

Importing the package imports the builders, in the order the registry lists them (`list_models()`: GoogLeNet,
Inception v3, the ResNets and plain nets, VGG). `keras_convnets.weights` imports `models.registry` and
`models.resnet_specs`; `models.resnet_builder` imports `keras_convnets.weights.keras_applications` as a module and
uses it only when a model is built, so either package may be imported first.
"""

from keras_convnets.models.aux import AuxClassifierModel, strip_aux
from keras_convnets.models.features import FeatureStage, feature_extractor, feature_info
from keras_convnets.models.googlenet import GoogLeNet
from keras_convnets.models.imagenet import decode_predictions, preprocess_input
from keras_convnets.models.inception_v3 import InceptionV3
from keras_convnets.models.layers import FusedBatchNormalization, IdentityShortcut, LocalResponseNormalization
from keras_convnets.models.registry import get_builder, get_model, list_models, register_model
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

__all__ = [
    "VGG",
    "VGG11",
    "VGG13",
    "VGG16",
    "VGG19",
    "AuxClassifierModel",
    "CifarResNet",
    "FeatureStage",
    "FusedBatchNormalization",
    "GoogLeNet",
    "IdentityShortcut",
    "InceptionV3",
    "LocalResponseNormalization",
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
    "decode_predictions",
    "feature_extractor",
    "feature_info",
    "get_builder",
    "get_model",
    "list_models",
    "preprocess_input",
    "register_model",
    "strip_aux",
]
