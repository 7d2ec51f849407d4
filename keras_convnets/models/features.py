"""Stage outputs of every family as a dict-output model: `feature_extractor` and `feature_info`.

The counterpart of keras-hub's `pyramid_outputs`, timm's `features_only` / `feature_info` and torchvision's
`create_feature_extractor`. The stages are found by the layer names the builders give, one key per grid (the last
layer at each resolution), in order:

- ImageNet ResNets and plain nets: `conv2`..`conv5`, strides 4, 8, 16, 32, layers `conv{k}_block{last}_out`.
- CIFAR ResNets and plain nets: three stages keyed as their layers, `conv2`..`conv4`, strides 1, 2, 4, layers
  `conv{k}_block{last}_out`.
- VGG: `block1`..`block5`, strides 2, 4, 8, 16, 32, layers `block{k}_pool` (after the block's max pool).
- GoogLeNet: `conv2`, `inception3`, `inception4`, `inception5`, strides 4, 8, 16, 32, layers `conv2_3x3_relu`
  (`conv2_norm` with LRN), `inception3b_concat`, `inception4e_concat`, `inception5b_concat`.
- Inception v3: `conv4`, `mixed5`, `mixed6`, `mixed7`, strides 4, 8, 16, 32, layers `conv4a_3x3_relu`,
  `mixed5d_concat`, `mixed6e_concat`, `mixed7c_concat`.

A stage's stride is read from the graph: the product of the strides of the convolutions and pools on the way from
the input to its layer. For nets with 'same' padding (ResNet, VGG, GoogLeNet) it is input side / feature side on
inputs divisible by 32; Inception v3 pads 'valid', so its maps are a few pixels smaller (299 -> 71, 35, 17, 8), and
the stride is what one more stride of input adds: one row and column of the map. Channels are read from the layer.

keras.applications' ResNets and VGGs use the same layer names and work too; as strides are read from the graph,
ResNet50V2's come out as its graph has them (8, 16, 32, 32: it downsamples in each stage's last block).

    extractor = keras_convnets.models.feature_extractor("resnet50", weights="imagenet", input_shape=(224, 224, 3))
    maps = extractor(images)  # {"conv2": (n, 56, 56, 256), ..., "conv5": (n, 7, 7, 2048)}
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Any, Callable, Iterable

import keras

from keras_convnets.models import common
from keras_convnets.models.registry import get_builder

__all__ = ["FeatureStage", "feature_extractor", "feature_info"]

_RESNET_BLOCK = re.compile(r"conv(\d+)_block(\d+)_out")
_VGG_POOL = re.compile(r"block(\d+)_pool")
_GOOGLENET_MODULE = re.compile(r"inception(\d)([a-z])_concat")
_INCEPTION_V3_MODULE = re.compile(r"mixed(\d)([a-z])_concat")


@dataclasses.dataclass(frozen=True)
class FeatureStage:
    """One stage output: the layer it is taken from, its stride relative to the input and its channels."""

    layer: str
    stride: int
    channels: int


def _last_by_group(names: Iterable[str], pattern: re.Pattern, key: Callable[[re.Match], Any]) -> dict[str, str]:
    """For the names that match `pattern`, the last one (by `key`) of each group (the pattern's first group)."""
    best: dict[str, tuple[Any, str]] = {}
    for name in names:
        match = pattern.fullmatch(name)
        if match is not None and (match.group(1) not in best or key(match) > best[match.group(1)][0]):
            best[match.group(1)] = (key(match), name)
    return {group: name for group, (_, name) in sorted(best.items(), key=lambda item: int(item[0]))}


def _stage_layers(model: keras.Model) -> dict[str, str]:
    """Stage key -> layer name, from the family the model's layer names show."""
    names = [layer.name for layer in model.layers]
    present = set(names)
    modules = _last_by_group(names, _INCEPTION_V3_MODULE, lambda m: m.group(2))
    if modules and "conv4a_3x3_relu" in present:
        return {"conv4": "conv4a_3x3_relu", **{f"mixed{group}": name for group, name in modules.items()}}
    modules = _last_by_group(names, _GOOGLENET_MODULE, lambda m: m.group(2))
    if modules and {"conv2_norm", "conv2_3x3_relu"} & present:
        stem = "conv2_norm" if "conv2_norm" in present else "conv2_3x3_relu"
        return {"conv2": stem, **{f"inception{group}": name for group, name in modules.items()}}
    blocks = _last_by_group(names, _RESNET_BLOCK, lambda m: int(m.group(2)))
    if blocks:
        return {f"conv{group}": name for group, name in blocks.items()}
    pools = _last_by_group(names, _VGG_POOL, lambda m: 0)
    if pools:
        return {f"block{group}": name for group, name in pools.items()}
    raise ValueError(
        "`model` must be built by keras_convnets (ResNet, plain net, VGG, GoogLeNet or Inception v3): its stages "
        "are found by layer name (`conv2_block1_out`, `block1_pool`, `inception3a_concat`, `mixed5b_concat`). "
        f"Received: model {model.name!r}, with none of these layers"
    )


def _stride(model: keras.Model, layer: keras.layers.Layer) -> int:
    """The product of the strides on the path from the model's input to `layer`, following each layer's first
    input (every path through a stage has the same stride, or its concatenations and additions would not fit)."""
    producers = {}
    for candidate in model.layers:
        try:
            producers[id(candidate.output)] = candidate
        except (AttributeError, ValueError):  # a layer used at several places has no single output
            continue
    stage, height, width = layer, 1, 1
    seen = set()
    while layer is not None and id(layer) not in seen:
        seen.add(id(layer))
        strides = getattr(layer, "strides", None)
        if strides is not None:
            sh, sw = (strides, strides) if isinstance(strides, int) else tuple(strides)
            height, width = height * sh, width * sw
        try:
            inputs = layer.input
        except (AttributeError, ValueError):
            break
        if isinstance(inputs, (list, tuple)):
            inputs = inputs[0] if inputs else None  # an InputLayer has no input
        layer = producers.get(id(inputs))
    if height != width:
        raise ValueError(f"Layer {stage.name!r} of model {model.name!r} has strides {height}x{width}, not square.")
    return height


def feature_info(model: keras.Model) -> dict[str, FeatureStage]:
    """The stages of a keras_convnets model, in order: key -> `FeatureStage(layer, stride, channels)`.

    Works for any model of the registry, built with or without its top (see the module docstring for the keys).
    A model whose layers do not carry our names is refused with a `ValueError`.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model. Received: model={model!r}")
    info = {}
    for stage, name in _stage_layers(model).items():
        layer = model.get_layer(name)
        channels = layer.output.shape[common.channel_axis()]
        info[stage] = FeatureStage(layer=name, stride=_stride(model, layer), channels=int(channels))
    return info


def _resolve_stages(stages: Any, available: dict[str, FeatureStage]) -> list[str]:
    if stages is None:
        return list(available)
    chosen = [stages] if isinstance(stages, str) else stages
    try:
        chosen = list(chosen)
    except TypeError:
        chosen = None
    shown = ", ".join(repr(s) for s in available)
    if chosen is None or not all(isinstance(s, str) for s in chosen):
        raise TypeError(f"`stages` must be None or stage names among {shown}. Received: stages={stages!r}")
    if not chosen or any(s not in available for s in chosen):
        raise ValueError(f"`stages` must be one or more of {shown}. Received: stages={stages!r}")
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"`stages` must not repeat a stage. Received: stages={stages!r}")
    return chosen


def feature_extractor(model: keras.Model | str, stages: Any = None, **builder_kwargs: Any) -> keras.Model:
    """A functional model from `model`'s input to the dict `{stage: feature map}` of `stages` (default: all).

    It shares the layers, and so the weights, of `model`: nothing is copied, training one trains the other.
    `model` may also be a registered name (`"resnet50"`): the model is then built with `include_top=False` (and
    `aux_logits=False` where the builder has auxiliary heads) and `builder_kwargs`, e.g. `weights="imagenet"` or
    `input_shape`. Each entry's layer, stride and channels are in `feature_info(model)`.
    """
    if isinstance(model, str):
        builder = get_builder(model)
        builder_kwargs.setdefault("include_top", False)
        if "aux_logits" in inspect.signature(builder).parameters:
            builder_kwargs.setdefault("aux_logits", False)
        model = builder(**builder_kwargs)
    elif builder_kwargs:
        raise TypeError(
            "Builder arguments apply only when `model` is a registered name. "
            f"Received: model={getattr(model, 'name', model)!r} and {', '.join(sorted(builder_kwargs))}"
        )
    info = feature_info(model)
    chosen = _resolve_stages(stages, info)
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    outputs = {stage: model.get_layer(info[stage].layer).output for stage in chosen}
    return keras.Model(inputs, outputs, name=f"{model.name}_features")
