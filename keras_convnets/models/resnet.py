"""Residual networks and their plain twins (He et al. 2016, "Deep Residual Learning for Image Recognition").

The architecture is data: `IMAGENET_SPECS` is the paper's Table 1 and `cifar_spec` its Section 4.2.
One builder, `build_resnet`, reads a spec; plain nets are the same builder with `residual=False`.
Layer names follow keras.applications (`conv2_block1_1_conv`, `conv2_block1_0_conv`, `conv2_block1_add`,
`conv2_block1_out`, `avg_pool`, `predictions`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import keras
from keras import layers

from keras_convnets import weights as pretrained_weights
from keras_convnets.models import common
from keras_convnets.models.layers import IdentityShortcut
from keras_convnets.models.registry import register_model


@dataclass(frozen=True)
class ResNetSpec:
    """One residual network: its block type, blocks per stage and stage widths.

    `widths` are the paper's stage widths: the output width of a basic block, and the reduction
    width of a bottleneck block (whose output is `EXPANSION` times wider).
    """

    block: str  # "basic" or "bottleneck"
    repeats: tuple[int, ...]
    widths: tuple[int, ...]
    stem: str  # "imagenet" (7x7/2 conv, 3x3/2 max pool) or "cifar" (3x3 conv, 16 filters)
    default_size: int
    default_classes: int


EXPANSION = 4  # bottleneck output width / reduction width

# He et al. 2016, Table 1: (block, blocks in conv2_x..conv5_x).
IMAGENET_SPECS: dict[int, ResNetSpec] = {
    18: ResNetSpec("basic", (2, 2, 2, 2), (64, 128, 256, 512), "imagenet", 224, 1000),
    34: ResNetSpec("basic", (3, 4, 6, 3), (64, 128, 256, 512), "imagenet", 224, 1000),
    50: ResNetSpec("bottleneck", (3, 4, 6, 3), (64, 128, 256, 512), "imagenet", 224, 1000),
    101: ResNetSpec("bottleneck", (3, 4, 23, 3), (64, 128, 256, 512), "imagenet", 224, 1000),
    152: ResNetSpec("bottleneck", (3, 8, 36, 3), (64, 128, 256, 512), "imagenet", 224, 1000),
}

CIFAR_DEPTHS = (20, 32, 44, 56, 110, 1202)
SHORTCUT_OPTIONS = ("A", "B", "C")
STRIDE_OPTIONS = ("1x1", "3x3")


def cifar_spec(depth: int) -> ResNetSpec:
    """He et al. 2016, Section 4.2: depth 6n+2, three stages of n basic blocks, 16/32/64 filters."""
    common.check_int("depth", depth)
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(
            "`depth` of a CIFAR ResNet must be 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, 1202, ...). "
            f"Received: depth={depth}"
        )
    n = (depth - 2) // 6
    return ResNetSpec("basic", (n, n, n), (16, 32, 64), "cifar", 32, 10)


def imagenet_spec(depth: int) -> ResNetSpec:
    common.check_int("depth", depth)
    if depth not in IMAGENET_SPECS:
        raise ValueError(
            f"`depth` of an ImageNet ResNet must be one of {', '.join(map(str, IMAGENET_SPECS))}. Received: depth={depth}"
        )
    return IMAGENET_SPECS[depth]


def stage_output_widths(spec: ResNetSpec) -> tuple[int, ...]:
    factor = EXPANSION if spec.block == "bottleneck" else 1
    return tuple(w * factor for w in spec.widths)


def resolve_bottleneck_width(spec: ResNetSpec, bottleneck_width: Any) -> tuple[int, ...]:
    """Per-stage reduction widths from `None` (the paper's), one ratio of the stage's output width,
    or one positive integer per stage."""
    if bottleneck_width is None:
        return spec.widths
    if spec.block != "bottleneck":
        raise ValueError(
            "`bottleneck_width` applies only to bottleneck ResNets (ResNet-50/101/152); this net uses basic "
            f"blocks. Received: bottleneck_width={bottleneck_width!r}"
        )
    outputs = stage_output_widths(spec)
    if isinstance(bottleneck_width, (int, float)) and not isinstance(bottleneck_width, bool):
        if isinstance(bottleneck_width, float) or bottleneck_width <= 1:
            if not 0 < bottleneck_width <= 1:
                raise ValueError(
                    "`bottleneck_width` as a ratio of the stage's output width must be in (0, 1]. "
                    f"Received: bottleneck_width={bottleneck_width!r}"
                )
            return tuple(max(1, round(bottleneck_width * w)) for w in outputs)
        raise ValueError(
            f"`bottleneck_width` must be a ratio in (0, 1] or a tuple of {len(outputs)} positive integers, one per "
            f"stage. Received: bottleneck_width={bottleneck_width!r}"
        )
    try:
        widths = tuple(bottleneck_width)
    except TypeError as error:
        raise TypeError(
            f"`bottleneck_width` must be None, a ratio or a tuple of {len(outputs)} integers. "
            f"Received: bottleneck_width={bottleneck_width!r}"
        ) from error
    if len(widths) != len(outputs) or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
        raise ValueError(
            f"`bottleneck_width` must have {len(outputs)} positive integers, one per stage. "
            f"Received: bottleneck_width={bottleneck_width!r}"
        )
    return widths


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
        pretrained = pretrained_weights.resnet_imagenet_name(
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
    if not 0 <= bn_momentum < 1:
        raise ValueError(f"`bn_momentum` must be in [0, 1). Received: bn_momentum={bn_momentum!r}")
    if not bn_epsilon > 0:
        raise ValueError(f"`bn_epsilon` must be positive. Received: bn_epsilon={bn_epsilon!r}")
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
        pretrained_weights.load_imagenet(model, pretrained, include_top=include_top)
    return model


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
    spec = imagenet_spec(depth)
    prefix = "resnet" if options.get("residual", True) else "plainnet"
    return build_resnet(
        spec,
        include_top,
        weights,
        input_tensor,
        input_shape,
        pooling,
        classes,
        classifier_activation,
        name=name or f"{prefix}{depth}",
        **options,
    )


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
    shortcut: str = "A",
    **options: Any,
) -> keras.Model:
    """A CIFAR ResNet of He et al. 2016, Section 4.2, for any depth 6n+2; option A shortcuts by default.

    Same options as `ResNet` (`residual=False` builds the plain twin).
    """
    spec = cifar_spec(depth)
    prefix = "resnet" if options.get("residual", True) else "plainnet"
    return build_resnet(
        spec,
        include_top,
        weights,
        input_tensor,
        input_shape,
        pooling,
        classes,
        classifier_activation,
        name=name or f"{prefix}{depth}",
        shortcut=shortcut,
        **options,
    )


def _variant(depth: int, *, cifar: bool, residual: bool):
    """A thin public builder (`ResNet50`, `PlainNet20`, ...) registered under its lower-case name."""
    family = CifarResNet if cifar else ResNet
    prefix = "ResNet" if residual else "PlainNet"
    what = ("CIFAR " if cifar else "ImageNet ") + ("ResNet" if residual else "plain net (no shortcuts)")

    def builder(
        include_top: bool = True,
        weights: Any = None,
        input_tensor: Any = None,
        input_shape: Sequence[int | None] | None = None,
        pooling: str | None = None,
        classes: int = 10 if cifar else 1000,
        classifier_activation: Any = "softmax",
        name: str | None = None,
        **options: Any,
    ) -> keras.Model:
        if not residual:
            if "residual" in options or "shortcut" in options:
                bad = "residual" if "residual" in options else "shortcut"
                raise TypeError(f"{prefix}{depth} has no shortcuts; `{bad}` is not an option of plain nets.")
            options["residual"] = False
        return family(
            depth,
            include_top,
            weights,
            input_tensor,
            input_shape,
            pooling,
            classes,
            classifier_activation,
            name,
            **options,
        )

    builder.__name__ = builder.__qualname__ = f"{prefix}{depth}"
    builder.__doc__ = f"The {depth}-layer {what} of He et al. 2016. Arguments as in `{family.__name__}`."
    builder.__module__ = __name__
    return register_model(f"{prefix.lower()}{depth}")(builder)


ResNet18 = _variant(18, cifar=False, residual=True)
ResNet34 = _variant(34, cifar=False, residual=True)
ResNet50 = _variant(50, cifar=False, residual=True)
ResNet101 = _variant(101, cifar=False, residual=True)
ResNet152 = _variant(152, cifar=False, residual=True)
ResNet20 = _variant(20, cifar=True, residual=True)
ResNet32 = _variant(32, cifar=True, residual=True)
ResNet44 = _variant(44, cifar=True, residual=True)
ResNet56 = _variant(56, cifar=True, residual=True)
ResNet110 = _variant(110, cifar=True, residual=True)
ResNet1202 = _variant(1202, cifar=True, residual=True)
PlainNet18 = _variant(18, cifar=False, residual=False)
PlainNet34 = _variant(34, cifar=False, residual=False)
PlainNet20 = _variant(20, cifar=True, residual=False)
PlainNet32 = _variant(32, cifar=True, residual=False)
PlainNet44 = _variant(44, cifar=True, residual=False)
PlainNet56 = _variant(56, cifar=True, residual=False)
PlainNet110 = _variant(110, cifar=True, residual=False)
