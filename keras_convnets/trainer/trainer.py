"""`train`: a registered model, a dataset and a recipe in, a trained model and its run directory out.

(One module over 450 lines: it is the run's sequence, resume, fit, evaluate, save, export, in the order it
happens; the pieces with a life of their own already live beside it: config, building, callbacks, run_dir.)

    result = keras_convnets.train("resnet20", "digits", epochs=15, output_dir="runs/resnet20-digits")
    print(result.metrics["test_accuracy"])

`train` is five phases that pass one frozen `TrainConfig`: resolve the configuration (`config.resolve_config`:
every argument checked, nothing written), prepare the data and the run directory, build and compile
(`building.build_and_compile`; only then is the run directory written, so a model that does not build leaves
nothing behind; `building.resume` restores a checkpoint), fit, and finish (evaluate the test split once, save,
export).

The model is built and compiled inside the `tf.distribute` strategy's scope. With an `output_dir` the run is
resumable: rerunning the same call after an interruption (a SIGKILL included) continues from the last epoch's
checkpoint, optimizer and learning-rate-schedule state included, and ends where an uninterrupted run ends (bit for
bit with a `seed` and `deterministic=True`). The run directory holds `run.json` (the configuration, with the
architecture: `get_model(architecture["builder"], **architecture["options"])` rebuilds the network),
`preprocessing.json`, `labels.txt`, `checkpoints/`, `logs/` (TensorBoard), `history.csv`, and once training is done
`model.keras`, `curves.png` and, last, `metrics.json`. A directory holding a run of another configuration is refused,
and so is a directory another process trains in (the chief holds the run directory's `.lock` for the whole run, see
`run_dir.lock_run_dir`); the temporary files a killed process left behind there are removed once the lock is held
(`remove_stale_temporaries`). An `export_dir` that the export at the end would refuse (the run directory, the
working directory, a directory that is not a previous export) is refused before anything is written
(`check_export_destination`).

Under MultiWorkerMirroredStrategy the workers agree on the checkpoint they resume from before any of them trains
(`distribute.agree_on_resume`): each one reads the run directory it is given, and a run directory that is not on
storage all workers share (the chief at epoch k, the others at 0) stops every worker with one line. The batch-norm
statistics of the replicas are averaged after each epoch's training steps, before its validation
(`callbacks.AverageReplicaStatistics`), so that all workers hold the same weights.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import keras
import tensorflow as tf

from keras_convnets import data as data_lib
from keras_convnets.data.preprocessing import Preprocessing
from keras_convnets.trainer import callbacks as run_callbacks
from keras_convnets.trainer import distribute, recipes, run_dir
from keras_convnets.trainer.building import (
    Compiled,
    build_and_compile,
    build_model,
    fall_back_from_xla,
    float32_copy,
    prepare_for_multi_worker,
    resume,
)
from keras_convnets.trainer.config import TrainConfig, resolve_config
from keras_convnets.utils.backend import require_tensorflow_backend
from keras_convnets.utils.io import atomic_path, fsync_directory, write_json_atomic

__all__ = ["TrainResult", "check_export_destination", "export_model", "remove_stale_temporaries", "train"]


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


def export_model(
    model: keras.Model,
    export_dir: str,
    *,
    labels: list[str],
    preprocessing: Preprocessing,
    metrics: dict,
    info: dict | None = None,
    output_dir: str | os.PathLike | None = None,
) -> str:
    """Export the trained model to `export_dir` with `keras_convnets.export.export_bundle` (SavedModel, TFLite and
    `.keras`, the preprocessing in the graph, each checked against Keras, `labels.txt`, `model_card.json`),
    replacing what is there only once everything is written and checked (and only a previous export).

    `output_dir` is the run directory the model comes from: the export's `Run` carries it as its `path` (the card's
    `source` is its name, as for `convnets export RUN_DIR`), and a destination that is or contains it is refused."""
    from keras_convnets.export import Run, export_bundle

    name = metrics.get("model", model.name)
    path = None
    if output_dir is not None:
        path = os.path.abspath(os.fspath(output_dir))
        name = os.path.basename(path)
    run = Run(name, model, preprocessing, list(labels), dict(metrics), dict(info or {}), path=path)
    export_bundle(run, export_dir, overwrite=True)
    return os.fspath(export_dir)


def check_export_destination(export_dir: str | os.PathLike, output_dir: str | os.PathLike | None = None) -> None:
    """Refuse, before a run starts, an `export_dir` that its export would refuse at the end: the run directory
    itself or a directory containing it (also when the run directory does not exist yet), the working directory
    (or one containing it), a file, or a non-empty directory that is not a previous export (see
    `keras_convnets.export.staging.check_destination`). A free path or a previous export passes."""
    from keras_convnets.export.staging import check_destination

    export_dir = os.fspath(export_dir)
    if output_dir is not None:
        run, destination = os.path.realpath(os.fspath(output_dir)), os.path.realpath(export_dir)
        if run == destination or run.startswith(destination.rstrip(os.sep) + os.sep):
            what = "is" if run == destination else "contains"
            raise ValueError(
                f"`export_dir` must not be the run directory or contain it: it {what} the run directory "
                f"{os.fspath(output_dir)!r}, and an export replaces its destination. Nothing was written. "
                f"Received: export_dir={export_dir!r}"
            )
    try:
        check_destination(export_dir, True, sources=[output_dir] if output_dir is not None else ())
    except ValueError as error:
        raise ValueError(f"`export_dir` is refused before training: {error} Nothing was written.") from None


# the temporary names of the run directory's files while they are written (`utils.io.atomic_write`: "." + name +
# "." + 8 random characters + ".tmp"; `_save_model`: ".model.keras.tmp-PID.keras")
_STALE_TEMPORARY = re.compile(
    r"^\.(?:(?:run\.json|preprocessing\.json|labels\.txt|history\.csv|metrics\.json|curves\.png)\.[A-Za-z0-9_]{8}\.tmp"
    r"|model\.keras\.tmp-\d+\.keras)$"
)


def remove_stale_temporaries(output_dir: str) -> list[str]:
    """Remove the temporary files that a process killed while writing a run file left in `output_dir` (their
    final files are whole: each write is a rename). Called by the process that holds the run directory's lock,
    so no other process is writing them. Returns the names removed."""
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for name in sorted(os.listdir(output_dir)):
            path = os.path.join(output_dir, name)
            if _STALE_TEMPORARY.match(name) and os.path.isfile(path) and not os.path.islink(path):
                os.unlink(path)
                removed.append(name)
    if removed:
        fsync_directory(output_dir)
    return removed


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
    validation_split: float | str = "auto",
    steps_per_execution: int | str = "auto",
    callbacks: list[keras.callbacks.Callback] | None = None,
    verbose: Any = "auto",
    print_fn: Callable[[str], None] | None = print,
) -> TrainResult:
    """Train `model` (a registered name, or a builder taking `input_shape` and `classes`) on `dataset` (see
    `keras_convnets.data.load_dataset`) with `recipe` (default: the model's paper's) and evaluate it on the test
    split.

    Defaults: `batch_size` is the dataset's suggestion (digits: 64) or the recipe's; `epochs` the dataset's
    suggestion (digits: 15) or the recipe's length; `image_size` the dataset's for CIFAR-recipe models, else the
    recipe's (224, or 299 for Inception v3). `batch_size` is global: it is split over the replicas, and must divide
    by their number. `mixed_precision` and `jit_compile` take "auto" (see `resolve_mixed_precision`,
    `resolve_jit_compile`); where XLA fails on the first step, training goes on without it and says why
    (`building.fall_back_from_xla`). `steps_per_execution` (default "auto": 1, see
    `resolve_steps_per_execution`) must divide the steps of an epoch. `output_dir` makes the run resumable and
    writes the run directory; `export_dir` also exports the model.

    `validation_split` (a fraction in [0, 1)) holds out that part of the training set, drawn from `seed`: the
    per-epoch `val_*` numbers and the plateau schedule's decisions are then measured on it, and the test split is
    evaluated once, at the end. `"auto"` holds out 10% for a recipe that decides on a validation signal (the
    "plateau" schedule, which refuses 0) and nothing for the others, whose per-epoch `val_*` numbers are then the
    test split's (the papers' curves of test error), used for no decision.

    An auxiliary-head model keeps the `aux_loss_weight` it is given (in `model_options`, or by a builder function);
    a registered name without one in `model_options` takes the recipe's. `metrics["test_loss"]` is then the main
    head's loss and `metrics["test_total_loss"]` the weighted total.
    """
    require_tensorflow_backend("`train`")
    started = time.perf_counter()
    say = print_fn or (lambda *_: None)
    config = resolve_config(
        model,
        dataset,
        epochs=epochs,
        batch_size=batch_size,
        recipe=recipe,
        strategy=strategy,
        mixed_precision=mixed_precision,
        jit_compile=jit_compile,
        output_dir=output_dir,
        export_dir=export_dir,
        seed=seed,
        deterministic=deterministic,
        data_dir=data_dir,
        sync_bn=sync_bn,
        steps_per_epoch=steps_per_epoch,
        image_size=image_size,
        model_options=model_options,
        validation_split=validation_split,
        steps_per_execution=steps_per_execution,
    )
    if config.export_dir is not None and config.chief:
        check_export_destination(config.export_dir, config.output_dir)  # before anything is written or trained
    with contextlib.ExitStack() as held:
        if config.output_dir is not None and config.chief:  # one process per run directory, for the whole run
            held.enter_context(run_dir.lock_run_dir(config.output_dir))
            remove_stale_temporaries(config.output_dir)
        preprocessing = _prepare_run_dir(config, say)
        compiled = build_and_compile(config)  # a model that does not build at this size fails before any file
        if config.output_dir is not None and config.chief:
            run_dir.write_run_files(config.output_dir, config.run_json(), preprocessing, config.data.labels)
        compiled = _resume(config, compiled)
        if compiled.checkpoint is not None:
            say(f"Resuming from {compiled.checkpoint} (epoch {compiled.initial_epoch} of {config.epochs}).")
        history = _fit(config, compiled, preprocessing, callbacks=callbacks, verbose=verbose, print_fn=print_fn)
        return _finish(config, compiled, preprocessing, history, started=started, say=say)


# ----------------------------------------------------------------------------------------------- phases


def _resume(config: TrainConfig, compiled: Compiled) -> Compiled:
    """`building.resume`, and under MultiWorkerMirroredStrategy the workers' agreement on it
    (`distribute.agree_on_resume`), twice. Before restoring, the workers compare the newest checkpoint each one
    sees (its epoch and a digest of its files): a difference (a run directory that is not on storage they all
    share) stops them all with one line, before any of them loads anything. Then each restores it, and they
    compare the epoch restored and a checksum of the weights. A worker whose checkpoints do not load still takes
    part in the exchange (the others would wait for it), then raises its error."""
    if distribute.worker_count(config.strategy) == 1:
        return resume(config, compiled)
    optimizer = compiled.model.optimizer
    if optimizer is not None and not optimizer.built:  # restoring builds it: every worker must create (and
        with config.strategy.scope():  # broadcast) the same variables in the same order, checkpoint or not
            optimizer.build(compiled.model.trainable_variables)
    newest = run_callbacks.latest_checkpoint(config.checkpoint_dir)
    distribute.agree_on_resume(
        config.strategy,
        epoch=run_callbacks.checkpoint_epoch(newest) if newest else 0,
        checksum=run_callbacks.checkpoint_digest(newest) if newest else "0" * 64,
        run_directory=config.output_dir,
        restored=False,
    )
    failure = None
    try:
        compiled = resume(config, compiled)
    except Exception as error:  # no checkpoint loads on this worker: it still joins the exchange below (raising
        failure = error  # here would leave the other workers waiting in it), which raises it again on this worker
    try:
        distribute.agree_on_resume(
            config.strategy,
            epoch=None if failure is not None else compiled.initial_epoch,
            # a half-restored model is not read: its checksum would not be compared anyway
            checksum="0" * 64 if failure is not None else distribute.weights_checksum(compiled.model),
            run_directory=config.output_dir,
            failure=failure,
        )
    except Exception as error:
        if failure is not None and error is not failure:  # the exchange itself failed: the restore error first
            raise failure from error
        raise
    return compiled


def _prepare_run_dir(config: TrainConfig, say: Callable[[str], None]) -> Preprocessing:
    """Check the run directory (a run of another configuration is refused before anything is written) and
    measure (or read back) the preprocessing. Writes nothing."""
    data, run_json = config.data, config.run_json()
    if config.output_dir is not None:
        run_dir.check_run_dir(config.output_dir, run_json)
    validation = f" / {data.num_validation} validation" if data.num_validation else ""
    say(
        f"Training {config.name} on {data.name} ({data.num_train} train{validation} / {data.num_test} test images, "
        f"{data.num_classes} classes, {config.image_size}x{config.image_size}) with the {config.recipe.name!r} recipe "
        f"({config.recipe.source}): {config.epochs} epochs of {config.steps_per_epoch} iterations, global batch "
        f"{config.batch_size} over {config.strategy.num_replicas_in_sync} replica(s) "
        f"({distribute.strategy_name(config.strategy)}), precision {config.precision}, "
        f"XLA {'on' if config.jit else 'off'}."
    )
    preprocessing = run_dir.read_preprocessing(config.output_dir)
    if preprocessing is None:
        preprocessing = data_lib.compute_preprocessing(
            config.recipe.preprocessing, data, image_size=config.image_size, augmentation=config.recipe.augmentation
        )
    return preprocessing


def _eval_data(config: TrainConfig, preprocessing: Preprocessing, split: str) -> tf.data.Dataset:
    return data_lib.eval_pipeline(
        config.data,
        batch_size=config.batch_size,
        image_size=config.image_size,
        augmentation=config.recipe.augmentation,
        preprocessing=preprocessing,
        split=split,
    )


def _fit(
    config: TrainConfig,
    compiled: Compiled,
    preprocessing: Preprocessing,
    *,
    callbacks: list[keras.callbacks.Callback] | None,
    verbose: Any,
    print_fn: Callable[[str], None] | None,
) -> list[dict]:
    """Fit from `compiled.initial_epoch` to the end; returns the whole history. The schedule callbacks come
    before the recorder, so that each checkpoint holds the learning rate and schedule state they leave."""
    output_dir, chief = config.output_dir, config.chief
    train_ds = data_lib.distributed_train_pipeline(  # per worker: its shard of the files; per replica: its device
        config.strategy,
        config.data,
        batch_size=config.batch_size,
        image_size=config.image_size,
        augmentation=config.recipe.augmentation,
        preprocessing=preprocessing,
        seed=config.seed or 0,
        epochs=config.epochs,
        initial_epoch=compiled.initial_epoch,
        steps_per_epoch=config.steps_per_epoch,
    )
    validation_ds = _eval_data(config, preprocessing, "validation" if config.data.num_validation else "test")
    stateful = {}
    if config.recipe.schedule == "plateau":
        stateful["plateau"] = run_callbacks.ResumableReduceLROnPlateau(
            monitor="val_accuracy",
            mode="max",
            factor=config.recipe.decay_factor,
            patience=config.recipe.plateau_patience,
            state=(compiled.callback_states or {}).get("plateau"),
        )
    recorder = run_callbacks.RunRecorder(
        steps_per_epoch=config.steps_per_epoch,
        history=compiled.history,
        checkpoint_dir=config.checkpoint_dir if chief else None,
        history_csv=os.path.join(output_dir, "history.csv") if output_dir and chief else None,
        print_fn=print_fn,
        epochs=config.epochs,
        stateful=stateful,
        validation_name=config.validation_name,
    )
    averaging = []
    if config.strategy.num_replicas_in_sync > 1:  # the replicas' batch-norm statistics averaged each epoch
        averaging.append(run_callbacks.AverageReplicaStatistics(config.strategy))
    fit_callbacks = [*stateful.values(), *averaging, recorder]
    if output_dir and chief:
        if importlib.util.find_spec("tensorboard") is not None:
            fit_callbacks.append(keras.callbacks.TensorBoard(log_dir=os.path.join(output_dir, "logs")))
        elif print_fn is not None:
            print_fn("TensorBoard is not installed: no logs/ (pip install tensorboard).")
    fit_callbacks += list(callbacks or [])
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 0  # progress bars in a terminal; the epoch lines everywhere
    if isinstance(config.strategy, tf.distribute.MultiWorkerMirroredStrategy):
        prepare_for_multi_worker(compiled.model, config.strategy, validation_ds)
    if compiled.initial_epoch < config.epochs:
        fall_back_from_xla(config, compiled, train_ds, print_fn)  # XLA off, with one line, if it fails
        with _complete_evaluation_passes():
            compiled.model.fit(
                train_ds,
                epochs=config.epochs,
                initial_epoch=compiled.initial_epoch,
                steps_per_epoch=config.steps_per_epoch,
                validation_data=validation_ds,
                callbacks=fit_callbacks,
                verbose=verbose,
                shuffle=False,  # the pipeline shuffles, reproducibly
            )
    return recorder.history


@contextlib.contextmanager
def _complete_evaluation_passes():
    """Keras warns "Your input ran out of data; interrupting training" at the end of its first pass over an
    evaluation dataset of unknown size (an image folder's, whose unreadable files are dropped: its size is known
    only once read), though that pass is complete and nothing is interrupted. Training cannot run out here: each
    epoch of `train_pipeline` is exactly `steps_per_epoch` batches of an endless permutation. The warning is kept
    out of `fit` and `evaluate`."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Your input ran out of data", category=UserWarning)
        yield


def _save_model(model: keras.Model, path: str) -> None:
    """`model.save(path)`, all or nothing and durable: saved beside, fsynced, renamed, the directory fsynced."""
    with atomic_path(path, suffix=".keras") as tmp:  # ".model.keras.tmp-PID.keras": model.save needs the suffix
        model.save(tmp)


def _finish(
    config: TrainConfig,
    compiled: Compiled,
    preprocessing: Preprocessing,
    history: list[dict],
    *,
    started: float,
    say: Callable[[str], None],
) -> TrainResult:
    """The float32 model, evaluated once on the test split; on the chief, the model, history, curves and
    metrics written (metrics.json last) and the export."""
    data, net, multi_worker = (
        config.data,
        compiled.model,
        isinstance(config.strategy, tf.distribute.MultiWorkerMirroredStrategy),
    )
    test_ds = _eval_data(config, preprocessing, "test")
    if config.precision != "float32":  # the final model computes in float32: it loads, evaluates and exports anywhere
        with config.strategy.scope():
            net = float32_copy(net, lambda: build_model(config), loss=compiled.loss, jit=compiled.jit)
        if multi_worker:
            prepare_for_multi_worker(net, config.strategy, test_ds)
    with _complete_evaluation_passes():
        scores = net.evaluate(test_ds, verbose=0, return_dict=True)
    main_loss = scores.get("predictions_loss", scores["loss"])  # an aux model's main head
    metrics = {
        "model": config.name,
        "dataset": data.name,
        "test_accuracy": float(scores["accuracy"]),
        "test_loss": float(main_loss),
        "test_error": 1.0 - float(scores["accuracy"]),
        "epochs": config.epochs,
        "iterations": config.epochs * config.steps_per_epoch,
        "batch_size": config.batch_size,
        "recipe": config.recipe.name,
        "image_size": config.image_size,
        "num_classes": data.num_classes,
        "test_examples": data.num_test,
        "train_examples": data.num_train,
        "validation_examples": data.num_validation,
        "mixed_precision": config.precision,
        "strategy": distribute.strategy_name(config.strategy),
        "replicas": config.strategy.num_replicas_in_sync,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if "predictions_loss" in scores:
        metrics["test_total_loss"] = float(scores["loss"])
    output_dir, export_dir = config.output_dir, config.export_dir
    if output_dir and config.chief:
        _save_model(net, os.path.join(output_dir, "model.keras"))
        run_callbacks.write_history_csv(os.path.join(output_dir, "history.csv"), history)
        if history:
            run_callbacks.plot_curves(
                history,
                os.path.join(output_dir, "curves.png"),
                title=f"{config.name} on {data.name}",
                validation_name=config.validation_name,
            )
        write_json_atomic(os.path.join(output_dir, "metrics.json"), metrics)
    if export_dir is not None and config.chief:
        export_dir = export_model(
            net,
            export_dir,
            labels=data.labels,
            preprocessing=preprocessing,
            metrics=metrics,
            info=config.run_json(),
            output_dir=output_dir,
        )
    say(
        f"Test accuracy {100 * metrics['test_accuracy']:.2f}% (loss {metrics['test_loss']:.4f}) on {data.num_test} "
        f"images after {config.epochs} epochs, {metrics['seconds']:.0f} s."
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
        export_dir=export_dir,
        config=config.run_json(),
    )
