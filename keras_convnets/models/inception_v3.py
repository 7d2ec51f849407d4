"""Inception v3 (Szegedy et al. 2015, "Rethinking the Inception Architecture for Computer Vision").

Layer for layer torchvision's `inception_v3`, so that its weights load without loss: every conv is
Conv (no bias) -> BatchNorm (epsilon 1e-3, with gamma) -> ReLU; 23,834,568 trainable parameters at 1000
classes, 27,161,264 with the auxiliary head; about 5.71 GMACs at 299x299. The eleven mixed modules
are the table `MIXED_TABLE` (module, kind A-E of the paper's Figures 5-7 and grid reductions, width).

The auxiliary head sits on the 17x17 grid (after mixed6e): 5x5/3 average pooling, 1x1 conv 128,
5x5 conv 768 ('valid'), global average pooling, FC `classes`. Its 5x5 conv needs the 17x17 grid, so with
`aux_logits=True` the input must be at least 299x299; without it, 75x75.

The average pools inside the modules count the zero padding by default (torchvision's `count_include_pad=True`):
they pad one zero on every side (`{m}_pool_pad`), then average 3x3 'valid'. With `count_include_pad=False` they
are TF-slim's 3x3 'SAME' pools, which average only the pixels inside the image (`{m}_pool`, no pad layer): the
architecture of keras.applications' `InceptionV3`, whose ImageNet weights `weights="imagenet"` loads. Its layers are
ours one for one except the auxiliary head, which it lacks, and its batch norms have no gamma (`scale=False`); their
epsilon is ours, 1e-3. Its layers carry automatic names (`conv2d_17`), so they are matched to ours by their place in
the graph (`keras_convnets.weights.keras_applications`).

Layer names (`{u}` is a unit: `{u}_conv`, `{u}_bn`, `{u}_relu`) and the torchvision state-dict prefix
each unit takes its weights from:

| Keras | torchvision |
|---|---|
| `conv1a_3x3`, `conv2a_3x3`, `conv2b_3x3` | `Conv2d_1a_3x3`, `Conv2d_2a_3x3`, `Conv2d_2b_3x3` |
| `pool1_pool` | `maxpool1` |
| `conv3b_1x1`, `conv4a_3x3` | `Conv2d_3b_1x1`, `Conv2d_4a_3x3` |
| `pool2_pool` | `maxpool2` |
| `mixed5b_{b}`, every branch conv `b` (`1x1`, `5x5_1`, `3x3dbl_2`, `7x7_3`, ...) | `Mixed_5b.branch{b}` |
| `mixed5b_pool_pad`, `mixed5b_pool`, `mixed5b_pool_proj` | `Mixed_5b.branch_pool` (its conv) |
| `mixed7b_3x3_concat`, `mixed7b_3x3dbl_concat`, `mixed5b_concat` | (torch.cat) |
| `aux1_pool`, `aux1_conv0`, `aux1_conv1`, `aux1_avg_pool` | `AuxLogits.conv0`, `AuxLogits.conv1` |
| `aux1` (Dense `classes`, output `"aux1"`) | `AuxLogits.fc` |
| `avg_pool`, `dropout`, `predictions` | `avgpool`, `dropout`, `fc` |

Within a unit: `{u}_conv.kernel` <- `{p}.conv.weight` transposed (2, 3, 1, 0); `{u}_bn` gamma, beta,
moving_mean, moving_variance <- `{p}.bn.weight`, `.bias`, `.running_mean`, `.running_var`. Dense kernels
are the transposed Linear weights (no reordering: both heads global-average-pool first).
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Sequence

import keras
from keras import layers

from keras_convnets.models import common
from keras_convnets.models.aux import check_aux_loss_weight
from keras_convnets.models.layers import Conv2D
from keras_convnets.models.registry import register_model
from keras_convnets.weights import keras_applications

__all__ = [
    "AUX_AFTER",
    "BN_EPSILON",
    "BN_MOMENTUM",
    "MIXED_TABLE",
    "MODULES",
    "InceptionV3",
    "aux_head",
    "avg_pool_branch",
    "concat",
    "grid_sizes",
    "minimum_size",
    "module_a",
    "module_b",
    "module_c",
    "module_d",
    "module_e",
    "unit",
]

BN_EPSILON = 1e-3
BN_MOMENTUM = 0.9  # PyTorch's momentum 0.1

# (module, kind, width): kind "A" is Figure 5 (width = pool projection), "B" the 35 -> 17 reduction,
# "C" Figure 6 (width = channels of the factorized 7x7), "D" the 17 -> 8 reduction, "E" Figure 7.
MIXED_TABLE: tuple[tuple[str, str, int], ...] = (
    ("5b", "A", 32),
    ("5c", "A", 64),
    ("5d", "A", 64),
    ("6a", "B", 0),
    ("6b", "C", 128),
    ("6c", "C", 160),
    ("6d", "C", 160),
    ("6e", "C", 192),
    ("7a", "D", 0),
    ("7b", "E", 0),
    ("7c", "E", 0),
)
AUX_AFTER = "6e"


def unit(x, filters: int, kernel, *, strides: int = 1, padding: str = "same", name: str):
    """Conv (no bias) -> BN -> ReLU: torchvision's BasicConv2d."""
    x = Conv2D(
        filters,
        kernel,
        strides=strides,
        padding=padding,
        use_bias=False,
        kernel_initializer="he_normal",
        name=f"{name}_conv",
    )(x)
    x = layers.BatchNormalization(
        axis=common.channel_axis(), momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{name}_bn"
    )(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def avg_pool_branch(x, filters: int, name: str, count_include_pad: bool = True):
    """3x3/1 average pool -> 1x1 unit. `count_include_pad=True` (torchvision) pads one zero on every side and divides
    by 9 everywhere; `False` (TF-slim's 'SAME' pool, keras.applications) averages the pixels inside the image only."""
    if count_include_pad:
        x = layers.ZeroPadding2D(1, name=f"{name}_pool_pad")(x)
        x = layers.AveragePooling2D(3, strides=1, name=f"{name}_pool")(x)
    else:
        x = layers.AveragePooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    return unit(x, filters, 1, name=f"{name}_pool_proj")


def concat(branches, name: str):
    return layers.Concatenate(axis=common.channel_axis(), name=name)(branches)


def module_a(x, name: str, pool_features: int, *, count_include_pad: bool = True):
    b1 = unit(x, 64, 1, name=f"{name}_1x1")
    b5 = unit(x, 48, 1, name=f"{name}_5x5_1")
    b5 = unit(b5, 64, 5, name=f"{name}_5x5_2")
    b3 = unit(x, 64, 1, name=f"{name}_3x3dbl_1")
    b3 = unit(b3, 96, 3, name=f"{name}_3x3dbl_2")
    b3 = unit(b3, 96, 3, name=f"{name}_3x3dbl_3")
    return concat([b1, b5, b3, avg_pool_branch(x, pool_features, name, count_include_pad)], f"{name}_concat")


def module_b(x, name: str, width: int = 0, *, count_include_pad: bool = True):  # no average pool
    b3 = unit(x, 384, 3, strides=2, padding="valid", name=f"{name}_3x3")
    bd = unit(x, 64, 1, name=f"{name}_3x3dbl_1")
    bd = unit(bd, 96, 3, name=f"{name}_3x3dbl_2")
    bd = unit(bd, 96, 3, strides=2, padding="valid", name=f"{name}_3x3dbl_3")
    pool = layers.MaxPooling2D(3, strides=2, name=f"{name}_pool")(x)
    return concat([b3, bd, pool], f"{name}_concat")


def module_c(x, name: str, c7: int, *, count_include_pad: bool = True):
    b1 = unit(x, 192, 1, name=f"{name}_1x1")
    b7 = unit(x, c7, 1, name=f"{name}_7x7_1")
    b7 = unit(b7, c7, (1, 7), name=f"{name}_7x7_2")
    b7 = unit(b7, 192, (7, 1), name=f"{name}_7x7_3")
    bd = unit(x, c7, 1, name=f"{name}_7x7dbl_1")
    bd = unit(bd, c7, (7, 1), name=f"{name}_7x7dbl_2")
    bd = unit(bd, c7, (1, 7), name=f"{name}_7x7dbl_3")
    bd = unit(bd, c7, (7, 1), name=f"{name}_7x7dbl_4")
    bd = unit(bd, 192, (1, 7), name=f"{name}_7x7dbl_5")
    return concat([b1, b7, bd, avg_pool_branch(x, 192, name, count_include_pad)], f"{name}_concat")


def module_d(x, name: str, width: int = 0, *, count_include_pad: bool = True):  # no average pool
    b3 = unit(x, 192, 1, name=f"{name}_3x3_1")
    b3 = unit(b3, 320, 3, strides=2, padding="valid", name=f"{name}_3x3_2")
    b7 = unit(x, 192, 1, name=f"{name}_7x7x3_1")
    b7 = unit(b7, 192, (1, 7), name=f"{name}_7x7x3_2")
    b7 = unit(b7, 192, (7, 1), name=f"{name}_7x7x3_3")
    b7 = unit(b7, 192, 3, strides=2, padding="valid", name=f"{name}_7x7x3_4")
    pool = layers.MaxPooling2D(3, strides=2, name=f"{name}_pool")(x)
    return concat([b3, b7, pool], f"{name}_concat")


def module_e(x, name: str, width: int = 0, *, count_include_pad: bool = True):
    b1 = unit(x, 320, 1, name=f"{name}_1x1")
    b3 = unit(x, 384, 1, name=f"{name}_3x3_1")
    b3 = concat(
        [unit(b3, 384, (1, 3), name=f"{name}_3x3_2a"), unit(b3, 384, (3, 1), name=f"{name}_3x3_2b")],
        f"{name}_3x3_concat",
    )
    bd = unit(x, 448, 1, name=f"{name}_3x3dbl_1")
    bd = unit(bd, 384, 3, name=f"{name}_3x3dbl_2")
    bd = concat(
        [unit(bd, 384, (1, 3), name=f"{name}_3x3dbl_3a"), unit(bd, 384, (3, 1), name=f"{name}_3x3dbl_3b")],
        f"{name}_3x3dbl_concat",
    )
    return concat([b1, b3, bd, avg_pool_branch(x, 192, name, count_include_pad)], f"{name}_concat")


MODULES = {"A": module_a, "B": module_b, "C": module_c, "D": module_d, "E": module_e}


def aux_head(x, *, classes: int, classifier_activation: Any, name: str = "aux1"):
    x = layers.AveragePooling2D(5, strides=3, name=f"{name}_pool")(x)
    x = unit(x, 128, 1, name=f"{name}_conv0")
    x = unit(x, 768, 5, padding="valid", name=f"{name}_conv1")
    x = layers.GlobalAveragePooling2D(name=f"{name}_avg_pool")(x)
    return layers.Dense(classes, activation=classifier_activation, dtype=common.HEAD_DTYPE, name=name)(x)


def grid_sizes(size: int) -> dict[str, int]:
    """Feature-map side at the 35x35, 17x17 and 8x8 stages for an input of side `size` (<= 0: too small)."""

    def valid(n: int, kernel: int = 3, stride: int = 1) -> int:
        return (n - kernel) // stride + 1 if n >= kernel else 0

    stem = valid(valid(valid(valid(valid(size, 3, 2)), 3, 2)), 3, 2)  # 1a/2, 2a, (2b same), pool1/2, 4a, pool2/2
    grid17 = valid(stem, 3, 2)
    return {"35": stem, "17": grid17, "8": valid(grid17, 3, 2)}


def minimum_size(aux_logits: bool) -> int:
    """75 without the aux head; with it, the input whose 17x17-stage grid is 17 (the aux 5x5 conv needs 5x5
    after the 5x5/3 pooling)."""
    size = 1
    while grid_sizes(size)["8"] < 1 or (aux_logits and (grid_sizes(size)["17"] - 5) // 3 + 1 < 5):
        size += 1
    return size


@register_model("inception_v3")
def InceptionV3(
    include_top: bool = True,
    weights: Any = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: Any = "softmax",
    *,
    aux_logits: bool | None = None,
    dropout: float = 0.5,
    aux_loss_weight: float = 0.4,
    count_include_pad: bool | None = None,
    name: str = "inception_v3",
) -> keras.Model:
    """Inception v3, default input 299x299 (torchvision's structure; see the module docstring).

    `aux_logits`: whether to build the auxiliary head. `None` (default) is False with `weights="imagenet"` (those
    weights have none: the model gives the 1000 ImageNet probabilities, as keras.applications' `InceptionV3`) and
    True otherwise. With `aux_logits=True` the outputs are the dict `{"predictions", "aux1"}` of an
    `AuxClassifierModel`: one loss trains both, total = main + `aux_loss_weight` x aux1 (0.4, as in
    TF-slim's Inception v3 training). `keras_convnets.strip_aux(model)` is the inference model.
    `dropout` is the rate before the classifier (torchvision's 0.5).

    `weights="imagenet"` loads keras.applications' InceptionV3 weights (TF-slim's ImageNet training), fetched once
    and checked by their md5 hash like keras.applications' own (`keras_convnets.weights.keras_applications`). Feed
    them images scaled to [-1, 1]: `preprocess_input(x, mode="tf")`. Their batch norms have no scale (gamma is 1)
    and they have no auxiliary classifier: with an explicit `aux_logits=True` the `aux1` head keeps its random
    initial weights (a warning says so), to be trained.

    `count_include_pad`: whether the 3x3 average pools of the mixed modules count the zero padding (True:
    torchvision, whose checkpoints load with `keras_convnets.weights.from_torchvision`) or average the pixels inside
    the image only (False: TF-slim's 'SAME' pooling, which keras.applications' weights need). `None` (default) is
    False with `weights="imagenet"` and True otherwise. The pools hold no weights, so a weights file loads into
    either: give the value its weights were trained with. A weights file without `count_include_pad` warns, since
    True (the default) is wrong for a model fine-tuned from `weights="imagenet"` (it gives other features). A
    weights file saved with the auxiliary head needs `aux_logits=True` (the default without "imagenet"), one saved
    without it `aux_logits=False`.
    """
    imagenet = isinstance(weights, str) and weights == "imagenet"
    common.check_head_arguments(
        include_top=include_top,
        weights=weights,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        imagenet=True,
    )
    if count_include_pad is None:
        if weights is not None and not imagenet:
            warnings.warn(
                f"InceptionV3 is built from the weights file {os.fspath(weights)!r} without `count_include_pad`: "
                "its average pools count the zero padding (`count_include_pad=True`, torchvision's pooling). A model "
                'fine-tuned from `weights="imagenet"` needs `count_include_pad=False` (TF-slim\'s pooling, which '
                "gives other features). Pass `count_include_pad=True` or `count_include_pad=False` to choose.",
                UserWarning,
                stacklevel=2,
            )
        count_include_pad = not imagenet
    if not isinstance(count_include_pad, bool):
        raise TypeError(
            f"`count_include_pad` must be None, True or False. Received: count_include_pad={count_include_pad!r}"
        )
    if imagenet:
        keras_applications.check_imagenet_options("inception_v3", count_include_pad=count_include_pad)
    if aux_logits is None:
        aux_logits = not imagenet
    if not isinstance(aux_logits, bool):
        raise TypeError(f"`aux_logits` must be None, True or False. Received: aux_logits={aux_logits!r}")
    if aux_logits and not include_top:
        raise ValueError(
            "`aux_logits=True` needs `include_top=True`: the auxiliary classifier is part of the top. "
            f"Received: aux_logits={aux_logits}, include_top={include_top}"
        )
    common.check_fraction("dropout", dropout)
    aux_loss_weight = check_aux_loss_weight(aux_loss_weight)
    net_minimum = minimum_size(aux_logits=False)
    input_shape = common.resolve_input_shape(
        input_shape,
        input_tensor,
        default_size=299,
        min_size=net_minimum,
        include_top=include_top,
        head_needs_size=False,
    )
    aux_minimum = minimum_size(aux_logits=True)
    if aux_logits and any(side is not None and side < aux_minimum for side in common.spatial_dims(input_shape)):
        raise ValueError(
            f"`input_shape` is too small for the auxiliary classifier: with `aux_logits=True` height and width "
            f"must be at least {aux_minimum}x{aux_minimum} (its 5x5 conv needs the 17x17 grid); with "
            f"`aux_logits=False` the minimum is {net_minimum}x{net_minimum}. Received: input_shape={input_shape!r}"
        )

    # The weights file is fetched (or found in the cache, hash checked) before anything is built: a bad download
    # fails at once.
    weights_file = keras_applications.keras_applications_file("inception_v3", include_top) if imagenet else None
    image, inputs = common.model_input(input_shape, input_tensor)
    x = unit(image, 32, 3, strides=2, padding="valid", name="conv1a_3x3")
    x = unit(x, 32, 3, padding="valid", name="conv2a_3x3")
    x = unit(x, 64, 3, name="conv2b_3x3")
    x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    x = unit(x, 80, 1, name="conv3b_1x1")
    x = unit(x, 192, 3, padding="valid", name="conv4a_3x3")
    x = layers.MaxPooling2D(3, strides=2, name="pool2_pool")(x)

    aux = None
    for module, kind, width in MIXED_TABLE:
        x = MODULES[kind](x, f"mixed{module}", width, count_include_pad=count_include_pad)
        if aux_logits and module == AUX_AFTER:
            aux = aux_head(x, classes=classes, classifier_activation=classifier_activation)

    model = common.finish_model(
        inputs,
        x,
        {"aux1": aux} if aux_logits else None,
        name=name,
        weights=None if imagenet else weights,
        include_top=include_top,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        dropout=dropout,
        aux_loss_weight=aux_loss_weight,
    )
    if weights_file is not None:
        keras_applications.load_keras_applications(model, weights_file, "inception_v3")
    return model
