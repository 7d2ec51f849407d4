"""`train` end to end on a tiny CIFAR ResNet and tiny data: the loss falls, the run directory and the export are
complete, bad input is refused before anything is written. Also the strategy and precision choices and the CLI."""

from __future__ import annotations

import csv
import json
import os
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_convnets
from keras_convnets import trainer
from keras_convnets.data.preprocessing import Preprocessing
from keras_convnets.trainer import distribute, precision  # noqa: F401 (trainer.precision is patched)
from tests.conftest import tiny_digits as tiny

pytestmark = pytest.mark.xdist_group("train")  # one worker builds the shared finished run


def resnet8(**kwargs):
    return keras_convnets.CifarResNet(8, **kwargs)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    lines = []
    result = trainer.train(
        resnet8,
        tiny(),
        epochs=3,
        batch_size=16,
        recipe="cifar",
        mixed_precision="float32",
        output_dir=str(root / "run"),
        export_dir=str(root / "export"),
        seed=1,
        print_fn=lines.append,
    )
    return result, root, lines


def test_the_loss_falls(finished_run):
    result, _, lines = finished_run
    losses = [row["loss"] for row in result.history]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert 0.0 <= result.metrics["test_accuracy"] <= 1.0
    assert result.metrics["test_error"] == pytest.approx(1 - result.metrics["test_accuracy"])
    epoch_lines = [line for line in lines if line.startswith("epoch ")]
    assert len(epoch_lines) == 3 and "train loss" in epoch_lines[0] and "test loss" in epoch_lines[0]
    assert "error" in epoch_lines[0]
    assert lines[-1].startswith("Test accuracy")


def test_the_run_directory_is_complete(finished_run):
    result, root, _ = finished_run
    run = root / "run"
    assert {
        "model.keras",
        "preprocessing.json",
        "labels.txt",
        "metrics.json",
        "history.csv",
        "checkpoints",
        "logs",
        "curves.png",
        "run.json",
    } <= set(os.listdir(run))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["model"] == "resnet8" and metrics["dataset"] == "tiny" and metrics["epochs"] == 3
    assert metrics["test_accuracy"] == pytest.approx(result.metrics["test_accuracy"])
    assert isinstance(metrics["test_loss"], float)
    rows = list(csv.DictReader((run / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3] and [int(r["iterations"]) for r in rows] == [4, 8, 12]
    assert float(rows[0]["error"]) == pytest.approx(1 - float(rows[0]["accuracy"]))
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run / "labels.txt").read_text().split() == [str(i) for i in range(10)]
    assert Preprocessing.load(run / "preprocessing.json").mode == "mean_image"
    assert sorted(os.listdir(run / "checkpoints")) == ["epoch-0002", "epoch-0003"]
    assert os.listdir(run / "logs")
    model = keras.saving.load_model(run / "model.keras", safe_mode=True)
    x = np.zeros((2, 16, 16, 3), "float32")
    np.testing.assert_allclose(model.predict(x, verbose=0), result.model.predict(x, verbose=0), atol=1e-5)


def test_the_export(finished_run):
    result, root, _ = finished_run
    export = root / "export"
    assert {"labels.txt", "model.keras", "model_card.json", "saved_model"} <= set(os.listdir(export))
    card = json.loads((export / "model_card.json").read_text())
    assert card["metrics"]["test_accuracy"] == result.metrics["test_accuracy"]
    assert all(parity["passed"] for parity in card["parity"].values())
    model = keras.saving.load_model(export / "model.keras", safe_mode=True)
    # the export takes raw pixels: the preprocessing is in the graph
    images = np.random.default_rng(0).uniform(0, 255, size=(2, 16, 16, 3)).astype("float32")
    expected = result.model.predict(result.preprocessing(images).numpy(), verbose=0)
    np.testing.assert_allclose(model.predict(images, verbose=0), expected, atol=1e-5)


def test_rerunning_a_finished_run_trains_nothing_more(finished_run):
    result, root, _ = finished_run
    lines = []
    again = trainer.train(
        resnet8,
        tiny(),
        epochs=3,
        batch_size=16,
        recipe="cifar",
        mixed_precision="float32",
        output_dir=str(root / "run"),
        seed=1,
        print_fn=lines.append,
    )
    assert any(line.startswith("Resuming from") for line in lines)
    assert not [line for line in lines if line.startswith("epoch ")]
    assert again.metrics["test_accuracy"] == pytest.approx(result.metrics["test_accuracy"])
    assert len(again.history) == 3


def test_a_run_directory_of_another_model_is_refused(finished_run):
    _, root, _ = finished_run
    run = root / "run"
    before = {name: (run / name).stat().st_mtime_ns for name in os.listdir(run)}

    def resnet14(**kwargs):
        return keras_convnets.CifarResNet(14, **kwargs)

    with pytest.raises(ValueError, match="another configuration.*model: 'resnet8' there, 'resnet14' now"):
        trainer.train(resnet14, tiny(), epochs=3, batch_size=16, recipe="cifar", output_dir=str(run), print_fn=None)
    with pytest.raises(ValueError, match="epochs: 3 there, 4 now"):
        trainer.train(resnet8, tiny(), epochs=4, batch_size=16, recipe="cifar", output_dir=str(run), print_fn=None)
    assert {name: (run / name).stat().st_mtime_ns for name in os.listdir(run)} == before


def test_a_directory_that_is_not_a_run_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a training run"):
        trainer.train(resnet8, tiny(), epochs=1, batch_size=16, output_dir=str(tmp_path), print_fn=None)
    assert os.listdir(tmp_path) == ["notes.txt"]


def test_label_smoothing_and_rmsprop_recipe_trains_without_files():
    result = trainer.train(
        resnet8,
        tiny(n_train=32),
        epochs=1,
        batch_size=16,
        recipe="inception_v3",
        image_size=16,
        mixed_precision="float32",
        print_fn=None,
    )
    assert result.output_dir is None and result.preprocessing.mode == "inception"
    assert isinstance(result.model.optimizer, keras.optimizers.RMSprop)
    assert result.model.loss.label_smoothing == 0.1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"model": "resnet_nope"}, "Unknown model name.*resnet20"),
        ({"epochs": 0}, "`epochs` must be a positive integer"),
        ({"batch_size": 1000}, "must not exceed the number of training examples"),
        ({"mixed_precision": "half"}, "`mixed_precision` must be one of"),
        ({"jit_compile": "yes"}, "`jit_compile` must be"),
        ({"strategy": "gpus"}, "`strategy` must be one of"),
        ({"recipe": "adam"}, "`recipe` must be one of"),
    ],
)
def test_bad_arguments(kwargs, match):
    arguments = {"model": resnet8, "dataset": tiny(), "epochs": 1, "batch_size": 16, "print_fn": None, **kwargs}
    with pytest.raises(ValueError, match=match):
        trainer.train(**arguments)


def test_global_batch_smaller_than_replicas():
    with pytest.raises(ValueError, match="at least the number of replicas \\(4"):
        distribute.check_global_batch(2, types.SimpleNamespace(num_replicas_in_sync=4))
    distribute.check_global_batch(4, types.SimpleNamespace(num_replicas_in_sync=4))


def test_strategy_choices(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert isinstance(distribute.get_strategy("auto"), tf.distribute.OneDeviceStrategy)
    assert isinstance(distribute.get_strategy("one_device"), tf.distribute.OneDeviceStrategy)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        distribute.get_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        distribute.get_strategy("multi_worker")
    with pytest.raises(ValueError, match="found no TPU"):
        distribute.get_strategy("tpu")


def test_mixed_precision_choice(monkeypatch):
    monkeypatch.setattr(trainer.precision, "cpu_flags", lambda: {"avx2", "avx512_bf16"})
    assert trainer.resolve_mixed_precision("auto") == "mixed_bfloat16"
    monkeypatch.setattr(trainer.precision, "cpu_flags", lambda: {"avx2"})
    assert trainer.resolve_mixed_precision("auto") == "float32"
    assert trainer.resolve_mixed_precision("mixed_float16") == "mixed_float16"
    assert trainer.resolve_jit_compile("auto") is False  # no GPU here
    assert trainer.resolve_jit_compile(True) is True


def test_cli_reports_bad_input(tmp_path, capsys):
    from keras_convnets.cli.main import main

    assert main(["train", "--model", "resnet_nope", "--output-dir", str(tmp_path / "a")]) == 2
    assert "Unknown model name" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "must name a run directory" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "a")


@pytest.mark.slow
@pytest.mark.skipif(
    "googlenet" not in keras_convnets.list_models(), reason="keras_convnets.models.googlenet is not registered"
)
def test_googlenet_trains_with_its_aux_heads():
    def small_googlenet(**kwargs):  # the aux heads need at least 79x79 pixels; thin modules keep it quick
        return keras_convnets.get_model("googlenet", aux_logits=True, reduction_scale=0.25, **kwargs)

    result = trainer.train(
        small_googlenet,
        tiny(n_train=8, n_test=4, size=16),
        epochs=1,
        batch_size=4,
        steps_per_epoch=1,
        recipe="googlenet",
        image_size=80,
        mixed_precision="float32",
        print_fn=None,
    )
    assert {"predictions", "aux1", "aux2"} <= set(result.model.output_names)
    assert result.model.aux_loss_weight == 0.3
    assert np.isfinite(result.history[0]["loss"]) and 0 <= result.metrics["test_accuracy"] <= 1


@pytest.mark.slow
def test_cli_resume_reads_the_run_configuration(tmp_path, capsys):
    from keras_convnets.cli.main import main

    run, export = str(tmp_path / "run"), str(tmp_path / "export")
    first = trainer.train(
        "resnet32",
        "digits",
        epochs=1,
        steps_per_epoch=2,
        batch_size=8,
        seed=3,
        output_dir=run,
        mixed_precision="float32",
        print_fn=None,
    ).metrics
    common = ["--export-dir", export, "--mixed-precision", "float32"]
    assert main(["train", "--resume", run, *common]) == 0  # model, epochs, batch, seed ... come from run.json
    out = capsys.readouterr().out
    assert "Training resnet32 on digits" in out and "Resuming from" in out and "Test accuracy" in out
    again = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert (again["iterations"], again["batch_size"]) == (2, 8)
    assert again["test_loss"] == pytest.approx(first["test_loss"])
    assert os.path.isfile(os.path.join(export, "model_card.json"))
    assert main(["train", "--resume", run, "--model", "resnet20", *common]) == 2
    assert "model: 'resnet32' there, 'resnet20' now" in capsys.readouterr().err
