"""GoogLeNet / Inception v1 (Szegedy et al. 2014, "Going Deeper with Convolutions").

The nine inception modules are the paper's Table 1, `INCEPTION_TABLE`, one row per module
(#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj), read by one builder, `inception_module`.

Two variants:

- `variant="paper"` (default) follows the paper and its Caffe release (`bvlc_googlenet`): a real 5x5
  conv in the 5x5 branch, 3x3/2 max pools, auxiliary heads of 5x5/3 average pooling, 1x1 conv 128,
  FC 1024 + ReLU, dropout, FC. `norm="lrn"` is the paper exactly (convs with bias, local response
  normalization after pool1 and after conv2_3x3); `norm="batch"` puts batch norm after every conv
  (convs without bias); `norm=None` has neither.
- `variant="torchvision"` is torchvision's `googlenet` layer for layer, so its weights load without
  loss: a 3x3 conv in the "5x5" branch, batch norm (epsilon 1e-3) after every conv, no conv bias,
  pool4 2x2/2, auxiliary heads that average-pool adaptively to 4x4. Pass `dropout=0.2` for
  torchvision's head dropout (dropout has no weights; the default stays the paper's 0.4).

Every max pool uses Caffe's and torchvision's `ceil_mode` (224 -> 112 -> 56 -> 28 -> 14 -> 7): a 3x3/2
pool pads one zero row and column at the bottom and right (`poolN_pad`), then pools 'valid'. The
pooled values are ReLU outputs (>= 0), so the zero padding never wins a max and the result equals
torchvision's. The 7x7/2 stem conv pads 3 on every side (`conv1_7x7_pad`), then convolves 'valid'.

Layer names (`{u}` is a conv unit: `{u}_conv`, then `{u}_bn` with `norm="batch"`, then `{u}_relu`), and
the torchvision state-dict prefix each one takes its weights from:

| Keras unit / layer | torchvision |
|---|---|
| `conv1_7x7` (after `conv1_7x7_pad`) | `conv1` |
| `pool1_pad`, `pool1_pool`, `pool1_norm` (LRN, `norm="lrn"` only) | `maxpool1` |
| `conv2_3x3_reduce` | `conv2` |
| `conv2_3x3`, then `conv2_norm` (LRN only) | `conv3` |
| `pool2_pad`, `pool2_pool`; `pool3_pad`, `pool3_pool` | `maxpool2`, `maxpool3` |
| `pool4_pool` (torchvision), `pool4_pad` + `pool4_pool` (paper) | `maxpool4` |
| `inception3a_1x1` | `inception3a.branch1` |
| `inception3a_3x3_reduce`, `inception3a_3x3` | `inception3a.branch2.0`, `inception3a.branch2.1` |
| `inception3a_5x5_reduce`, `inception3a_5x5` | `inception3a.branch3.0`, `inception3a.branch3.1` |
| `inception3a_pool` (max pool 3x3/1), `inception3a_pool_proj` | `inception3a.branch4.0`, `inception3a.branch4.1` |
| `inception3a_concat` | (torch.cat) |
| `aux1_pool`, `aux1_1x1` | `aux1.conv` (pooling is functional in torch) |
| `aux1_flatten`, `aux1_fc1` (Dense 1024, ReLU), `aux1_dropout` | `aux1.fc1` |
| `aux1` (Dense `classes`, output `"aux1"`) | `aux1.fc2` |
| `aux2_...` as `aux1_...` | `aux2....` |
| `avg_pool`, `dropout`, `predictions` | `avgpool`, `dropout`, `fc` |

Within a unit: `{u}_conv.kernel` <- `{p}.conv.weight` transposed (2, 3, 1, 0); `{u}_bn` gamma, beta,
moving_mean, moving_variance <- `{p}.bn.weight`, `.bias`, `.running_mean`, `.running_var`. Dense kernels
are the transposed Linear weights; `aux*_fc1`'s rows must also be reordered from torch's (channel, row,
column) flattening to Keras's (row, column, channel) one (channels-last).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import keras
from keras import layers

from keras_convnets.models import common
from keras_convnets.models.aux import check_aux_loss_weight
from keras_convnets.models.layers import Conv2D, Dense, LocalResponseNormalization
from keras_convnets.models.registry import register_model
from keras_convnets.utils.validation import check_int, check_number

__all__ = [
    "AUX_AFTER",
    "BN_EPSILON",
    "BN_MOMENTUM",
    "INCEPTION_TABLE",
    "NORM_OPTIONS",
    "TORCHVISION_AUX_GRID",
    "VARIANT_OPTIONS",
    "GoogLeNet",
    "InceptionSpec",
    "aux_head",
    "check_table",
    "conv_unit",
    "grid_sizes",
    "inception_module",
    "max_pool",
    "minimum_size",
    "reduce_width",
]

NORM_OPTIONS = (None, "batch", "lrn")
VARIANT_OPTIONS = ("paper", "torchvision")
BN_EPSILON = 1e-3  # torchvision's BasicConv2d
BN_MOMENTUM = 0.9  # Keras's name for PyTorch's momentum 0.1


@dataclass(frozen=True)
class InceptionSpec:
    """One row of the paper's Table 1."""

    name: str
    n1x1: int
    n3x3_reduce: int
    n3x3: int
    n5x5_reduce: int
    n5x5: int
    pool_proj: int

    @property
    def out_channels(self) -> int:
        return self.n1x1 + self.n3x3 + self.n5x5 + self.pool_proj


# Szegedy et al. 2014, Table 1: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
INCEPTION_TABLE: tuple[InceptionSpec, ...] = (
    InceptionSpec("3a", 64, 96, 128, 16, 32, 32),
    InceptionSpec("3b", 128, 128, 192, 32, 96, 64),
    InceptionSpec("4a", 192, 96, 208, 16, 48, 64),
    InceptionSpec("4b", 160, 112, 224, 24, 64, 64),
    InceptionSpec("4c", 128, 128, 256, 24, 64, 64),
    InceptionSpec("4d", 112, 144, 288, 32, 64, 64),
    InceptionSpec("4e", 256, 160, 320, 32, 128, 128),
    InceptionSpec("5a", 256, 160, 320, 32, 128, 128),
    InceptionSpec("5b", 384, 192, 384, 48, 128, 128),
)
AUX_AFTER = {"4a": "aux1", "4d": "aux2"}  # Section 5: auxiliary classifiers on top of 4a and 4d
AUX_POOL, AUX_STRIDE = 5, 3  # paper: 5x5 average pooling, stride 3 (14x14 -> 4x4)
TORCHVISION_AUX_GRID = 4  # torchvision: adaptive average pooling to 4x4


def _pool_out(size: int, kernel: int = 3) -> int:
    """A ceil-mode max pool of stride 2 as built here (3x3: pad 1 bottom/right then 'valid'; 2x2: 'same')."""
    return (size - 2) // 2 + 1 if kernel == 3 else -(-size // 2)


def grid_sizes(size: int, variant: str = "paper") -> dict[str, int]:
    """Feature-map side after the stem, at modules 3x, 4x and 5x, for an input of side `size`
    (0 where the input is too small to get there)."""
    conv1 = (size - 1) // 2 + 1
    grids = {"conv1": conv1}
    grids["3"] = _pool_out(_pool_out(conv1)) if conv1 >= 2 and _pool_out(conv1) >= 2 else 0
    grids["4"] = _pool_out(grids["3"]) if grids["3"] >= 2 else 0
    pool4_kernel = 2 if variant == "torchvision" else 3
    grids["5"] = _pool_out(grids["4"], pool4_kernel) if grids["4"] >= 2 else 0
    return grids


def minimum_size(variant: str, aux_logits: bool) -> int:
    """The smallest input side the net (and, with `aux_logits`, the paper's aux pooling) accepts."""
    need_4 = AUX_POOL if (aux_logits and variant == "paper") else 2
    size = 1
    while grid_sizes(size, variant)["4"] < need_4 or grid_sizes(size, variant)["5"] < 1:
        size += 1
    return size


def conv_unit(x, filters: int, kernel: int, *, strides: int = 1, name: str, norm: str | None):
    """Conv -> (BN) -> ReLU named `{name}_conv`, `{name}_bn`, `{name}_relu`; a strided conv pads symmetrically."""
    if norm == "batch":
        return common.conv_bn(
            x, filters, kernel, strides=strides, name=name, bn_momentum=BN_MOMENTUM, bn_epsilon=BN_EPSILON
        )
    padding = "same"
    if strides > 1 and kernel > 1:
        x = layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
        padding = "valid"
    x = Conv2D(filters, kernel, strides=strides, padding=padding, kernel_initializer="he_normal", name=f"{name}_conv")(
        x
    )
    return layers.ReLU(name=f"{name}_relu")(x)


def max_pool(x, name: str, kernel: int = 3):
    """A ceil-mode 3x3/2 (or 2x2/2) max pool named `{name}_pool` (see the module docstring)."""
    if kernel == 2:
        return layers.MaxPooling2D(2, strides=2, padding="same", name=f"{name}_pool")(x)
    x = layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"{name}_pad")(x)
    return layers.MaxPooling2D(3, strides=2, name=f"{name}_pool")(x)


def reduce_width(width: int, reduction_scale: float) -> int:
    return max(1, round(width * reduction_scale))


def check_table(table: Sequence[InceptionSpec] | None) -> tuple[InceptionSpec, ...]:
    """`table` as a tuple of nine `InceptionSpec` rows (or mappings of their fields) named as Table 1's, with
    positive widths."""
    if table is None:
        return INCEPTION_TABLE
    names = [spec.name for spec in INCEPTION_TABLE]
    try:  # a row may be a mapping of the fields (as a model card's JSON holds it)
        rows = tuple(InceptionSpec(**r) if isinstance(r, Mapping) else r for r in table)
    except TypeError:
        rows = None
    if rows is None or len(rows) != len(names) or not all(isinstance(r, InceptionSpec) for r in rows):
        raise TypeError(
            f"`table` must be {len(names)} InceptionSpec rows, one per module ({', '.join(names)}). "
            f"Received: table={table!r}"
        )
    if [r.name for r in rows] != names:
        raise ValueError(
            f"`table` rows must be the modules {', '.join(names)} in order. Received: table names "
            f"{[r.name for r in rows]}"
        )
    for row in rows:
        for field_name in ("n1x1", "n3x3_reduce", "n3x3", "n5x5_reduce", "n5x5", "pool_proj"):
            value = getattr(row, field_name)
            check_int(
                "table",
                value,
                minimum=1,
                requirement="widths must be positive integers",
                received=f"{field_name}={value!r} in row {row.name!r}",
            )
    return rows


def inception_module(x, spec: InceptionSpec, *, norm: str | None, variant: str, reduction_scale: float = 1.0):
    """The inception module of Figure 2(b): 1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | 3x3 max pool -> 1x1, concatenated."""
    name = f"inception{spec.name}"
    branch1 = conv_unit(x, spec.n1x1, 1, name=f"{name}_1x1", norm=norm)
    branch2 = conv_unit(x, reduce_width(spec.n3x3_reduce, reduction_scale), 1, name=f"{name}_3x3_reduce", norm=norm)
    branch2 = conv_unit(branch2, spec.n3x3, 3, name=f"{name}_3x3", norm=norm)
    branch3 = conv_unit(x, reduce_width(spec.n5x5_reduce, reduction_scale), 1, name=f"{name}_5x5_reduce", norm=norm)
    branch3 = conv_unit(branch3, spec.n5x5, 3 if variant == "torchvision" else 5, name=f"{name}_5x5", norm=norm)
    branch4 = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    branch4 = conv_unit(branch4, spec.pool_proj, 1, name=f"{name}_pool_proj", norm=norm)
    return layers.Concatenate(axis=common.channel_axis(), name=f"{name}_concat")([branch1, branch2, branch3, branch4])


def aux_head(x, name: str, *, classes: int, classifier_activation: Any, norm: str | None, variant: str, dropout: float):
    """Section 5's auxiliary classifier: pool, 1x1 conv 128, FC 1024 + ReLU, dropout, FC `classes`."""
    if variant == "torchvision":
        x = layers.AdaptiveAveragePooling2D(TORCHVISION_AUX_GRID, name=f"{name}_pool")(x)
    else:
        x = layers.AveragePooling2D(AUX_POOL, strides=AUX_STRIDE, name=f"{name}_pool")(x)
    x = conv_unit(x, 128, 1, name=f"{name}_1x1", norm=norm)
    x = layers.Flatten(name=f"{name}_flatten")(x)
    x = Dense(1024, activation="relu", name=f"{name}_fc1")(x)
    x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return layers.Dense(classes, activation=classifier_activation, dtype=common.HEAD_DTYPE, name=name)(x)


@register_model("googlenet")
def GoogLeNet(
    include_top: bool = True,
    weights: Any = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: Any = "softmax",
    *,
    aux_logits: bool = True,
    norm: str | None = "batch",
    dropout: float = 0.4,
    aux_dropout: float = 0.7,
    aux_loss_weight: float = 0.3,
    reduction_scale: float = 1.0,
    table: Sequence[InceptionSpec] | None = None,
    name: str = "googlenet",
    variant: str = "paper",
) -> keras.Model:
    """GoogLeNet (Inception v1), default input 224x224.

    With `aux_logits=True` (default) the model is an `AuxClassifierModel` whose outputs are the dict
    `{"predictions", "aux1", "aux2"}`: compile it with one loss and fit it on `(images, labels)`; the
    total loss is main + `aux_loss_weight` x (aux1 + aux2). `predict` returns that dict;
    `keras_convnets.strip_aux(model)` is the main-output model for inference and export.

    Args:
        norm: `"batch"` (batch norm after every conv), `"lrn"` (the paper: local response normalization
            after pool1 and conv2_3x3, convs with bias) or `None`.
        dropout: dropout before the classifier (the paper's 0.4). aux_dropout: in the aux heads (0.7).
        reduction_scale: multiplies the widths of the 1x1 reductions in front of the 3x3 and 5x5 convs.
        table: the nine rows of Table 1 to build (default `INCEPTION_TABLE`), e.g. with narrower reductions
            or pool projections: `[dataclasses.replace(row, pool_proj=16) for row in INCEPTION_TABLE]`.
        variant: `"paper"` or `"torchvision"` (see the module docstring; needs `norm="batch"`).
    """
    common.check_head_arguments(
        include_top=include_top,
        weights=weights,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
    )
    common.check_choice("variant", variant, VARIANT_OPTIONS)
    common.check_choice("norm", norm, NORM_OPTIONS)
    if variant == "torchvision" and norm != "batch":
        raise ValueError(
            f"`variant='torchvision'` has batch norm after every conv and needs `norm='batch'`. Received: norm={norm!r}"
        )
    if not isinstance(aux_logits, bool):
        raise TypeError(f"`aux_logits` must be True or False. Received: aux_logits={aux_logits!r}")
    if aux_logits and not include_top:
        raise ValueError(
            "`aux_logits=True` needs `include_top=True`: the auxiliary classifiers are part of the top. "
            f"Received: aux_logits={aux_logits}, include_top={include_top}"
        )
    common.check_fraction("dropout", dropout)
    common.check_fraction("aux_dropout", aux_dropout)
    aux_loss_weight = check_aux_loss_weight(aux_loss_weight)
    check_number(
        "reduction_scale", reduction_scale, minimum=0, exclusive_minimum=True, requirement="must be a positive number"
    )
    table = check_table(table)
    net_minimum = minimum_size(variant, aux_logits=False)
    input_shape = common.resolve_input_shape(
        input_shape,
        input_tensor,
        default_size=224,
        min_size=net_minimum,
        include_top=include_top,
        head_needs_size=aux_logits and variant == "paper",
    )
    aux_minimum = minimum_size(variant, aux_logits=True)
    if aux_logits and any(side is not None and side < aux_minimum for side in common.spatial_dims(input_shape)):
        raise ValueError(
            f"`input_shape` is too small for the auxiliary classifiers: with `aux_logits=True` height and width "
            f"must be at least {aux_minimum}x{aux_minimum} (their 5x5 average pooling needs a 5x5 grid at "
            f"inception4a; without them the minimum is {net_minimum}x{net_minimum}). "
            f"Received: input_shape={input_shape!r}"
        )

    image, inputs = common.model_input(input_shape, input_tensor)
    x = conv_unit(image, 64, 7, strides=2, name="conv1_7x7", norm=norm)
    x = max_pool(x, "pool1")
    if norm == "lrn":
        x = LocalResponseNormalization(name="pool1_norm")(x)
    x = conv_unit(x, 64, 1, name="conv2_3x3_reduce", norm=norm)
    x = conv_unit(x, 192, 3, name="conv2_3x3", norm=norm)
    if norm == "lrn":
        x = LocalResponseNormalization(name="conv2_norm")(x)
    x = max_pool(x, "pool2")

    aux_outputs = {}
    head = dict(
        classes=classes, classifier_activation=classifier_activation, norm=norm, variant=variant, dropout=aux_dropout
    )
    for index, spec in enumerate(table):
        if index and spec.name[0] != table[index - 1].name[0]:
            stage = table[index - 1].name[0]
            x = max_pool(x, f"pool{stage}", kernel=2 if (variant == "torchvision" and stage == "4") else 3)
        x = inception_module(x, spec, norm=norm, variant=variant, reduction_scale=reduction_scale)
        if aux_logits and spec.name in AUX_AFTER:
            aux_name = AUX_AFTER[spec.name]
            aux_outputs[aux_name] = aux_head(x, aux_name, **head)

    return common.finish_model(
        inputs,
        x,
        aux_outputs if aux_logits else None,
        name=name,
        weights=weights,
        include_top=include_top,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        dropout=dropout,
        aux_loss_weight=aux_loss_weight,
    )
