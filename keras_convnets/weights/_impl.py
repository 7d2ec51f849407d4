"""Pretrained ImageNet weights from keras.applications and torchvision, loaded into our builders.

Two checkpoint sets fit our architectures exactly:

- keras.applications' ResNet50/101/152 (`stride_in="1x1"`, projection shortcuts "B"): the same
  files, addresses and hashes as keras.applications, fetched and cached by `keras.utils.get_file`
  (`~/.keras/models/`, shared with keras.applications). Their convolutions carry biases and ours
  do not: a conv bias `b` followed by batch norm is folded into the norm's moving mean
  (`mean' = mean - b`), which is exact. A different batch-norm epsilon is folded into the moving
  variance (`var' = var + eps_source - eps_ours`), also exact, so any `bn_epsilon` loads.
- torchvision checkpoints (state dicts, `.pth` with torch installed, or `.npz` without it) for
  ResNet-18/34/50/101/152 (`stride_in="3x3"`), GoogLeNet (`variant="torchvision"`) and Inception v3.

Layers are matched by name and every tensor is checked for shape; a checkpoint of another
architecture is refused with the first mismatched tensor and both shapes.

Preprocessing that matches each weight set (`keras_convnets.preprocess_input`): `"caffe"` for the
keras.applications ResNets, `"torch"` for torchvision's ResNets, `"tf"` for torchvision's GoogLeNet
and Inception v3 (their `transform_input=True` maps torch-normalized inputs to exactly x / 127.5 - 1).
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
from typing import Any, Callable, Mapping

import keras
import numpy as np

from keras_convnets.models import common
from keras_convnets.models.registry import get_builder

KERAS_APPLICATIONS_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
BASE_URL_ENVIRONMENT_VARIABLE = "KERAS_CONVNETS_WEIGHTS_URL"
KERAS_APPLICATIONS_BN_EPSILON = 1.001e-5


@dataclasses.dataclass(frozen=True)
class WeightsFile:
    """One keras.applications weights file: its name under the base address and its md5 hash."""

    file_name: str
    file_hash: str


def _resnet_files(name: str, top_hash: str, notop_hash: str) -> dict[tuple[str, bool], WeightsFile]:
    stem = f"{name}_weights_tf_dim_ordering_tf_kernels"
    return {
        (name, True): WeightsFile(f"{stem}.h5", top_hash),
        (name, False): WeightsFile(f"{stem}_notop.h5", notop_hash),
    }


# keras.applications `resnet.py`: BASE_WEIGHTS_PATH and WEIGHTS_HASHES, keyed by (model name, include_top).
KERAS_APPLICATIONS_FILES: Mapping[tuple[str, bool], WeightsFile] = types.MappingProxyType(
    {
        **_resnet_files("resnet50", "2cb95161c43110f7111970584f804107", "4d473c1dd8becc155b73f8504c6f6626"),
        **_resnet_files("resnet101", "f1aeb4b969a6efcfb50fad2f0c20cfc5", "88cf7a10940856eca736dc7b7e228a21"),
        **_resnet_files("resnet152", "100835be76be38e30d865e96f2aaae62", "ee4c566cf9a93f14d82f913c2dc6dd0c"),
    }
)
KERAS_APPLICATIONS_MODELS = ("resnet50", "resnet101", "resnet152")
TORCHVISION_RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")


def _model_key(model_name: Any, allowed: tuple[str, ...], source: str) -> str:
    if not isinstance(model_name, str):
        raise TypeError(f"`model_name` must be a string. Received: model_name={model_name!r}")
    key = model_name.lower().replace("-", "").replace("_", "").replace(" ", "")
    key = {"inceptionv3": "inception_v3"}.get(key, key)
    if key not in allowed:
        raise ValueError(
            f"`model_name` must name a model with {source} weights: {', '.join(map(repr, allowed))}. "
            f"Received: model_name={model_name!r}"
        )
    return key


# ----------------------------------------------------------------------------------------------
# ResNet options that a weight set fixes


def resnet_architecture(stride_in: str) -> dict[str, Any]:
    """The ResNet builder options of a weight set: projection shortcuts "B", full bottleneck widths,
    and the stride in the 1x1 (keras.applications) or in the 3x3 (torchvision)."""
    return {"residual": True, "shortcut": "B", "stride_in": stride_in, "bottleneck_width": None}


def fix_builder_options(source: str, required: Mapping[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """`options` with the builder arguments a weight set fixes filled in; a conflicting value is refused."""
    for argument, value in required.items():
        received = options.setdefault(argument, value)
        if received != value:
            raise ValueError(
                f"{source} weights need `{argument}={value!r}` (the architecture they were trained with). "
                f"Received: {argument}={received!r}"
            )
    return options


def resnet_imagenet_name(spec: Any, **options: Any) -> str:
    """The keras.applications name (`"resnet50"`, ...) of the ImageNet weights for a ResNet spec and
    options, for `weights="imagenet"`; a `ValueError` says why when there are none."""
    from keras_convnets.models.resnet import IMAGENET_SPECS

    depth = next((d for d, s in IMAGENET_SPECS.items() if s == spec), None)
    name = f"resnet{depth}"
    if name not in KERAS_APPLICATIONS_MODELS:
        raise ValueError(
            "`weights='imagenet'` is available for ResNet50, ResNet101 and ResNet152 (keras.applications "
            "weights); other models can load torchvision checkpoints with "
            "`keras_convnets.weights.from_torchvision`. Received: weights='imagenet'"
        )
    fix_builder_options("keras.applications ImageNet", resnet_architecture("1x1"), options)
    return name


# ----------------------------------------------------------------------------------------------
# keras.applications


def keras_applications_file(
    model_name: str,
    include_top: bool = True,
    *,
    base_url: str | None = None,
    cache_dir: str | None = None,
) -> str:
    """The local path of a keras.applications weights file, downloaded once and checked by its hash.

    `base_url` (default: the environment variable `KERAS_CONVNETS_WEIGHTS_URL`, else
    keras.applications' address) can point at a mirror, e.g. `file:///data/weights/`.
    """
    key = _model_key(model_name, KERAS_APPLICATIONS_MODELS, "keras.applications")
    entry = KERAS_APPLICATIONS_FILES[(key, bool(include_top))]
    base_url = base_url or os.environ.get(BASE_URL_ENVIRONMENT_VARIABLE) or KERAS_APPLICATIONS_BASE_URL
    origin = base_url.rstrip("/") + "/" + entry.file_name
    if cache_dir is not None:
        os.makedirs(cache_dir, exist_ok=True)  # get_file falls back to /tmp/.keras for a missing directory
    try:
        return keras.utils.get_file(
            entry.file_name, origin, cache_subdir="models", file_hash=entry.file_hash, cache_dir=cache_dir
        )
    except ValueError as error:
        raise ValueError(
            f"The weights file {entry.file_name!r} downloaded from {origin!r} is truncated or corrupted: its "
            f"md5 hash is not {entry.file_hash}. Download it again (or fix the mirror). Details: {error}"
        ) from error
    except Exception as error:  # get_file raises a bare Exception when the address cannot be fetched
        raise OSError(
            f"Could not fetch the weights file {entry.file_name!r} from {origin!r}: {error}. Without network, "
            f"copy the file into the Keras cache (~/.keras/models/) or set {BASE_URL_ENVIRONMENT_VARIABLE} "
            "to a mirror."
        ) from error


def _reference_input_shape() -> tuple[int, int, int]:
    """Any input size holds the same weights: the smallest keras.applications accepts."""
    return (32, 32, 3) if keras.config.image_data_format() == "channels_last" else (3, 32, 32)


def _keras_applications_builder(key: str) -> Callable[..., keras.Model]:
    return {
        "resnet50": keras.applications.ResNet50,
        "resnet101": keras.applications.ResNet101,
        "resnet152": keras.applications.ResNet152,
    }[key]


def _file_has_top(path: str) -> bool:
    """Whether a weights file (legacy Keras `.h5` as keras.applications ships, or Keras 3
    `.weights.h5`) holds the `predictions` layer."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            group = handle["model_weights"] if "model_weights" in handle else handle
            if "layer_names" in group.attrs:  # legacy format: layers by name
                names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs["layer_names"]]
                return "predictions" in names
            if "layers" in group:  # Keras 3 format: layers by creation-order path
                return any(re.fullmatch(r"dense(_\d+)?", n) for n in group["layers"])
    except OSError as error:
        raise ValueError(
            f"The weights file {path!r} cannot be read as HDF5 (truncated or corrupted?): {error}"
        ) from error
    raise ValueError(f"The file {path!r} is not a Keras weights file (no layers found in it).")


def _keras_source_model(source: Any, key: str) -> keras.Model:
    """A keras.applications model holding the weights of `source` (a model, or a weights file)."""
    if isinstance(source, keras.Model):
        return source
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            "`source` must be a keras.applications model or the path of its weights file (`.h5`, "
            f"`.weights.h5`) or saved model (`.keras`). Received: source={source!r}"
        )
    path = os.fspath(source)
    if not os.path.isfile(path):
        raise ValueError(f"`source` must be an existing file. Received: source={path!r}, which does not exist")
    if path.endswith(".keras"):
        try:
            return keras.saving.load_model(path, compile=False)
        except Exception as error:  # a broken zip or config surfaces as several exception types
            raise ValueError(f"`source` {path!r} cannot be loaded as a Keras model: {error}") from error
    reference = _keras_applications_builder(key)(
        include_top=_file_has_top(path), weights=None, input_shape=_reference_input_shape()
    )
    try:
        reference.load_weights(path)
    except Exception as error:  # Keras raises ValueError, KeyError or OSError depending on the mismatch
        raise ValueError(f"`source` {path!r} does not hold keras.applications {key} weights: {error}") from error
    return reference


def _keras_layer_values(source: keras.Model) -> dict[str, tuple[dict[str, np.ndarray], float | None]]:
    """Per layer name: its variables by role and, for batch norm, its epsilon."""
    values = {}
    for layer in source.layers:
        if not layer.weights:
            continue
        if isinstance(layer, keras.layers.BatchNormalization):
            roles = {
                "gamma": layer.gamma,
                "beta": layer.beta,
                "moving_mean": layer.moving_mean,
                "moving_variance": layer.moving_variance,
            }
            values[layer.name] = ({k: np.asarray(v.numpy()) for k, v in roles.items() if v is not None}, layer.epsilon)
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            roles = {"kernel": layer.kernel, "bias": layer.bias}
            values[layer.name] = ({k: np.asarray(v.numpy()) for k, v in roles.items() if v is not None}, None)
        else:
            raise ValueError(f"Layer {layer.name!r} of the source ({type(layer).__name__}) cannot be converted.")
    return values


def load_keras_applications(model: keras.Model, source: Any, model_name: str) -> keras.Model:
    """Copy the weights of a keras.applications model (or weights file) into our `model`, in place."""
    key = _model_key(model_name, KERAS_APPLICATIONS_MODELS, "keras.applications")
    reference = _keras_source_model(source, key)
    values = _keras_layer_values(reference)
    label = f"keras.applications {key}"
    if not _has_layer(model, "predictions"):
        values.pop("predictions", None)
    elif "predictions" not in values:
        raise ValueError(
            f"The {label} source has no `predictions` layer (a no-top file): build the model with `include_top=False`."
        )
    _assign(model, values, label)
    return model


def from_keras_applications(source: Any, model_name: str, **builder_kwargs: Any) -> keras.Model:
    """Our `model_name` ("resnet50", "resnet101" or "resnet152") with the weights of `source`: a
    keras.applications model, or one of its weights files (`.h5` as keras.applications ships them,
    `.weights.h5`, or a saved `.keras` model).

    `builder_kwargs` go to the builder (`include_top`, `input_shape`, `pooling`, ...); `bn_epsilon`
    defaults to keras.applications' 1.001e-5. Use `preprocess_input(x, mode="caffe")` on raw pixels.
    """
    key = _model_key(model_name, KERAS_APPLICATIONS_MODELS, "keras.applications")
    if "weights" in builder_kwargs:
        raise TypeError("`weights` is not an argument of `from_keras_applications`: the weights come from `source`.")
    builder_kwargs.setdefault("bn_epsilon", KERAS_APPLICATIONS_BN_EPSILON)
    fix_builder_options("keras.applications", resnet_architecture("1x1"), builder_kwargs)
    reference = _keras_source_model(source, key)  # a bad file fails before our model is built
    model = get_builder(key)(**builder_kwargs)
    return load_keras_applications(model, reference, key)


def load_imagenet(model: keras.Model, model_name: str, *, include_top: bool) -> keras.Model:
    """`weights="imagenet"`: fetch (or find in the cache) the keras.applications file and load it."""
    return load_keras_applications(model, keras_applications_file(model_name, include_top), model_name)


# ----------------------------------------------------------------------------------------------
# Assignment shared by both sources


def _has_layer(model: keras.Model, name: str) -> bool:
    return any(layer.name == name for layer in model.layers)


def _following_norm(name: str) -> str | None:
    return name[: -len("_conv")] + "_bn" if name.endswith("_conv") else None


def _assign(model: keras.Model, values: dict[str, tuple[dict[str, np.ndarray], float | None]], label: str) -> None:
    """Assign `values` (Keras layouts) to the layers of `model` of the same names.

    Every weighted layer of `model` must be in `values` and every entry of `values` must be used.
    A conv bias our conv lacks is folded into the following batch norm's moving mean; a different
    batch-norm epsilon is folded into the moving variance.
    """
    ours = [layer for layer in model.layers if layer.weights]
    names = {layer.name for layer in ours}
    for name in values:
        if name not in names:
            raise ValueError(
                f"The {label} weights have a layer {name!r} that model {model.name!r} lacks: they belong to "
                "another architecture."
            )
    folded: dict[str, np.ndarray] = {}
    for layer in ours:
        if layer.name not in values:
            raise ValueError(
                f"The {label} weights have no layer {layer.name!r} of model {model.name!r}: they belong to "
                "another architecture."
            )
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)) and layer.bias is None:
            bias = values[layer.name][0].get("bias")
            if bias is not None and np.any(bias != 0):
                norm = _following_norm(layer.name)
                if norm is None or norm not in names:
                    raise ValueError(
                        f"Layer {layer.name!r} of the {label} weights has a bias and layer {layer.name!r} of "
                        f"model {model.name!r} has none, with no batch norm after it to fold it into."
                    )
                folded[norm] = bias
    for layer in ours:
        source, source_epsilon = values[layer.name]
        if isinstance(layer, keras.layers.BatchNormalization):
            source = dict(source)
            if layer.name in folded:
                source["moving_mean"] = source["moving_mean"] - folded[layer.name]
            if source_epsilon is not None and source_epsilon != layer.epsilon:
                variance = source["moving_variance"] + (source_epsilon - layer.epsilon)
                if np.any(variance < 0):
                    raise ValueError(
                        f"Layer {layer.name!r}: batch-norm epsilon {layer.epsilon} is too large to fold the source's "
                        f"epsilon {source_epsilon} into its moving variance; build with `bn_epsilon={source_epsilon}`."
                    )
                source["moving_variance"] = variance
            roles = {
                "gamma": layer.gamma,
                "beta": layer.beta,
                "moving_mean": layer.moving_mean,
                "moving_variance": layer.moving_variance,
            }
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            roles = {"kernel": layer.kernel, "bias": layer.bias}
        else:
            raise ValueError(f"Layer {layer.name!r} ({type(layer).__name__}) of model {model.name!r} cannot be loaded.")
        for role, variable in roles.items():
            if variable is None:
                continue
            if role not in source:
                if role == "bias":  # the source layer had no bias: ours starts at zero
                    variable.assign(np.zeros(variable.shape, variable.dtype))
                    continue
                raise ValueError(f"Layer {layer.name!r}: the {label} weights have no `{role}`.")
            value = source[role]
            if tuple(value.shape) != tuple(variable.shape):
                raise ValueError(
                    f"Layer {layer.name!r} `{role}` has shape {tuple(value.shape)} in the {label} weights and "
                    f"{tuple(variable.shape)} in model {model.name!r}: they belong to another architecture."
                )
            variable.assign(value.astype(variable.dtype))


# ----------------------------------------------------------------------------------------------
# torchvision


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
        lambda name: _unit_layer(name, _inception_v3_unit), 1e-3, {}, {"aux_logits": False}, ("fc.", "AuxLogits."), "tf"
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
    key = _model_key(model_name, tuple(_torchvision_families()), "torchvision")
    family = _torchvision_families()[key]
    state = read_state_dict(state_dict_or_path)
    label = f"torchvision {key}"
    used: set[str] = set()
    values: dict[str, tuple[dict[str, np.ndarray], float | None]] = {}
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
    _assign(model, values, label)
    return model


def from_torchvision(state_dict_or_path: Any, model_name: str, **builder_kwargs: Any) -> keras.Model:
    """Our `model_name` with the weights of a torchvision checkpoint: a state dict, a `.pth` file
    (needs torch) or a `.npz` of the state dict.

    `model_name`: "resnet18", "resnet34", "resnet50", "resnet101", "resnet152" (built with
    `stride_in="3x3"`), "googlenet" (`variant="torchvision"`) or "inception_v3". `builder_kwargs`
    go to the builder (`include_top`, `input_shape`, `pooling`, ...). Preprocess raw pixels with
    `preprocess_input(x, mode=preprocessing_mode(model_name))`.
    """
    key = _model_key(model_name, tuple(_torchvision_families()), "torchvision")
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
    common.check_choice("source", source, ("torchvision", "keras.applications"))
    if source == "keras.applications":
        _model_key(model_name, KERAS_APPLICATIONS_MODELS, source)
        return "caffe"
    return _torchvision_families()[_model_key(model_name, tuple(_torchvision_families()), source)].preprocessing
