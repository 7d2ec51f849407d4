"""Pretrained ImageNet weights from keras.applications and torchvision, loaded into our builders."""

from keras_convnets.weights._impl import *  # noqa: F401,F403
