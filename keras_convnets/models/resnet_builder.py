"""The generic ResNet builder: blocks that name every layer and `build_resnet(spec, ...)`, which reads a
`ResNetSpec` (`keras_convnets.models.resnet_specs`). Plain nets are the same builder with `residual=False`.

Layer names follow keras.applications (`conv2_block1_1_conv`, `conv2_block1_0_conv`, `conv2_block1_add`,
`conv2_block1_out`, `avg_pool`, `predictions`). The public variants (`ResNet50`, `PlainNet20`, ...) are in
`keras_convnets.models.resnet`.
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
from keras import layers

from keras_convnets.models import common
from keras_convnets.models.layers import IdentityShortcut
from keras_convnets.models.resnet_specs import (
    SHORTCUT_OPTIONS,
    STRIDE_OPTIONS,
    ResNetSpec,
    cifar_spec,
    imagenet_spec,
    resolve_bottleneck_width,
    stage_output_widths,
)
from keras_convnets.utils.validation import check_number
from keras_convnets.weights import keras_applications

__all__ = ["CifarResNet", "ResNet", "build_resnet", "residual_block", "shortcut"]


def shortcut(x, filters: int, strides: int, *, option: str, name: str, **bn):
    """The shortcut of a block: identity, option A's zero padding, or a 1x1 projection (`_0_conv`)."""
    in_channels = x.shape[common.channel_axis()]
    changes_shape = strides != 1 or in_channels != filters
    if option == "C" or (option == "B" and changes_shape):
        return common.conv_bn(x, filters, 1, strides=strides, name=f"{name}_0", activation=False, **bn)
    if changes_shape:
        return IdentityShortcut(filters, strides, name=f"{name}_0_pad")(x)
    return x


def residual_block(
    x,
    width: int,
    out_filters: int,
    *,
    strides: int,
    block: str,
    residual: bool,
    shortcut_option: str,
    stride_in: str,
    zero_init_residual: bool,
    name: str,
    **bn,
):
    """A basic (3x3, 3x3) or bottleneck (1x1, 3x3, 1x1) block; without `residual`, its plain twin."""
    last_gamma = "zeros" if (zero_init_residual and residual) else "ones"
    if block == "basic":
        y = common.conv_bn(x, width, 3, strides=strides, name=f"{name}_1", **bn)
        y = common.conv_bn(y, out_filters, 3, name=f"{name}_2", activation=False, gamma_initializer=last_gamma, **bn)
    else:
        s1, s3 = (strides, 1) if stride_in == "1x1" else (1, strides)
        y = common.conv_bn(x, width, 1, strides=s1, name=f"{name}_1", **bn)
        y = common.conv_bn(y, width, 3, strides=s3, name=f"{name}_2", **bn)
        y = common.conv_bn(y, out_filters, 1, name=f"{name}_3", activation=False, gamma_initializer=last_gamma, **bn)
    if residual:
        s = shortcut(x, out_filters, strides, option=shortcut_option, name=name, **bn)
        y = layers.Add(name=f"{name}_add")([s, y])
    return layers.ReLU(name=f"{name}_out")(y)


def build_resnet(
    spec: ResNetSpec,
    include_top: bool = True,
    weights: Any = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: Any = "softmax",
    *,
    name: str,
    residual: bool = True,
    shortcut: str = "B",
    stride_in: str = "1x1",
    bottleneck_width: Any = None,
    zero_init_residual: bool = False,
    bn_momentum: float = 0.9,
    bn_epsilon: float = 1e-5,
    kernel_regularizer: Any = None,
) -> keras.Model:
    """Build the residual (or plain) network described by `spec`. All checks come first."""
    pretrained = None
    if isinstance(weights, str) and weights == "imagenet":
        pretrained = keras_applications.resnet_imagenet_name(
            spec, residual=residual, shortcut=shortcut, stride_in=stride_in, bottleneck_width=bottleneck_width
        )
    common.check_head_arguments(
        include_top=include_top,
        weights=weights,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        imagenet=pretrained is not None,
    )
    common.check_choice("shortcut", shortcut, SHORTCUT_OPTIONS)
    common.check_choice("stride_in", stride_in, STRIDE_OPTIONS)
    widths = resolve_bottleneck_width(spec, bottleneck_width)
    check_number(
        "bn_momentum", bn_momentum, minimum=0, maximum=1, exclusive_maximum=True, requirement="must be in [0, 1)"
    )
    check_number("bn_epsilon", bn_epsilon, minimum=0, exclusive_minimum=True, requirement="must be positive")
    regularizer = keras.regularizers.get(kernel_regularizer)
    downsamplings = len(spec.repeats) - 1 + (2 if spec.stem == "imagenet" else 0)
    input_shape = common.resolve_input_shape(
        input_shape,
        input_tensor,
        default_size=spec.default_size,
        min_size=2**downsamplings,
        include_top=include_top,
        head_needs_size=False,
    )
    bn = dict(bn_momentum=bn_momentum, bn_epsilon=bn_epsilon, kernel_regularizer=regularizer)

    image, inputs = common.model_input(input_shape, input_tensor)
    if spec.stem == "imagenet":
        x = common.conv_bn(image, 64, 7, strides=2, name="conv1", **bn)
        x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
        x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    else:
        x = common.conv_bn(image, spec.widths[0], 3, name="conv1", **bn)

    outputs = stage_output_widths(spec)
    for stage, (repeats, width, out_filters) in enumerate(zip(spec.repeats, widths, outputs)):
        for index in range(repeats):
            x = residual_block(
                x,
                width,
                out_filters,
                strides=2 if (index == 0 and stage > 0) else 1,
                block=spec.block,
                residual=residual,
                shortcut_option=shortcut,
                stride_in=stride_in,
                zero_init_residual=zero_init_residual,
                name=f"conv{stage + 2}_block{index + 1}",
                **bn,
            )

    x = common.classifier_head(
        x,
        include_top=include_top,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        kernel_regularizer=regularizer,
    )
    model = common.build_model(inputs, x, name, None if pretrained else weights, depth_hint=sum(spec.repeats) * 12)
    if pretrained:
        keras_applications.load_imagenet(model, pretrained, include_top=include_top)
    return model


def _build_named(spec: ResNetSpec, depth: int, head: tuple, options: dict[str, Any]) -> keras.Model:
    """`build_resnet(spec, ...)` for `ResNet` and `CifarResNet`: `head` is their positional arguments (include_top
    ... classifier_activation, then name); the default name is `resnet{depth}`, or `plainnet{depth}` with
    `residual=False`, and `_bottleneck` after either for a bottleneck CIFAR net."""
    *positional, name = head
    prefix = "resnet" if options.get("residual", True) else "plainnet"
    suffix = "_bottleneck" if spec.stem == "cifar" and spec.block == "bottleneck" else ""
    return build_resnet(spec, *positional, name=name or f"{prefix}{depth}{suffix}", **options)


def ResNet(
    depth: int,
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
    """An ImageNet ResNet of He et al. 2016 (depth 18, 34, 50, 101 or 152).

    Options (keyword-only): `residual` (False builds the plain twin), `shortcut` ("A", "B" or "C"),
    `stride_in` ("1x1" as in the paper and keras.applications, or "3x3" as in torchvision),
    `bottleneck_width` (per-stage reduction widths or one ratio of the stage's output width),
    `zero_init_residual`, `bn_momentum`, `bn_epsilon`, `kernel_regularizer`.
    """
    head = (include_top, weights, input_tensor, input_shape, pooling, classes, classifier_activation, name)
    return _build_named(imagenet_spec(depth), depth, head, options)


def CifarResNet(
    depth: int,
    include_top: bool = True,
    weights: Any = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 10,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    *,
    shortcut: str | None = None,
    block: str = "basic",
    **options: Any,
) -> keras.Model:
    """A CIFAR ResNet of He et al. 2016, Section 4.2, for any depth 6n+2; option A shortcuts by default.

    `block="bottleneck"` builds the bottleneck CIFAR nets of He et al. 2016b (depth 9n+2: ResNet-164 is n=18),
    1x1-3x3-1x1 blocks reducing to 16/32/64 channels with 4x wider outputs; `bottleneck_width` then applies. Their
    shortcuts default to option B, a projection wherever the shape changes (16 to 64 channels in the first block
    included), as in He et al. 2016b's code; their units are the original post-activation ones of He et al. 2016
    (addition, then ReLU), not that paper's pre-activation units. Their default name is `resnet{depth}_bottleneck`
    (depths like 56, 110 and 164 are also 6n+2).
    Same options as `ResNet` (`residual=False` builds the plain twin).
    """
    head = (include_top, weights, input_tensor, input_shape, pooling, classes, classifier_activation, name)
    spec = cifar_spec(depth, block)
    if shortcut is None:
        shortcut = "A" if block == "basic" else "B"
    return _build_named(spec, depth, head, {"shortcut": shortcut, **options})
