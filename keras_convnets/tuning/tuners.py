"""The stock keras-tuner tuners by name, set up for searches whose budget rejects trials."""

from __future__ import annotations

from typing import Any

import keras_tuner

from keras_convnets.tuning.base import OBJECTIVE
from keras_convnets.utils.validation import check_choice, check_int

__all__ = ["TUNERS", "make_tuner"]

TUNERS = ("random", "bayesian", "hyperband")


def make_tuner(
    tuner: str,
    hypermodel: keras_tuner.HyperModel,
    *,
    directory: str,
    project_name: str = "search",
    objective: Any = OBJECTIVE,
    max_trials: int = 10,
    max_epochs: int = 1,
    overwrite: bool = False,
    hyperparameters: keras_tuner.HyperParameters | None = None,
    tune_new_entries: bool = True,
    distribution_strategy: Any = None,
    seed: int | None = 0,
    max_consecutive_failed_trials: int | None = None,
    executions_per_trial: int = 1,
) -> keras_tuner.Tuner:
    """A stock keras-tuner tuner by name: "random" (`RandomSearch`), "bayesian" (`BayesianOptimization`) or
    "hyperband" (`Hyperband` with `max_epochs`, capped at `max_trials` trials). Budget rejections count as
    failed trials, so `max_consecutive_failed_trials` defaults to more than `max_trials`."""
    check_choice("tuner", tuner, TUNERS)
    check_int("max_trials", max_trials, minimum=1)
    check_int("max_epochs", max_epochs, minimum=1)
    options = dict(
        hypermodel=hypermodel,
        objective=objective,
        hyperparameters=hyperparameters,
        tune_new_entries=tune_new_entries,
        directory=directory,
        project_name=project_name,
        overwrite=overwrite,
        distribution_strategy=distribution_strategy,
        seed=seed,
        executions_per_trial=executions_per_trial,
        max_consecutive_failed_trials=max_consecutive_failed_trials or max_trials + 1,
    )
    if tuner == "random":
        return keras_tuner.RandomSearch(max_trials=max_trials, **options)
    if tuner == "bayesian":
        return keras_tuner.BayesianOptimization(max_trials=max_trials, **options)
    made = keras_tuner.Hyperband(max_epochs=max_epochs, factor=3, hyperband_iterations=1, **options)
    made.oracle.max_trials = max_trials
    return made
