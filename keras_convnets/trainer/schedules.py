"""Learning-rate schedules of the papers, as serializable `keras.optimizers.schedules` objects.

The schedules count optimizer iterations (`optimizer.iterations`, 0 for the first update):

- `StepDecay`: multiply by `factor` at each boundary, with an optional constant warm-up first
  (He et al. 2016, Section 4.2: 0.1, divided by 10 at 32k and 48k iterations; ResNet-110 starts at 0.01
  for about 400 iterations).
- `ExponentialStaircase`: multiply by `rate` every `decay_steps` iterations (Inception v3: 0.94 every 2 epochs).
- `PolynomialDecay`: Caffe's "poly" policy, `initial_learning_rate * (1 - step / decay_steps) ** power`, 0 from
  `decay_steps` on (BVLC GoogLeNet quick_solver: power 0.5 over the whole run).

- `WarmupCosineDecay`: a linear warm-up from `warmup_learning_rate` to `initial_learning_rate` over
  `warmup_steps` iterations, then half a cosine down to 0 at `decay_steps` (Goyal et al. 2017 for the warm-up,
  Loshchilov and Hutter 2017 for the cosine; the `cifar_fast` recipe, not a paper's).

`linear_scaling` scales a recipe's learning rate with the global batch (Goyal et al. 2017).
"""

from __future__ import annotations

import math
from typing import Sequence

import keras
from keras import ops

from keras_convnets.utils.validation import check_int, check_number

__all__ = ["ExponentialStaircase", "PolynomialDecay", "StepDecay", "WarmupCosineDecay", "linear_scaling"]


def _check_positive(argument: str, value) -> float:
    return check_number(argument, value, minimum=0, exclusive_minimum=True)


def _check_steps(argument: str, value, *, minimum: int = 0) -> int:
    check_int(argument, value, minimum=minimum)
    return value


@keras.saving.register_keras_serializable(package="keras_convnets")
class StepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """`initial_learning_rate * factor**k` after the k-th boundary (an iteration index).

    At iteration `boundaries[0]` the rate is already divided: with boundaries (32000, 48000) the rate is
    0.1 up to iteration 31999, 0.01 from 32000 and 0.001 from 48000. With `warmup_steps > 0` the rate is
    `warmup_learning_rate` for iterations `0 .. warmup_steps - 1`.
    """

    def __init__(
        self,
        initial_learning_rate: float,
        boundaries: Sequence[int],
        factor: float = 0.1,
        warmup_steps: int = 0,
        warmup_learning_rate: float | None = None,
        name: str = "StepDecay",
    ):
        self.initial_learning_rate = _check_positive("initial_learning_rate", initial_learning_rate)
        self.factor = _check_positive("factor", factor)
        boundaries = [int(_check_steps("boundaries", b, minimum=1)) for b in boundaries]
        if boundaries != sorted(set(boundaries)):
            raise ValueError(f"`boundaries` must be strictly increasing. Received: boundaries={boundaries}")
        self.boundaries = boundaries
        self.warmup_steps = _check_steps("warmup_steps", warmup_steps)
        if warmup_learning_rate is not None:
            warmup_learning_rate = _check_positive("warmup_learning_rate", warmup_learning_rate)
        elif self.warmup_steps:
            raise ValueError(
                "`warmup_learning_rate` is required when `warmup_steps` > 0. Received: warmup_learning_rate=None"
            )
        self.warmup_learning_rate = warmup_learning_rate
        self.name = name

    def __call__(self, step):
        step = ops.cast(step, "float32")
        passed = ops.zeros((), "float32")
        for boundary in self.boundaries:
            passed = passed + ops.cast(ops.greater_equal(step, float(boundary)), "float32")
        rate = self.initial_learning_rate * ops.power(self.factor, passed)
        if self.warmup_steps:
            rate = ops.where(ops.less(step, float(self.warmup_steps)), self.warmup_learning_rate, rate)
        return ops.cast(rate, "float32")

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "boundaries": list(self.boundaries),
            "factor": self.factor,
            "warmup_steps": self.warmup_steps,
            "warmup_learning_rate": self.warmup_learning_rate,
            "name": self.name,
        }


@keras.saving.register_keras_serializable(package="keras_convnets")
class ExponentialStaircase(keras.optimizers.schedules.LearningRateSchedule):
    """`initial_learning_rate * rate**floor(step / decay_steps)`."""

    def __init__(self, initial_learning_rate: float, decay_steps: int, rate: float, name: str = "ExponentialStaircase"):
        self.initial_learning_rate = _check_positive("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _check_steps("decay_steps", decay_steps, minimum=1)
        self.rate = _check_positive("rate", rate)
        self.name = name

    def __call__(self, step):
        periods = ops.floor(ops.cast(step, "float32") / float(self.decay_steps))
        return ops.cast(self.initial_learning_rate * ops.power(self.rate, periods), "float32")

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "rate": self.rate,
            "name": self.name,
        }


@keras.saving.register_keras_serializable(package="keras_convnets")
class PolynomialDecay(keras.optimizers.schedules.LearningRateSchedule):
    """`initial_learning_rate * (1 - step / decay_steps) ** power` for `step < decay_steps`, then 0 (Caffe's
    `lr_policy: "poly"` with `max_iter = decay_steps`)."""

    def __init__(
        self, initial_learning_rate: float, decay_steps: int, power: float = 0.5, name: str = "PolynomialDecay"
    ):
        self.initial_learning_rate = _check_positive("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _check_steps("decay_steps", decay_steps, minimum=1)
        self.power = _check_positive("power", power)
        self.name = name

    def __call__(self, step):
        # (T - t) / T rather than 1 - t / T: exact in float32 near the end of the run
        remaining = ops.maximum(float(self.decay_steps) - ops.cast(step, "float32"), 0.0) / float(self.decay_steps)
        return ops.cast(self.initial_learning_rate * ops.power(remaining, self.power), "float32")

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "power": self.power,
            "name": self.name,
        }


@keras.saving.register_keras_serializable(package="keras_convnets")
class WarmupCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """For `step < warmup_steps`: `warmup_learning_rate + (initial_learning_rate - warmup_learning_rate) * step /
    warmup_steps`; then `initial_learning_rate * (1 + cos(pi * (step - warmup_steps) / (decay_steps -
    warmup_steps))) / 2`, and 0 from `decay_steps` on."""

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        warmup_steps: int = 0,
        warmup_learning_rate: float = 0.0,
        name: str = "WarmupCosineDecay",
    ):
        self.initial_learning_rate = _check_positive("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _check_steps("decay_steps", decay_steps, minimum=1)
        self.warmup_steps = _check_steps("warmup_steps", warmup_steps)
        if self.warmup_steps >= self.decay_steps:
            raise ValueError(
                f"`warmup_steps` must be smaller than `decay_steps` ({self.decay_steps}). "
                f"Received: warmup_steps={warmup_steps}"
            )
        self.warmup_learning_rate = check_number("warmup_learning_rate", warmup_learning_rate, minimum=0)
        self.name = name

    def __call__(self, step):
        step = ops.cast(step, "float32")
        peak = float(self.initial_learning_rate)
        span = float(self.decay_steps - self.warmup_steps)
        progress = ops.clip((step - float(self.warmup_steps)) / span, 0.0, 1.0)
        rate = 0.5 * peak * (1.0 + ops.cos(math.pi * progress))
        if self.warmup_steps:
            ramp = self.warmup_learning_rate + (peak - self.warmup_learning_rate) * step / float(self.warmup_steps)
            rate = ops.where(ops.less(step, float(self.warmup_steps)), ramp, rate)
        return ops.cast(rate, "float32")

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "warmup_steps": self.warmup_steps,
            "warmup_learning_rate": self.warmup_learning_rate,
            "name": self.name,
        }


def linear_scaling(learning_rate: float, batch_size: int, base_batch_size: int) -> float:
    """The learning rate for a global batch of `batch_size` when `learning_rate` goes with `base_batch_size`."""
    _check_positive("learning_rate", learning_rate)
    _check_steps("batch_size", batch_size, minimum=1)
    _check_steps("base_batch_size", base_batch_size, minimum=1)
    return learning_rate * batch_size / base_batch_size
