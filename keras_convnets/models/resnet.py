"""Residual networks and their plain twins (He et al. 2016, "Deep Residual Learning for Image Recognition").

(One module over 450 lines: the public builders, one per registered depth with its docstring, are most of it;
the specs and the block builder already live in `resnet_specs` and `resnet_builder`.)

The architecture is data: `IMAGENET_SPECS` is the paper's Table 1 and `cifar_spec` its Section 4.2
(`keras_convnets.models.resnet_specs`). One builder, `build_resnet` (`keras_convnets.models.resnet_builder`),
reads a spec; plain nets are the same builder with `residual=False`. This module holds the public variants, one
explicit registered builder each (about 20 lines apiece, 18 of them: hence the module's length), and re-exports
the spec tables and the builder.
Layer names follow keras.applications (`conv2_block1_1_conv`, `conv2_block1_0_conv`, `conv2_block1_add`,
`conv2_block1_out`, `avg_pool`, `predictions`).
"""

from __future__ import annotations

from typing import Any, Sequence

import keras

from keras_convnets.models.layers import IdentityShortcut  # noqa: F401 (imported from here in 0.1)
from keras_convnets.models.registry import register_model
from keras_convnets.models.resnet_builder import CifarResNet, ResNet, build_resnet, residual_block, shortcut
from keras_convnets.models.resnet_specs import (
    CIFAR_BLOCKS,
    CIFAR_DEPTHS,
    EXPANSION,
    IMAGENET_SPECS,
    SHORTCUT_OPTIONS,
    STRIDE_OPTIONS,
    ResNetSpec,
    cifar_spec,
    imagenet_spec,
    resolve_bottleneck_width,
    stage_output_widths,
)

__all__ = [
    "CIFAR_BLOCKS",
    "CIFAR_DEPTHS",
    "EXPANSION",
    "IMAGENET_SPECS",
    "SHORTCUT_OPTIONS",
    "STRIDE_OPTIONS",
    "CifarResNet",
    "ResNet",
    "ResNetSpec",
    "ResNet18",
    "ResNet34",
    "ResNet50",
    "ResNet101",
    "ResNet152",
    "ResNet20",
    "ResNet32",
    "ResNet44",
    "ResNet56",
    "ResNet110",
    "ResNet1202",
    "PlainNet18",
    "PlainNet34",
    "PlainNet20",
    "PlainNet32",
    "PlainNet44",
    "PlainNet56",
    "PlainNet110",
    "build_resnet",
    "cifar_spec",
    "imagenet_spec",
    "residual_block",
    "resolve_bottleneck_width",
    "shortcut",
    "stage_output_widths",
]


def _basic_options(builder: str, options: dict[str, Any]) -> dict[str, Any]:
    """The options of a fixed-depth CIFAR net (ResNet20, PlainNet56, ...): basic blocks by definition, so `block`
    is refused (a bottleneck net of that depth would be another architecture under the same name)."""
    if "block" in options:
        raise TypeError(
            f"{builder} is built of basic blocks; `block` is an option of `CifarResNet(depth, block=...)` only. "
            f"Received: block={options['block']!r}"
        )
    return options


def _plain_options(builder: str, options: dict[str, Any]) -> dict[str, Any]:
    """A plain net's builder options: `residual=False`; `residual` and `shortcut` are refused (it has none)."""
    _basic_options(builder, options)
    for bad in ("residual", "shortcut"):
        if bad in options:
            raise TypeError(
                f"{builder} has no shortcuts; `{bad}` is not an option of plain nets. Received: {bad}={options[bad]!r}"
            )
    return {**options, "residual": False}


@register_model("resnet18")
def ResNet18(
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
    """ResNet-18 (He et al. 2016, Table 1): basic blocks 2, 2, 2, 2, 224x224 input.

    11,689,512 trainable parameters at 1000 classes, 1.814 G MACs. Options as in `ResNet`.
    """
    return ResNet(
        18, include_top, weights, input_tensor, input_shape, pooling, classes, classifier_activation, name, **options
    )


@register_model("resnet34")
def ResNet34(
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
    """ResNet-34 (He et al. 2016, Table 1): basic blocks 3, 4, 6, 3, 224x224 input.

    21,797,672 trainable parameters at 1000 classes, 3.664 G MACs. Options as in `ResNet`.
    """
    return ResNet(
        34, include_top, weights, input_tensor, input_shape, pooling, classes, classifier_activation, name, **options
    )


@register_model("resnet50")
def ResNet50(
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
    """ResNet-50 (He et al. 2016, Table 1): bottleneck blocks 3, 4, 6, 3, 224x224 input.

    25,557,032 trainable parameters at 1000 classes, 3.858 G MACs. `weights="imagenet"` loads keras.applications'
    weights. Options as in `ResNet`.
    """
    return ResNet(
        50, include_top, weights, input_tensor, input_shape, pooling, classes, classifier_activation, name, **options
    )


@register_model("resnet101")
def ResNet101(
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
    """ResNet-101 (He et al. 2016, Table 1): bottleneck blocks 3, 4, 23, 3, 224x224 input.

    44,549,160 trainable parameters at 1000 classes, 7.570 G MACs. `weights="imagenet"` loads keras.applications'
    weights. Options as in `ResNet`.
    """
    return ResNet(
        101, include_top, weights, input_tensor, input_shape, pooling, classes, classifier_activation, name, **options
    )


@register_model("resnet152")
def ResNet152(
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
    """ResNet-152 (He et al. 2016, Table 1): bottleneck blocks 3, 8, 36, 3, 224x224 input.

    60,192,808 trainable parameters at 1000 classes, 11.282 G MACs. `weights="imagenet"` loads keras.applications'
    weights. Options as in `ResNet`.
    """
    return ResNet(
        152, include_top, weights, input_tensor, input_shape, pooling, classes, classifier_activation, name, **options
    )


@register_model("resnet20")
def ResNet20(
    include_top: bool = True,
    weights: Any = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 10,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Any,
) -> keras.Model:
    """CIFAR ResNet-20 (He et al. 2016, Section 4.2): 3 stages of 3 basic blocks, 32x32 input, option A shortcuts.

    269,722 trainable parameters at 10 classes, 40.55 M MACs. Options as in `CifarResNet`.
    """
    return CifarResNet(
        20,
        include_top,
        weights,
        input_tensor,
        input_shape,
        pooling,
        classes,
        classifier_activation,
        name,
        **_basic_options("ResNet20", options),
    )


@register_model("resnet32")
def ResNet32(
    include_top: bool = True,
    weights: Any = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 10,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Any,
) -> keras.Model:
    """CIFAR ResNet-32 (He et al. 2016, Section 4.2): 3 stages of 5 basic blocks, 32x32 input, option A shortcuts.

    464,154 trainable parameters at 10 classes, 68.86 M MACs. Options as in `CifarResNet`.
    """
    return CifarResNet(
        32,
        include_top,
        weights,
        input_tensor,
        input_shape,
        pooling,
        classes,
        classifier_activation,
        name,
        **_basic_options("ResNet32", options),
    )


@register_model("resnet44")
def ResNet44(
    include_top: bool = True,
    weights: Any = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 10,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Any,
) -> keras.Model:
    """CIFAR ResNet-44 (He et al. 2016, Section 4.2): 3 stages of 7 basic blocks, 32x32 input, option A shortcuts.

    658,586 trainable parameters at 10 classes, 97.17 M MACs. Options as in `CifarResNet`.
    """
    return CifarResNet(
        44,
        include_top,
        weights,
        input_tensor,
        input_shape,
        pooling,
        classes,
        classifier_activation,
        name,
        **_basic_options("ResNet44", options),
    )


@register_model("resnet56")
def ResNet56(
    include_top: bool = True,
    weights: Any = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 10,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Any,
) -> keras.Model:
    """CIFAR ResNet-56 (He et al. 2016, Section 4.2): 3 stages of 9 basic blocks, 32x32 input, option A shortcuts.

    853,018 trainable parameters at 10 classes, 125.49 M MACs. Options as in `CifarResNet`.
    """
    return CifarResNet(
        56,
        include_top,
        weights,
        input_tensor,
        input_shape,
        pooling,
        classes,
        classifier_activation,
        name,
        **_basic_options("ResNet56", options),
    )


@register_model("resnet110")
def ResNet110(
    include_top: bool = True,
    weights: Any = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 10,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Any,
) -> keras.Model:
    """CIFAR ResNet-110 (He et al. 2016, Section 4.2): 3 stages of 18 basic blocks, 32x32 input, option A shortcuts.

    1,727,962 trainable parameters at 10 classes, 252.89 M MACs. Options as in `CifarResNet`.
    """
    return CifarResNet(
        110,
        include_top,
        weights,
        input_tensor,
        input_shape,
        pooling,
        classes,
        classifier_activation,
        name,
        **_basic_options("ResNet110", options),
    )


@register_model("resnet1202")
def ResNet1202(
    include_top: bool = True,
    weights: Any = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 10,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Any,
) -> keras.Model:
    """CIFAR ResNet-1202 (He et al. 2016, Section 4.2): 3 stages of 200 basic blocks, 32x32 input, option A shortcuts.

    19,421,274 trainable parameters at 10 classes. Options as in `CifarResNet`.
    """
    return CifarResNet(
        1202,
        include_top,
        weights,
        input_tensor,
        input_shape,
        pooling,
        classes,
        classifier_activation,
        name,
        **_basic_options("ResNet1202", options),
    )


@register_model("plainnet18")
def PlainNet18(
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
    """The 18-layer plain net of He et al. 2016, Figure 4: ResNet-18 without its shortcuts, 224x224 input.

    11,515,688 trainable parameters at 1000 classes, 1.795 G MACs. Options as in `ResNet`.
    """
    return ResNet(
        18,
        include_top,
        weights,
        input_tensor,
        input_shape,
        pooling,
        classes,
        classifier_activation,
        name,
        **_plain_options("PlainNet18", options),
    )


@register_model("plainnet34")
def PlainNet34(
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
    """The 34-layer plain net of He et al. 2016, Figure 4: ResNet-34 without its shortcuts, 224x224 input.

    21,623,848 trainable parameters at 1000 classes, 3.644 G MACs. Options as in `ResNet`.
    """
    return ResNet(
        34,
        include_top,
        weights,
        input_tensor,
        input_shape,
        pooling,
        classes,
        classifier_activation,
        name,
        **_plain_options("PlainNet34", options),
    )


@register_model("plainnet20")
def PlainNet20(
    include_top: bool = True,
    weights: Any = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 10,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Any,
) -> keras.Model:
    """The 20-layer CIFAR plain net of He et al. 2016, Figure 6: ResNet-20 without its shortcuts, 32x32 input.

    269,722 trainable parameters at 10 classes, 40.55 M MACs. Options as in `CifarResNet`.
    """
    return CifarResNet(
        20,
        include_top,
        weights,
        input_tensor,
        input_shape,
        pooling,
        classes,
        classifier_activation,
        name,
        **_plain_options("PlainNet20", options),
    )


@register_model("plainnet32")
def PlainNet32(
    include_top: bool = True,
    weights: Any = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 10,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Any,
) -> keras.Model:
    """The 32-layer CIFAR plain net of He et al. 2016, Figure 6: ResNet-32 without its shortcuts, 32x32 input.

    464,154 trainable parameters at 10 classes, 68.86 M MACs. Options as in `CifarResNet`.
    """
    return CifarResNet(
        32,
        include_top,
        weights,
        input_tensor,
        input_shape,
        pooling,
        classes,
        classifier_activation,
        name,
        **_plain_options("PlainNet32", options),
    )


@register_model("plainnet44")
def PlainNet44(
    include_top: bool = True,
    weights: Any = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 10,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Any,
) -> keras.Model:
    """The 44-layer CIFAR plain net of He et al. 2016, Figure 6: ResNet-44 without its shortcuts, 32x32 input.

    658,586 trainable parameters at 10 classes, 97.17 M MACs. Options as in `CifarResNet`.
    """
    return CifarResNet(
        44,
        include_top,
        weights,
        input_tensor,
        input_shape,
        pooling,
        classes,
        classifier_activation,
        name,
        **_plain_options("PlainNet44", options),
    )


@register_model("plainnet56")
def PlainNet56(
    include_top: bool = True,
    weights: Any = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 10,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Any,
) -> keras.Model:
    """The 56-layer CIFAR plain net of He et al. 2016, Figure 6: ResNet-56 without its shortcuts, 32x32 input.

    853,018 trainable parameters at 10 classes, 125.49 M MACs. Options as in `CifarResNet`.
    """
    return CifarResNet(
        56,
        include_top,
        weights,
        input_tensor,
        input_shape,
        pooling,
        classes,
        classifier_activation,
        name,
        **_plain_options("PlainNet56", options),
    )


@register_model("plainnet110")
def PlainNet110(
    include_top: bool = True,
    weights: Any = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 10,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Any,
) -> keras.Model:
    """The 110-layer CIFAR plain net of He et al. 2016, Figure 6: ResNet-110 without its shortcuts, 32x32 input.

    1,727,962 trainable parameters at 10 classes, 252.89 M MACs. Options as in `CifarResNet`.
    """
    return CifarResNet(
        110,
        include_top,
        weights,
        input_tensor,
        input_shape,
        pooling,
        classes,
        classifier_activation,
        name,
        **_plain_options("PlainNet110", options),
    )
