"""VGG (Simonyan and Zisserman 2015), the baseline of the ResNet paper's Figure 3.

`VGG_CONFIGS` is the paper's Table 1 (configurations A, B, D, E): conv widths, "M" for a 2x2 max pool.
Layer names follow keras.applications (`block1_conv1`, `block1_pool`, `flatten`, `fc1`, `fc2`, `predictions`).
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
from keras import layers

from keras_convnets.models import common
from keras_convnets.models.layers import Conv2D, Dense, FusedBatchNormalization
from keras_convnets.models.registry import register_model

__all__ = ["VGG", "VGG11", "VGG13", "VGG16", "VGG19", "VGG_CONFIGS"]

VGG_CONFIGS: dict[int, tuple[Any, ...]] = {
    11: (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    13: (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    19: (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
}


def VGG(
    depth: int,
    include_top: bool = True,
    weights: Any = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    *,
    batch_norm: bool = False,
    dropout: float = 0.5,
    fc_units: int = 4096,
    bn_momentum: float = 0.9,
    bn_epsilon: float = 1e-5,
    kernel_regularizer: Any = None,
) -> keras.Model:
    """VGG-11/13/16/19. With `batch_norm=True` each conv is followed by BN and carries no bias.

    The classifier is the paper's: flatten, two fully connected layers of `fc_units` with ReLU and
    dropout, then `classes`; it needs a defined input size.
    """
    common.check_int("depth", depth)
    if depth not in VGG_CONFIGS:
        raise ValueError(f"`depth` of a VGG must be one of {', '.join(map(str, VGG_CONFIGS))}. Received: depth={depth}")
    common.check_head_arguments(
        include_top=include_top,
        weights=weights,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
    )
    if not isinstance(batch_norm, bool):
        raise TypeError(f"`batch_norm` must be True or False. Received: batch_norm={batch_norm!r}")
    common.check_fraction("dropout", dropout)
    common.check_int("fc_units", fc_units, minimum=1)
    regularizer = keras.regularizers.get(kernel_regularizer)
    input_shape = common.resolve_input_shape(
        input_shape,
        input_tensor,
        default_size=224,
        min_size=32,
        include_top=include_top,
        head_needs_size=True,
    )
    image, inputs = common.model_input(input_shape, input_tensor)
    x = image
    block, conv = 1, 1
    for item in VGG_CONFIGS[depth]:
        if item == "M":
            x = layers.MaxPooling2D(2, strides=2, name=f"block{block}_pool")(x)
            block, conv = block + 1, 1
            continue
        prefix = f"block{block}_conv{conv}"
        x = Conv2D(
            item,
            3,
            padding="same",
            use_bias=not batch_norm,
            kernel_regularizer=regularizer,
            activation=None if batch_norm else "relu",
            name=prefix,
        )(x)
        if batch_norm:
            x = FusedBatchNormalization(
                axis=common.channel_axis(), momentum=bn_momentum, epsilon=bn_epsilon, name=f"{prefix}_bn"
            )(x)
            x = layers.ReLU(name=f"{prefix}_relu")(x)
        conv += 1
    if include_top:
        x = layers.Flatten(name="flatten")(x)
        for index in (1, 2):
            x = Dense(fc_units, activation="relu", kernel_regularizer=regularizer, name=f"fc{index}")(x)
            if dropout:
                x = layers.Dropout(dropout, name=f"fc{index}_dropout")(x)
        x = layers.Dense(
            classes,
            activation=classifier_activation,
            kernel_regularizer=regularizer,
            dtype=common.HEAD_DTYPE,
            name="predictions",
        )(x)
    else:
        x = common.classifier_head(x, include_top=False, pooling=pooling, classes=classes, classifier_activation=None)
    suffix = "_bn" if batch_norm else ""
    return common.build_model(inputs, x, name or f"vgg{depth}{suffix}", weights)


@register_model("vgg11")
def VGG11(
    include_top: bool = True,
    weights: Any = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Any,
) -> keras.Model:
    """VGG-11 (Simonyan and Zisserman 2015, Table 1, configuration A), 224x224 input.

    132,863,336 trainable parameters at 1000 classes, 7.609 G MACs (keras.applications' counts). Options as in `VGG`.
    """
    return VGG(
        11, include_top, weights, input_tensor, input_shape, pooling, classes, classifier_activation, name, **options
    )


@register_model("vgg13")
def VGG13(
    include_top: bool = True,
    weights: Any = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Any,
) -> keras.Model:
    """VGG-13 (Simonyan and Zisserman 2015, Table 1, configuration B), 224x224 input.

    133,047,848 trainable parameters at 1000 classes, 11.308 G MACs (keras.applications' counts). Options as in `VGG`.
    """
    return VGG(
        13, include_top, weights, input_tensor, input_shape, pooling, classes, classifier_activation, name, **options
    )


@register_model("vgg16")
def VGG16(
    include_top: bool = True,
    weights: Any = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Any,
) -> keras.Model:
    """VGG-16 (Simonyan and Zisserman 2015, Table 1, configuration D), 224x224 input.

    138,357,544 trainable parameters at 1000 classes, 15.470 G MACs (keras.applications' counts). Options as in `VGG`.
    """
    return VGG(
        16, include_top, weights, input_tensor, input_shape, pooling, classes, classifier_activation, name, **options
    )


@register_model("vgg19")
def VGG19(
    include_top: bool = True,
    weights: Any = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Any,
) -> keras.Model:
    """VGG-19 (Simonyan and Zisserman 2015, Table 1, configuration E), 224x224 input.

    143,667,240 trainable parameters at 1000 classes, 19.632 G MACs (keras.applications' counts). Options as in `VGG`.
    """
    return VGG(
        19, include_top, weights, input_tensor, input_shape, pooling, classes, classifier_activation, name, **options
    )
