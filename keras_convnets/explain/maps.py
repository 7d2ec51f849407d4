"""Grad-CAM heat maps (Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization", Section 3) for every family, and their overlay on the image.

For a class c and a feature map A (K channels) the map is ReLU(sum_k alpha_k^c A^k), alpha_k^c the global average
over the map of d y^c / d A^k (their Eq. 1 and 2), upsampled bilinearly to the input's size and divided by its
maximum, so that it lies in [0, 1] (a map that is zero everywhere stays zero).

The class score y^c is the pre-softmax logit, as in the paper: for a softmax `Dense` head (the builders' default) the
logits are its input times its kernel plus its bias, computed in float32; for a softmax layer after the head, that
layer's input; for a linear head, its output. Any other head (a sigmoid, a custom layer) is used as it is.

The feature map is, by default, the last 4D tensor before the classifier: the input of the global average pooling
(ResNets and plain nets: `convN_blockM_out`; GoogLeNet: `inception5b_concat`; Inception v3: `mixed7c_concat`), or,
for VGG, the last convolution's output before the final max pooling and flatten (`block5_conv3` of VGG-16, the
paper's choice, Section 3: the last convolutional layer). Models with auxiliary heads use their main output
(`"predictions"`). A model that wraps a classifier (the `model.keras` of an export: raw pixels -> preprocessing ->
the network) is explained through the classifier it wraps; the wrapper's layers before it run first, without
gradients.

Under a mixed-precision policy the feature map and its gradients are cast to float32 before they are combined.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

from keras_convnets.utils.backend import require_tensorflow_backend
from keras_convnets.utils.io import atomic_write
from keras_convnets.utils.validation import check_int, check_number

__all__ = ["default_layer", "grad_cam", "overlay"]


@dataclasses.dataclass(frozen=True)
class _Target:
    """What `grad_cam` computes with: the wrapper models that run first, the classifier's model from its inputs to
    `[feature map, score source]`, the kind of score source and the softmax Dense layer (for its kernel)."""

    prefixes: tuple
    gradients: Any
    kind: str
    dense: Any
    layer_name: str
    classes: int


def _history(tensor):
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        raise ValueError(
            "`model` must be a functional keras.Model (a builder's model, or a model loaded from `.keras`): "
            "Grad-CAM reads the layers between its feature map and its output."
        )
    return history.operation, history.node_index


def _main_output(model):
    """The main output tensor: `"predictions"` of a dict of outputs (auxiliary heads), else the only output."""
    try:
        outputs = model.output
    except (AttributeError, ValueError) as error:
        raise ValueError(
            f"`model` must be a functional keras.Model with a defined output. Received: model {model.name!r}"
        ) from error
    if isinstance(outputs, dict):
        if "predictions" not in outputs:
            raise ValueError(
                "`model` with a dict of outputs must have a 'predictions' entry (its main head). "
                f"Received: model {model.name!r} with outputs {sorted(outputs)}"
            )
        return outputs["predictions"]
    if isinstance(outputs, (list, tuple)):
        if len(outputs) != 1:
            raise ValueError(
                f"`model` must have one output, or a dict of outputs with a 'predictions' entry. Received: model "
                f"{model.name!r} with {len(outputs)} outputs"
            )
        return outputs[0]
    return outputs


def _single_input(model):
    if len(model.inputs) != 1:
        raise ValueError(
            f"`model` must have one image input. Received: model {model.name!r} with {len(model.inputs)} inputs"
        )
    return model.inputs[0]


def _classifier(model) -> tuple[tuple, Any]:
    """`(prefixes, classifier)`: while the main output of `model` is the output of a nested model, the part of
    `model` before that nested model (a model of its own) and the nested model; the innermost is the classifier."""
    import keras

    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model. Received: model={model!r}")
    prefixes = []
    while True:
        operation, node_index = _history(_main_output(model))
        if not isinstance(operation, keras.Model) or operation is model:
            break
        node = operation._inbound_nodes[node_index]
        if len(node.input_tensors) != 1:
            raise ValueError(
                f"`model` wraps {operation.name!r}, which takes {len(node.input_tensors)} inputs: Grad-CAM explains "
                "classifiers of one image input."
            )
        before = keras.Model(_single_input(model), node.input_tensors[0], name=f"{model.name}_before_{operation.name}")
        prefixes.append(before)
        model = operation
    return tuple(prefixes), model


def _find_feature_map(classifier) -> tuple[Any, Any]:
    """`(layer, tensor)` of the default feature map: walk back from the main output through single-input layers to
    the first 4D tensor; a max or average pooling there (VGG's `block5_pool`) is stepped over to its input."""
    import keras

    tensor = _main_output(classifier)
    while True:
        operation, node_index = _history(tensor)
        inputs = operation._inbound_nodes[node_index].input_tensors
        if len(tensor.shape) == 4:
            pooling = isinstance(operation, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D))
            if pooling and len(inputs) == 1 and len(inputs[0].shape) == 4:
                tensor = inputs[0]
                operation, node_index = _history(tensor)
                inputs = operation._inbound_nodes[node_index].input_tensors
            if inputs:  # not the model's input itself
                return operation, tensor
            break
        if len(inputs) != 1:
            break
        tensor = inputs[0]
    raise ValueError(
        f"No 4D feature map was found before the classifier of model {classifier.name!r}: pass `layer`, the name of "
        "a layer whose output is (batch, height, width, channels)."
    )


def _named_layer(classifier, layer):
    """The layer `layer` (a name or a layer of `classifier`) and its 4D output tensor."""
    import keras

    if isinstance(layer, str):
        try:
            found = classifier.get_layer(layer)
        except ValueError as error:
            raise ValueError(
                f"`layer` must be the name of a layer of model {classifier.name!r}. Received: layer={layer!r}"
            ) from error
    elif isinstance(layer, keras.layers.Layer):
        found = next((candidate for candidate in classifier.layers if candidate is layer), None)
        if found is None:
            raise ValueError(
                f"`layer` must be a layer of model {classifier.name!r}. Received: layer={layer.name!r} of another model"
            )
    else:
        raise TypeError(f"`layer` must be None, a layer name or a keras layer. Received: layer={layer!r}")
    if len(found._inbound_nodes) != 1:
        raise ValueError(
            f"`layer` must be called once in model {classifier.name!r}. Received: layer={found.name!r}, called "
            f"{len(found._inbound_nodes)} times"
        )
    tensor = found.output
    if not hasattr(tensor, "shape") or len(tensor.shape) != 4:
        shape = tuple(tensor.shape) if hasattr(tensor, "shape") else type(tensor).__name__
        raise ValueError(
            "`layer` must output a 4D feature map (batch, height, width, channels). "
            f"Received: layer={found.name!r} with output shape {shape}"
        )
    return found, tensor


def _target(model, layer) -> _Target:
    import keras

    from keras_convnets.export.graph import _head  # the export's reading of a head: softmax Dense, softmax, linear

    prefixes, classifier = _classifier(model)
    main = _main_output(classifier)
    if len(main.shape) != 2:
        raise ValueError(
            "`model` must end in a classifier with output (batch, classes): built with `include_top=True`. "
            f"Received: model {model.name!r} with output shape {tuple(main.shape)}"
        )
    found, feature = _find_feature_map(classifier) if layer is None else _named_layer(classifier, layer)
    kind, head, source = _head(main)
    if kind not in ("softmax_dense", "softmax"):
        source = main
    gradients = keras.Model(_single_input(classifier), [feature, source], name=f"{classifier.name}_grad_cam")
    dense = head if kind == "softmax_dense" else None
    return _Target(prefixes, gradients, kind, dense, found.name, int(main.shape[-1]))


def default_layer(model) -> str:
    """The name of the layer whose output `grad_cam` uses when `layer=None` (see the module docstring)."""
    return _target(model, None).layer_name


def _images(images, model) -> np.ndarray:
    array = np.asarray(images)
    if not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"`images` must be an array of numbers. Received: images of dtype {array.dtype}")
    expected = tuple(model.inputs[0].shape[1:])
    if array.ndim != 4 or any(e is not None and e != a for e, a in zip(expected, array.shape[1:])):
        raise ValueError(
            f"`images` must be a batch (N, {', '.join('?' if e is None else str(e) for e in expected)}) for model "
            f"{model.name!r}. Received: images with shape {array.shape}"
        )
    return array.astype("float32", copy=False)


def _class_indices(class_index, count: int, classes: int) -> np.ndarray | None:
    if class_index is None:
        return None
    requirement = f"must be None, a class (an integer in [0, {classes})) or one class per image"
    if isinstance(class_index, (int, np.integer)) and not isinstance(class_index, (bool, np.bool_)):
        indices = np.full(count, int(class_index))
        shown = f"class_index={class_index!r}"
    else:
        indices = np.asarray(class_index)
        shown = f"class_index={class_index!r}" if indices.ndim == 0 else f"class_index={indices.tolist()!r}"
        if indices.ndim != 1 or indices.dtype.kind not in "iu":
            raise TypeError(f"`class_index` {requirement}. Received: {shown}")
        if len(indices) != count:
            raise ValueError(
                f"`class_index` must have one class per image ({count} images). Received: class_index with "
                f"{len(indices)} entries"
            )
    if np.any(indices < 0) or np.any(indices >= classes):
        raise ValueError(f"`class_index` {requirement}. Received: {shown}")
    return indices.astype("int32")


def _logits(target: _Target, source):
    import tensorflow as tf

    source = tf.cast(source, tf.float32)
    if target.kind != "softmax_dense":
        return source
    logits = tf.matmul(source, tf.cast(target.dense.kernel, tf.float32))
    return logits + tf.cast(target.dense.bias, tf.float32) if target.dense.use_bias else logits


def _batch_maps(target: _Target, images: np.ndarray, indices: np.ndarray | None, channels_last: bool):
    import tensorflow as tf

    x = tf.convert_to_tensor(images)
    for prefix in target.prefixes:
        x = prefix(x, training=False)
    with tf.GradientTape() as tape:
        tape.watch(x)  # every operation is recorded, trainable weights or not
        feature, source = target.gradients(x, training=False)
        logits = _logits(target, source)
        classes = tf.argmax(logits, axis=-1, output_type=tf.int32) if indices is None else tf.constant(indices)
        score = tf.reduce_sum(tf.gather(logits, classes[:, None], batch_dims=1))
    gradients = tf.cast(tape.gradient(score, feature), tf.float32)
    feature = tf.cast(feature, tf.float32)
    spatial, channel = ((1, 2), -1) if channels_last else ((2, 3), 1)
    alpha = tf.reduce_mean(gradients, axis=spatial, keepdims=True)  # Eq. 1: global-average-pooled gradients
    cam = tf.nn.relu(tf.reduce_sum(alpha * feature, axis=channel))  # Eq. 2
    height, width = images.shape[1:3] if channels_last else images.shape[2:4]
    cam = tf.image.resize(cam[..., None], (height, width), method="bilinear")[..., 0]
    peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
    return tf.math.divide_no_nan(cam, peak).numpy()


def grad_cam(model, images, class_index: Any = None, layer: Any = None, *, batch_size: int = 32) -> np.ndarray:
    """Grad-CAM heat maps (N, H, W), float32 in [0, 1], at the images' height and width (see the module docstring).

    Args:
        model: a functional classifier (any builder's model with `include_top=True`, with or without auxiliary
            heads, a run's or an export's `model.keras`), float32 or mixed precision.
        images: a batch (N, H, W, C) as the model takes it (an export's `model.keras` takes raw pixels, a run's
            model the preprocessed images).
        class_index: `None` (each image's predicted class), a class for every image, or one class per image.
        layer: `None` (the last feature map before the classifier, `default_layer(model)`), or the name of a
            layer of the classifier (or the layer) whose output is 4D.
        batch_size: images per forward and backward pass.

    The gradients come from `tf.GradientTape`: Keras must run on the TensorFlow backend (a `ValueError` otherwise).
    """
    import keras

    require_tensorflow_backend("`grad_cam`")
    check_int("batch_size", batch_size, minimum=1)
    target = _target(model, layer)
    array = _images(images, model)
    indices = _class_indices(class_index, len(array), target.classes)
    channels_last = keras.config.image_data_format() == "channels_last"
    height, width = array.shape[1:3] if channels_last else array.shape[2:4]
    maps = [
        _batch_maps(
            target,
            array[start : start + batch_size],
            None if indices is None else indices[start : start + batch_size],
            channels_last,
        )
        for start in range(0, len(array), batch_size)
    ]
    return np.concatenate(maps).astype("float32") if maps else np.zeros((0, height, width), "float32")


def _rgb(image) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] not in (3, 4) or not np.issubdtype(array.dtype, np.number):
        raise ValueError(
            "`image` must be raw pixels (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) (the alpha channel is dropped). "
            f"Received: image with shape {array.shape} and dtype {array.dtype}"
        )
    return np.clip(array[..., :3].astype("float32"), 0, 255)


def overlay(
    image,
    heatmap,
    path: str | os.PathLike | None = None,
    *,
    alpha: float = 0.4,
    colormap: str = "jet",
) -> np.ndarray:
    """The heat map in `colormap` over the image: `(1 - alpha) * image + alpha * colour`, uint8 (H, W, 3).

    `image` is raw pixels (0..255) at any size; `heatmap` (h, w) in [0, 1] (what `grad_cam` returns) is resized
    to it bilinearly. With `path` (a `.png` name) the result is also written there as PNG, all or nothing.
    """
    import matplotlib
    import tensorflow as tf
    from PIL import Image

    alpha = check_number("alpha", alpha, minimum=0, maximum=1, requirement="must be a number in [0, 1]")
    try:
        cmap = matplotlib.colormaps[colormap]
    except (KeyError, TypeError) as error:
        raise ValueError(
            "`colormap` must be the name of a matplotlib colormap ('jet', 'turbo', 'inferno', ...). "
            f"Received: colormap={colormap!r}"
        ) from error
    rgb = _rgb(image)
    heat = np.asarray(heatmap, dtype="float32")
    if heat.ndim != 2 or not np.all(np.isfinite(heat)) or heat.min(initial=0) < 0 or heat.max(initial=0) > 1:
        raise ValueError(
            "`heatmap` must be one map (h, w) of values in [0, 1], as `grad_cam` returns. "
            f"Received: heatmap with shape {heat.shape}"
            + (f" and values in [{heat.min():.4g}, {heat.max():.4g}]" if heat.size else "")
        )
    if path is not None:
        path = os.fspath(path)
        if not path.lower().endswith(".png"):
            raise ValueError(f"`path` must be a `.png` file name. Received: path={path!r}")
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"The directory of `path` does not exist. Received: path={path!r}")
    if heat.shape != rgb.shape[:2]:
        heat = tf.image.resize(heat[..., None], rgb.shape[:2], method="bilinear").numpy()[..., 0]
    colour = cmap(np.clip(heat, 0, 1))[..., :3].astype("float32") * 255
    blended = np.clip(np.round((1 - alpha) * rgb + alpha * colour), 0, 255).astype("uint8")
    if path is not None:
        with atomic_write(path, "wb") as handle:
            Image.fromarray(blended).save(handle, format="PNG")
    return blended
