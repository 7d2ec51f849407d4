"""The model phase of `train`: build the network inside the strategy's scope under the run's precision policy,
compile it with the recipe's optimizer, schedule and loss, and (`resume`) restore the checkpoint to resume from.
Also the XLA fallback (`fall_back_from_xla`), the float32 copy a mixed-precision run ends with, and the Keras 3
multi-worker workaround."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

from keras_convnets.models.registry import get_builder
from keras_convnets.trainer import recipes, run_dir
from keras_convnets.trainer.config import TrainConfig
from keras_convnets.utils.io import write_json_atomic

__all__ = [
    "Compiled",
    "build_and_compile",
    "build_model",
    "fall_back_from_xla",
    "float32_copy",
    "is_xla_failure",
    "prepare_for_multi_worker",
    "resume",
    "xla_failure_reason",
]


@dataclass
class Compiled:
    """The compiled network and where training starts (`initial_epoch`, the epochs already done)."""

    model: keras.Model
    loss: Any
    initial_epoch: int = 0
    history: list[dict] | None = None
    checkpoint: str | None = None
    callback_states: dict | None = None
    jit: bool = False  # whether the model is compiled with XLA (False after `fall_back_from_xla`)
    xla_fallback: str | None = None  # why XLA was turned off, if it was


def build_model(config: TrainConfig) -> keras.Model:
    """The network of the run (under the current dtype policy), with the run's auxiliary loss weight."""
    builder = get_builder(config.model) if isinstance(config.model, str) else config.model
    net = builder(input_shape=config.input_shape, classes=config.data.num_classes, **config.model_options)
    recipes.prepare_model(net, config.recipe)  # what the recipe needs before compile (an L2 term in the loss)
    if config.aux_loss_weight is not None and hasattr(net, "aux_loss_weight"):
        net.aux_loss_weight = config.aux_loss_weight
    return net


def synchronize_batch_norm(model: keras.Model) -> int:
    count = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True
            count += 1
    return count


def build_and_compile(config: TrainConfig) -> Compiled:
    """Build and compile in the strategy's scope under the run's policy (`resume` then restores a checkpoint)."""
    previous_policy = keras.config.dtype_policy()
    try:
        keras.config.set_dtype_policy(config.precision)
        with config.strategy.scope():
            net = build_model(config)
            if config.sync_bn:
                synchronize_batch_norm(net)
            learning_rate = recipes.learning_rate_schedule(
                config.recipe,
                batch_size=config.batch_size,
                steps_per_epoch=config.steps_per_epoch,
                epochs=config.epochs,
                model_name=config.name,
            )
            loss = recipes.make_loss(config.recipe)
            net.compile(
                optimizer=recipes.make_optimizer(config.recipe, learning_rate),
                loss=loss,
                metrics=["accuracy"],
                jit_compile=config.jit,
                steps_per_execution=config.steps_per_execution,
            )
    finally:
        keras.config.set_dtype_policy(previous_policy)
    return Compiled(net, loss, jit=bool(net.jit_compile))


def resume(config: TrainConfig, compiled: Compiled) -> Compiled:
    """Restore the newest checkpoint of the run directory that loads (optimizer state included) into the compiled
    model, in the strategy's scope; `compiled` then says where training starts."""
    if config.output_dir is None:
        return compiled
    with config.strategy.scope():
        restored = run_dir.resume_from_checkpoint(compiled.model, config.checkpoint_dir)
    if restored is not None:
        compiled.checkpoint, state = restored
        compiled.initial_epoch = int(state["epoch"])
        compiled.history = list(state["history"])
        compiled.callback_states = dict(state.get("callbacks") or {})
    return compiled


# What XLA's failures say: "... on XLA_CPU_JIT ...", "Cf. https://www.tensorflow.org/xla/known_issues ...",
# "_XlaCompile", "XlaLaunch"; and keras-team/keras#21366 (LossScaleOptimizer under jit_compile=True and
# MirroredStrategy), a RuntimeError "`merge_call` called while defining a new graph or a tf.function".
_XLA_MARKERS = re.compile(r"\bXLA\b|XLA_|/xla/|_?Xla(Compile|Launch|RunOp)|jit_compile|merge_call", re.IGNORECASE)
_TRACEBACK_LINE = re.compile(r"^\s*(File \"|Detected at node|Graph execution error|<stack traces|\[\[|\d+ root error)")


def _message_lines(error: BaseException) -> list[str]:
    """The lines of an error's message, less TensorFlow's traceback of where the failing op was defined."""
    lines = [line.strip() for line in str(error).splitlines()]
    return [line for line in lines if line and not _TRACEBACK_LINE.match(line)]


def is_xla_failure(error: BaseException) -> bool:
    """Whether `error`, raised by the first step of a model compiled with `jit_compile=True`, is XLA's: an op
    error or a `RuntimeError` whose message names XLA (an op without an XLA kernel, a resource on another
    device, keras-team/keras#21366's `merge_call`). Any other error is the model's or the data's."""
    if not isinstance(error, (tf.errors.OpError, RuntimeError)):
        return False
    return any(_XLA_MARKERS.search(line) for line in _message_lines(error))


def xla_failure_reason(error: BaseException, limit: int = 240) -> str:
    """The line of an XLA failure's message that says what failed: the first that names XLA, else the first (less
    TensorFlow's traceback and its "Cf." link); at most `limit` characters."""
    lines = [line for line in _message_lines(error) if not line.startswith("Cf. ")]  # a link to XLA's known issues
    line = next((line for line in lines if _XLA_MARKERS.search(line)), lines[0] if lines else type(error).__name__)
    line = re.sub(r" \(defined @ [^)]*\)", "", line)  # where Keras created the variable: a path of the machine
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _state(model: keras.Model) -> list[tuple[Any, np.ndarray]]:
    """Every variable a training step changes, with its value: the model's (weights, batch-norm statistics,
    seed generators) and the optimizer's (iterations, slots, loss scale). Metrics are left out: `fit` resets
    them at the start of each epoch."""
    variables, seen = [], set()
    for variable in [*model.variables, *(model.optimizer.variables if model.optimizer else [])]:
        if id(variable) not in seen:
            seen.add(id(variable))
            variables.append(variable)
    return [(variable, np.array(keras.ops.convert_to_numpy(variable))) for variable in variables]


def _restore(state: list[tuple[Any, np.ndarray]], strategy: tf.distribute.Strategy) -> None:
    with strategy.scope():
        for variable, value in state:
            variable.assign(value)


def fall_back_from_xla(
    config: TrainConfig,
    compiled: Compiled,
    dataset: tf.data.Dataset,
    print_fn: Callable[[str], None] | None = print,
) -> str | None:
    """Run the first training step of a model compiled with XLA on the first batch of `dataset`, then put every
    variable back as it was (the optimizer's iterations included), so that `fit` starts from the same state.

    If XLA fails to compile or run that step (`is_xla_failure`), the model is recompiled without XLA: one line
    says why, `compiled.jit` becomes False, `compiled.xla_fallback` holds the reason and so does the run's
    run.json (`"jit_compile": false, "xla_fallback": ...`). Returns the reason, or None when XLA works or is off.
    Other errors are raised. The step function traced here is the one `fit` then runs (no second compilation).
    Under MultiWorkerMirroredStrategy nothing is tried: every worker would have to take part in the step.
    """
    model = compiled.model
    if not model.jit_compile or isinstance(config.strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return None
    with config.strategy.scope():
        if model.optimizer is not None and not model.optimizer.built:  # its slots, so that they are put back too
            model.optimizer.build(model.trainable_variables)
    state = _state(model)
    try:
        with config.strategy.scope():
            first = dataset.take(1) if isinstance(dataset, tf.data.Dataset) else dataset  # or a distributed one
            model.fit(first, epochs=1, steps_per_epoch=1, verbose=0, shuffle=False)
    except Exception as error:
        if not is_xla_failure(error):
            raise
        reason = xla_failure_reason(error)
    else:
        _restore(state, config.strategy)
        return None
    _restore(state, config.strategy)  # a replica may have run its step before another failed
    model.jit_compile = False
    model.train_function = model.test_function = model.predict_function = None
    compiled.jit, compiled.xla_fallback = False, reason
    if print_fn is not None:
        print_fn(f"XLA compilation failed, training without XLA (jit_compile=False): {reason}")
    if config.output_dir is not None and config.chief:
        recorded = run_dir.read_run_json(config.output_dir)
        if recorded is not None:
            recorded.update(jit_compile=False, xla_fallback=reason)
            write_json_atomic(os.path.join(config.output_dir, run_dir.RUN_FILE), recorded)
    return reason


def float32_copy(trained: keras.Model, build: Callable[[], keras.Model], *, loss, jit: bool) -> keras.Model:
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


def prepare_for_multi_worker(model: keras.Model, strategy: tf.distribute.Strategy, dataset: tf.data.Dataset) -> None:
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
