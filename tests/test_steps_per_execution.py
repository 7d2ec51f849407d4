"""`steps_per_execution` in `train`: several steps per call of the compiled train function train as one step at a
time does (same batches, same weights), with the epoch boundaries, the plateau schedule, the checkpoints, the
resume and the history of one step at a time; a value that does not divide the epoch is refused before anything
is written."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

import keras_convnets
from keras_convnets import trainer
from keras_convnets.trainer import recipes
from keras_convnets.trainer.precision import resolve_steps_per_execution
from tests.conftest import tiny_digits


def resnet8(input_shape, classes):
    return keras_convnets.CifarResNet(8, input_shape=input_shape, classes=classes)


# the ImageNet recipe lowers the rate when the validation accuracy stops improving; patience 1 makes it act within
# the run. 10% of the 64 images are held out for its decisions: 3 full batches of 16 an epoch.
PLATEAU = recipes.with_overrides(recipes.get_recipe("imagenet"), plateau_patience=1, augmentation="none")
EPOCHS, STEPS = 4, 3


def run(steps_per_execution, output_dir=None, **kwargs):
    return trainer.train(
        resnet8,
        tiny_digits(64, 32),
        epochs=EPOCHS,
        batch_size=16,
        recipe=PLATEAU,
        image_size=16,
        mixed_precision="float32",
        seed=5,
        deterministic=True,
        steps_per_execution=steps_per_execution,
        output_dir=None if output_dir is None else str(output_dir),
        print_fn=None,
        **kwargs,
    )


def test_three_steps_per_execution_train_as_one_at_a_time_across_a_resume(tmp_path):
    class Interrupt(Exception):
        pass

    class StopAfterSecondEpoch(keras.callbacks.Callback):  # after the recorder has written the epoch's checkpoint
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise Interrupt

    one = run(1)
    with pytest.raises(Interrupt):
        run(STEPS, tmp_path, callbacks=[StopAfterSecondEpoch()])
    three = run(STEPS, tmp_path)  # resumes at epoch 2

    assert three.model.steps_per_execution == STEPS
    assert json.loads((tmp_path / "run.json").read_text())["steps_per_execution"] == STEPS
    assert int(three.model.optimizer.iterations.numpy()) == int(one.model.optimizer.iterations.numpy()) == 12
    assert [row["iterations"] for row in three.history] == [3, 6, 9, 12]
    for key in ("accuracy", "val_accuracy", "learning_rate"):
        assert [row[key] for row in three.history] == [row[key] for row in one.history], key
    # the losses agree to the weights' rounding below: bit for bit with oneDNN's kernels, 1.7e-7 relative with
    # Eigen's (CPUs without AVX512-VNNI/BF16 or AMX, where TensorFlow leaves oneDNN off)
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(
            [row[key] for row in three.history], [row[key] for row in one.history], rtol=1e-6, atol=0, err_msg=key
        )
    rates = [row["learning_rate"] for row in one.history]
    assert len(set(rates)) > 1, rates  # the plateau schedule acted within the run (0.1, then 0.01)
    # the weights match to 1 ulp: measured, the largest difference is 1.0e-7 relative (a batch-norm moving variance;
    # the step in a while loop is optimised a little differently)
    for a, b in zip(three.model.weights, one.model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7, err_msg=a.path)


def test_steps_per_execution_is_checked():
    assert resolve_steps_per_execution("auto", 7) == 1
    assert resolve_steps_per_execution(4, 12) == 4
    with pytest.raises(
        ValueError, match=r"must divide `steps_per_epoch` \(4\).*one of 1, 2, 4\. Received: steps_per_execution=3"
    ):
        resolve_steps_per_execution(3, 4)
    with pytest.raises(ValueError, match="`steps_per_execution` must be 'auto' or a positive integer.*Received: .*0"):
        resolve_steps_per_execution(0)
    for wrong in ("4", 2.0, True):
        with pytest.raises(TypeError, match="`steps_per_execution` must be 'auto' or a positive integer"):
            resolve_steps_per_execution(wrong)


def test_an_uneven_steps_per_execution_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match=r"must divide `steps_per_epoch` \(3\)"):
        run(2, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_command_line_flag():
    import argparse

    from keras_convnets.cli import train as cli_train

    parser = argparse.ArgumentParser()
    cli_train.configure(parser)
    assert parser.parse_args([]).steps_per_execution == "auto"
    assert parser.parse_args(["--steps-per-execution", "8"]).steps_per_execution == 8
    for wrong in ("0", "x", "1.5"):
        with pytest.raises(SystemExit):
            parser.parse_args(["--steps-per-execution", wrong])


def test_benchmark_smoke():
    from benchmarks import common, train

    report = train.steps_per_execution_benchmark((1, 2), precisions=("float32",), smoke=True)
    headers, rows = common.parse_markdown_table(report)
    assert headers == [
        "model",
        "batch",
        "precision",
        "steps_per_execution",
        "img/s",
        "vs 1",
        "vs 1 (CPU time)",
        "spread",
    ]
    assert [(row[0], row[1], row[3], row[5]) for row in rows][0] == ("resnet20 (digits, 16px)", "4", "1", "1")
    assert rows[1][3] == "2" and float(rows[1][4].replace(",", "")) > 0
