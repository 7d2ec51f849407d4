"""keras_convnets: the classic convnets of the ResNet and Inception papers for Keras 3."""

from keras_convnets.aux import AuxClassifierModel, strip_aux
from keras_convnets.googlenet import GoogLeNet
from keras_convnets.inception_v3 import InceptionV3
from keras_convnets.imagenet import decode_predictions, preprocess_input
from keras_convnets.layers import IdentityShortcut, LocalResponseNormalization
from keras_convnets.lesion import lesion, list_blocks
from keras_convnets import losses, schedules  # registered serializable (runs' model.keras need them)
from keras_convnets.profiler import ModelProfile, bottleneck_cost, profile
from keras_convnets.registry import get_model, list_models, register_model
from keras_convnets.resnet import (
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
from keras_convnets.vgg import VGG, VGG11, VGG13, VGG16, VGG19
from keras_convnets.trainer import TrainResult, train

__version__ = "0.1.0"
