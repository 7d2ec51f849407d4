"""Losses of the recipes that Keras lacks: sparse categorical cross-entropy with label smoothing."""

from __future__ import annotations

import keras
from keras import ops

from keras_convnets.utils.validation import check_fraction

__all__ = ["SparseCategoricalCrossentropy"]


@keras.saving.register_keras_serializable(package="keras_convnets")
class SparseCategoricalCrossentropy(keras.losses.Loss):
    """Cross-entropy on integer labels with label smoothing (Szegedy et al. 2015, Section 7): the target puts
    `1 - label_smoothing` on the label and spreads `label_smoothing` evenly over all classes.

    Keras's own `SparseCategoricalCrossentropy` has no `label_smoothing`; with `label_smoothing=0` this one gives
    the same values.
    """

    def __init__(
        self,
        label_smoothing: float = 0.0,
        from_logits: bool = False,
        reduction: str = "sum_over_batch_size",
        name: str = "sparse_categorical_crossentropy",
        dtype=None,
    ):
        check_fraction("label_smoothing", label_smoothing)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.label_smoothing = float(label_smoothing)
        self.from_logits = from_logits

    def call(self, y_true, y_pred):
        classes = ops.shape(y_pred)[-1]
        labels = ops.cast(ops.reshape(y_true, ops.shape(y_pred)[:-1]), "int32")
        one_hot = ops.one_hot(labels, classes, dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(
            one_hot, y_pred, from_logits=self.from_logits, label_smoothing=self.label_smoothing
        )

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(label_smoothing=self.label_smoothing, from_logits=self.from_logits)
        return config
