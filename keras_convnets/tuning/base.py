"""`BottleneckHyperModel`: what the ResNet and Inception HyperModels share: the paper's training recipe, the
budget, and the trial's cost measured before it trains.

- Each trial compiles with the recipe of the paper (`keras_convnets.trainer.recipes`): its optimizer, learning-rate
  schedule, weight decay, label smoothing and auxiliary loss weight.
- The objective is `val_accuracy`: for GoogLeNet with its auxiliary heads, `AuxClassifierModel` reports the main
  head's accuracy under that name, so the aux heads train but never score.
- `check_budget` says before any search whether anything in the space fits (the narrowest configuration).
"""

from __future__ import annotations

import itertools
import json
from typing import Any, Mapping, Sequence

import keras
import keras_tuner

from keras_convnets.models import common
from keras_convnets.trainer import recipes
from keras_convnets.tuning.budget import BudgetExceededError, Cost, check_budget_value, describe, model_cost
from keras_convnets.utils.validation import check_int

__all__ = ["OBJECTIVE", "BottleneckHyperModel"]

OBJECTIVE = "val_accuracy"


class BottleneckHyperModel(keras_tuner.HyperModel):
    """What the ResNet and Inception HyperModels share: the training recipe, the budget and the trial's cost.

    Subclasses define `declare(hp) -> dict` (register the hyperparameters, return the builder's arguments) and
    `build_model(arguments) -> keras.Model`.

    Args:
        input_shape, classes: of the networks built.
        recipe: a `keras_convnets.trainer.recipes` name or `Recipe` (default: the paper's).
        batch_size, epochs, steps_per_epoch: the training each trial gets, for the recipe's learning-rate
            schedule (scaled linearly to `batch_size`); without them the recipe's initial rate stays constant.
            `search` fills them in.
        max_macs, max_params: the budget (None: no limit).
        jit_compile: "auto" (XLA on GPUs only), True or False.
        model_options: more arguments for the builder (`norm=`, `variant=`, `zero_init_residual=`, ...).
    """

    def __init__(
        self,
        *,
        input_shape: Sequence[int],
        classes: int,
        recipe: str | recipes.Recipe,
        batch_size: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        max_macs: float | None = None,
        max_params: float | None = None,
        jit_compile: Any = "auto",
        model_options: Mapping[str, Any] | None = None,
        name: str | None = None,
        tunable: bool = True,
    ):
        super().__init__(name=name, tunable=tunable)
        check_int("classes", classes, minimum=1)
        shape = tuple(input_shape)
        requirement = "must be 3 positive integers (height, width, channels)"
        if len(shape) != 3:
            raise ValueError(f"`input_shape` {requirement}. Received: input_shape={input_shape!r}")
        for side in shape:
            check_int("input_shape", side, minimum=1, requirement=requirement, received=f"input_shape={input_shape!r}")
        for argument, value in (("batch_size", batch_size), ("epochs", epochs), ("steps_per_epoch", steps_per_epoch)):
            if value is not None:
                check_int(argument, value, minimum=1)
        self.input_shape = shape
        self.classes = classes
        self.recipe = recipes.get_recipe(recipe)
        self.batch_size = batch_size
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.max_macs = check_budget_value("max_macs", max_macs)
        self.max_params = check_budget_value("max_params", max_params)
        self.jit_compile = jit_compile
        self.model_options = dict(model_options or {})

    # ------------------------------------------------------------------------------------------- space

    @property
    def image_size(self) -> int:
        height, width = common.spatial_dims(self.input_shape)
        if height != width:
            raise ValueError(f"The data pipelines make square images; `input_shape` is not square: {self.input_shape}")
        return height

    def space(self, hyperparameters: keras_tuner.HyperParameters | None = None) -> keras_tuner.HyperParameters:
        """The search space: `hyperparameters` (the user's overrides) completed with this model's entries."""
        hp = keras_tuner.HyperParameters()
        if hyperparameters is not None:
            hp.merge(hyperparameters)
        self.declare(hp)
        return hp

    def default_arguments(self) -> dict:
        """The builder's arguments of the default configuration (the paper's net when the scales include 1)."""
        return self.declare(keras_tuner.HyperParameters())

    # ------------------------------------------------------------------------------------------- build

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        model = self.build_model(self.declare(hp))
        self.compile_model(model)
        return model

    def architecture(self, hp: keras_tuner.HyperParameters) -> dict | None:
        """`{"builder": registered name, "options": {...}}` such that `get_model(builder, **options)` rebuilds
        the network of `hp` but for its name (what an export's model card records; `get_model` takes no `name`),
        or None where no registered builder does or an option is not plain JSON."""
        described = self.describe(self.declare(hp))
        if described is None:
            return None
        builder, options = described
        try:
            options = json.loads(json.dumps(options))  # tuples become lists, as in the card
        except (TypeError, ValueError):
            return None
        return {"builder": builder, "options": options}

    def describe(self, arguments: Mapping[str, Any]) -> tuple[str, dict] | None:
        """The registered builder and its options for `build_model(arguments)`; None (the default): unknown."""
        return None

    def learning_rate(self):
        if self.batch_size and self.epochs and self.steps_per_epoch:
            return recipes.learning_rate_schedule(
                self.recipe, batch_size=self.batch_size, steps_per_epoch=self.steps_per_epoch, epochs=self.epochs
            )
        from keras_convnets.trainer import schedules

        return schedules.linear_scaling(
            self.recipe.learning_rate, self.batch_size or self.recipe.batch_size, self.recipe.batch_size
        )

    def compile_model(self, model: keras.Model) -> None:
        from keras_convnets.trainer import resolve_jit_compile

        loss = recipes.make_loss(self.recipe)
        recipes.prepare_model(model, self.recipe)  # the recipe's L2 term in the loss (Inception v3)
        model.compile(
            optimizer=recipes.make_optimizer(self.recipe, self.learning_rate()),
            loss=loss,
            metrics=["accuracy"],
            jit_compile=resolve_jit_compile(self.jit_compile),
        )

    # ------------------------------------------------------------------------------------------- budget

    def over_budget(self, cost: Cost) -> str | None:
        """Why `cost` is over budget, or None."""
        reasons = []
        if self.max_macs is not None and cost.macs > self.max_macs:
            reasons.append(f"{cost.macs:,} MACs > max_macs={self.max_macs:.4g}")
        if self.max_params is not None and cost.params > self.max_params:
            reasons.append(f"{cost.params:,} parameters > max_params={self.max_params:.4g}")
        return "; ".join(reasons) or None

    def cost(self, hp: keras_tuner.HyperParameters) -> Cost:
        """The cost of the configuration `hp` (built, measured, discarded)."""
        return model_cost(self.build_model(self.declare(hp)))

    def narrowest(
        self, hyperparameters: keras_tuner.HyperParameters | None = None, *, tune_new_entries: bool = True
    ) -> list[tuple[dict, Cost]]:
        """The cheapest configurations of the space: every numeric hyperparameter at its smallest value, one
        configuration per combination of the categorical ones (the shortcut option), with their costs."""
        hp = self.space(hyperparameters)
        given = {p.name for p in hyperparameters.space} if hyperparameters is not None else set()
        numeric, categorical = {}, {}
        types = keras_tuner.engine.hyperparameters
        for p in hp.space:
            if not (p.name in given or tune_new_entries):
                values = [hp.values[p.name]]
            elif isinstance(p, types.Fixed):
                values = [p.value]
            elif isinstance(p, types.Choice):
                values = list(p.values)
            elif isinstance(p, (types.Int, types.Float)):
                values = [p.min_value]
            elif isinstance(p, types.Boolean):
                values = [False, True]
            else:
                values = [p.default]
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                numeric[p.name] = min(values)
            else:
                categorical[p.name] = values
        results = []
        for combo in itertools.product(*categorical.values()):
            trial_hp = self.space(hyperparameters)
            trial_hp.values.update(numeric)
            trial_hp.values.update(dict(zip(categorical, combo)))
            results.append((dict(trial_hp.values), self.cost(trial_hp)))
        return results

    def check_budget(
        self, hyperparameters: keras_tuner.HyperParameters | None = None, *, tune_new_entries: bool = True
    ) -> Cost | None:
        """Raise `ValueError` when no configuration of the space fits the budget; else return the cost of the
        narrowest configuration that fits (None without a budget: nothing is built)."""
        if self.max_macs is None and self.max_params is None:
            return None
        candidates = self.narrowest(hyperparameters, tune_new_entries=tune_new_entries)
        fitting = [cost for _, cost in candidates if self.over_budget(cost) is None]
        if fitting:
            return min(fitting, key=lambda c: (c.macs, c.params))
        values, cost = min(candidates, key=lambda item: (item[1].macs, item[1].params))
        raise ValueError(
            f"No configuration of the search space fits the budget: the narrowest one ({describe(values)}) has "
            f"{cost.macs:,} MACs and {cost.params:,} parameters ({self.over_budget(cost)}). Raise the budget or "
            f"allow narrower widths. Received: max_macs={self.max_macs!r}, max_params={self.max_params!r}"
        )

    # ------------------------------------------------------------------------------------------- fit

    def fit(self, hp: keras_tuner.HyperParameters, model: keras.Model, *args, callbacks=None, **kwargs):
        """Measure `model`, record `macs` and `params` in the trial, refuse it when over budget (before any
        epoch), else train it with `model.fit`."""
        callbacks = list(callbacks or [])
        cost = model_cost(model)
        trial = next((c.trial for c in callbacks if hasattr(c, "trial") and hasattr(c, "tuner")), None)
        if trial is not None:
            for metric, value in (("macs", cost.macs), ("params", cost.params)):
                if not trial.metrics.exists(metric):
                    trial.metrics.register(metric, direction="min")
                trial.metrics.update(metric, float(value))
        reason = self.over_budget(cost)
        if reason:
            raise BudgetExceededError(f"Over budget, not trained: {reason}.", macs=cost.macs, params=cost.params)
        if self.recipe.schedule == "plateau" and kwargs.get("validation_data") is not None:
            callbacks.append(
                keras.callbacks.ReduceLROnPlateau(
                    monitor="val_accuracy",
                    mode="max",
                    factor=self.recipe.decay_factor,
                    patience=self.recipe.plateau_patience,
                )
            )
        return model.fit(*args, callbacks=callbacks, **kwargs)
