"""keras.applications' ImageNet ResNets (50, 101, 152) loaded into our ResNet builder.

The same files, addresses and hashes as keras.applications, fetched and cached by `keras.utils.get_file`
(`~/.keras/models/`, shared with keras.applications), built with `stride_in="1x1"` and projection shortcuts "B".
Their convolutions carry biases and ours do not: a conv bias `b` followed by batch norm is folded into the norm's
moving mean (`mean' = mean - b`), which is exact. A different batch-norm epsilon is folded into the moving variance
(`var' = var + eps_source - eps_ours`), also exact, so any `bn_epsilon` loads. Preprocess with
`preprocess_input(x, mode="caffe")`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
from typing import Any, Callable, Mapping

import keras
import numpy as np

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
    "WeightsFile",
    "from_keras_applications",
    "keras_applications_file",
    "load_imagenet",
    "load_keras_applications",
    "resnet_imagenet_name",
]

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


def resnet_imagenet_name(spec: Any, **options: Any) -> str:
    """The keras.applications name (`"resnet50"`, ...) of the ImageNet weights for a ResNet spec and
    options, for `weights="imagenet"`; a `ValueError` says why when there are none."""
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
    key = model_key(model_name, KERAS_APPLICATIONS_MODELS, "keras.applications")
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


def _keras_layer_values(source: keras.Model) -> LayerValues:
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
    key = model_key(model_name, KERAS_APPLICATIONS_MODELS, "keras.applications")
    reference = _keras_source_model(source, key)
    values = _keras_layer_values(reference)
    label = f"keras.applications {key}"
    if not has_layer(model, "predictions"):
        values.pop("predictions", None)
    elif "predictions" not in values:
        raise ValueError(
            f"The {label} source has no `predictions` layer (a no-top file): build the model with `include_top=False`."
        )
    assign(model, values, label)
    return model


def from_keras_applications(source: Any, model_name: str, **builder_kwargs: Any) -> keras.Model:
    """Our `model_name` ("resnet50", "resnet101" or "resnet152") with the weights of `source`: a
    keras.applications model, or one of its weights files (`.h5` as keras.applications ships them,
    `.weights.h5`, or a saved `.keras` model).

    `builder_kwargs` go to the builder (`include_top`, `input_shape`, `pooling`, ...); `bn_epsilon`
    defaults to keras.applications' 1.001e-5. Use `preprocess_input(x, mode="caffe")` on raw pixels.
    """
    key = model_key(model_name, KERAS_APPLICATIONS_MODELS, "keras.applications")
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
