"""Pretrained ImageNet weights from keras.applications and torchvision, loaded into our builders.

Two checkpoint sets fit our architectures exactly, one converter each:

- `keras_convnets.weights.keras_applications`: keras.applications' ResNet50/101/152 (`stride_in="1x1"`, projection
  shortcuts "B") and InceptionV3 (`count_include_pad=False`), also behind `weights="imagenet"`; conv biases and
  batch-norm epsilons are folded exactly.
- `keras_convnets.weights.torchvision`: torchvision state dicts for ResNet-18/34/50/101/152 (`stride_in="3x3"`),
  GoogLeNet (`variant="torchvision"`) and Inception v3.

Layers are matched by name (keras.applications' InceptionV3, whose names are automatic: by their place in the
graph) and every tensor is checked for shape; a checkpoint of another architecture is refused
with the first mismatched tensor and both shapes. Preprocessing that matches each weight set
(`keras_convnets.preprocess_input`, `preprocessing_mode`): `"caffe"` for the keras.applications ResNets, `"tf"` for
its InceptionV3, `"torch"` for torchvision's ResNets, `"tf"` for torchvision's GoogLeNet and Inception v3.
"""

from keras_convnets.weights._common import fix_builder_options, resnet_architecture
from keras_convnets.weights.keras_applications import (
    BASE_URL_ENVIRONMENT_VARIABLE,
    KERAS_APPLICATIONS_BASE_URL,
    KERAS_APPLICATIONS_BN_EPSILON,
    KERAS_APPLICATIONS_FILES,
    KERAS_APPLICATIONS_MODELS,
    WeightsFile,
    from_keras_applications,
    keras_applications_file,
    load_imagenet,
    load_keras_applications,
    resnet_imagenet_name,
)
from keras_convnets.weights.torchvision import (
    TORCHVISION_RESNETS,
    TorchvisionFamily,
    from_torchvision,
    load_torchvision,
    preprocessing_mode,
    read_state_dict,
)

__all__ = [
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
