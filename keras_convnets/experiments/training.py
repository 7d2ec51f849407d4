"""Training for the experiments: a model, a dataset and a recipe in, error curves against iterations out.

It reuses the library's data pipelines (`keras_convnets.data`) and the papers' recipes
(`keras_convnets.trainer.recipes`): the same recipe (its optimizer, schedule, augmentation and loss, label smoothing
included), batch, seed and data order for every model of an experiment. Training error is measured as the papers
plot it, on the training batches as they are trained (augmented, training mode), averaged over the iterations since
the previous point; test error is measured at each point on the whole test split in inference mode. At the end the
training split is also evaluated in inference mode.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from keras_convnets.experiments.report import quiet_retracing

# one line as each net starts and ends (`convnets experiment` shows them on stderr): a real preset runs for minutes
LOG = logging.getLogger("keras_convnets.experiments")

__all__ = [
    "MIN_TEST_EXAMPLES",
    "Curves",
    "Evaluator",
    "Setup",
    "curves_rows",
    "load_data",
    "make_evaluators",
    "prepare",
    "recipe_preprocessing",
    "train",
]

MIN_TEST_EXAMPLES = 10


@dataclass
class Curves:
    """Error curves of one training run (errors are fractions in [0, 1])."""

    name: str
    iterations: list[int] = field(default_factory=list)
    train_error: list[float] = field(default_factory=list)  # mean over the batches since the previous point
    train_loss: list[float] = field(default_factory=list)
    test_error: list[float] = field(default_factory=list)
    final_train_error: float = float("nan")  # whole training split, inference mode
    final_test_error: float = float("nan")
    epochs: int = 0
    steps_per_epoch: int = 0
    seconds: float = 0.0
    params: int = 0

    @property
    def last_train_error(self) -> float:
        """The training error of the last points (the final stretch of the training curve)."""
        tail = self.train_error[-max(1, len(self.train_error) // 10) :]
        return float(np.mean(tail)) if tail else float("nan")


def load_data(dataset: str, *, data_dir: str | None, max_train: int | None, max_test: int | None, batch_size: int):
    """The dataset (`keras_convnets.data.load_dataset`), cut to `max_train`/`max_test` examples drawn at random
    over the whole split (`data.subset`, seed 0: a folder listed class by class keeps its classes; the in-memory
    arrays and the file lists are cut too), checked to hold at least one training batch and `MIN_TEST_EXAMPLES`
    test examples."""
    from keras_convnets import data as data_lib

    data = data_lib.load_dataset(dataset, data_dir=data_dir)
    max_train = max_train if max_train is not None and max_train < data.num_train else None
    max_test = max_test if max_test is not None and max_test < data.num_test else None
    if max_train is not None or max_test is not None:
        data = data_lib.subset(data, max_train=max_train, max_test=max_test, seed=0)
    if data.num_train < batch_size:
        raise ValueError(
            f"Dataset {data.name!r} has {data.num_train} training examples, fewer than one batch of {batch_size}: "
            "too few for this experiment's split. Use more data or a smaller `batch_size`. "
            f"Received: dataset={dataset!r}, batch_size={batch_size}"
        )
    if data.num_test < MIN_TEST_EXAMPLES:
        raise ValueError(
            f"Dataset {data.name!r} has {data.num_test} test examples; an error rate needs at least "
            f"{MIN_TEST_EXAMPLES}. Received: dataset={dataset!r}"
        )
    return data


def _main_output(y):
    return y["predictions"] if isinstance(y, dict) else y


class Evaluator:
    """Errors of a model on a fixed split, computed in inference mode. A split that fits in `memory_limit` bytes
    (as float32) is held in memory as arrays; a larger one is streamed from its pipeline at every evaluation."""

    def __init__(
        self, dataset, *, num_examples: int | None = None, image_size: int | None = None, memory_limit: int = 1 << 30
    ):
        self.dataset = dataset
        size = None if num_examples is None or image_size is None else num_examples * image_size**2 * 3 * 4
        self.images = self.labels = None
        if size is None or size <= memory_limit:
            xs, ys = [], []
            for x, y in dataset.as_numpy_iterator():
                xs.append(x)
                ys.append(y)
            self.images = np.concatenate(xs)
            self.labels = np.concatenate(ys).astype("int64")

    def _batches(self):
        if self.images is None:
            yield from self.dataset.as_numpy_iterator()
            return
        for start in range(0, len(self.labels), 256):
            yield self.images[start : start + 256], self.labels[start : start + 256]

    def error(self, model: keras.Model, *, compiled=None) -> float:
        wrong = total = 0
        for images, labels in self._batches():
            y = compiled(images) if compiled is not None else model(images, training=False)
            predicted = np.asarray(_main_output(y)).argmax(axis=-1)
            wrong += int(np.sum(predicted != labels))
            total += len(labels)
        return wrong / max(total, 1)


class _CurveCallback(keras.callbacks.Callback):
    def __init__(self, curves: Curves, test: Evaluator, every: int, forward):
        super().__init__()
        self.curves, self.test, self.every, self.forward = curves, test, every, forward
        self.step = 0
        self.window_acc: list[float] = []
        self.window_loss: list[float] = []
        self.previous = (0.0, 0.0)

    def on_epoch_begin(self, epoch, logs=None):
        self.previous = (0.0, 0.0)

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        # Keras logs the mean over the epoch so far; the difference of running sums is this batch's value.
        acc, loss = float(logs.get("accuracy", np.nan)), float(logs.get("loss", np.nan))
        prev_acc, prev_loss = self.previous
        self.window_acc.append((batch + 1) * acc - batch * prev_acc)
        self.window_loss.append((batch + 1) * loss - batch * prev_loss)
        self.previous = (acc, loss)
        self.step += 1
        if self.step % self.every == 0:
            self._point()

    def _point(self):
        if not self.window_acc:
            return
        self.curves.iterations.append(self.step)
        self.curves.train_error.append(float(1.0 - np.mean(self.window_acc)))
        self.curves.train_loss.append(float(np.mean(self.window_loss)))
        self.curves.test_error.append(self.test.error(self.model, compiled=self.forward))
        self.window_acc, self.window_loss = [], []

    def on_train_end(self, logs=None):
        if self.window_acc:
            self._point()


def train(
    name: str,
    model: keras.Model,
    data,
    *,
    recipe,
    epochs: int,
    batch_size: int,
    image_size: int,
    seed: int,
    points: int = 20,
    model_name: str = "",
    preprocessing=None,
    evaluators: tuple[Evaluator, Evaluator] | None = None,
    run_eagerly: bool = False,
) -> Curves:
    """Train `model` with `recipe` (optimizer, schedule, loss with its label smoothing, augmentation) for `epochs`
    epochs and return its curves, with about `points` points. `evaluators` are the (train, test) evaluators, made
    once per experiment.
    `run_eagerly` skips graph tracing (slower per step, much faster to start: tiny budgets and debugging)."""
    import tensorflow as tf

    from keras_convnets import data as data_lib
    from keras_convnets.trainer import recipes as recipes_lib

    steps = data_lib.steps_per_epoch_for(data.num_train, batch_size)
    schedule = recipes_lib.learning_rate_schedule(
        recipe, batch_size=batch_size, steps_per_epoch=steps, epochs=epochs, model_name=model_name
    )
    recipes_lib.prepare_model(model, recipe)  # the recipe's L2 term in the loss (Inception v3)
    model.compile(
        optimizer=recipes_lib.make_optimizer(recipe, schedule),
        loss=recipes_lib.make_loss(recipe),
        metrics=["accuracy"],
        run_eagerly=run_eagerly,
    )
    train_ds = data_lib.train_pipeline(
        data,
        batch_size=batch_size,
        image_size=image_size,
        augmentation=recipe.augmentation,
        preprocessing=preprocessing,
        seed=seed,
        epochs=epochs,
    )
    train_eval, test_eval = evaluators or make_evaluators(
        data, image_size=image_size, recipe=recipe, preprocessing=preprocessing
    )
    curves = Curves(name=name, epochs=epochs, steps_per_epoch=steps, params=int(model.count_params()))
    forward = None if run_eagerly else tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    every = max(1, (epochs * steps) // max(1, points))
    LOG.info("%s: training, %d epochs of %d iterations (%s parameters)", name, epochs, steps, f"{curves.params:,}")
    start = time.perf_counter()
    with quiet_retracing():
        model.fit(
            train_ds,
            epochs=epochs,
            steps_per_epoch=steps,
            verbose=0,
            shuffle=False,
            callbacks=[_CurveCallback(curves, test_eval, every, forward)],
        )
        curves.seconds = time.perf_counter() - start
        curves.final_train_error = train_eval.error(model, compiled=forward)
        curves.final_test_error = test_eval.error(model, compiled=forward)
    LOG.info(
        "%s: done in %.0f s; train error %.2f%%, test error %.2f%%",
        name,
        curves.seconds,
        100 * curves.final_train_error,
        100 * curves.final_test_error,
    )
    return curves


def make_evaluators(data, *, image_size: int, recipe, preprocessing) -> tuple[Evaluator, Evaluator]:
    from keras_convnets import data as data_lib

    def split(which):
        pipeline = data_lib.eval_pipeline(
            data,
            batch_size=256,
            image_size=image_size,
            augmentation=recipe.augmentation,
            preprocessing=preprocessing,
            split=which,
        )
        count = data.num_train if which == "train" else data.num_test
        return Evaluator(pipeline, num_examples=count, image_size=image_size)

    return split("train"), split("test")


def recipe_preprocessing(recipe, data, *, image_size: int):
    from keras_convnets import data as data_lib

    return data_lib.compute_preprocessing(
        recipe.preprocessing, data, image_size=image_size, augmentation=recipe.augmentation
    )


@dataclass
class Setup:
    """What every training experiment prepares before its runs: the preset with its overrides, the
    recipe, the data, the number of epochs, the preprocessing and the train/test evaluators."""

    preset: Any
    recipe: Any
    data: Any
    steps: int
    epochs: int
    preprocessing: Any
    train_eval: Evaluator
    test_eval: Evaluator

    def train(self, name: str, model: keras.Model, *, model_name: str | None = None) -> Curves:
        """`train(name, model, ...)` with this setup's data, recipe, epochs, preprocessing and evaluators and the
        preset's batch size, image size, seed, points and `run_eagerly`; `model_name` defaults to `name`."""
        preset = self.preset
        return train(
            name,
            model,
            self.data,
            recipe=self.recipe,
            epochs=self.epochs,
            batch_size=preset.batch_size,
            image_size=preset.image_size,
            seed=preset.seed,
            points=preset.points,
            model_name=name if model_name is None else model_name,
            preprocessing=self.preprocessing,
            evaluators=(self.train_eval, self.test_eval),
            run_eagerly=preset.run_eagerly,
        )


def prepare(base_preset, overrides: dict[str, Any], *, check, dataset: str | None, data_dir: str | None) -> Setup:
    """Apply `overrides` (and `dataset`) to `base_preset`, `check` it, then load and prepare the data
    with the preset's recipe. The presets carry `recipe`, `dataset`, `max_train`, `max_test`,
    `batch_size`, `epochs` and `image_size`."""
    from keras_convnets.experiments import presets
    from keras_convnets.trainer import recipes as recipes_lib

    if dataset is not None:
        overrides = {**overrides, "dataset": dataset}
    preset = presets.with_overrides(base_preset, overrides)
    check(preset)
    recipe = recipes_lib.get_recipe(preset.recipe)
    data = load_data(
        preset.dataset,
        data_dir=data_dir,
        max_train=preset.max_train,
        max_test=preset.max_test,
        batch_size=preset.batch_size,
    )
    steps = data.num_train // preset.batch_size
    epochs = preset.epochs or recipes_lib.default_epochs(recipe, steps, preset.batch_size)
    preprocessing = recipe_preprocessing(recipe, data, image_size=preset.image_size)
    train_eval, test_eval = make_evaluators(
        data, image_size=preset.image_size, recipe=recipe, preprocessing=preprocessing
    )
    return Setup(preset, recipe, data, steps, epochs, preprocessing, train_eval, test_eval)


def curves_rows(all_curves: list[Curves], **extra) -> list[dict]:
    """One CSV row per point of every curve."""
    rows = []
    for c in all_curves:
        for i, it in enumerate(c.iterations):
            rows.append(
                {
                    "run": c.name,
                    **extra,
                    "iteration": it,
                    "train_error": c.train_error[i],
                    "train_loss": c.train_loss[i],
                    "test_error": c.test_error[i],
                }
            )
    return rows
