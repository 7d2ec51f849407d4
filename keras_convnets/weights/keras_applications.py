"""keras.applications' ImageNet ResNets (50, 101, 152) and InceptionV3 loaded into our builders.

The same files, addresses and hashes as keras.applications, fetched and cached by `keras.utils.get_file`
(`~/.keras/models/`, shared with keras.applications).

- ResNets: built with `stride_in="1x1"` and projection shortcuts "B", layers matched by name. Their convolutions
  carry biases and ours do not: a conv bias `b` followed by batch norm is folded into the norm's moving mean
  (`mean' = mean - b`), which is exact. A different batch-norm epsilon is folded into the moving variance
  (`var' = var + eps_source - eps_ours`), also exact, so any `bn_epsilon` loads. Preprocess with
  `preprocess_input(x, mode="caffe")`.
- InceptionV3 (TF-slim's architecture, ours with `count_include_pad=False`): its layers have automatic names
  (`conv2d_17`, `batch_normalization_17`), so each is matched to ours by its place in the graph: both models are
  walked from the output, inputs in order, and list their convolutions and batch norms in the same order (the
  order in which keras.applications creates them). Its batch norms have no scale: gamma loads as 1. It has no
  auxiliary classifier: our `aux1` head, if built, keeps its initial weights and a warning says so. Preprocess with
  `preprocess_input(x, mode="tf")` ([-1, 1]).
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import warnings
from typing import Any, Callable, Mapping

import keras
import numpy as np

from keras_convnets.models.aux import strip_aux
from keras_convnets.models.registry import get_builder
from keras_convnets.models.resnet_specs import IMAGENET_SPECS
from keras_convnets.weights._common import (
    LayerValues,
    assign,
    fix_builder_options,
    has_layer,
    model_key,
    resnet_architecture,
)

__all__ = [
    "BASE_URL_ENVIRONMENT_VARIABLE",
    "KERAS_APPLICATIONS_BASE_URL",
    "KERAS_APPLICATIONS_BN_EPSILON",
    "KERAS_APPLICATIONS_FILES",
    "KERAS_APPLICATIONS_MODELS",
    "KERAS_APPLICATIONS_PREPROCESSING",
    "KERAS_INCEPTION_V3_BASE_URL",
    "WeightsFile",
    "check_imagenet_options",
    "from_keras_applications",
    "keras_applications_file",
    "load_imagenet",
    "load_keras_applications",
    "resnet_imagenet_name",
]

KERAS_APPLICATIONS_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
KERAS_INCEPTION_V3_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
BASE_URL_ENVIRONMENT_VARIABLE = "KERAS_CONVNETS_WEIGHTS_URL"
KERAS_APPLICATIONS_BN_EPSILON = 1.001e-5


@dataclasses.dataclass(frozen=True)
class WeightsFile:
    """One keras.applications weights file: its name under its base address, its md5 hash and that address."""

    file_name: str
    file_hash: str
    base_url: str = KERAS_APPLICATIONS_BASE_URL


def _resnet_files(name: str, top_hash: str, notop_hash: str) -> dict[tuple[str, bool], WeightsFile]:
    stem = f"{name}_weights_tf_dim_ordering_tf_kernels"
    return {
        (name, True): WeightsFile(f"{stem}.h5", top_hash),
        (name, False): WeightsFile(f"{stem}_notop.h5", notop_hash),
    }


_INCEPTION_V3_STEM = "inception_v3_weights_tf_dim_ordering_tf_kernels"

# keras.applications `resnet.py` (BASE_WEIGHTS_PATH, WEIGHTS_HASHES) and `inception_v3.py` (WEIGHTS_PATH,
# WEIGHTS_PATH_NO_TOP and the hashes given to get_file), keyed by (model name, include_top).
KERAS_APPLICATIONS_FILES: Mapping[tuple[str, bool], WeightsFile] = types.MappingProxyType(
    {
        **_resnet_files("resnet50", "2cb95161c43110f7111970584f804107", "4d473c1dd8becc155b73f8504c6f6626"),
        **_resnet_files("resnet101", "f1aeb4b969a6efcfb50fad2f0c20cfc5", "88cf7a10940856eca736dc7b7e228a21"),
        **_resnet_files("resnet152", "100835be76be38e30d865e96f2aaae62", "ee4c566cf9a93f14d82f913c2dc6dd0c"),
        ("inception_v3", True): WeightsFile(
            f"{_INCEPTION_V3_STEM}.h5", "9a0d58056eeedaa3f26cb7ebd46da564", KERAS_INCEPTION_V3_BASE_URL
        ),
        ("inception_v3", False): WeightsFile(
            f"{_INCEPTION_V3_STEM}_notop.h5", "bcbd6486424b2319ff4ef7d526e38f63", KERAS_INCEPTION_V3_BASE_URL
        ),
    }
)
KERAS_APPLICATIONS_MODELS = ("resnet50", "resnet101", "resnet152", "inception_v3")
# The `preprocess_input` mode of each weight set: keras.applications' ResNets take BGR minus the ImageNet mean
# ("caffe"), its InceptionV3 pixels scaled to [-1, 1] ("tf").
KERAS_APPLICATIONS_PREPROCESSING: Mapping[str, str] = types.MappingProxyType(
    {"resnet50": "caffe", "resnet101": "caffe", "resnet152": "caffe", "inception_v3": "tf"}
)


@dataclasses.dataclass(frozen=True)
class _Family:
    """How one keras.applications model maps onto our builder."""

    reference: Callable[..., keras.Model]  # the keras.applications builder
    reference_size: int  # the smallest input side it accepts (any size holds the same weights)
    required: Mapping[str, Any]  # our builder options its weights need
    defaults: Mapping[str, Any]  # our builder defaults when loading (changeable)


def _families() -> dict[str, _Family]:
    def resnet(builder):
        return _Family(builder, 32, resnet_architecture("1x1"), {"bn_epsilon": KERAS_APPLICATIONS_BN_EPSILON})

    return {
        "resnet50": resnet(keras.applications.ResNet50),
        "resnet101": resnet(keras.applications.ResNet101),
        "resnet152": resnet(keras.applications.ResNet152),
        "inception_v3": _Family(
            keras.applications.InceptionV3, 75, {"count_include_pad": False}, {"aux_logits": False}
        ),
    }


def check_imagenet_options(model_name: str, **options: Any) -> None:
    """Refuse builder options that the keras.applications ImageNet weights of `model_name` cannot fill (a
    `ValueError` naming the option and the value they need)."""
    key = model_key(model_name, KERAS_APPLICATIONS_MODELS, "keras.applications")
    fix_builder_options("keras.applications ImageNet", _families()[key].required, options)


def resnet_imagenet_name(spec: Any, **options: Any) -> str:
    """The keras.applications name (`"resnet50"`, ...) of the ImageNet weights for a ResNet spec and
    options, for `weights="imagenet"`; a `ValueError` says why when there are none."""
    depth = next((d for d, s in IMAGENET_SPECS.items() if s == spec), None)
    name = f"resnet{depth}"
    if name not in KERAS_APPLICATIONS_MODELS:
        raise ValueError(
            "`weights='imagenet'` is available for ResNet50, ResNet101 and ResNet152 (keras.applications "
            "weights), and for InceptionV3; other models can load torchvision checkpoints with "
            "`keras_convnets.weights.from_torchvision`. Received: weights='imagenet'"
        )
    check_imagenet_options(name, **options)
    return name


def keras_applications_file(
    model_name: str,
    include_top: bool = True,
    *,
    base_url: str | None = None,
    cache_dir: str | None = None,
) -> str:
    """The local path of a keras.applications weights file, downloaded once and checked by its hash.

    `base_url` (default: the environment variable `KERAS_CONVNETS_WEIGHTS_URL`, else
    keras.applications' address) can point at a mirror holding the files by name, e.g. `file:///data/weights/`.
    """
    key = model_key(model_name, KERAS_APPLICATIONS_MODELS, "keras.applications")
    entry = KERAS_APPLICATIONS_FILES[(key, bool(include_top))]
    base_url = base_url or os.environ.get(BASE_URL_ENVIRONMENT_VARIABLE) or entry.base_url
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


def _reference_input_shape(side: int) -> tuple[int, int, int]:
    return (side, side, 3) if keras.config.image_data_format() == "channels_last" else (3, side, side)


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
    family = _families()[key]
    reference = family.reference(
        include_top=_file_has_top(path), weights=None, input_shape=_reference_input_shape(family.reference_size)
    )
    try:
        reference.load_weights(path)
    except Exception as error:  # Keras raises ValueError, KeyError or OSError depending on the mismatch
        raise ValueError(f"`source` {path!r} does not hold keras.applications {key} weights: {error}") from error
    return reference


def _layer_arrays(layer: keras.layers.Layer) -> tuple[dict[str, np.ndarray], float | None]:
    """A source layer's variables by role and, for batch norm, its epsilon. A batch norm without scale
    (`scale=False`, as in keras.applications' InceptionV3) has gamma 1; one without center has beta 0."""
    if isinstance(layer, keras.layers.BatchNormalization):
        mean = np.asarray(layer.moving_mean.numpy())
        arrays = {"moving_mean": mean, "moving_variance": np.asarray(layer.moving_variance.numpy())}
        arrays["gamma"] = np.ones_like(mean) if layer.gamma is None else np.asarray(layer.gamma.numpy())
        arrays["beta"] = np.zeros_like(mean) if layer.beta is None else np.asarray(layer.beta.numpy())
        return arrays, layer.epsilon
    if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
        roles = {"kernel": layer.kernel, "bias": layer.bias}
        return {k: np.asarray(v.numpy()) for k, v in roles.items() if v is not None}, None
    raise ValueError(f"Layer {layer.name!r} of the source ({type(layer).__name__}) cannot be converted.")


def _keras_layer_values(source: keras.Model) -> LayerValues:
    """Per layer name: its variables by role and, for batch norm, its epsilon."""
    return {layer.name: _layer_arrays(layer) for layer in source.layers if layer.weights}


def _weighted_layers_in_graph_order(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers with weights that lead to the model's (first) output, in depth-first post-order with each layer's
    inputs visited in order: a layer comes after everything it reads, and the branches of a concatenation come one
    after the other in the concatenation's order. For keras.applications' InceptionV3 this is the order in which
    its code creates the layers; for ours (the same graph) the same order."""
    producers = {}
    for layer in model.layers:
        try:
            producers[id(layer.output)] = layer
        except (AttributeError, ValueError):  # a layer used at several places has no single output
            continue
    order: list[keras.layers.Layer] = []
    done: set[int] = set()
    stack = [(producers[id(model.outputs[0])], False)]
    while stack:
        layer, expanded = stack.pop()
        if id(layer) in done:
            continue
        if expanded:
            done.add(id(layer))
            order.append(layer)
            continue
        stack.append((layer, True))
        inputs = layer.input
        inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        for tensor in reversed(inputs):  # the first input ends on top of the stack: visited first
            parent = producers.get(id(tensor))
            if parent is not None and id(parent) not in done:
                stack.append((parent, False))
    return [layer for layer in order if layer.weights]


def _kind(layer: keras.layers.Layer) -> str:
    for kind, cls in (("batch norm", keras.layers.BatchNormalization), ("conv", keras.layers.Conv2D)):
        if isinstance(layer, cls):
            return kind
    return type(layer).__name__


def _values_by_graph_order(source: keras.Model, target: keras.Model, label: str, *, top: bool) -> LayerValues:
    """Our layer names -> the arrays of the source layer at the same place in the graph (without the source's
    `predictions` layer when `top` is False)."""
    theirs = [layer for layer in _weighted_layers_in_graph_order(source) if top or layer.name != "predictions"]
    ours = _weighted_layers_in_graph_order(target)
    if len(theirs) != len(ours):
        raise ValueError(
            f"The {label} source has {len(theirs)} layers with weights and model {target.name!r} has {len(ours)}: "
            "they belong to another architecture."
        )
    values: LayerValues = {}
    for mine, source_layer in zip(ours, theirs):
        if _kind(mine) != _kind(source_layer):
            raise ValueError(
                f"Layer {mine.name!r} of model {target.name!r} ({_kind(mine)}) sits where the {label} source has "
                f"{source_layer.name!r} ({_kind(source_layer)}): they belong to another architecture."
            )
        values[mine.name] = _layer_arrays(source_layer)
    return values


def load_keras_applications(model: keras.Model, source: Any, model_name: str) -> keras.Model:
    """Copy the weights of a keras.applications model (or weights file) into our `model`, in place.

    The ResNets' layers are matched by name, InceptionV3's by their place in the graph (see the module
    docstring); our Inception v3's auxiliary head, which keras.applications lacks, keeps its weights (a warning).
    """
    key = model_key(model_name, KERAS_APPLICATIONS_MODELS, "keras.applications")
    label = f"keras.applications {key}"
    if key == "inception_v3" and any(re.fullmatch(r"mixed\w+_pool_pad", layer.name) for layer in model.layers):
        raise ValueError(
            f"The {label} weights need `count_include_pad=False` (TF-slim's average pools leave the padding out of "
            f"the average): model {model.name!r} was built with `count_include_pad=True`."
        )
    reference = _keras_source_model(source, key)
    top = has_layer(model, "predictions")
    if top and not has_layer(reference, "predictions"):
        raise ValueError(
            f"The {label} source has no `predictions` layer (a no-top file): build the model with `include_top=False`."
        )
    if key == "inception_v3":
        target = strip_aux(model)
        values = _values_by_graph_order(reference, target, label, top=top)
    else:
        target = model
        values = _keras_layer_values(reference)
        if not top:
            values.pop("predictions", None)
    assign(target, values, label)
    left = [layer.name for layer in model.layers if layer.weights and layer.name not in values]
    if left:
        warnings.warn(
            f"The {label} weights have no auxiliary classifier: the {len(left)} layers of the auxiliary head of "
            f"model {model.name!r} ({', '.join(left[:3])}, ...) keep their random initial weights. Build with "
            "`aux_logits=False` for inference, or train the head.",
            stacklevel=2,
        )
    return model


def from_keras_applications(source: Any, model_name: str, **builder_kwargs: Any) -> keras.Model:
    """Our `model_name` ("resnet50", "resnet101", "resnet152" or "inception_v3") with the weights of `source`: a
    keras.applications model, or one of its weights files (`.h5` as keras.applications ships them,
    `.weights.h5`, or a saved `.keras` model).

    `builder_kwargs` go to the builder (`include_top`, `input_shape`, `pooling`, ...). The ResNets' `bn_epsilon`
    defaults to keras.applications' 1.001e-5; Inception v3 is built with `count_include_pad=False` and, by
    default, `aux_logits=False`. Preprocess raw pixels with `preprocess_input(x, mode=...)`, the mode
    `KERAS_APPLICATIONS_PREPROCESSING[model_name]`: "caffe" for the ResNets, "tf" for InceptionV3.
    """
    key = model_key(model_name, KERAS_APPLICATIONS_MODELS, "keras.applications")
    if "weights" in builder_kwargs:
        raise TypeError("`weights` is not an argument of `from_keras_applications`: the weights come from `source`.")
    family = _families()[key]
    for argument, value in family.defaults.items():
        builder_kwargs.setdefault(argument, value)
    fix_builder_options("keras.applications", family.required, builder_kwargs)
    reference = _keras_source_model(source, key)  # a bad file fails before our model is built
    model = get_builder(key)(**builder_kwargs)
    return load_keras_applications(model, reference, key)


def load_imagenet(model: keras.Model, model_name: str, *, include_top: bool) -> keras.Model:
    """`weights="imagenet"`: fetch (or find in the cache) the keras.applications file and load it."""
    return load_keras_applications(model, keras_applications_file(model_name, include_top), model_name)
