"""Parameters and multiply-accumulates (MACs) per layer, per stage and in total.

One multiply-add counts as one MAC; Conv2D, DepthwiseConv2D, SeparableConv2D and Dense layers are
counted (bias additions, batch norm, pooling and activations are not, as in the papers' FLOP counts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import keras

from keras_convnets.models import common

__all__ = [
    "HEAD_PREFIXES",
    "BottleneckCost",
    "LayerProfile",
    "ModelProfile",
    "StageProfile",
    "bottleneck_cost",
    "layer_macs",
    "profile",
    "stage_of",
]


@dataclass(frozen=True)
class LayerProfile:
    name: str
    type: str
    stage: str
    output_shape: tuple
    params: int
    trainable_params: int
    macs: int


@dataclass(frozen=True)
class StageProfile:
    name: str
    params: int
    trainable_params: int
    macs: int


@dataclass(frozen=True)
class ModelProfile:
    """What `profile` returns: `trainable_params`, `total_params`, `macs`, `layers`, `stages`."""

    name: str
    input_shape: tuple
    layers: tuple[LayerProfile, ...]
    trainable_params: int
    total_params: int
    macs: int
    stages: tuple[StageProfile, ...] = field(default=())

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9

    def table(self, *, by: str = "stage") -> str:
        """A printable table, one row per stage (`by="stage"`) or per layer (`by="layer"`)."""
        if by not in ("stage", "layer"):
            raise ValueError(f"`by` must be 'stage' or 'layer'. Received: by={by!r}")
        if by == "layer":
            head = ("layer", "type", "output shape", "params", "MACs")
            rows = [(r.name, r.type, str(r.output_shape), f"{r.params:,}", f"{r.macs:,}") for r in self.layers]
            rows.append(("total", "", "", f"{self.total_params:,}", f"{self.macs:,}"))
        else:
            head = ("stage", "params", "trainable", "MACs")
            rows = [(s.name, f"{s.params:,}", f"{s.trainable_params:,}", f"{s.macs:,}") for s in self.stages]
            rows.append(("total", f"{self.total_params:,}", f"{self.trainable_params:,}", f"{self.macs:,}"))
        widths = [max(len(str(row[i])) for row in [head, *rows]) for i in range(len(head))]
        lines = [
            f"{self.name}: input {self.input_shape}, {self.trainable_params:,} trainable parameters, "
            f"{self.total_params:,} in all, {self.gmacs:.3f} GMACs",
            "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(head, widths))),
        ]
        for row in rows:
            lines.append(
                "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table(by="stage")


def _count(weights) -> int:
    return int(sum(math.prod(w.shape) for w in weights))


def _flat_layers(model: keras.Model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _flat_layers(layer)
        else:
            yield layer


def layer_macs(layer: keras.layers.Layer) -> int:
    """MACs of one call of `layer` on one example (0 for layers that do no multiply-adds)."""
    if not isinstance(
        layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D, keras.layers.Dense)
    ):
        return 0
    out_shape = tuple(layer.output.shape[1:])
    in_shape = tuple(layer.input.shape[1:])
    if any(d is None for d in out_shape + in_shape):
        raise ValueError(
            f"`profile` needs defined input sizes: layer {layer.name!r} has input shape {in_shape}. Rebuild the model "
            "with `input_shape=(height, width, channels)`."
        )
    axis = common.channel_axis()
    if isinstance(layer, keras.layers.Dense):
        return math.prod(in_shape[:-1]) * in_shape[-1] * layer.units
    spatial = math.prod(out_shape[:-1]) if axis == -1 else math.prod(out_shape[1:])
    in_channels = in_shape[axis]
    kh, kw = layer.kernel_size
    if isinstance(layer, keras.layers.SeparableConv2D):
        depthwise = spatial * in_channels * layer.depth_multiplier * kh * kw
        return depthwise + spatial * in_channels * layer.depth_multiplier * layer.filters
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return spatial * in_channels * layer.depth_multiplier * kh * kw
    groups = getattr(layer, "groups", 1) or 1
    return spatial * layer.filters * kh * kw * in_channels // groups


HEAD_PREFIXES = ("avg", "max", "flatten", "fc1", "fc2", "dropout", "predictions")


def stage_of(layer_name: str) -> str:
    """The stage a layer belongs to: its name up to the first underscore (`conv2_block1_1_conv` -> `conv2`);
    the pooling and classifier layers form the stage `head`."""
    prefix = layer_name.split("_")[0]
    return "head" if prefix in HEAD_PREFIXES else prefix


def profile(model: keras.Model) -> ModelProfile:
    """Parameters and MACs of `model`, per layer, per stage and in total. `str()` prints a table."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model. Received: model={model!r}")
    rows = []
    for layer in _flat_layers(model):
        if isinstance(layer, keras.layers.InputLayer):
            continue
        try:
            shape = tuple(layer.output.shape[1:])
        except (AttributeError, ValueError):
            shape = ()
        rows.append(
            LayerProfile(
                name=layer.name,
                type=type(layer).__name__,
                stage=stage_of(layer.name),
                output_shape=shape,
                params=_count(layer.weights),
                trainable_params=_count(layer.trainable_weights),
                macs=layer_macs(layer),
            )
        )
    stages: dict[str, list[int]] = {}
    for row in rows:
        totals = stages.setdefault(row.stage, [0, 0, 0])
        totals[0] += row.params
        totals[1] += row.trainable_params
        totals[2] += row.macs
    return ModelProfile(
        name=model.name,
        input_shape=tuple(model.inputs[0].shape[1:]) if model.inputs else (),
        layers=tuple(rows),
        trainable_params=_count(model.trainable_weights),
        total_params=_count(model.weights),
        macs=sum(r.macs for r in rows),
        stages=tuple(StageProfile(name, *totals) for name, totals in stages.items()),
    )


@dataclass(frozen=True)
class BottleneckCost:
    """MACs of a direct 3x3 conv at full width against the 1x1 -> 3x3 -> 1x1 bottleneck."""

    height: int
    width: int
    channels: int
    reduced: int
    direct: int
    bottleneck: int

    @property
    def ratio(self) -> float:
        return self.direct / self.bottleneck

    def __str__(self) -> str:
        return (
            f"{self.height}x{self.width}x{self.channels}: direct 3x3 {self.direct:,} MACs, bottleneck "
            f"1x1({self.reduced}) -> 3x3 -> 1x1({self.channels}) {self.bottleneck:,} MACs, {self.ratio:.2f}x fewer"
        )


def bottleneck_cost(height: int, width: int, channels: int = 256, reduced: int = 64) -> BottleneckCost:
    """He et al. 2016, Section 4.1 ("Deeper Bottleneck Architectures"): the saving of the bottleneck design at one
    position of the net.

    At 256 channels reduced to 64 the direct 3x3 costs 144 units for the bottleneck's 17 (about 8.5x).
    """
    for argument, value in (("height", height), ("width", width), ("channels", channels), ("reduced", reduced)):
        common.check_int(argument, value, minimum=1)
    pixels = height * width
    direct = pixels * 9 * channels * channels
    bottleneck = pixels * (channels * reduced + 9 * reduced * reduced + reduced * channels)
    return BottleneckCost(height, width, channels, reduced, direct, bottleneck)
