"""The XLA fallback of `train` (`building.fall_back_from_xla`): when the first step of a model compiled with
`jit_compile=True` fails in XLA, the run goes on without XLA from the state it started from, says why once, and
records it in run.json; any other error is raised as before.

The failures are real ones: a `tf.numpy_function` in the model (no XLA kernel for `PyFuncStateless`), and (slow,
in a fresh process) MirroredStrategy over two logical CPU devices, where XLA cannot reach the second replica's
variables ("Trying to access resource ... located in device CPU:1 from device CPU:0"), with mixed_float16 and its
LossScaleOptimizer as well: keras-team/keras#21366's configuration, as near as a CPU gets to it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_convnets
from keras_convnets import trainer
from keras_convnets.trainer import building
from tests.conftest import tiny_digits


@pytest.fixture(autouse=True)
def _without_op_determinism():
    """Keras compiles nothing with XLA while TensorFlow's op determinism is on (another test may have turned it on
    in this process): off for these tests, as it was after."""
    from tensorflow.python.framework import config as tf_config

    was = tf_config.is_op_determinism_enabled()
    tf_config.disable_op_determinism()
    yield
    (tf_config.enable_op_determinism if was else tf_config.disable_op_determinism)()


FALLBACK = "XLA compilation failed, training without XLA"
EPOCHS, BATCH, TRAIN = 2, 16, 64  # 4 steps an epoch


@keras.saving.register_keras_serializable("test_xla_fallback")
class NumpyIdentity(keras.layers.Layer):
    """The identity, computed by `tf.numpy_function`: a Python op, which XLA cannot compile."""

    def call(self, x):
        y = tf.numpy_function(lambda a: a, [x], x.dtype, stateful=False)
        return tf.reshape(y, tf.shape(x))

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable("test_xla_fallback")
class RefusesToTrain(keras.layers.Layer):
    """Raises while the training step is traced: an error of the model, not of XLA."""

    def call(self, x, training=False):
        if training:
            raise ValueError("this layer refuses to train")
        return x


def resnet8(input_shape, classes):
    return keras_convnets.CifarResNet(8, input_shape=input_shape, classes=classes)


def with_layer(layer_class):
    def builder(input_shape, classes):
        inputs = keras.Input(input_shape)
        net = keras_convnets.CifarResNet(8, input_shape=input_shape, classes=classes)
        return keras.Model(inputs, net(layer_class()(inputs)), name="resnet8")

    builder.__name__ = f"resnet8_{layer_class.__name__.lower()}"
    return builder


def run(builder, jit_compile, tmp_path=None, **kwargs):
    lines = []
    result = trainer.train(
        builder,
        tiny_digits(TRAIN, 32),
        epochs=EPOCHS,
        batch_size=BATCH,
        recipe="cifar",
        mixed_precision="float32",
        jit_compile=jit_compile,
        seed=3,
        output_dir=None if tmp_path is None else str(tmp_path),
        print_fn=lines.append,
        **kwargs,
    )
    return result, lines


def assert_same_weights(a: keras.Model, b: keras.Model):
    assert len(a.weights) == len(b.weights) > 0
    for x, y in zip(a.weights, b.weights):
        np.testing.assert_array_equal(x.numpy(), y.numpy(), err_msg=x.path)


def test_unsupported_op_falls_back_and_trains_as_without_xla(tmp_path):
    builder = with_layer(NumpyIdentity)
    fallen, lines = run(builder, True, tmp_path / "xla")
    reference, reference_lines = run(builder, False)

    said = [line for line in lines if line.startswith(FALLBACK)]
    assert len(said) == 1, lines
    assert "PyFuncStateless" in said[0] and "XLA_CPU_JIT" in said[0]
    assert not any(line.startswith(FALLBACK) for line in reference_lines)
    # no step of the failed attempt is left: as many iterations as a run without XLA, and the same weights bit for
    # bit (deterministic ops, same seed, same batches)
    assert int(fallen.model.optimizer.iterations.numpy()) == EPOCHS * TRAIN // BATCH == 8
    assert_same_weights(fallen.model, reference.model)
    assert [row["loss"] for row in fallen.history] == [row["loss"] for row in reference.history]
    recorded = json.loads((tmp_path / "xla" / "run.json").read_text())
    assert recorded["jit_compile"] is False and "PyFuncStateless" in recorded["xla_fallback"]
    assert said[0] == f"{FALLBACK} (jit_compile=False): {recorded['xla_fallback']}"
    assert fallen.model.jit_compile is False


def test_resumed_fallback_run_ends_as_an_uninterrupted_run_without_xla(tmp_path):
    class Interrupt(Exception):
        pass

    class StopAfterFirstEpoch(keras.callbacks.Callback):  # runs after the checkpoint of the epoch is written
        def on_epoch_end(self, epoch, logs=None):
            raise Interrupt

    builder = with_layer(NumpyIdentity)
    with pytest.raises(Interrupt):
        run(builder, True, tmp_path, callbacks=[StopAfterFirstEpoch()])
    resumed, lines = run(builder, True, tmp_path)
    reference, _ = run(builder, False)
    assert any(line.startswith("Resuming from") for line in lines)
    assert sum(line.startswith(FALLBACK) for line in lines) == 1
    assert int(resumed.model.optimizer.iterations.numpy()) == 8
    assert_same_weights(resumed.model, reference.model)


def test_a_first_step_that_compiles_leaves_no_trace(monkeypatch):
    """XLA works here (one CPU device): the tried step is undone, so the run equals one that never tried it."""
    tried = []
    probe = building.fall_back_from_xla

    def counting(*args, **kwargs):
        tried.append(probe(*args, **kwargs))
        return tried[-1]

    monkeypatch.setattr(trainer.trainer, "fall_back_from_xla", counting)
    with_probe, lines = run(resnet8, True)
    assert tried == [None] and not any(line.startswith(FALLBACK) for line in lines)
    monkeypatch.setattr(trainer.trainer, "fall_back_from_xla", lambda *args, **kwargs: None)
    without_probe, _ = run(resnet8, True)
    assert with_probe.model.jit_compile is True
    assert int(with_probe.model.optimizer.iterations.numpy()) == int(without_probe.model.optimizer.iterations) == 8
    assert_same_weights(with_probe.model, without_probe.model)


def test_an_error_that_is_not_xla_is_raised():
    lines = []
    with pytest.raises(ValueError, match="this layer refuses to train"):
        trainer.train(
            with_layer(RefusesToTrain),
            tiny_digits(TRAIN, 32),
            epochs=1,
            batch_size=BATCH,
            mixed_precision="float32",
            jit_compile=True,
            print_fn=lines.append,
        )
    assert not any(line.startswith(FALLBACK) for line in lines)


def test_xla_and_deterministic_ops(monkeypatch):
    """Keras compiles nothing with XLA under deterministic ops (it warns and goes on): asking for both is refused,
    and "auto" (XLA on GPUs) resolves to off."""
    with pytest.raises(ValueError, match="`jit_compile=True` does not go with `deterministic=True`"):
        trainer.train(resnet8, tiny_digits(TRAIN, 32), epochs=1, jit_compile=True, seed=0, deterministic=True)
    monkeypatch.setattr(trainer.config, "resolve_jit_compile", lambda choice: True)  # as on a GPU
    kwargs = dict(epochs=1, batch_size=BATCH, recipe=None, strategy="one_device", mixed_precision="float32")
    settings = dict(output_dir=None, export_dir=None, seed=0, data_dir=None, sync_bn=False, steps_per_epoch=None)
    settings.update(image_size=None, model_options=None, validation_split="auto")
    deterministic = trainer.resolve_config(
        resnet8, tiny_digits(TRAIN, 32), jit_compile="auto", deterministic=True, **kwargs, **settings
    )
    assert deterministic.jit is False and deterministic.run_json()["jit_compile"] is False
    assert trainer.resolve_config(
        resnet8, tiny_digits(TRAIN, 32), jit_compile="auto", deterministic=False, **kwargs, **settings
    ).jit


def test_which_errors_are_xla_failures():
    merge_call = RuntimeError(  # keras-team/keras#21366, LossScaleOptimizer under jit_compile and MirroredStrategy
        "`merge_call` called while defining a new graph or a tf.function. This can often happen if the function "
        "`fn` passed to `strategy.run()` contains a nested `@tf.function`"
    )
    device = tf.errors.InvalidArgumentError(
        None,
        None,
        "Graph execution error:\n\nDetected at node StatefulPartitionedCall defined at (most recent call last):\n"
        '  File "train.py", line 3, in <module>\n\nTrying to access resource conv/kernel/replica_1/3 (defined @ '
        "core.py:43) located in device CPU:1 from device CPU:0\n Cf. https://www.tensorflow.org/xla/known_issues",
    )
    assert building.is_xla_failure(merge_call) and building.is_xla_failure(device)
    assert building.xla_failure_reason(device) == (
        "Trying to access resource conv/kernel/replica_1/3 located in device CPU:1 from device CPU:0"
    )
    assert building.xla_failure_reason(merge_call).startswith("`merge_call` called while defining a new graph")
    assert not building.is_xla_failure(ValueError("XLA"))  # not an op or runtime error: the caller's
    assert not building.is_xla_failure(tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor"))
    data = 'File "/home/xla/train.py", line 1\nlabels must be < 10'  # "xla" in a traceback line only
    assert not building.is_xla_failure(tf.errors.InvalidArgumentError(None, None, data))
    assert len(building.xla_failure_reason(RuntimeError("XLA " + "x" * 500))) == 240


MIRRORED = textwrap.dedent(
    """
    import json, sys
    root, precision, jit, weights = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4]
    sys.path.insert(0, root)
    from keras_convnets.trainer import distribute
    distribute.configure_cpu_devices(2)
    import numpy as np
    import keras_convnets
    from keras_convnets import trainer
    from tests.conftest import tiny_digits

    def resnet8(input_shape, classes):
        return keras_convnets.CifarResNet(8, input_shape=input_shape, classes=classes)

    lines = []
    result = trainer.train(resnet8, tiny_digits(64, 32), epochs=1, batch_size=16, recipe="cifar", strategy="mirrored",
                           mixed_precision=precision, jit_compile=jit, seed=3, print_fn=lines.append)
    np.savez(weights, *[w.numpy() for w in result.model.weights])
    said = [line for line in lines if line.startswith("XLA compilation failed")]
    print("RESULT " + json.dumps({"replicas": result.metrics["replicas"], "said": said}))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["float32", "mixed_float16"])
def test_mirrored_over_two_cpu_devices_falls_back(tmp_path, precision):
    """Each run in a process of its own: the logical CPU devices are set before TensorFlow starts. Under
    mixed_float16 Keras wraps the optimizer in a LossScaleOptimizer (keras-team/keras#21366's configuration)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    reports = {}
    for jit in ("1", "0"):
        done = subprocess.run(
            [sys.executable, "-c", MIRRORED, root, precision, jit, str(tmp_path / f"{jit}.npz")],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        reports[jit] = json.loads(done.stdout.split("RESULT ", 1)[1])
    assert reports["1"]["replicas"] == reports["0"]["replicas"] == 2
    said = reports["1"]["said"]
    assert len(said) == 1 and "Trying to access resource" in said[0] and "from device" in said[0], said
    assert reports["0"]["said"] == []
    fallen, reference = np.load(tmp_path / "1.npz"), np.load(tmp_path / "0.npz")
    assert len(fallen.files) == len(reference.files) > 0
    for name in fallen.files:  # the same weights as the run without XLA
        np.testing.assert_array_equal(fallen[name], reference[name], err_msg=name)
