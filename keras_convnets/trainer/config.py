"""The first phase of `train`: every argument checked and every default resolved, into one frozen `TrainConfig`.

Nothing is written while the configuration is resolved: bad input is refused before the run directory is touched.
Resolving seeds the random generators (`seed`) and turns on deterministic ops (`deterministic`), before the data
is loaded, as `train` always did.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

import keras
import tensorflow as tf

from keras_convnets import data as data_lib
from keras_convnets.models import registry
from keras_convnets.trainer import distribute, recipes
from keras_convnets.trainer.precision import (
    resolve_jit_compile,
    resolve_mixed_precision,
    resolve_steps_per_execution,
)
from keras_convnets.utils.naming import canonical_model_name
from keras_convnets.utils.validation import check_int, check_number

__all__ = ["RECIPE_IMAGE_SIZE", "TrainConfig", "default_validation_split", "model_name", "resolve_config"]

# builder arguments that the run sets itself, with why (a model option with one of these names is refused)
_RUN_DECIDES = {
    "input_shape": "the run builds the net for (image_size, image_size, 3); grayscale data is repeated to 3 channels "
    "at the source, so the exported model takes 3-channel images (set the size with `image_size`).",
    "classes": "the run builds the head for the dataset's number of classes.",
    "input_tensor": "the run builds the net on its own input.",
    "include_top": "a training run trains the classifier head.",
}

RECIPE_IMAGE_SIZE = {"cifar": 32, "cifar_fast": 32, "imagenet": 224, "vgg": 224, "googlenet": 224, "inception_v3": 299}


@dataclass(frozen=True)
class TrainConfig:
    """The resolved configuration of one run; `run_json()` is what `run.json` records."""

    model: str | Callable[..., keras.Model]  # a registered name or a builder
    name: str  # the model's name in the run's files
    builder_name: str | None  # the registered name of the builder (None for an unregistered function)
    model_options: dict
    aux_loss_weight: float | None  # set on an aux model after building; None keeps the model's own
    data: data_lib.ImageData  # the training split is what remains after the validation split is held out
    dataset_source: str | None
    recipe: recipes.Recipe
    image_size: int
    batch_size: int
    epochs: int
    steps_per_epoch: int
    validation_split: float
    seed: int | None
    deterministic: bool
    precision: str
    jit: bool  # as asked; `building.fall_back_from_xla` may turn it off when the first step fails
    steps_per_execution: int
    strategy: tf.distribute.Strategy
    chief: bool
    sync_bn: bool
    output_dir: str | None
    export_dir: str | None
    data_dir: str | None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        if keras.config.image_data_format() == "channels_first":
            return (3, self.image_size, self.image_size)
        return (self.image_size, self.image_size, 3)

    @property
    def checkpoint_dir(self) -> str | None:
        return None if self.output_dir is None else os.path.join(self.output_dir, "checkpoints")

    @property
    def validation_name(self) -> str:
        """What the per-epoch `val_*` numbers measure."""
        return "validation" if self.data.num_validation else "test"

    def architecture(self) -> dict:
        """`get_model(builder, **options)` rebuilds this network."""
        options = {"input_shape": list(self.input_shape), "classes": self.data.num_classes, **self.model_options}
        return {"builder": self.builder_name, "options": options}

    def run_json(self) -> dict:
        return {
            "model": self.name,
            "architecture": self.architecture(),
            "dataset": self.data.name,
            "dataset_source": self.dataset_source,
            # where tensorflow-datasets reads it: `--resume` and `convnets export` look there again
            "data_dir": None if self.data_dir is None else os.path.abspath(self.data_dir),
            "num_classes": self.data.num_classes,
            "image_size": self.image_size,
            "recipe": self.recipe.to_dict(),
            "batch_size": self.batch_size,
            "epochs": self.epochs,
            "steps_per_epoch": self.steps_per_epoch,
            "seed": self.seed,
            "model_options": dict(self.model_options),
            "mixed_precision": self.precision,
            "jit_compile": self.jit,
            "steps_per_execution": self.steps_per_execution,
            "strategy": distribute.strategy_name(self.strategy),
            "replicas": self.strategy.num_replicas_in_sync,
            "sync_bn": self.sync_bn,
            "validation_split": self.validation_split,
            "train_examples": self.data.num_train,
            "validation_examples": self.data.num_validation,
            "test_examples": self.data.num_test,
        }


def model_name(model: str | Callable) -> str:
    """The name a run gives its model: the registry's key, or a builder function's name in lower case."""
    if isinstance(model, str):
        registry.get_builder(model)  # unknown names fail here, listing the registered ones
        return canonical_model_name(model, argument="model")
    if callable(model):
        return getattr(model, "__name__", type(model).__name__).lower()
    raise TypeError(f"`model` must be a registered model name or a builder function. Received: model={model!r}")


def _builder_name(model: str | Callable, name: str) -> str | None:
    if isinstance(model, str):
        return name if name in registry.list_models() else None
    return next((key for key in registry.list_models() if registry.get_builder(key) is model), None)


def default_validation_split(recipe: recipes.Recipe) -> float:
    """10% of the training set for a recipe that decides on a validation signal (the plateau schedule), else 0."""
    return 0.1 if recipe.schedule == "plateau" else 0.0


def _check_positive(argument: str, value: Any) -> None:
    if value is not None:
        check_int(argument, value, minimum=1, requirement="must be a positive integer")


def resolve_config(
    model: str | Callable[..., keras.Model],
    dataset: str | data_lib.ImageData,
    *,
    epochs: int | None,
    batch_size: int | None,
    recipe: str | recipes.Recipe | None,
    strategy: str | tf.distribute.Strategy,
    mixed_precision: str,
    jit_compile: Any,
    output_dir: str | os.PathLike | None,
    export_dir: str | os.PathLike | None,
    seed: int | None,
    deterministic: bool,
    data_dir: str | os.PathLike | None,
    sync_bn: bool,
    steps_per_epoch: int | None,
    image_size: int | None,
    model_options: dict | None,
    validation_split: float | str,
    steps_per_execution: Any = "auto",
) -> TrainConfig:
    """Check the arguments of `train` and resolve their defaults (this loads the dataset, and holds out the
    validation split). Writes nothing."""
    name = model_name(model)
    model_options = dict(model_options or {})
    for key in _RUN_DECIDES:
        if key in model_options:
            raise ValueError(
                f"`{key}` is not a builder option of a training run: {_RUN_DECIDES[key]} "
                f"Received: model_options={{{key!r}: {model_options[key]!r}}}"
            )
    for argument, value in (
        ("epochs", epochs),
        ("batch_size", batch_size),
        ("steps_per_epoch", steps_per_epoch),
        ("image_size", image_size),
    ):
        _check_positive(argument, value)
    if seed is not None:
        check_int("seed", seed, minimum=0, requirement="must be a non-negative integer or None")
    if deterministic and seed is None:
        raise ValueError("`deterministic=True` needs a `seed`. Received: seed=None")
    if validation_split != "auto":
        validation_split = check_number(
            "validation_split", validation_split, minimum=0, maximum=1, exclusive_maximum=True
        )
    precision = resolve_mixed_precision(mixed_precision)
    jit = resolve_jit_compile(jit_compile)
    resolve_steps_per_execution(steps_per_execution)  # checked before the data loads; resolved below
    if jit and deterministic:  # Keras compiles nothing with XLA under deterministic ops (it only warns)
        if jit_compile is True:
            raise ValueError(
                "`jit_compile=True` does not go with `deterministic=True`: Keras turns XLA off under "
                "TensorFlow's deterministic ops. Received: jit_compile=True, deterministic=True"
            )
        jit = False
    if isinstance(strategy, str):
        strategy = distribute.get_strategy(strategy)
    if jit and jit_compile == "auto" and isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        # the XLA fallback cannot try a first step there (every worker would have to take part), so "auto"
        # does not risk keras#21366's crash across workers; jit_compile=True still asks for it
        jit = False
    if seed is not None:
        keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()

    data = dataset if isinstance(dataset, data_lib.ImageData) else data_lib.load_dataset(dataset, data_dir=data_dir)
    recipe = recipes.get_recipe(recipe) if recipe is not None else recipes.default_recipe(name, data.image_size)
    if validation_split == "auto":
        validation_split = default_validation_split(recipe)
    if recipe.schedule == "plateau" and not validation_split:
        raise ValueError(
            f"The {recipe.name!r} recipe divides the learning rate when the validation accuracy stops improving: it "
            "needs a validation split held out of the training set (the test split decides nothing). "
            "Received: validation_split=0"
        )
    if validation_split:
        data = data_lib.holdout_validation(data, float(validation_split), seed=seed or 0)
    if image_size is None:
        image_size = (
            data.image_size
            if recipe.name in ("cifar", "cifar_fast") and data.image_size
            else RECIPE_IMAGE_SIZE[recipe.name]
        )
    if batch_size is None:
        batch_size = data.suggested_batch_size or recipe.batch_size
    distribute.check_global_batch(batch_size, strategy)
    steps = steps_per_epoch or data_lib.steps_per_epoch_for(data.num_train, batch_size)
    steps_per_execution = resolve_steps_per_execution(steps_per_execution, steps)
    if epochs is None:
        epochs = data.suggested_epochs or recipes.default_epochs(recipe, steps, batch_size)
    user_weight = not isinstance(model, str) or "aux_loss_weight" in model_options
    return TrainConfig(
        model=model,
        name=name,
        builder_name=_builder_name(model, name),
        model_options=model_options,
        aux_loss_weight=None if user_weight or not recipe.aux_loss_weight else recipe.aux_loss_weight,
        data=data,
        dataset_source=os.fspath(dataset) if isinstance(dataset, (str, os.PathLike)) else None,
        recipe=recipe,
        image_size=image_size,
        batch_size=batch_size,
        epochs=epochs,
        steps_per_epoch=steps,
        validation_split=float(validation_split),
        seed=seed,
        deterministic=deterministic,
        precision=precision,
        jit=jit,
        steps_per_execution=steps_per_execution,
        strategy=strategy,
        chief=distribute.is_chief(strategy),
        sync_bn=sync_bn,
        output_dir=None if output_dir is None else os.path.normpath(os.fspath(output_dir)),
        export_dir=None if export_dir is None else os.fspath(export_dir),
        data_dir=None if data_dir is None else os.fspath(data_dir),
    )
