"""What both weight converters share: the model-name key, the builder options a weight set fixes, and the
assignment of converted arrays (Keras layouts, by layer name) to a model, with bias and epsilon folding."""

from __future__ import annotations

from typing import Any, Mapping

import keras
import numpy as np

from keras_convnets.utils.naming import canonical_model_name

__all__ = ["LayerValues", "assign", "fix_builder_options", "has_layer", "model_key", "resnet_architecture"]

# Per layer name: its arrays by role (`kernel`, `bias`, `gamma`, ...) and, for batch norm, the source's epsilon.
LayerValues = dict[str, tuple[dict[str, np.ndarray], float | None]]


def model_key(model_name: Any, allowed: tuple[str, ...], source: str) -> str:
    """The registry key of `model_name` (`keras_convnets.utils.naming.canonical_model_name`), refused unless the
    `source` has weights for it."""
    key = canonical_model_name(model_name, argument="model_name")
    if key not in allowed:
        raise ValueError(
            f"`model_name` must name a model with {source} weights: {', '.join(map(repr, allowed))}. "
            f"Received: model_name={model_name!r}"
        )
    return key


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


def has_layer(model: keras.Model, name: str) -> bool:
    return any(layer.name == name for layer in model.layers)


def following_norm(name: str) -> str | None:
    return name[: -len("_conv")] + "_bn" if name.endswith("_conv") else None


def assign(model: keras.Model, values: LayerValues, label: str) -> None:
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
                norm = following_norm(layer.name)
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
