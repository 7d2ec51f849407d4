"""torchvision checkpoints loaded into our builders: ResNet-18/34/50/101/152 (`stride_in="3x3"`), GoogLeNet
(`variant="torchvision"`) and Inception v3, from state dicts, `.pth` files (with torch installed) or `.npz` files.

Each family maps our layer names to torchvision's modules (`_resnet_torch_name`, `_googlenet_unit`,
`_inception_v3_unit`); every tensor is checked for shape, and a checkpoint of another architecture is refused with
the first mismatched tensor and both shapes. Preprocessing (`preprocessing_mode`): `"torch"` for the ResNets, `"tf"`
for GoogLeNet and Inception v3 (their `transform_input=True` maps torch-normalized inputs to exactly x / 127.5 - 1).
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any, Callable, Mapping

import keras
import numpy as np

from keras_convnets.models.registry import get_builder
from keras_convnets.utils.validation import check_choice
from keras_convnets.weights._common import LayerValues, assign, fix_builder_options, model_key, resnet_architecture
from keras_convnets.weights.keras_applications import KERAS_APPLICATIONS_MODELS, KERAS_APPLICATIONS_PREPROCESSING

__all__ = [
    "TORCHVISION_RESNETS",
    "TorchvisionFamily",
    "from_torchvision",
    "load_torchvision",
    "preprocessing_mode",
    "read_state_dict",
]

TORCHVISION_RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")


def _torch_array(key: str, value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu()
        if value.is_floating_point():
            value = value.float()
        value = value.numpy()
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"State dict entry {key!r} is not an array or tensor: {type(value).__name__}") from error


def read_state_dict(source: Any) -> dict[str, np.ndarray]:
    """A torchvision state dict as NumPy arrays, from a mapping (torch tensors or arrays), a `.pth`
    / `.pt` file (needs torch) or a `.npz` file of the state dict (no torch needed).

    `num_batches_tracked` counters are dropped, and so is a `module.` prefix (DataParallel).
    """
    if isinstance(source, Mapping):
        raw = dict(source)
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise ValueError(
                f"`state_dict_or_path` must be an existing file. Received: state_dict_or_path={path!r}, "
                "which does not exist"
            )
        if path.endswith(".npz"):
            try:
                with np.load(path, allow_pickle=False) as archive:
                    raw = {key: archive[key] for key in archive.files}
            except Exception as error:  # zipfile, numpy and OS errors for a damaged archive
                raise ValueError(
                    f"The state dict file {path!r} cannot be read (truncated or corrupted?): {error}"
                ) from error
        else:
            try:
                import torch
            except ImportError as error:
                raise ImportError(
                    f"Reading {path!r} needs PyTorch: `pip install keras_convnets[torch]`, or save the state dict "
                    "as `.npz` where torch is installed: `numpy.savez(path, **{k: v.numpy() for k, v in "
                    "state_dict.items()})`."
                ) from error
            try:
                raw = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError, ...
                raise ValueError(
                    f"The checkpoint {path!r} cannot be read (truncated or corrupted?): {error}"
                ) from error
            for wrapper in ("state_dict", "model"):
                if isinstance(raw, Mapping) and isinstance(raw.get(wrapper), Mapping):
                    raw = raw[wrapper]
            if not isinstance(raw, Mapping):
                raise ValueError(f"The checkpoint {path!r} holds a {type(raw).__name__}, not a state dict.")
    else:
        raise TypeError(
            "`state_dict_or_path` must be a state dict (a mapping of names to tensors or arrays) or the path of "
            f"a `.pth` or `.npz` file. Received: state_dict_or_path={source!r}"
        )
    state = {}
    for key, value in raw.items():
        if not isinstance(key, str):
            raise TypeError(f"State dict keys must be strings. Received key {key!r}")
        if key.endswith("num_batches_tracked"):
            continue
        state[key[len("module.") :] if key.startswith("module.") else key] = _torch_array(key, value)
    return state


def _resnet_torch_name(name: str) -> str | None:
    """torchvision's module for one of our ResNet layers (`conv2_block1_0_conv` -> `layer1.0.downsample.0`)."""
    fixed = {"conv1_conv": "conv1", "conv1_bn": "bn1", "predictions": "fc"}
    if name in fixed:
        return fixed[name]
    match = re.fullmatch(r"conv(\d)_block(\d+)_(\d)_(conv|bn)", name)
    if match is None:
        return None
    stage, block, index, kind = match.groups()
    prefix = f"layer{int(stage) - 1}.{int(block) - 1}."
    if index == "0":
        return prefix + ("downsample.0" if kind == "conv" else "downsample.1")
    return prefix + f"{kind}{index}"


def _unit_layer(name: str, units: Callable[[str], str | None]) -> str | None:
    """`{unit}_conv` -> `{module}.conv`, `{unit}_bn` -> `{module}.bn` (torchvision's BasicConv2d);
    other layers (dense heads) map whole."""
    match = re.fullmatch(r"(.+)_(conv|bn)", name)
    if match is not None:
        module = units(match.group(1))
        if module is not None:
            return f"{module}.{match.group(2)}"
    return units(name)


def _googlenet_unit(unit: str) -> str | None:
    """Our GoogLeNet unit names (`keras_convnets.models.googlenet`) -> torchvision's `googlenet` modules."""
    fixed = {"conv1_7x7": "conv1", "conv2_3x3_reduce": "conv2", "conv2_3x3": "conv3", "predictions": "fc"}
    if unit in fixed:
        return fixed[unit]
    branches = {
        "1x1": "branch1",
        "3x3_reduce": "branch2.0",
        "3x3": "branch2.1",
        "5x5_reduce": "branch3.0",
        "5x5": "branch3.1",
        "pool_proj": "branch4.1",
    }
    match = re.fullmatch(r"inception(\d[a-e])_(.+)", unit)
    if match is not None and match.group(2) in branches:
        return f"inception{match.group(1)}.{branches[match.group(2)]}"
    match = re.fullmatch(r"(aux[12])(_1x1|_fc1)?", unit)
    if match is not None:
        return match.group(1) + {"_1x1": ".conv", "_fc1": ".fc1", None: ".fc2"}[match.group(2)]
    return None


def _inception_v3_unit(unit: str) -> str | None:
    """Our Inception v3 unit names (`keras_convnets.models.inception_v3`) -> torchvision's `inception_v3` modules."""
    fixed = {
        "aux1_conv0": "AuxLogits.conv0",
        "aux1_conv1": "AuxLogits.conv1",
        "aux1": "AuxLogits.fc",
        "predictions": "fc",
    }
    if unit in fixed:
        return fixed[unit]
    match = re.fullmatch(r"conv(\d[a-b]_\dx\d)", unit)
    if match is not None:
        return f"Conv2d_{match.group(1)}"
    match = re.fullmatch(r"mixed(\d[a-e])_(.+)", unit)
    if match is not None:
        branch = "branch_pool" if match.group(2) == "pool_proj" else f"branch{match.group(2)}"
        return f"Mixed_{match.group(1)}.{branch}"
    return None


@dataclasses.dataclass(frozen=True)
class TorchvisionFamily:
    """How one torchvision architecture maps onto one of our builders."""

    torch_name: Callable[[str], str | None]  # our layer name -> torchvision module name
    bn_epsilon: float  # torchvision's batch-norm epsilon (not stored in state dicts)
    required: Mapping[str, Any]  # builder arguments that make our net torchvision's
    defaults: Mapping[str, Any]  # builder defaults for loading (changeable)
    optional_prefixes: tuple[str, ...]  # heads a state dict may carry that our model may leave out
    preprocessing: str  # `preprocess_input` mode matching the pretrained weights


def _torchvision_families() -> dict[str, TorchvisionFamily]:
    resnet = TorchvisionFamily(_resnet_torch_name, 1e-5, resnet_architecture("3x3"), {}, ("fc.",), "torch")
    googlenet = TorchvisionFamily(
        lambda name: _unit_layer(name, _googlenet_unit),
        1e-3,
        {"variant": "torchvision", "norm": "batch", "reduction_scale": 1.0},
        {"dropout": 0.2, "aux_logits": False},
        ("fc.", "aux1.", "aux2."),
        "tf",
    )
    inception_v3 = TorchvisionFamily(
        lambda name: _unit_layer(name, _inception_v3_unit),
        1e-3,
        {"count_include_pad": True},  # torchvision's avg_pool2d(3, 1, padding=1) divides by 9 at the border too
        {"aux_logits": False},
        ("fc.", "AuxLogits."),
        "tf",
    )
    return {**{name: resnet for name in TORCHVISION_RESNETS}, "googlenet": googlenet, "inception_v3": inception_v3}


def _torch_shape(variable_shape: tuple[int, ...], role: str, kind: str) -> tuple[int, ...]:
    if kind == "conv" and role == "kernel":
        kh, kw, cin, cout = variable_shape
        return (cout, cin, kh, kw)
    if kind == "dense" and role == "kernel":
        return tuple(reversed(variable_shape))
    return tuple(variable_shape)


def _flattened_grid(model: keras.Model, dense: keras.layers.Layer) -> tuple[int, int, int] | None:
    """(H, W, C) when `dense` reads a channels-last `Flatten` of a feature map larger than 1x1:
    torch flattens (C, H, W), so its rows must be reordered."""
    if keras.config.image_data_format() != "channels_last":
        return None
    for layer in model.layers:
        if isinstance(layer, keras.layers.Flatten) and layer.output is dense.input:
            shape = tuple(layer.input.shape[1:])
            if len(shape) == 3 and shape[0] * shape[1] > 1:
                return shape
    return None


def load_torchvision(model: keras.Model, state_dict_or_path: Any, model_name: str) -> keras.Model:
    """Copy a torchvision state dict into our `model` (built as torchvision's architecture), in place."""
    key = model_key(model_name, tuple(_torchvision_families()), "torchvision")
    family = _torchvision_families()[key]
    state = read_state_dict(state_dict_or_path)
    label = f"torchvision {key}"
    used: set[str] = set()
    values: LayerValues = {}
    for layer in model.layers:
        if not layer.weights:
            continue
        module = family.torch_name(layer.name)
        if module is None:
            raise ValueError(f"Layer {layer.name!r} of model {model.name!r} has no torchvision counterpart.")
        if isinstance(layer, keras.layers.BatchNormalization):
            kind, roles = (
                "bn",
                {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"},
            )
            variables = {
                "gamma": layer.gamma,
                "beta": layer.beta,
                "moving_mean": layer.moving_mean,
                "moving_variance": layer.moving_variance,
            }
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            kind = "conv" if isinstance(layer, keras.layers.Conv2D) else "dense"
            roles = {"kernel": "weight", "bias": "bias"}
            variables = {"kernel": layer.kernel, "bias": layer.bias}
        else:
            raise ValueError(f"Layer {layer.name!r} ({type(layer).__name__}) of model {model.name!r} cannot be loaded.")
        arrays = {}
        for role, suffix in roles.items():
            tensor = f"{module}.{suffix}"
            variable = variables[role]
            if tensor not in state:
                if variable is None or (role == "bias" and kind != "bn"):
                    continue  # a bias neither side has, or one torch lacks (ours then starts at zero)
                raise ValueError(
                    f"The {label} state dict has no tensor {tensor!r} (layer {layer.name!r} of model "
                    f"{model.name!r}, shape {_torch_shape(tuple(variable.shape), role, kind)}): it belongs to "
                    "another architecture."
                )
            value = state[tensor]
            used.add(tensor)
            if variable is None:
                arrays[role] = value  # a conv bias to fold into the following batch norm
                continue
            expected = _torch_shape(tuple(variable.shape), role, kind)
            if tuple(value.shape) != expected:
                raise ValueError(
                    f"Tensor {tensor!r} has shape {tuple(value.shape)} in the {label} state dict but layer "
                    f"{layer.name!r} of model {model.name!r} needs {expected}: the state dict belongs to another "
                    "architecture."
                )
            if kind == "conv" and role == "kernel":
                value = value.transpose(2, 3, 1, 0)
            elif kind == "dense" and role == "kernel":
                grid = _flattened_grid(model, layer)
                if grid is None:
                    value = value.T
                else:
                    height, width, channels = grid
                    value = value.reshape(-1, channels, height, width).transpose(2, 3, 1, 0).reshape(-1, value.shape[0])
            arrays[role] = value
        values[layer.name] = (arrays, family.bn_epsilon if kind == "bn" else None)
    unused = [t for t in state if t not in used and not t.startswith(family.optional_prefixes)]
    if unused:
        raise ValueError(
            f"The {label} state dict has tensors model {model.name!r} does not use, the first {unused[0]!r} "
            f"of shape {tuple(state[unused[0]].shape)}: it belongs to another architecture."
        )
    assign(model, values, label)
    return model


def from_torchvision(state_dict_or_path: Any, model_name: str, **builder_kwargs: Any) -> keras.Model:
    """Our `model_name` with the weights of a torchvision checkpoint: a state dict, a `.pth` file
    (needs torch) or a `.npz` of the state dict.

    `model_name`: "resnet18", "resnet34", "resnet50", "resnet101", "resnet152" (built with
    `stride_in="3x3"`), "googlenet" (`variant="torchvision"`) or "inception_v3". `builder_kwargs`
    go to the builder (`include_top`, `input_shape`, `pooling`, ...). Preprocess raw pixels with
    `preprocess_input(x, mode=preprocessing_mode(model_name))`.
    """
    key = model_key(model_name, tuple(_torchvision_families()), "torchvision")
    family = _torchvision_families()[key]
    if "weights" in builder_kwargs:
        raise TypeError("`weights` is not an argument of `from_torchvision`: the weights come from the state dict.")
    for argument, value in family.defaults.items():
        builder_kwargs.setdefault(argument, value)
    fix_builder_options("torchvision", family.required, builder_kwargs)
    model = get_builder(key)(**builder_kwargs)
    return load_torchvision(model, state_dict_or_path, key)


def preprocessing_mode(model_name: str, source: str = "torchvision") -> str:
    """The `preprocess_input` mode matching a pretrained weight set (`source`: "torchvision" or
    "keras.applications")."""
    check_choice("source", source, ("torchvision", "keras.applications"))
    if source == "keras.applications":
        return KERAS_APPLICATIONS_PREPROCESSING[model_key(model_name, KERAS_APPLICATIONS_MODELS, source)]
    return _torchvision_families()[model_key(model_name, tuple(_torchvision_families()), source)].preprocessing
