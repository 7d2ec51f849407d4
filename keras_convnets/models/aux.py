"""Training with auxiliary classifiers: one loss, one label, every head trained.

GoogLeNet and Inception v3 built with `aux_logits=True` are `AuxClassifierModel`s: functional models
whose outputs are a dict, `{"predictions": main, "aux1": ..., "aux2": ...}`. Plain Keras refuses to
train such a model with one loss on `(images, labels)`; this class fills the gap:

- `compile(loss="sparse_categorical_crossentropy")` gives every output that loss, weighted 1 for
  `predictions` and `aux_loss_weight` for each `aux*` head (total = main + w * (aux1 + aux2), the
  GoogLeNet paper's 0.3). A dict of losses or of `loss_weights` is used as given.
- `fit`/`evaluate` with single labels send the same labels to every head; dict labels are used as given.
- Metrics given as a list (`metrics=["accuracy"]`) are computed on the main head only and reported
  under their plain names (`accuracy`, `val_accuracy`); a dict of metrics is used as given.
- `predict` returns a dict of arrays, one per output: `model.predict(x)["predictions"]` is the main
  head. `strip_aux(model)` gives the inference model (main output only, the same layers and weights).

The model saves to `.keras` and loads with `safe_mode=True` (the class is registered serializable,
`aux_loss_weight` travels in its config) and comes back compiled as it was saved.
"""

from __future__ import annotations

from typing import Any

import keras

from keras_convnets.utils.validation import check_number

__all__ = [
    "AUX_PREFIX",
    "MAIN_OUTPUT",
    "AuxClassifierModel",
    "check_aux_loss_weight",
    "strip_aux",
]

MAIN_OUTPUT = "predictions"
AUX_PREFIX = "aux"


def check_aux_loss_weight(value: Any) -> float:
    return check_number("aux_loss_weight", value, minimum=0, requirement="must be a non-negative number")


@keras.saving.register_keras_serializable(package="keras_convnets")
class AuxClassifierModel(keras.Model):
    """A functional model with a main head (`"predictions"`) and auxiliary heads (`"aux1"`, ...).

    Build it like a functional model: `AuxClassifierModel(inputs, {"predictions": p, "aux1": a},
    aux_loss_weight=0.3)`. See the module docstring for how `compile`, `fit` and `predict` behave.
    """

    def __init__(self, inputs, outputs, name=None, *, aux_loss_weight: float = 0.3, **kwargs):
        aux_loss_weight = check_aux_loss_weight(aux_loss_weight)
        if not isinstance(outputs, dict) or MAIN_OUTPUT not in outputs:
            raise ValueError(
                f"`outputs` of an AuxClassifierModel must be a dict with a {MAIN_OUTPUT!r} entry. "
                f"Received: outputs={outputs!r}"
            )
        others = [key for key in outputs if key != MAIN_OUTPUT and not key.startswith(AUX_PREFIX)]
        if others:
            raise ValueError(
                f"`outputs` of an AuxClassifierModel are {MAIN_OUTPUT!r} and auxiliary heads named "
                f"'{AUX_PREFIX}...'. Received: outputs with keys {sorted(outputs)}"
            )
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        self.aux_loss_weight = aux_loss_weight
        self._main_head_metrics = False

    @property
    def head_names(self) -> list[str]:
        """The main output first, then the auxiliary outputs in order."""
        return [MAIN_OUTPUT] + sorted(key for key in self._outputs_struct if key != MAIN_OUTPUT)

    def default_loss_weights(self) -> dict[str, float]:
        return {key: (1.0 if key == MAIN_OUTPUT else self.aux_loss_weight) for key in self.head_names}

    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None, weighted_metrics=None, **kwargs):
        """`keras.Model.compile`, with one loss spread over every head (see the module docstring)."""
        if loss is not None and not isinstance(loss, (dict, list, tuple)):
            loss = {key: loss for key in self.head_names}
            if loss_weights is None:
                loss_weights = self.default_loss_weights()
        self._main_head_metrics = not isinstance(metrics, dict) and not isinstance(weighted_metrics, dict)
        super().compile(
            optimizer=optimizer,
            loss=loss,
            loss_weights=loss_weights,
            metrics=metrics,
            weighted_metrics=weighted_metrics,
            **kwargs,
        )

    def _broadcast(self, value, y_pred):
        if value is None or isinstance(value, dict) or not isinstance(y_pred, dict):
            return value
        return {key: value for key in y_pred}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return super().compute_loss(
            x,
            self._broadcast(y, y_pred),
            y_pred,
            self._broadcast(sample_weight, y_pred),
            training=training,
        )

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if self._main_head_metrics and isinstance(y_pred, dict):
            y = y[MAIN_OUTPUT] if isinstance(y, dict) else y
            if isinstance(sample_weight, dict):
                sample_weight = sample_weight.get(MAIN_OUTPUT)
            y_pred = y_pred[MAIN_OUTPUT]
        return super().compute_metrics(x, y, y_pred, sample_weight)

    def compile_from_config(self, config):
        # Keras skips compiling on load when `compile` is overridden; ours accepts its own saved config.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    def get_config(self):
        config = super().get_config()
        config["aux_loss_weight"] = self.aux_loss_weight
        return config


def strip_aux(model: keras.Model) -> keras.Model:
    """The inference model of an aux model: its main output (`"predictions"`) only.

    The returned model shares the layers (and so the weights) of `model`; nothing is copied, so
    training one trains the other. A model without auxiliary outputs is returned as it is.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model. Received: model={model!r}")
    outputs = getattr(model, "_outputs_struct", None)
    if not isinstance(outputs, dict) or MAIN_OUTPUT not in outputs:
        return model
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, outputs[MAIN_OUTPUT], name=model.name)
