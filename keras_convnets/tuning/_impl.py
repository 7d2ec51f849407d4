"""Searches over bottleneck widths with keras-tuner, within a budget of MACs and parameters.

The bottleneck is what the ResNet and GoogLeNet papers share: a cheap 1x1 reduction in front of the expensive
convolution. The HyperModels here search how narrow those reductions can be; the networks come from the
package's builders (`build_resnet(..., bottleneck_width=...)`, `GoogLeNet(table=...)`), never from a copy.

    hypermodel = ResNetHyperModel(50, input_shape=(224, 224, 3), classes=10, max_macs=2e9)
    tuner = keras_tuner.BayesianOptimization(hypermodel, objective="val_accuracy", max_trials=20,
                                             max_consecutive_failed_trials=21, directory="search")
    tuner.search(train_ds, validation_data=val_ds, epochs=5)

or, with the package's data pipelines, the recipe's preprocessing, a trial table, a Pareto plot and the
best model exported: `search(hypermodel, "digits", tuner="bayesian", max_trials=20, directory="search")`.

- Each searched width is one keras-tuner hyperparameter whose default is the paper's width, so the default
  configuration is the paper's net. Narrow or fix any of them with a `HyperParameters` passed to the tuner
  (`hp.Fixed("conv5_width", 256)`, `tune_new_entries=...`) or with the constructor's `widths=` / `scales=`.
- Budget: with `max_macs=` / `max_params=` (trainable parameters of the inference model, auxiliary heads
  excluded) the HyperModel measures every trial's model before it trains, records `macs` and `params` in the
  trial's metrics, and rejects a model over budget with `BudgetExceededError` (a keras-tuner
  `FailedTrialError`): the trial is marked FAILED with no epoch spent, and the tuner moves on. As with
  keras-tuner's own `max_model_size`, rejected trials count toward `max_trials`, and so toward
  `max_consecutive_failed_trials` (`search` raises that limit above `max_trials`).
- `check_budget` says before any search whether anything in the space fits (the narrowest configuration).
- The objective is `val_accuracy`: for GoogLeNet with its auxiliary heads, `AuxClassifierModel` reports the
  main head's accuracy under that name, so the aux heads train but never score.
- Each trial compiles with the recipe of the paper (`keras_convnets.trainer.recipes`): its optimizer, learning-rate
  schedule, weight decay, label smoothing and auxiliary loss weight.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import itertools
import json
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import keras
import keras_tuner

from keras_convnets.analysis.profiler import profile
from keras_convnets.models import common, resnet
from keras_convnets.models.aux import strip_aux
from keras_convnets.models.googlenet import INCEPTION_TABLE, GoogLeNet
from keras_convnets.trainer import recipes

OBJECTIVE = "val_accuracy"
TUNERS = ("random", "bayesian", "hyperband")
DEFAULT_SCALES = (0.25, 0.5, 0.75, 1.0)
INCEPTION_BRANCHES = {"3x3_reduce": "n3x3_reduce", "5x5_reduce": "n5x5_reduce", "pool_proj": "pool_proj"}
GRANULARITIES = ("stage", "module")
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


def _check_budget_value(argument: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"`{argument}` must be a positive number or None. Received: {argument}={value!r}")
    return float(value)


def _check_width(argument: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"`{argument}` widths must be positive integers. Received: {argument}={value!r}")
    if value < 1:
        raise ValueError(f"`{argument}` widths must be positive integers. Received: {argument}={value!r}")
    return value


def _check_scales(scales: Any) -> tuple[float, ...]:
    try:
        values = tuple(scales)
    except TypeError:
        values = ()
    if not values or any(isinstance(s, bool) or not isinstance(s, (int, float)) or not s > 0 for s in values):
        raise ValueError(f"`scales` must be a non-empty sequence of positive numbers. Received: scales={scales!r}")
    return tuple(sorted(set(float(s) for s in values)))


def _scaled(width: int, scale: float) -> int:
    return max(1, round(width * scale))


def _width_choice(hp: keras_tuner.HyperParameters, name: str, candidates: Sequence[int], paper: int) -> int:
    """One width hyperparameter: `hp.Fixed` for a single candidate, else `hp.Choice` defaulting to the paper's."""
    values = sorted(set(candidates))
    if len(values) == 1:
        return hp.Fixed(name, values[0])
    return hp.Choice(name, values, default=paper if paper in values else values[-1])


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
        common.check_int("classes", classes, minimum=1)
        shape = tuple(input_shape)
        if len(shape) != 3 or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
            raise ValueError(
                f"`input_shape` must be 3 positive integers (height, width, channels). Received: input_shape={input_shape!r}"
            )
        for argument, value in (("batch_size", batch_size), ("epochs", epochs), ("steps_per_epoch", steps_per_epoch)):
            if value is not None:
                common.check_int(argument, value, minimum=1)
        self.input_shape = shape
        self.classes = classes
        self.recipe = recipes.get_recipe(recipe)
        self.batch_size = batch_size
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.max_macs = _check_budget_value("max_macs", max_macs)
        self.max_params = _check_budget_value("max_params", max_params)
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
            f"No configuration of the search space fits the budget: the narrowest one ({_describe(values)}) has "
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


def _describe(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items() if not k.startswith("tuner/"))


class ResNetHyperModel(BottleneckHyperModel):
    """Searches the bottleneck (reduction) width of each stage of a bottleneck ResNet, and optionally the
    shortcut option. Hyperparameters: `conv2_width` ... `conv5_width` (the width of `conv{s}_block*_1_conv`
    and `_2_conv`; the paper's 64, 128, 256, 512 by default), `shortcut` (when `shortcuts` is given).

    Args:
        depth: 50, 101 or 152, or a bottleneck `resnet.ResNetSpec` (any depth and stem).
        widths: the candidate widths. None: the paper's width times each of `scales`; a sequence of integers:
            those candidates for every stage; a dict `{"conv2": 32, "conv3": [32, 64, 128], ...}`: per stage
            (an integer fixes it; stages left out keep the scaled candidates).
        scales: multipliers of the paper's widths for the default candidates (default 1/4, 1/2, 3/4, 1).
        shortcuts: None (not searched: `model_options["shortcut"]`, default "B") or options to search among
            ("A", "B", "C").
        Other arguments as in `BottleneckHyperModel` (recipe default: "imagenet", or "cifar" for a CIFAR stem).
    """

    def __init__(
        self,
        depth: int | resnet.ResNetSpec = 50,
        *,
        input_shape: Sequence[int] | None = None,
        classes: int | None = None,
        widths: Sequence[int] | Mapping[str, int | Sequence[int]] | None = None,
        scales: Sequence[float] = DEFAULT_SCALES,
        shortcuts: Sequence[str] | None = None,
        recipe: str | recipes.Recipe | None = None,
        **kwargs: Any,
    ):
        spec = depth if isinstance(depth, resnet.ResNetSpec) else resnet.imagenet_spec(depth)
        if spec.block != "bottleneck":
            raise ValueError(
                "`depth` must name a bottleneck ResNet (50, 101, 152, or a ResNetSpec with block='bottleneck'): "
                f"basic blocks have no reduction to search. Received: depth={depth!r}"
            )
        self.spec = spec
        self.depth = depth if isinstance(depth, int) else 2 + 3 * sum(spec.repeats)
        self.stages = tuple(f"conv{index + 2}" for index in range(len(spec.repeats)))
        self.scales = _check_scales(scales)
        self.candidates = self._resolve_widths(widths)
        if shortcuts is not None:
            shortcuts = tuple(shortcuts)
            if not shortcuts:
                raise ValueError(f"`shortcuts` must name at least one option. Received: shortcuts={shortcuts!r}")
            for option in shortcuts:
                common.check_choice("shortcuts", option, resnet.SHORTCUT_OPTIONS)
        self.shortcuts = shortcuts
        if input_shape is None:
            input_shape = (spec.default_size, spec.default_size, 3)
            if keras.config.image_data_format() == "channels_first":
                input_shape = (3, spec.default_size, spec.default_size)
        if recipe is None:
            recipe = "cifar" if spec.stem == "cifar" else "imagenet"
        kwargs.setdefault("name", f"resnet{self.depth}")
        super().__init__(
            input_shape=input_shape,
            classes=spec.default_classes if classes is None else classes,
            recipe=recipe,
            **kwargs,
        )

    def _resolve_widths(self, widths) -> dict[str, tuple[int, ...]]:
        default = {
            stage: tuple(sorted({_scaled(paper, s) for s in self.scales}))
            for stage, paper in zip(self.stages, self.spec.widths)
        }
        if widths is None:
            return default
        if isinstance(widths, Mapping):
            unknown = sorted(set(widths) - set(self.stages))
            if unknown:
                raise ValueError(
                    f"`widths` keys must be stages among {', '.join(self.stages)}. Received: widths={dict(widths)!r}"
                )
            resolved = dict(default)
            for stage, value in widths.items():
                values = (value,) if isinstance(value, int) and not isinstance(value, bool) else tuple(value)
                if not values:
                    raise ValueError(f"`widths` of {stage} must not be empty. Received: widths={dict(widths)!r}")
                resolved[stage] = tuple(sorted({_check_width("widths", v) for v in values}))
            return resolved
        if isinstance(widths, (int, str)) or not hasattr(widths, "__iter__"):
            raise TypeError(
                f"`widths` must be None, a sequence of candidate widths or a dict per stage. Received: widths={widths!r}"
            )
        values = tuple(sorted({_check_width("widths", v) for v in widths}))
        if not values:
            raise ValueError(f"`widths` must not be empty. Received: widths={widths!r}")
        return {stage: values for stage in self.stages}

    def declare(self, hp: keras_tuner.HyperParameters) -> dict:
        widths = tuple(
            _width_choice(hp, f"{stage}_width", self.candidates[stage], paper)
            for stage, paper in zip(self.stages, self.spec.widths)
        )
        if self.shortcuts is None:
            shortcut = self.model_options.get("shortcut", "B")
        elif len(self.shortcuts) == 1:
            shortcut = hp.Fixed("shortcut", self.shortcuts[0])
        else:
            shortcut = hp.Choice(
                "shortcut", list(self.shortcuts), default="B" if "B" in self.shortcuts else self.shortcuts[0]
            )
        return {"bottleneck_width": widths, "shortcut": shortcut}

    def build_model(self, arguments: Mapping[str, Any]) -> keras.Model:
        options = {**self.model_options, **arguments}
        return resnet.build_resnet(
            self.spec, input_shape=self.input_shape, classes=self.classes, name=self.name, **options
        )


class InceptionHyperModel(BottleneckHyperModel):
    """Searches the widths of GoogLeNet's 1x1 reductions in front of the 3x3 and 5x5 convolutions and of its
    pool projections, per stage (`inception3_3x3_reduce_scale`: one multiplier of the paper's widths for every
    module of stage 3) or per module (`inception4a_5x5_reduce`: the width itself). The auxiliary heads and
    their loss weight stay (the recipe's 0.3 unless `model_options` says otherwise).

    Args:
        granularity: "stage" (default) or "module".
        branches: which widths to search, among "3x3_reduce", "5x5_reduce", "pool_proj" (default all three).
        scales: the candidate multipliers of the paper's widths (default 1/4, 1/2, 3/4, 1; the default value is
            1, the paper's net, when it is among them).
        Other arguments as in `BottleneckHyperModel` (recipe default: "googlenet"); `model_options` go to
        `GoogLeNet` (`aux_logits`, `norm`, `variant`, `dropout`, ...).
    """

    def __init__(
        self,
        *,
        input_shape: Sequence[int] | None = None,
        classes: int = 1000,
        granularity: str = "stage",
        branches: Sequence[str] = tuple(INCEPTION_BRANCHES),
        scales: Sequence[float] = DEFAULT_SCALES,
        recipe: str | recipes.Recipe = "googlenet",
        **kwargs: Any,
    ):
        common.check_choice("granularity", granularity, GRANULARITIES)
        branches = tuple(branches) if not isinstance(branches, str) else (branches,)
        if not branches:
            raise ValueError(f"`branches` must name at least one branch. Received: branches={branches!r}")
        for branch in branches:
            common.check_choice("branches", branch, tuple(INCEPTION_BRANCHES))
        self.granularity = granularity
        self.branches = branches
        self.scales = _check_scales(scales)
        if input_shape is None:
            input_shape = (3, 224, 224) if keras.config.image_data_format() == "channels_first" else (224, 224, 3)
        kwargs.setdefault("name", "googlenet")
        super().__init__(input_shape=input_shape, classes=classes, recipe=recipe, **kwargs)

    def declare(self, hp: keras_tuner.HyperParameters) -> dict:
        default_scale = 1.0 if 1.0 in self.scales else self.scales[-1]
        rows = []
        stage_scales = {}
        for row in INCEPTION_TABLE:
            changes = {}
            for branch in self.branches:
                attribute = INCEPTION_BRANCHES[branch]
                paper = getattr(row, attribute)
                if self.granularity == "module":
                    candidates = [_scaled(paper, s) for s in self.scales]
                    changes[attribute] = _width_choice(hp, f"inception{row.name}_{branch}", candidates, paper)
                else:
                    key = f"inception{row.name[0]}_{branch}_scale"
                    if key not in stage_scales:
                        if len(self.scales) == 1:
                            stage_scales[key] = hp.Fixed(key, self.scales[0])
                        else:
                            stage_scales[key] = hp.Choice(key, list(self.scales), default=default_scale)
                    changes[attribute] = _scaled(paper, stage_scales[key])
            rows.append(dataclasses.replace(row, **changes))
        return {"table": tuple(rows)}

    def build_model(self, arguments: Mapping[str, Any]) -> keras.Model:
        options = dict(self.model_options)
        if "aux_loss_weight" not in options and self.recipe.aux_loss_weight:
            options["aux_loss_weight"] = self.recipe.aux_loss_weight
        options.setdefault("name", self.name)
        return GoogLeNet(input_shape=self.input_shape, classes=self.classes, **options, **arguments)


def hypermodel_for(model: str, **kwargs: Any) -> BottleneckHyperModel:
    """The HyperModel of a registered model name: `resnet50`, `resnet101`, `resnet152` or `googlenet`."""
    key = str(model).lower().replace("-", "").replace("_", "")
    if key == "googlenet":
        return InceptionHyperModel(**kwargs)
    if key.startswith("resnet") and key[6:] in ("50", "101", "152"):
        return ResNetHyperModel(int(key[6:]), **kwargs)
    raise ValueError(
        "`model` must be a net with bottlenecks to search: 'resnet50', 'resnet101', 'resnet152' or 'googlenet'. "
        f"Received: model={model!r}"
    )


# ----------------------------------------------------------------------------------------------- tuners


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
    common.check_choice("tuner", tuner, TUNERS)
    common.check_int("max_trials", max_trials, minimum=1)
    common.check_int("max_epochs", max_epochs, minimum=1)
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


# ----------------------------------------------------------------------------------------------- results


def _searched_values(trial) -> dict:
    return {k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")}


def _metric(trial, name: str) -> float | None:
    if trial.metrics.exists(name):
        value = trial.metrics.get_last_value(name)
        return None if value is None else float(value)
    return None


def trial_rows(tuner: keras_tuner.Tuner) -> list[dict]:
    """One dict per trial, in the order they started: `trial_id`, `status`, the searched `values`, `macs`,
    `params`, `score` (the objective, None unless completed) and `message` (why a trial failed)."""
    oracle = tuner.oracle
    order = list(oracle.start_order) + [t for t in oracle.trials if t not in oracle.start_order]
    rows = []
    for trial_id in order:
        trial = oracle.trials[trial_id]
        macs, params = _metric(trial, "macs"), _metric(trial, "params")
        message = ""
        if trial.status == "FAILED" and trial.message:
            lines = [line for line in trial.message.strip().splitlines() if line.strip()]
            message = lines[-1] if lines else ""
            if "BudgetExceededError:" in message:
                message = message.split("BudgetExceededError:", 1)[1].strip()
        rows.append(
            {
                "trial_id": trial_id,
                "status": str(trial.status),
                "values": _searched_values(trial),
                "macs": None if macs is None else int(macs),
                "params": None if params is None else int(params),
                "score": None if trial.score is None or trial.status != "COMPLETED" else float(trial.score),
                "message": message,
            }
        )
    return rows


def format_trial_table(rows: Sequence[dict], *, objective: str = OBJECTIVE) -> str:
    """A printable table of `trial_rows`: one line per trial with its widths, MACs, parameters and score."""
    names = []
    for row in rows:
        names += [k for k in row["values"] if k not in names]
    head = ["trial", "status", *names, "MACs", "params", objective]
    lines = []
    for row in rows:
        lines.append(
            [
                row["trial_id"],
                row["status"]
                if row["status"] != "FAILED" or not row["message"].startswith("Over budget")
                else "OVER BUDGET",
                *[str(row["values"].get(n, "")) for n in names],
                "-" if row["macs"] is None else f"{row['macs']:,}",
                "-" if row["params"] is None else f"{row['params']:,}",
                "-" if row["score"] is None else f"{row['score']:.4f}",
            ]
        )
    widths = [max(len(str(cell)) for cell in column) for column in zip(head, *lines)]
    out = ["  ".join(str(c).rjust(w) for c, w in zip(head, widths))]
    out += ["  ".join(str(c).rjust(w) for c, w in zip(line, widths)) for line in lines]
    return "\n".join(out)


def write_trial_csv(rows: Sequence[dict], path: str) -> None:
    names = []
    for row in rows:
        names += [k for k in row["values"] if k not in names]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["trial_id", "status", *names, "macs", "params", "score", "message"])
        for row in rows:
            writer.writerow(
                [
                    row["trial_id"],
                    row["status"],
                    *[row["values"].get(n, "") for n in names],
                    "" if row["macs"] is None else row["macs"],
                    "" if row["params"] is None else row["params"],
                    "" if row["score"] is None else row["score"],
                    row["message"],
                ]
            )


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points `(cost, score)` that no other point beats: none costs at most as much and scores at
    least as well with one of the two strictly better. Ordered by cost."""
    front = []
    for i, (cost, score) in enumerate(points):
        dominated = any(
            (c <= cost and s >= score) and (c < cost or s > score) for j, (c, s) in enumerate(points) if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (points[i][0], -points[i][1]))


def plot_pareto(
    rows: Sequence[dict], path: str, *, objective: str = OBJECTIVE, title: str = "", max_macs: float | None = None
) -> list[str]:
    """Write a PNG of `objective` against MACs for the completed trials with the Pareto front marked (and the
    MACs budget, and the rejected trials at the bottom); return the ids of the trials on the front."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if r["score"] is not None and r["macs"] is not None]
    rejected = [r for r in rows if r["score"] is None and r["macs"] is not None]
    points = [(r["macs"], r["score"]) for r in done]
    front = pareto_front(points)
    figure, axes = plt.subplots(figsize=(6.4, 4.8))
    if done:
        axes.scatter([p[0] / 1e6 for p in points], [p[1] for p in points], color="tab:blue", label="trials")
    if front:
        axes.plot(
            [points[i][0] / 1e6 for i in front],
            [points[i][1] for i in front],
            "o-",
            color="tab:red",
            label="Pareto front",
        )
        for i in front:
            axes.annotate(
                done[i]["trial_id"],
                (points[i][0] / 1e6, points[i][1]),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=8,
            )
    if rejected:
        low = min(points, key=lambda p: p[1])[1] if points else 0.0
        axes.scatter(
            [r["macs"] / 1e6 for r in rejected],
            [low] * len(rejected),
            marker="x",
            color="gray",
            label="over budget (not trained)",
        )
    if max_macs is not None:
        axes.axvline(max_macs / 1e6, color="gray", linestyle="--", label="max_macs")
    axes.set_xlabel("MACs per image (millions)")
    axes.set_ylabel(objective)
    axes.set_title(title or f"{objective} against MACs")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="best", fontsize=8, framealpha=0.6)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return [done[i]["trial_id"] for i in front]


# ----------------------------------------------------------------------------------------------- search


@contextlib.contextmanager
def _failed_trial_tracebacks(show: bool):
    """keras-tuner prints the traceback of every failed trial, budget rejections included, while its (internal)
    `config.DEBUG` is set; `search` keeps them in the trials' `message` and prints one line instead."""
    try:
        from keras_tuner.src import config as tuner_config
    except ImportError:  # a keras-tuner without the switch: its output stays as it is
        yield
        return
    previous = tuner_config.DEBUG
    tuner_config.DEBUG = show
    try:
        yield
    finally:
        tuner_config.DEBUG = previous


@dataclass
class SearchResult:
    """What `search` returns. `best_model` is the inference model (auxiliary heads stripped) of the best trial,
    None when no trial completed."""

    tuner: keras_tuner.Tuner
    rows: list[dict]
    table: str
    best_hyperparameters: keras_tuner.HyperParameters | None
    best_model: keras.Model | None
    best_trial_id: str | None
    pareto: list[str] = field(default_factory=list)
    output_dir: str | None = None
    metrics: dict = field(default_factory=dict)


SEARCH_IDENTITY = (
    "hypermodel",
    "dataset",
    "tuner",
    "epochs",
    "batch_size",
    "image_size",
    "max_macs",
    "max_params",
    "objective",
    "space",
)


def _space_config(hp: keras_tuner.HyperParameters) -> list:
    return json.loads(json.dumps([p.get_config() for p in hp.space], default=str))


def search(
    hypermodel: BottleneckHyperModel,
    dataset: Any = "digits",
    *,
    directory: str | os.PathLike,
    tuner: str = "random",
    max_trials: int = 10,
    epochs: int = 1,
    batch_size: int | None = None,
    steps_per_epoch: int | None = None,
    objective: str = OBJECTIVE,
    hyperparameters: keras_tuner.HyperParameters | None = None,
    tune_new_entries: bool = True,
    overwrite: bool = False,
    resume: bool | None = None,
    distribution_strategy: Any = None,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    max_consecutive_failed_trials: int | None = None,
    export_formats: Sequence[str] = ("keras",),
    plot: bool = True,
    verbose: int = 0,
    print_fn: Callable[[str], None] | None = print,
) -> SearchResult:
    """Search `hypermodel`'s widths on `dataset` (a `keras_convnets.data` name or `ImageData`) with the package's
    data pipelines and the hypermodel's recipe, then write the results to `directory`:

    `tuner/` (the keras-tuner project: rerun with `resume=True` to continue a stopped search), `search.json`,
    `preprocessing.json`, `labels.txt`, `trials.csv`, `pareto.png` (accuracy against MACs, Pareto front marked)
    and `best/`: the best trial's model exported by `keras_convnets.export.export_bundle` in `export_formats`
    (default `model.keras`: raw pixels in, the recipe's preprocessing layer in front, auxiliary heads stripped;
    add "saved_model", "tflite"), with `labels.txt`, `model_card.json` and `metrics.json`.

    The budget is checked before searching (`hypermodel.check_budget`). `resume=None` continues a search found
    in `directory` and starts one otherwise; `resume=True` requires one, `resume=False` refuses one (unless
    `overwrite=True`, which starts afresh). The validation data of every trial is the dataset's test split.
    `hypermodel.batch_size`, `.epochs` and `.steps_per_epoch` are set to this search's, for the recipe's schedule.
    """
    from keras_convnets import data as data_lib
    from keras_convnets.data.preprocessing import Preprocessing
    from keras_convnets.export import FORMATS, Run, export_bundle
    from keras_convnets.trainer import distribute
    from keras_convnets.trainer.callbacks import write_json_atomic, write_text_atomic

    say = print_fn or (lambda *_: None)
    if not isinstance(hypermodel, BottleneckHyperModel):
        raise TypeError(
            f"`hypermodel` must be a ResNetHyperModel or an InceptionHyperModel. Received: hypermodel={hypermodel!r}"
        )
    common.check_choice("tuner", tuner, TUNERS)
    common.check_int("max_trials", max_trials, minimum=1)
    common.check_int("epochs", epochs, minimum=1)
    export_formats = list(export_formats or ())
    for value in export_formats:
        common.check_choice("export_formats", value, FORMATS)
    if resume and overwrite:
        raise ValueError(
            "`resume=True` and `overwrite=True` contradict each other. Received: resume=True, overwrite=True"
        )
    directory = os.path.normpath(os.fspath(directory))
    project = os.path.join(directory, "tuner")
    exists = os.path.exists(os.path.join(project, "oracle.json"))
    if resume is True and not exists:
        raise ValueError(
            f"`resume=True` needs a search in `directory`; {directory!r} holds none. Received: resume=True"
        )
    if resume is False and exists and not overwrite:
        raise ValueError(
            f"`directory` {directory!r} already holds a search: resume it (resume=True, `--resume`) or start over "
            "(overwrite=True, `--overwrite`)."
        )

    if isinstance(distribution_strategy, str):
        distribution_strategy = distribute.get_strategy(distribution_strategy)
    data = dataset if isinstance(dataset, data_lib.ImageData) else data_lib.load_dataset(dataset, data_dir=data_dir)
    if data.num_classes != hypermodel.classes:
        raise ValueError(
            f"The hypermodel has {hypermodel.classes} classes but {data.name!r} has {data.num_classes}. "
            f"Received: classes={hypermodel.classes}"
        )
    recipe = hypermodel.recipe
    image_size = hypermodel.image_size
    if batch_size is None:
        batch_size = data.suggested_batch_size or recipe.batch_size
    common.check_int("batch_size", batch_size, minimum=1)
    if distribution_strategy is not None:
        distribute.check_global_batch(batch_size, distribution_strategy)
    steps = steps_per_epoch or data_lib.steps_per_epoch_for(data.num_train, batch_size)
    # the trials' learning-rate schedule spans this training (keras-tuner binds `build` to the instance: no copy)
    hypermodel.batch_size, hypermodel.epochs, hypermodel.steps_per_epoch = batch_size, epochs, steps

    space = hypermodel.space(hyperparameters)
    config = {
        "hypermodel": f"{type(hypermodel).__name__}:{hypermodel.name}",
        "dataset": data.name,
        "tuner": tuner,
        "epochs": epochs,
        "batch_size": batch_size,
        "image_size": image_size,
        "max_macs": hypermodel.max_macs,
        "max_params": hypermodel.max_params,
        "objective": objective,
        "space": _space_config(space),
        "recipe": recipe.name,
        "max_trials": max_trials,
        "seed": seed,
    }
    config_path = os.path.join(directory, "search.json")
    if exists and not overwrite and os.path.exists(config_path):
        with open(config_path, encoding="utf-8") as f:
            previous = json.load(f)
        differences = [k for k in SEARCH_IDENTITY if previous.get(k) != config.get(k)]
        if differences:
            raise ValueError(
                f"`directory` {directory!r} holds a search of another configuration (it differs in "
                f"{', '.join(differences)}). Use another directory, or overwrite=True (`--overwrite`) to start over."
            )

    fitting = hypermodel.check_budget(hyperparameters, tune_new_entries=tune_new_entries)
    if fitting is not None:
        say(
            f"Budget: max_macs={hypermodel.max_macs}, max_params={hypermodel.max_params}; the narrowest configuration "
            f"that fits has {fitting.macs:,} MACs and {fitting.params:,} parameters."
        )
    else:  # no budget: build the default configuration once, so that builder errors surface here, not per trial
        default = hypermodel.cost(space)
        say(f"The default configuration has {default.macs:,} MACs and {default.params:,} parameters.")

    os.makedirs(directory, exist_ok=True)
    preprocessing_path = os.path.join(directory, "preprocessing.json")
    if exists and not overwrite and os.path.exists(preprocessing_path):
        preprocessing = Preprocessing.load(preprocessing_path)
    else:
        preprocessing = data_lib.compute_preprocessing(
            recipe.preprocessing, data, image_size=image_size, augmentation=recipe.augmentation
        )
        preprocessing.save(preprocessing_path)
    write_text_atomic(os.path.join(directory, "labels.txt"), "".join(f"{label}\n" for label in data.labels))
    write_json_atomic(config_path, config)

    made = make_tuner(
        tuner,
        hypermodel,
        directory=directory,
        project_name="tuner",
        objective=objective,
        max_trials=max_trials,
        max_epochs=epochs,
        overwrite=overwrite,
        hyperparameters=hyperparameters,
        tune_new_entries=tune_new_entries,
        distribution_strategy=distribution_strategy,
        seed=seed,
        max_consecutive_failed_trials=max_consecutive_failed_trials,
    )
    train_ds = data_lib.train_pipeline(
        data,
        batch_size=batch_size,
        image_size=image_size,
        augmentation=recipe.augmentation,
        preprocessing=preprocessing,
        seed=seed,
        epochs=epochs,
        steps_per_epoch=steps,
    )
    eval_ds = data_lib.eval_pipeline(
        data,
        batch_size=batch_size,
        image_size=image_size,
        augmentation=recipe.augmentation,
        preprocessing=preprocessing,
    )
    before = len(made.oracle.trials)
    say(
        f"Searching {hypermodel.name} widths on {data.name} with {tuner} search: up to {max_trials} trials "
        f"({before} done), {epochs} epoch(s) of {steps} steps each, recipe {recipe.name!r}."
    )
    with _failed_trial_tracebacks(verbose > 0):
        made.search(
            train_ds, validation_data=eval_ds, epochs=epochs, steps_per_epoch=steps, verbose=verbose, shuffle=False
        )

    rows = trial_rows(made)
    table = format_trial_table(rows, objective=objective)
    write_trial_csv(rows, os.path.join(directory, "trials.csv"))
    say(table)
    for row in rows:
        if row["status"] == "FAILED" and not row["message"].startswith("Over budget"):
            say(
                f"Trial {row['trial_id']} failed: {row['message']} (traceback in "
                f"{os.path.join(project, 'trial_' + row['trial_id'], 'trial.json')})."
            )
    completed = [r for r in rows if r["score"] is not None]
    pareto = (
        plot_pareto(
            rows,
            os.path.join(directory, "pareto.png"),
            objective=objective,
            title=f"{hypermodel.name} on {data.name}",
            max_macs=hypermodel.max_macs,
        )
        if plot
        else []
    )
    if not completed:
        reasons = sorted({r["message"] for r in rows if r["message"]})
        raise ValueError(
            f"None of the {len(rows)} trials completed ({'; '.join(reasons) or 'no trials ran'}). "
            "Widen the budget or the space, or raise max_trials."
        )
    best_trial = made.oracle.get_best_trials(1)[0]
    with warnings.catch_warnings():  # the checkpoint holds optimizer slots the rebuilt model has not created
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        best = made.get_best_models(1)[0]
    scores = best.evaluate(eval_ds, verbose=0, return_dict=True)
    metrics = {
        "model": hypermodel.name,
        "dataset": data.name,
        "test_accuracy": float(scores["accuracy"]),
        "test_loss": float(scores["loss"]),
        "epochs": epochs,
        "trial_id": best_trial.trial_id,
        "hyperparameters": _searched_values(best_trial),
        "macs": next(r["macs"] for r in rows if r["trial_id"] == best_trial.trial_id),
        "params": next(r["params"] for r in rows if r["trial_id"] == best_trial.trial_id),
        "objective": objective,
        "score": float(best_trial.score),
        "pareto": pareto,
        "trials": len(rows),
        "completed": len(completed),
    }
    if export_formats:
        best_dir = os.path.join(directory, "best")
        run = Run(hypermodel.name, strip_aux(best), preprocessing, list(data.labels), dict(metrics), {"search": config})
        export_bundle(run, best_dir, formats=export_formats, overwrite=True)
        write_json_atomic(os.path.join(best_dir, "metrics.json"), metrics)
    say(
        f"Best trial {best_trial.trial_id}: {objective} {best_trial.score:.4f} with {_describe(metrics['hyperparameters'])}"
        f" ({metrics['macs']:,} MACs, {metrics['params']:,} parameters)."
        + (f" Exported to {os.path.join(directory, 'best')}." if export_formats else "")
    )
    return SearchResult(
        tuner=made,
        rows=rows,
        table=table,
        best_hyperparameters=best_trial.hyperparameters,
        best_model=strip_aux(best),
        best_trial_id=best_trial.trial_id,
        pareto=pareto,
        output_dir=directory,
        metrics=metrics,
    )
