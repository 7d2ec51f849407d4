"""`train`: a registered model, a dataset and a recipe in, a trained model and its run directory out.

    result = keras_convnets.train("resnet20", "digits", epochs=15, output_dir="runs/resnet20-digits")
    print(result.metrics["test_accuracy"])

The model is built and compiled inside the `tf.distribute` strategy's scope. With an `output_dir` the run is
resumable: rerunning the same call after an interruption (a SIGKILL included) continues from the last epoch's
checkpoint, optimizer state included, and ends where an uninterrupted run ends (bit for bit with a `seed` and
`deterministic=True`). The run directory holds `run.json` (the configuration), `preprocessing.json`,
`labels.txt`, `checkpoints/`, `logs/` (TensorBoard), `history.csv`, and once training is done `model.keras`,
`curves.png` and, last, `metrics.json`. A directory holding a run of another configuration is refused.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import keras
import tensorflow as tf

from keras_convnets import data as data_lib
from keras_convnets.data.preprocessing import Preprocessing
from keras_convnets.models.registry import get_builder
from keras_convnets.trainer import callbacks as run_callbacks
from keras_convnets.trainer import distribute, recipes

MIXED_PRECISION = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
JIT_COMPILE = ("auto", True, False)
RECIPE_IMAGE_SIZE = {"cifar": 32, "imagenet": 224, "googlenet": 224, "inception_v3": 299}
# run.json entries that must match for a directory to be resumed
IDENTITY = (
    "model",
    "dataset",
    "num_classes",
    "image_size",
    "recipe",
    "batch_size",
    "epochs",
    "steps_per_epoch",
    "seed",
    "model_options",
)


@dataclass
class TrainResult:
    """What `train` returns. `history` is one dict per epoch (the rows of `history.csv`)."""

    model: keras.Model
    metrics: dict
    history: list[dict]
    labels: list[str]
    preprocessing: Preprocessing
    output_dir: str | None
    export_dir: str | None
    config: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------- choices


def cpu_flags() -> set[str]:
    """The flags of the CPU as /proc/cpuinfo lists them (empty where it cannot be read)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def resolve_mixed_precision(choice: str = "auto") -> str:
    """`"auto"` -> "mixed_float16" on GPUs of compute capability 7 or more, "mixed_bfloat16" on CPUs with
    AVX512-BF16 or AMX, else "float32". Other values are returned as they are."""
    if choice not in MIXED_PRECISION:
        raise ValueError(
            f"`mixed_precision` must be one of {', '.join(map(repr, MIXED_PRECISION))}. Received: mixed_precision={choice!r}"
        )
    if choice != "auto":
        return choice
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0))
        return "mixed_float16" if capability and capability[0] >= 7 else "float32"
    flags = cpu_flags()
    return "mixed_bfloat16" if {"avx512_bf16", "amx_bf16"} & flags else "float32"


def resolve_jit_compile(choice: Any = "auto") -> bool:
    """`"auto"` -> XLA on GPUs only (on CPUs it is slower, and fails under MirroredStrategy)."""
    if choice not in JIT_COMPILE:
        raise ValueError(f"`jit_compile` must be 'auto', True or False. Received: jit_compile={choice!r}")
    if choice == "auto":
        return bool(tf.config.list_physical_devices("GPU"))
    return bool(choice)


def _tensorboard_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def _model_name(model: str | Callable) -> str:
    if isinstance(model, str):
        get_builder(model)  # unknown names fail here, listing the registered ones
        return model.lower().replace("-", "").replace(" ", "")
    if callable(model):
        return getattr(model, "__name__", type(model).__name__).lower()
    raise TypeError(f"`model` must be a registered model name or a builder function. Received: model={model!r}")


def _build(model: str | Callable, *, image_size: int, classes: int, options: dict) -> keras.Model:
    builder = get_builder(model) if isinstance(model, str) else model
    shape = (image_size, image_size, 3)
    if keras.config.image_data_format() == "channels_first":
        shape = (3, image_size, image_size)
    return builder(input_shape=shape, classes=classes, **options)


def _synchronize_batch_norm(model: keras.Model) -> int:
    count = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True
            count += 1
    return count


def _prepare_for_multi_worker(model: keras.Model, strategy: tf.distribute.Strategy, dataset: tf.data.Dataset) -> None:
    """Work around keras-team/keras#20585 (Keras 3 `fit` under MultiWorkerMirroredStrategy):

    - before `fit` and `evaluate` Keras averages one distributed batch across replicas to build the metrics and
      the loss symbolically, and that reduction fails: build them here from a local batch and skip that step;
    - each step averages its logs over the replicas along axis 0, which scalars lack: the steps return them as
      vectors of one value (the average is then a scalar again). The epoch's logs are read from the metrics,
      whose variables are summed over all workers.
    """
    batch = next(iter(dataset.take(1)))
    with strategy.scope():
        model._symbolic_build(data_batch=batch)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None

    def with_vector_logs(step):
        def wrapped(data):
            return tf.nest.map_structure(lambda value: tf.reshape(value, [-1]), step(data))

        return wrapped

    model.train_step = with_vector_logs(model.train_step)
    model.test_step = with_vector_logs(model.test_step)


def _float32_copy(trained: keras.Model, build: Callable[[], keras.Model], *, loss, jit: bool) -> keras.Model:
    """The same network in float32, with the trained weights, compiled with the same loss and metrics (and a
    fresh optimizer of the same configuration)."""
    previous = keras.config.dtype_policy()
    try:
        keras.config.set_dtype_policy("float32")
        copy = build()
    finally:
        keras.config.set_dtype_policy(previous)
    if hasattr(trained, "aux_loss_weight"):
        copy.aux_loss_weight = trained.aux_loss_weight
    copy.set_weights(trained.get_weights())
    optimizer = getattr(trained.optimizer, "inner_optimizer", trained.optimizer)
    copy.compile(
        optimizer=type(optimizer).from_config(optimizer.get_config()), loss=loss, metrics=["accuracy"], jit_compile=jit
    )
    return copy


def check_run_dir(output_dir: str, config: dict) -> dict | None:
    """The `run.json` already in `output_dir`, after checking it describes the same run as `config`; None when
    the directory holds no run. A different run is a `ValueError` and nothing is written."""
    path = os.path.join(output_dir, "run.json")
    if not os.path.exists(path):
        if os.path.isdir(output_dir) and os.listdir(output_dir):
            raise ValueError(
                f"`output_dir` {output_dir!r} is not empty and holds no run.json: it is not a training run. "
                "Choose another directory. Nothing was written."
            )
        return None
    import json

    with open(path, encoding="utf-8") as f:
        previous = json.load(f)
    current = json.loads(json.dumps(config))  # tuples become lists, as in the file
    differences = [
        f"{key}: {previous.get(key)!r} there, {current.get(key)!r} now"
        for key in IDENTITY
        if previous.get(key) != current.get(key)
    ]
    if differences:
        raise ValueError(
            f"`output_dir` {output_dir!r} holds a run with another configuration ({'; '.join(differences)}). "
            "Use another --output-dir (or delete that one) to start a new run. Nothing was written."
        )
    return previous


def export_model(
    model: keras.Model,
    export_dir: str,
    *,
    labels: list[str],
    preprocessing: Preprocessing,
    metrics: dict,
    info: dict | None = None,
) -> str:
    """Export the trained model to `export_dir` with `keras_convnets.export.export_bundle` (SavedModel, TFLite and
    `.keras`, the preprocessing in the graph, each checked against Keras, `labels.txt`, `model_card.json`),
    replacing what is there only once everything is written and checked."""
    from keras_convnets.export import Run, export_bundle

    run = Run(metrics.get("model", model.name), model, preprocessing, list(labels), dict(metrics), dict(info or {}))
    export_bundle(run, export_dir, overwrite=True)
    return os.fspath(export_dir)


# ----------------------------------------------------------------------------------------------- train


def train(
    model: str | Callable[..., keras.Model] = "resnet20",
    dataset: str | data_lib.ImageData = "digits",
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    recipe: str | recipes.Recipe | None = None,
    strategy: str | tf.distribute.Strategy = "auto",
    mixed_precision: str = "auto",
    jit_compile: Any = "auto",
    output_dir: str | os.PathLike | None = None,
    export_dir: str | os.PathLike | None = None,
    seed: int | None = 0,
    deterministic: bool = False,
    data_dir: str | os.PathLike | None = None,
    sync_bn: bool = False,
    steps_per_epoch: int | None = None,
    image_size: int | None = None,
    model_options: dict | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
    verbose: Any = "auto",
    print_fn: Callable[[str], None] | None = print,
) -> TrainResult:
    """Train `model` (a registered name, or a builder taking `input_shape` and `classes`) on `dataset` (see
    `keras_convnets.data.load_dataset`) with `recipe` (default: the model's paper's) and evaluate it on the test
    split.

    Defaults: `batch_size` is the dataset's suggestion (digits: 64) or the recipe's; `epochs` the dataset's
    suggestion (digits: 15) or the recipe's length; `image_size` the dataset's for CIFAR-recipe models, else the
    recipe's (224, or 299 for Inception v3). `batch_size` is global: it is split over the replicas.
    `mixed_precision` and `jit_compile` take "auto" (see `resolve_mixed_precision`, `resolve_jit_compile`).
    `output_dir` makes the run resumable and writes the run directory; `export_dir` also exports the model.
    """
    started = time.perf_counter()
    say = print_fn or (lambda *_: None)
    name = _model_name(model)
    model_options = dict(model_options or {})
    for argument, value in (
        ("epochs", epochs),
        ("batch_size", batch_size),
        ("steps_per_epoch", steps_per_epoch),
        ("image_size", image_size),
    ):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"`{argument}` must be a positive integer. Received: {argument}={value!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"`seed` must be a non-negative integer or None. Received: seed={seed!r}")
    precision = resolve_mixed_precision(mixed_precision)
    jit = resolve_jit_compile(jit_compile)
    if isinstance(strategy, str):
        strategy = distribute.get_strategy(strategy)
    chief = distribute.is_chief(strategy)
    if jit and isinstance(strategy, tf.distribute.MirroredStrategy) and not tf.config.list_physical_devices("GPU"):
        raise ValueError(
            "`jit_compile=True` fails under MirroredStrategy on CPU devices. Use jit_compile='auto' or False. "
            "Received: jit_compile=True"
        )
    if seed is not None:
        keras.utils.set_random_seed(seed)
    if deterministic:
        if seed is None:
            raise ValueError("`deterministic=True` needs a `seed`. Received: seed=None")
        tf.config.experimental.enable_op_determinism()

    data = dataset if isinstance(dataset, data_lib.ImageData) else data_lib.load_dataset(dataset, data_dir=data_dir)
    recipe = recipes.get_recipe(recipe) if recipe is not None else recipes.default_recipe(name, data.image_size)
    if image_size is None:
        image_size = data.image_size if recipe.name == "cifar" and data.image_size else RECIPE_IMAGE_SIZE[recipe.name]
    if batch_size is None:
        batch_size = data.suggested_batch_size or recipe.batch_size
    distribute.check_global_batch(batch_size, strategy)
    steps = steps_per_epoch or data_lib.steps_per_epoch_for(data.num_train, batch_size)
    if epochs is None:
        epochs = data.suggested_epochs or recipes.default_epochs(recipe, steps, batch_size)

    config = {
        "model": name,
        "dataset": data.name,
        "dataset_source": os.fspath(dataset) if isinstance(dataset, (str, os.PathLike)) else None,
        "num_classes": data.num_classes,
        "image_size": image_size,
        "recipe": recipe.to_dict(),
        "batch_size": batch_size,
        "epochs": epochs,
        "steps_per_epoch": steps,
        "seed": seed,
        "model_options": model_options,
        "mixed_precision": precision,
        "jit_compile": jit,
        "strategy": distribute.strategy_name(strategy),
        "replicas": strategy.num_replicas_in_sync,
        "sync_bn": sync_bn,
        "train_examples": data.num_train,
        "test_examples": data.num_test,
    }
    output_dir = None if output_dir is None else os.path.normpath(os.fspath(output_dir))
    checkpoint_dir = state = None
    if output_dir is not None:
        check_run_dir(output_dir, config)
        checkpoint_dir = os.path.join(output_dir, "checkpoints")
        if chief:
            run_callbacks.clean_partial_checkpoints(checkpoint_dir)
        latest = run_callbacks.latest_checkpoint(checkpoint_dir)
        state = run_callbacks.read_checkpoint_state(latest) if latest else None

    say(
        f"Training {name} on {data.name} ({data.num_train} train / {data.num_test} test images, {data.num_classes} "
        f"classes, {image_size}x{image_size}) with the {recipe.name!r} recipe ({recipe.source}): {epochs} epochs of "
        f"{steps} iterations, global batch {batch_size} over {strategy.num_replicas_in_sync} replica(s) "
        f"({distribute.strategy_name(strategy)}), precision {precision}, XLA {'on' if jit else 'off'}."
    )

    preprocessing_path = os.path.join(output_dir, "preprocessing.json") if output_dir else None
    if preprocessing_path and os.path.exists(preprocessing_path):
        preprocessing = Preprocessing.load(preprocessing_path)
    else:
        preprocessing = data_lib.compute_preprocessing(
            recipe.preprocessing, data, image_size=image_size, augmentation=recipe.augmentation
        )
    if output_dir is not None and chief:
        os.makedirs(checkpoint_dir, exist_ok=True)
        run_callbacks.write_json_atomic(os.path.join(output_dir, "run.json"), config)
        if not os.path.exists(preprocessing_path):
            preprocessing.save(preprocessing_path)
        run_callbacks.write_text_atomic(
            os.path.join(output_dir, "labels.txt"), "".join(f"{label}\n" for label in data.labels)
        )

    previous_policy = keras.config.dtype_policy()
    try:
        keras.config.set_dtype_policy(precision)
        with strategy.scope():
            net = _build(model, image_size=image_size, classes=data.num_classes, options=model_options)
            if sync_bn:
                _synchronize_batch_norm(net)
            if hasattr(net, "aux_loss_weight") and recipe.aux_loss_weight:
                net.aux_loss_weight = recipe.aux_loss_weight
            learning_rate = recipes.learning_rate_schedule(
                recipe, batch_size=batch_size, steps_per_epoch=steps, epochs=epochs, model_name=name
            )
            loss = recipes.make_loss(recipe)
            net.compile(
                optimizer=recipes.make_optimizer(recipe, learning_rate),
                loss=loss,
                metrics=["accuracy"],
                jit_compile=jit,
            )
            initial_epoch, history = 0, []
            if state is not None:
                state = run_callbacks.restore_checkpoint(net, latest)
                initial_epoch, history = int(state["epoch"]), list(state["history"])
                say(f"Resuming from {latest} (epoch {initial_epoch} of {epochs}).")
    finally:
        keras.config.set_dtype_policy(previous_policy)

    train_ds = data_lib.train_pipeline(
        data,
        batch_size=batch_size,
        image_size=image_size,
        augmentation=recipe.augmentation,
        preprocessing=preprocessing,
        seed=seed or 0,
        epochs=epochs,
        initial_epoch=initial_epoch,
        steps_per_epoch=steps,
    )
    eval_ds = data_lib.eval_pipeline(
        data,
        batch_size=batch_size,
        image_size=image_size,
        augmentation=recipe.augmentation,
        preprocessing=preprocessing,
    )
    recorder = run_callbacks.RunRecorder(
        steps_per_epoch=steps,
        history=history,
        checkpoint_dir=checkpoint_dir if chief else None,
        history_csv=os.path.join(output_dir, "history.csv") if output_dir and chief else None,
        print_fn=print_fn,
        epochs=epochs,
    )
    fit_callbacks = [recorder]
    if recipe.schedule == "plateau":
        fit_callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_accuracy", mode="max", factor=recipe.decay_factor, patience=recipe.plateau_patience
            )
        )
    if output_dir and chief:
        if _tensorboard_available():
            fit_callbacks.append(keras.callbacks.TensorBoard(log_dir=os.path.join(output_dir, "logs")))
        else:
            say("TensorBoard is not installed: no logs/ (pip install tensorboard).")
    fit_callbacks += list(callbacks or [])
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 0  # progress bars in a terminal; the epoch lines everywhere
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        _prepare_for_multi_worker(net, strategy, eval_ds)
    if initial_epoch < epochs:
        net.fit(
            train_ds,
            epochs=epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps,
            validation_data=eval_ds,
            callbacks=fit_callbacks,
            verbose=verbose,
            shuffle=False,  # the pipeline shuffles, reproducibly
        )
    if precision != "float32":  # the final model computes in float32: it loads, evaluates and exports anywhere
        with strategy.scope():
            net = _float32_copy(
                net,
                lambda: _build(model, image_size=image_size, classes=data.num_classes, options=model_options),
                loss=loss,
                jit=jit,
            )
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            _prepare_for_multi_worker(net, strategy, eval_ds)
    scores = net.evaluate(eval_ds, verbose=0, return_dict=True)
    history = recorder.history
    metrics = {
        "model": name,
        "dataset": data.name,
        "test_accuracy": float(scores["accuracy"]),
        "test_loss": float(scores["loss"]),
        "test_error": 1.0 - float(scores["accuracy"]),
        "epochs": epochs,
        "iterations": epochs * steps,
        "batch_size": batch_size,
        "recipe": recipe.name,
        "image_size": image_size,
        "num_classes": data.num_classes,
        "test_examples": data.num_test,
        "train_examples": data.num_train,
        "mixed_precision": precision,
        "strategy": distribute.strategy_name(strategy),
        "replicas": strategy.num_replicas_in_sync,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if output_dir and chief:
        tmp = os.path.join(output_dir, f".model.keras.tmp-{os.getpid()}.keras")
        net.save(tmp)
        os.replace(tmp, os.path.join(output_dir, "model.keras"))
        run_callbacks.write_history_csv(os.path.join(output_dir, "history.csv"), history)
        if history:
            run_callbacks.plot_curves(history, os.path.join(output_dir, "curves.png"), title=f"{name} on {data.name}")
        run_callbacks.write_json_atomic(os.path.join(output_dir, "metrics.json"), metrics)
    if export_dir is not None and chief:
        export_dir = export_model(
            net, os.fspath(export_dir), labels=data.labels, preprocessing=preprocessing, metrics=metrics, info=config
        )
    say(
        f"Test accuracy {100 * metrics['test_accuracy']:.2f}% (loss {metrics['test_loss']:.4f}) on {data.num_test} "
        f"images after {epochs} epochs, {metrics['seconds']:.0f} s."
        + (f" Run: {output_dir}." if output_dir else "")
        + (f" Exported: {export_dir}." if export_dir else "")
    )
    return TrainResult(
        model=net,
        metrics=metrics,
        history=history,
        labels=list(data.labels),
        preprocessing=preprocessing,
        output_dir=output_dir,
        export_dir=None if export_dir is None else os.fspath(export_dir),
        config=config,
    )
