"""The ResNet family as data (He et al. 2016): `IMAGENET_SPECS` is the paper's Table 1 and `cifar_spec` its
Section 4.2. The builder (`keras_convnets.models.resnet_builder`) and the weight converters
(`keras_convnets.weights`) both read these tables; neither imports the other through them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keras_convnets.utils.validation import check_choice, check_int

__all__ = [
    "CIFAR_BLOCKS",
    "CIFAR_DEPTHS",
    "EXPANSION",
    "IMAGENET_SPECS",
    "SHORTCUT_OPTIONS",
    "STRIDE_OPTIONS",
    "ResNetSpec",
    "cifar_spec",
    "imagenet_spec",
    "resolve_bottleneck_width",
    "stage_output_widths",
]


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
CIFAR_BLOCKS = ("basic", "bottleneck")
SHORTCUT_OPTIONS = ("A", "B", "C")
STRIDE_OPTIONS = ("1x1", "3x3")


def cifar_spec(depth: int, block: str = "basic") -> ResNetSpec:
    """He et al. 2016, Section 4.2: depth 6n+2, three stages of n basic blocks, 16/32/64 filters.

    `block="bottleneck"`: the CIFAR bottleneck nets of He et al. 2016b (Identity Mappings, Section 4: ResNet-164,
    ResNet-1001): depth 9n+2, three stages of n bottleneck blocks reducing to 16/32/64 channels, whose outputs are
    `EXPANSION` times wider (64/128/256).
    """
    check_choice("block", block, CIFAR_BLOCKS)
    check_int("depth", depth)
    layers_per_block = 2 if block == "basic" else 3
    if depth < 3 * layers_per_block + 2 or (depth - 2) % (3 * layers_per_block):
        examples = "8, 14, 20, 32, 44, 56, 110, 1202" if block == "basic" else "11, 29, 56, 110, 164, 1001"
        raise ValueError(
            f"`depth` of a {'' if block == 'basic' else 'bottleneck '}CIFAR ResNet must be {3 * layers_per_block}n+2 "
            "with n >= 1 "
            f"({examples}, ...). Received: depth={depth}"
        )
    n = (depth - 2) // (3 * layers_per_block)
    return ResNetSpec(block, (n, n, n), (16, 32, 64), "cifar", 32, 10)


def imagenet_spec(depth: int) -> ResNetSpec:
    check_int("depth", depth)
    if depth not in IMAGENET_SPECS:
        raise ValueError(
            f"`depth` of an ImageNet ResNet must be one of {', '.join(map(str, IMAGENET_SPECS))}. "
            f"Received: depth={depth}"
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
            "`bottleneck_width` applies only to bottleneck ResNets (ResNet-50/101/152, "
            '`CifarResNet(block="bottleneck")`); this net uses basic blocks. '
            f"Received: bottleneck_width={bottleneck_width!r}"
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
    requirement = f"must have {len(outputs)} positive integers, one per stage"
    if len(widths) != len(outputs):
        raise ValueError(f"`bottleneck_width` {requirement}. Received: bottleneck_width={bottleneck_width!r}")
    for width in widths:
        check_int(
            "bottleneck_width",
            width,
            minimum=1,
            requirement=requirement,
            received=f"bottleneck_width={bottleneck_width!r}",
        )
    return widths
