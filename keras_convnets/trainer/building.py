"""The model phase of `train`: build the network inside the strategy's scope under the run's precision policy,
compile it with the recipe's optimizer, schedule and loss, and (`resume`) restore the checkpoint to resume from.
Also the float32 copy a mixed-precision run ends with, and the Keras 3 multi-worker workaround."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import keras
import tensorflow as tf

from keras_convnets.models.registry import get_builder
from keras_convnets.trainer import recipes, run_dir
from keras_convnets.trainer.config import TrainConfig

__all__ = ["Compiled", "build_and_compile", "build_model", "float32_copy", "prepare_for_multi_worker", "resume"]


@dataclass
class Compiled:
    """The compiled network and where training starts (`initial_epoch`, the epochs already done)."""

    model: keras.Model
    loss: Any
    initial_epoch: int = 0
    history: list[dict] | None = None
    checkpoint: str | None = None
    callback_states: dict | None = None


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
            )
    finally:
        keras.config.set_dtype_policy(previous_policy)
    return Compiled(net, loss)


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
