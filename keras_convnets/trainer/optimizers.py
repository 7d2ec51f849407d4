"""Optimizers with the papers' weight decay, and the L2 penalty of TF-slim.

Keras 3's `weight_decay` is decoupled: `w -= lr * wd * w`, outside the momentum buffer. The papers' frameworks
(Caffe for ResNet, VGG and GoogLeNet; Torch for fb.resnet.torch) add `wd * w` to the gradient before momentum
("coupled" L2 decay), which momentum 0.9 amplifies about tenfold: 1,000 steps of pure decay at lr 0.1, wd 1e-4
shrink a weight by 0.0944 coupled and by 0.0099 decoupled.

`SGD` and `RMSprop` here are Keras's, with `weight_decay` applied in one of two forms (`weight_decay_mode`):

- "coupled" (default): the gradient of a decayed variable becomes `g + wd * w` before the optimizer's own update.
  For SGD with momentum that is Caffe's update `v = m * v - lr * (g + wd * w); w += v` (Keras's momentum form;
  at a constant learning rate it equals Torch's `v = m * v + (g + wd * w); w -= lr * v`).
- "decoupled": Keras's form, `w -= lr * wd * w` before the update (Loshchilov and Hutter 2019).
- "loss": the optimizer does not decay; the penalty `wd * sum(w**2) / 2` is in the loss (TF-slim's
  `l2_regularizer`, see `L2Decay`), so gradient clipping sees it. Set it with
  `keras_convnets.trainer.recipes.prepare_model(model, recipe)`.

Which variables are decayed (`decay_variables`):

- "kernels" (default): the kernels of convolutions and dense layers (variables named `kernel`, `depthwise_kernel`,
  `pointwise_kernel`). Biases and batch-norm gamma/beta are not decayed. This is the BVLC Caffe prototxts'
  choice (`decay_mult: 1` on weights, `decay_mult: 0` on biases) and the issue's "conv and dense kernels".
- "all": every trainable variable, biases and batch-norm gamma/beta included, as fb.resnet.torch does (it passes
  all parameters to `optim.sgd` with `weightDecay`).

The decay is applied per variable in `update_step`, after the gradients are all-reduced, so under
`tf.distribute` it is neither multiplied nor divided by the number of replicas; under
`keras.optimizers.LossScaleOptimizer` it is applied to the unscaled gradient.
"""

from __future__ import annotations

import warnings

import keras
from keras import ops

from keras_convnets.utils.validation import check_choice, check_number

__all__ = ["DECAY_MODES", "DECAY_VARIABLES", "L2Decay", "RMSprop", "SGD", "is_decayed"]

DECAY_MODES = ("coupled", "decoupled", "loss")
DECAY_VARIABLES = ("kernels", "all")
_KERNEL_NAMES = ("kernel", "depthwise_kernel", "pointwise_kernel")


def is_decayed(variable, decay_variables: str = "kernels") -> bool:
    """Whether `variable` (a trainable Keras variable) is decayed under `decay_variables`."""
    check_choice("decay_variables", decay_variables, DECAY_VARIABLES)
    if decay_variables == "all":
        return True
    return variable.name.split("/")[-1].split(":")[0] in _KERNEL_NAMES


class _CoupledDecay:
    """Mixin: `weight_decay` as coupled L2 decay, decoupled decay, or left to the loss (see the module)."""

    def _init_decay(self, weight_decay_mode: str, decay_variables: str) -> None:
        check_choice("weight_decay_mode", weight_decay_mode, DECAY_MODES)
        check_choice("decay_variables", decay_variables, DECAY_VARIABLES)
        if self.weight_decay is not None:
            check_number("weight_decay", self.weight_decay, minimum=0)
        self.weight_decay_mode = weight_decay_mode
        self.decay_variables = decay_variables
        self._coupled_fallback = False

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._decayed = [
            bool(self.weight_decay) and is_decayed(v, self.decay_variables) and self._use_weight_decay(v)
            for v in variables
        ]
        self._coupled_fallback = False
        if self.weight_decay_mode == "loss" and any(self._decayed):
            if not any(getattr(v, "regularizer", None) is not None for v, d in zip(variables, self._decayed) if d):
                # The model lacks the penalty: decay coupled (after clipping) rather than not at all.
                self._coupled_fallback = True
                warnings.warn(
                    f"`weight_decay_mode='loss'` with weight_decay={self.weight_decay}, but no decayed variable "
                    "carries a regularizer: the decay is applied coupled, after gradient clipping. Call "
                    "`keras_convnets.trainer.recipes.prepare_model(model, recipe)` before compiling.",
                    stacklevel=2,
                )

    def _apply_weight_decay(self, variables):
        """Keras's decoupled decay of every variable is replaced by the per-variable one of `update_step`."""
        return

    def update_step(self, gradient, variable, learning_rate):
        mode = "coupled" if self._coupled_fallback else self.weight_decay_mode
        if self.weight_decay and mode != "loss" and self._decayed[self._get_variable_index(variable)]:
            wd = ops.cast(self.weight_decay, variable.dtype)
            if mode == "coupled":
                gradient = ops.add(ops.cast(gradient, variable.dtype), ops.multiply(wd, variable))
            else:
                lr = ops.cast(learning_rate, variable.dtype)
                self.assign_sub(variable, ops.multiply(ops.multiply(lr, wd), variable))
        super().update_step(gradient, variable, learning_rate)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(weight_decay_mode=self.weight_decay_mode, decay_variables=self.decay_variables)
        return config


@keras.saving.register_keras_serializable(package="keras_convnets")
class SGD(_CoupledDecay, keras.optimizers.SGD):
    """`keras.optimizers.SGD` whose `weight_decay` is coupled L2 decay by default (Caffe's and Torch's).

    `SGD(learning_rate=0.1, momentum=0.9, weight_decay=1e-4)` updates a decayed variable as
    `v = 0.9 * v - lr * (g + 1e-4 * w); w += v`; `weight_decay_mode="decoupled"` gives Keras's form.
    """

    def __init__(self, *args, weight_decay_mode: str = "coupled", decay_variables: str = "kernels", **kwargs):
        super().__init__(*args, **kwargs)
        self._init_decay(weight_decay_mode, decay_variables)


@keras.saving.register_keras_serializable(package="keras_convnets")
class RMSprop(_CoupledDecay, keras.optimizers.RMSprop):
    """`keras.optimizers.RMSprop` with `weight_decay` in the modes of this module (coupled by default)."""

    def __init__(self, *args, weight_decay_mode: str = "coupled", decay_variables: str = "kernels", **kwargs):
        super().__init__(*args, **kwargs)
        self._init_decay(weight_decay_mode, decay_variables)


@keras.saving.register_keras_serializable(package="keras_convnets")
class L2Decay(keras.regularizers.Regularizer):
    """TF-slim's `l2_regularizer(weight_decay)`: `weight_decay * sum(w**2) / 2`, whose gradient is
    `weight_decay * w`.

    Under `tf.distribute` Keras itself divides each replica's regularization losses by the number of replicas
    before the replicas' gradients are summed (`scale_loss_for_distribution`), so the penalty is written unscaled
    here and decays once per step on any number of replicas (tested with 2 mirrored replicas).
    """

    def __init__(self, weight_decay: float):
        self.weight_decay = check_number("weight_decay", weight_decay, minimum=0)

    def __call__(self, x):
        return ops.multiply(ops.cast(self.weight_decay / 2, x.dtype), ops.sum(ops.square(x)))

    def get_config(self) -> dict:
        return {"weight_decay": self.weight_decay}
