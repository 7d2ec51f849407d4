"""Lesion study (Veit et al. 2016, "Residual networks behave like ensembles of relatively shallow networks").

`lesion(model, blocks)` removes the residual branch f of the named blocks of a ResNet built by
`keras_convnets.models.resnet` and keeps their shortcut: a post-activation block computes relu(shortcut(x) + f(x)), and
its lesioned version relu(shortcut(x)). With an identity shortcut that is x itself (x is the output of a ReLU);
with option A's zero padding it is the subsampled, zero-padded x; with a projection it is relu(bn(conv(x))).

A plain net has no shortcut, so removing a block breaks the chain: the lesioned block's output is its input.
That is possible only where the block keeps the shape; the plain blocks that change shape (the first block of a
stage) cannot be removed and are refused.

The returned model reuses the layer objects of `model` (its weights, no copy): training one trains the other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

import keras

from keras_convnets.models import common

__all__ = [
    "Block",
    "lesion",
    "list_blocks",
]

_BLOCK_OUT = re.compile(r"^(conv\d+_block\d+)_out$")
_BRANCH = re.compile(r"^(conv\d+_block\d+)_[123]_")


@dataclass(frozen=True)
class Block:
    """One block of a ResNet or plain net, as `list_blocks(model)` lists it.

    `shortcut` is "identity", "pad" (option A), "projection" or None (plain net). `changes_shape` says whether the
    block subsamples or widens; `removable` whether `lesion` can delete it (every residual block; plain blocks only
    where the shape is kept).
    """

    name: str
    residual: bool
    shortcut: str | None
    changes_shape: bool

    @property
    def removable(self) -> bool:
        return self.residual or not self.changes_shape


def _layer_names(model: keras.Model) -> set[str]:
    return {layer.name for layer in model.layers}


def list_blocks(model: keras.Model) -> list[Block]:
    """The blocks of a ResNet or plain net built by `keras_convnets.models.resnet`, in network order."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model. Received: model={model!r}")
    names = _layer_names(model)
    found = []
    for layer in model.layers:
        match = _BLOCK_OUT.match(layer.name)
        if not match:
            continue
        block = match.group(1)
        residual = f"{block}_add" in names
        if not residual:
            shortcut = None
        elif f"{block}_0_conv" in names:
            shortcut = "projection"
        elif f"{block}_0_pad" in names:
            shortcut = "pad"
        else:
            shortcut = "identity"
        first = model.get_layer(f"{block}_1_conv")
        in_shape = tuple(first.input.shape[1:])
        out_shape = tuple(layer.output.shape[1:])
        found.append(Block(block, residual, shortcut, in_shape != out_shape))
    return found


def _check_model(model: keras.Model) -> list[Block]:
    found = list_blocks(model)
    if not found:
        raise ValueError(
            "`model` must be a ResNet or plain net built by keras_convnets.models.resnet (blocks named like "
            f"`conv2_block1_out`). Received: model={model.name!r}, which has no such blocks"
        )
    if not isinstance(model, keras.Model) or not hasattr(model, "_nodes_by_depth"):
        raise ValueError(f"`model` must be a functional keras.Model. Received: model={model.name!r}")
    return found


def lesion(model: keras.Model, blocks: Iterable[str] | str, *, name: str | None = None) -> keras.Model:
    """A model that computes `model` with the residual branches of `blocks` deleted.

    `blocks` holds block names such as "conv3_block2" (`list_blocks(model)` lists them; one name alone is
    accepted too). Residual blocks keep their shortcut followed by the block's final ReLU; plain blocks become
    the identity, which only the blocks that keep the shape allow. The new model shares every layer (and so every
    weight) with `model`; `lesion(model, [])` computes exactly what `model` computes.
    """
    found = _check_model(model)
    if isinstance(blocks, str):
        blocks = [blocks]
    try:
        requested = list(blocks)
    except TypeError as error:
        raise TypeError(
            f"`blocks` must be a list of block names such as ['conv3_block2']. Received: blocks={blocks!r}"
        ) from error
    by_name = {b.name: b for b in found}
    for block in requested:
        if not isinstance(block, str) or block not in by_name:
            raise ValueError(
                f"`blocks` must name blocks of model {model.name!r}: {', '.join(by_name)}. "
                f"Received: blocks={requested!r}"
            )
        if not by_name[block].removable:
            removable = [b.name for b in found if b.removable]
            raise ValueError(
                f"Block {block!r} of the plain net {model.name!r} changes the shape of its input, so deleting it "
                "leaves nothing to connect the blocks around it (a plain net has no shortcut). Blocks that can be "
                f"deleted: {', '.join(removable)}. Received: blocks={requested!r}"
            )
    removed = set(requested)
    shortcut_index = {f"{b}_add": _shortcut_index(model, b) for b in removed if by_name[b].residual}

    def call(layer, *args, **kwargs):
        branch = _BRANCH.match(layer.name)
        if branch and branch.group(1) in removed:
            return args[0]  # the deleted branch is never computed: its input just passes through
        out = _BLOCK_OUT.match(layer.name)
        if out and out.group(1) in removed and not by_name[out.group(1)].residual:
            return args[0]  # plain block: the input of the block (carried through its branch) is its output
        if layer.name in shortcut_index:
            return args[0][shortcut_index[layer.name]]
        return layer(*args, **kwargs)

    with common.recursion_limit(max(10_000, 30 * len(model.layers))):
        clone = keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=call)
        suffix = "_lesion_" + "_".join(sorted(removed)) if removed else "_lesion"
        return keras.Model(clone.input, clone.output, name=name or f"{model.name}{suffix}"[:200])


def _shortcut_index(model: keras.Model, block: str) -> int:
    """Which input of the block's `_add` is the shortcut: the one its branch (`_1_`, `_2_`, `_3_` layers)
    did not produce."""
    inputs = model.get_layer(f"{block}_add")._inbound_nodes[0].input_tensors
    for index, tensor in enumerate(inputs):
        match = _BRANCH.match(tensor._keras_history.operation.name)
        if not (match and match.group(1) == block):
            return index
    raise ValueError(f"Block {block!r} of model {model.name!r} has no shortcut input to its `_add` layer.")
