"""The served graph: the inference model (auxiliary heads stripped), its preprocessing and its named outputs.

`serving_default`-style functions map raw-pixel images to `probabilities` (N, classes) and, where the head has
them, `logits`: a softmax `Dense` head's pre-activation is rebuilt from its kernel and bias, a linear head's output
is the logits and its softmax the probabilities.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from keras_convnets.data.preprocessing import Preprocessing
from keras_convnets.export.constants import INPUT_NAME

__all__ = ["InferenceGraph", "check_input_size"]


def check_input_size(model) -> tuple[int, int, int]:
    """The model's (height, width, channels); an undefined size cannot be exported."""
    if len(model.inputs) != 1:
        raise ValueError(
            f"`model` must have one image input to be exported. Received: a model {model.name!r} with "
            f"{len(model.inputs)} inputs"
        )
    shape = tuple(model.inputs[0].shape[1:])
    if len(shape) != 3 or any(d is None for d in shape):
        raise ValueError(
            "`model` must have a defined input size (height, width, channels) to be exported: rebuild it "
            f"with `input_shape=(224, 224, 3)` (or its size). Received: model {model.name!r} with "
            f"input_shape={shape}"
        )
    return tuple(int(d) for d in shape)


def _strip_aux(model):
    try:
        from keras_convnets.models.aux import strip_aux
    except ImportError:  # the aux heads are optional; a model without them is already the inference model
        if len(model.outputs) != 1:
            raise
        return model
    return strip_aux(model)


def _head(tensor) -> tuple[str, Any, Any]:
    """What an output tensor is: `("softmax_dense", dense_layer, features)`, `("softmax", layer, logits)`,
    `("linear", layer, None)` (the output is logits) or `("other", layer, None)`."""
    import keras

    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return "other", None, None
    layer = history.operation
    node = layer._inbound_nodes[history.node_index]
    inputs = node.input_tensors
    activation = getattr(layer, "activation", None)
    softmax = keras.activations.softmax
    if isinstance(layer, keras.layers.Dense) and len(inputs) == 1:
        if activation is softmax:
            return "softmax_dense", layer, inputs[0]
        if activation is keras.activations.linear:
            return "linear", layer, None
    if len(inputs) == 1 and (
        (isinstance(layer, keras.layers.Activation) and activation is softmax)
        or (isinstance(layer, keras.layers.Softmax) and layer.axis in (-1, len(tensor.shape) - 1))
    ):
        return "softmax", layer, inputs[0]
    return "other", layer, None


class InferenceGraph:
    """The inference model (aux heads stripped), its preprocessing and its output names.

    `graph(images)` maps raw-pixel images to `{"probabilities", "logits"}` (tf tensors), the function the
    SavedModel and TFLite signatures serve; `reference(images)` is the Keras model's own answer (numpy).
    With `strip_aux=False` auxiliary heads are served too, as `aux1_probabilities`, `aux1_logits`, ...
    """

    def __init__(
        self,
        model,
        *,
        strip_aux: bool = True,
        include_preprocessing: bool = True,
        preprocessing: Preprocessing | None = None,
    ):
        import keras

        if not isinstance(model, keras.Model):
            raise TypeError(f"`model` must be a keras.Model. Received: model={model!r}")
        if not isinstance(strip_aux, bool):
            raise TypeError(f"`strip_aux` must be True or False. Received: strip_aux={strip_aux!r}")
        if preprocessing is not None and not isinstance(preprocessing, Preprocessing):
            raise TypeError(
                "`preprocessing` must be None or a keras_convnets.data.preprocessing.Preprocessing. "
                f"Received: preprocessing={preprocessing!r}"
            )
        self.input_shape = check_input_size(model)
        self.source = model
        self.model = _strip_aux(model) if strip_aux else model
        outputs = self.model.output
        if isinstance(outputs, dict):
            named = sorted(outputs.items(), key=lambda kv: (kv[0] != "predictions", kv[0]))
            named = [("" if key == "predictions" else f"{key}_", tensor) for key, tensor in named]
        elif isinstance(outputs, (list, tuple)):
            if len(outputs) != 1:
                raise ValueError(
                    f"`model` must have one output, or a dict of outputs with a 'predictions' entry, to be "
                    f"exported. Received: model {model.name!r} with {len(outputs)} outputs"
                )
            named = [("", outputs[0])]
        else:
            named = [("", outputs)]
        self.preprocessing = (preprocessing or Preprocessing.none()) if include_preprocessing else None
        self.heads = []  # (prefix, kind, layer, index of output, index of pre-activation or None)
        tensors = []
        for prefix, tensor in named:
            kind, layer, pre = _head(tensor)
            tensors.append(tensor)
            pre_index = None
            if pre is not None:
                tensors.append(pre)
                pre_index = len(tensors) - 1
            self.heads.append((prefix, kind, layer, len(tensors) - 1 - (pre is not None), pre_index))
        self.classes = int(named[0][1].shape[-1])
        self.has_logits = self.heads[0][1] != "other"
        self._graph_model = keras.Model(self.model.inputs, tensors, name=f"{self.model.name}_serving")

    @property
    def output_names(self) -> list[str]:
        names = []
        for prefix, kind, *_ in self.heads:
            names.append(f"{prefix}probabilities")
            if kind != "other":
                names.append(f"{prefix}logits")
        return sorted(names)

    def _inputs(self, images):
        import tensorflow as tf

        images = tf.cast(images, tf.float32)
        return self.preprocessing(images) if self.preprocessing is not None else images

    def graph(self, images) -> dict:
        import tensorflow as tf

        values = self._graph_model(self._inputs(images), training=False)
        values = [tf.cast(v, tf.float32) for v in (values if isinstance(values, (list, tuple)) else [values])]
        result = {}
        for prefix, kind, layer, out_index, pre_index in self.heads:
            output = values[out_index]
            if kind == "softmax_dense":
                kernel = tf.cast(layer.kernel, tf.float32)
                logits = tf.matmul(values[pre_index], kernel)
                if layer.use_bias:
                    logits = logits + tf.cast(layer.bias, tf.float32)
                result[f"{prefix}logits"] = logits
                result[f"{prefix}probabilities"] = output
            elif kind == "softmax":
                result[f"{prefix}logits"] = values[pre_index]
                result[f"{prefix}probabilities"] = output
            elif kind == "linear":
                result[f"{prefix}logits"] = output
                result[f"{prefix}probabilities"] = tf.nn.softmax(output, axis=-1)
            else:
                result[f"{prefix}probabilities"] = output
        return result

    def reference(self, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """The Keras model's probabilities for raw-pixel `images` (the main head), in numpy."""
        import keras

        chunks = []
        for start in range(0, len(images), batch_size):
            x = self._inputs(images[start : start + batch_size])
            out = self.model(x, training=False)
            if isinstance(out, dict):
                out = out["predictions"]
            elif isinstance(out, (list, tuple)):
                out = out[0]
            chunks.append(keras.ops.convert_to_numpy(out).astype("float64"))
        probabilities = np.concatenate(chunks) if chunks else np.zeros((0, self.classes))
        if self.heads[0][1] == "linear":
            shifted = probabilities - probabilities.max(-1, keepdims=True)
            probabilities = np.exp(shifted) / np.exp(shifted).sum(-1, keepdims=True)
        return probabilities

    def keras_model(self):
        """The inference model with the preprocessing as a first layer: raw pixels in, as the signatures."""
        import keras

        # A new functional model over the same layers: uncompiled, so no optimizer state is saved with it.
        outputs = self.model.outputs[0] if len(self.model.outputs) == 1 else self.model.output
        model = keras.Model(self.model.inputs, outputs, name=self.model.name)
        if self.preprocessing is None:
            return model
        inputs = keras.Input(shape=self.input_shape, name=INPUT_NAME)
        outputs = model(self.preprocessing.layer()(inputs))
        return keras.Model(inputs, outputs, name=self.model.name)
