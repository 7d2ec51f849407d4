"""What a configuration costs, and the error that rejects a trial over budget before it trains.

With `max_macs=` / `max_params=` (trainable parameters of the inference model, auxiliary heads excluded) a
HyperModel measures every trial's model before it trains, records `macs` and `params` in the trial's metrics, and
rejects a model over budget with `BudgetExceededError` (a keras-tuner `FailedTrialError`): the trial is marked
FAILED with no epoch spent, and the tuner moves on. As with keras-tuner's own `max_model_size`, rejected trials
count toward `max_trials`, and so toward `max_consecutive_failed_trials` (`search` raises that limit above
`max_trials`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import keras
import keras_tuner

from keras_convnets.analysis.profiler import profile
from keras_convnets.models.aux import strip_aux
from keras_convnets.utils.validation import check_number

__all__ = ["COST_METRICS", "BudgetExceededError", "Cost", "model_cost"]

COST_METRICS = ("macs", "params")


class BudgetExceededError(keras_tuner.errors.FailedTrialError):
    """A trial's model is over the MACs or parameter budget; keras-tuner marks the trial FAILED, untrained."""

    def __init__(self, message: str, *, macs: int, params: int):
        super().__init__(message)
        self.macs = macs
        self.params = params


@dataclass(frozen=True)
class Cost:
    """What a configuration costs: multiply-accumulates per image and trainable parameters of the inference
    model (auxiliary heads stripped)."""

    macs: int
    params: int


def model_cost(model: keras.Model) -> Cost:
    report = profile(strip_aux(model))
    return Cost(macs=int(report.macs), params=int(report.trainable_params))


def check_budget_value(argument: str, value: Any) -> float | None:
    """A budget: None (no limit) or a positive number, returned as a float."""
    if value is None:
        return None
    return check_number(
        argument, value, minimum=0, exclusive_minimum=True, requirement="must be a positive number or None"
    )


def describe(values: Mapping[str, Any]) -> str:
    """`conv2_width=16, conv3_width=32`: a configuration's searched values (keras-tuner's own `tuner/` left out)."""
    return ", ".join(f"{k}={v}" for k, v in values.items() if not k.startswith("tuner/"))
