"""The first phase of `search`: resolve its arguments into a frozen `SearchPlan` (every choice made, the
arguments and the directory checked, the data loaded, nothing written).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import keras_tuner

from keras_convnets.tuning.base import BottleneckHyperModel
from keras_convnets.tuning.tuners import TUNERS
from keras_convnets.utils.validation import check_choice, check_int, check_number

__all__ = ["DEFAULT_VALIDATION_SPLIT", "SEARCH_IDENTITY", "SearchPlan", "hold_out_validation", "resolve"]


# The entries of `search.json` that make a search what it is: a search resumes only when they are unchanged.
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
    "num_validation",
)
# He et al. (2016, Section 4.2) held 5k of CIFAR-10's 50k training images out for validation.
DEFAULT_VALIDATION_SPLIT = 0.1


@dataclass(frozen=True)
class SearchPlan:
    """A search with every choice made: what `resolve` returns and every later phase reads."""

    hypermodel: BottleneckHyperModel
    data: Any  # keras_convnets.data.ImageData
    directory: str
    tuner: str
    max_trials: int
    epochs: int
    batch_size: int
    steps_per_epoch: int
    objective: str
    validation_split: int | float | None  # as given (None: the default); `data.num_validation` is what it came to
    hyperparameters: keras_tuner.HyperParameters | None
    tune_new_entries: bool
    overwrite: bool
    exists: bool  # `directory` holds a search (it is resumed unless `overwrite`)
    distribution_strategy: Any
    seed: int
    max_consecutive_failed_trials: int | None
    export_formats: tuple[str, ...]
    plot: bool
    verbose: int
    say: Callable[[str], None]
    config: Mapping[str, Any]  # what `search.json` records

    @property
    def project(self) -> str:
        return os.path.join(self.directory, "tuner")

    @property
    def resuming(self) -> bool:
        return self.exists and not self.overwrite

    @property
    def image_size(self) -> int:
        return self.hypermodel.image_size


def resolve(
    hypermodel: BottleneckHyperModel,
    dataset: Any,
    *,
    directory: str | os.PathLike,
    tuner: str,
    max_trials: int,
    epochs: int,
    batch_size: int | None,
    steps_per_epoch: int | None,
    objective: str,
    validation_split: int | float | None,
    hyperparameters: keras_tuner.HyperParameters | None,
    tune_new_entries: bool,
    overwrite: bool,
    resume: bool | None,
    distribution_strategy: Any,
    seed: int,
    data_dir: str | os.PathLike | None,
    max_consecutive_failed_trials: int | None,
    export_formats: Sequence[str],
    plot: bool,
    verbose: int,
    print_fn: Callable[[str], None] | None,
) -> SearchPlan:
    """Check the arguments and the directory, load the data, and make every choice the search needs (nothing is
    written). Sets `hypermodel.batch_size`, `.epochs` and `.steps_per_epoch`: the trials' learning-rate schedule
    spans this search's training (keras-tuner binds `build` to the instance, so a copy would not be seen)."""
    from keras_convnets import data as data_lib
    from keras_convnets.export import FORMATS
    from keras_convnets.trainer import distribute

    if not isinstance(hypermodel, BottleneckHyperModel):
        raise TypeError(
            f"`hypermodel` must be a ResNetHyperModel or an InceptionHyperModel. Received: hypermodel={hypermodel!r}"
        )
    check_choice("tuner", tuner, TUNERS)
    check_int("max_trials", max_trials, minimum=1)
    check_int("epochs", epochs, minimum=1)
    export_formats = tuple(export_formats or ())
    for value in export_formats:
        check_choice("export_formats", value, FORMATS)
    directory = os.path.normpath(os.fspath(directory))
    exists = _check_directory(directory, resume=resume, overwrite=overwrite)

    if isinstance(distribution_strategy, str):
        distribution_strategy = distribute.get_strategy(distribution_strategy)
    data = dataset if isinstance(dataset, data_lib.ImageData) else data_lib.load_dataset(dataset, data_dir=data_dir)
    if data.num_classes != hypermodel.classes:
        raise ValueError(
            f"The hypermodel has {hypermodel.classes} classes but {data.name!r} has {data.num_classes}. "
            f"Received: classes={hypermodel.classes}"
        )
    data = hold_out_validation(data, validation_split, seed=seed)
    if batch_size is None:
        batch_size = data.suggested_batch_size or hypermodel.recipe.batch_size
    check_int("batch_size", batch_size, minimum=1)
    if distribution_strategy is not None:
        distribute.check_global_batch(batch_size, distribution_strategy)
    steps = steps_per_epoch or data_lib.steps_per_epoch_for(data.num_train, batch_size)
    hypermodel.batch_size, hypermodel.epochs, hypermodel.steps_per_epoch = batch_size, epochs, steps

    plan = SearchPlan(
        hypermodel=hypermodel,
        data=data,
        directory=directory,
        tuner=tuner,
        max_trials=max_trials,
        epochs=epochs,
        batch_size=batch_size,
        steps_per_epoch=steps,
        objective=objective,
        validation_split=validation_split,
        hyperparameters=hyperparameters,
        tune_new_entries=tune_new_entries,
        overwrite=overwrite,
        exists=exists,
        distribution_strategy=distribution_strategy,
        seed=seed,
        max_consecutive_failed_trials=max_consecutive_failed_trials,
        export_formats=export_formats,
        plot=plot,
        verbose=verbose,
        say=print_fn or (lambda *_: None),
        config={},
    )
    config = _record(plan)
    _check_previous(plan, config)
    return dataclasses.replace(plan, config=config)


def hold_out_validation(data: Any, validation_split: int | float | None, *, seed: int) -> Any:
    """`data` with a validation split for the trials' objective, held out of its training set
    (`keras_convnets.data.holdout_validation`: `validation_split` examples, or that fraction of the training set,
    drawn from `seed`). `None`: the validation split `data` already has, else `DEFAULT_VALIDATION_SPLIT`. The test
    split is never part of it."""
    from keras_convnets import data as data_lib

    if data.validation is not None:
        if validation_split is not None:
            raise ValueError(
                f"{data.name!r} already has a validation split ({data.num_validation} examples): pass "
                f"validation_split=None to use it. Received: validation_split={validation_split!r}"
            )
        return data
    if validation_split is None:
        validation_split = DEFAULT_VALIDATION_SPLIT
    if isinstance(validation_split, float):
        check_number(
            "validation_split", validation_split, minimum=0, maximum=1, exclusive_minimum=True, exclusive_maximum=True
        )
    else:
        check_int("validation_split", validation_split, minimum=1, maximum=max(1, data.num_train - 1))
    return data_lib.holdout_validation(data, validation_split, seed=seed)


def _check_directory(directory: str, *, resume: bool | None, overwrite: bool) -> bool:
    """Whether `directory` holds a search, after refusing what `resume` and `overwrite` forbid."""
    if resume and overwrite:
        raise ValueError(
            "`resume=True` and `overwrite=True` contradict each other. Received: resume=True, overwrite=True"
        )
    exists = os.path.exists(os.path.join(directory, "tuner", "oracle.json"))
    if resume is True and not exists:
        raise ValueError(
            f"`resume=True` needs a search in `directory`; {directory!r} holds none. Received: resume=True"
        )
    if resume is False and exists and not overwrite:
        raise ValueError(
            f"`directory` {directory!r} already holds a search: resume it (resume=True, `--resume`) or start over "
            "(overwrite=True, `--overwrite`)."
        )
    return exists


def _record(plan: SearchPlan) -> dict:
    """What `search.json` records of the search (its identity: `SEARCH_IDENTITY`)."""
    hypermodel = plan.hypermodel
    space = hypermodel.space(plan.hyperparameters)
    return {
        "hypermodel": f"{type(hypermodel).__name__}:{hypermodel.name}",
        "dataset": plan.data.name,
        "tuner": plan.tuner,
        "epochs": plan.epochs,
        "batch_size": plan.batch_size,
        "image_size": plan.image_size,
        "max_macs": hypermodel.max_macs,
        "max_params": hypermodel.max_params,
        "objective": plan.objective,
        "validation_split": plan.validation_split,
        "num_validation": plan.data.num_validation,
        "space": json.loads(json.dumps([p.get_config() for p in space.space], default=str)),
        "recipe": hypermodel.recipe.name,
        "max_trials": plan.max_trials,
        "seed": plan.seed,
    }


def _check_previous(plan: SearchPlan, config: Mapping[str, Any]) -> None:
    """Refuse to resume a search of another configuration."""
    path = os.path.join(plan.directory, "search.json")
    if not plan.resuming or not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        previous = json.load(f)
    differences = [k for k in SEARCH_IDENTITY if previous.get(k) != config.get(k)]
    if differences:
        raise ValueError(
            f"`directory` {plan.directory!r} holds a search of another configuration (it differs in "
            f"{', '.join(differences)}). Use another directory, or overwrite=True (`--overwrite`) to start over."
        )
