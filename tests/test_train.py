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
    # the recorded test accuracy is the final model's on the 32 test images, computed here independently
    images, labels = map(np.stack, zip(*tiny().test.as_numpy_iterator()))
    probabilities = result.model.predict(result.preprocessing(images.astype("float32")).numpy(), verbose=0)
    assert result.metrics["test_accuracy"] == pytest.approx(float(np.mean(probabilities.argmax(-1) == labels)))
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
        (
            {"model": "resnet20", "model_options": {"input_shape": (28, 28, 1)}},
            r"`input_shape` is not a builder option of a training run: .*\(image_size, image_size, 3\).*"
            r"Received: model_options=\{'input_shape': \(28, 28, 1\)\}",
        ),
        ({"model": "resnet20", "model_options": {"classes": 3}}, "`classes` is not a builder option"),
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
    assert trainer.resolve_jit_compile(True) is True and trainer.resolve_jit_compile(False) is False
    for bad in (1, 0, 1.0, "on", None):  # 1 == True, but a number is not a choice
        expected = f"`jit_compile` must be 'auto', True or False. Received: jit_compile={bad!r}"
        with pytest.raises(ValueError, match=expected):
            trainer.resolve_jit_compile(bad)


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
    assert np.isfinite(result.history[0]["loss"])
    assert result.metrics["test_total_loss"] > result.metrics["test_loss"] > 0  # main head + 0.3 x (aux1 + aux2)


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


# ----------------------------------------------------------------------------------------------- issue 12, 13, 15


def test_run_json_records_an_architecture_that_rebuilds_the_network(tmp_path):
    run = tmp_path / "run"
    result = trainer.train(
        "resnet20", tiny(), epochs=1, batch_size=16, mixed_precision="float32", output_dir=str(run), print_fn=None
    )
    architecture = json.loads((run / "run.json").read_text())["architecture"]
    assert architecture == {"builder": "resnet20", "options": {"input_shape": [16, 16, 3], "classes": 10}}
    rebuilt = keras_convnets.get_model(architecture["builder"], **architecture["options"])
    final = keras.saving.load_model(run / "model.keras", safe_mode=True)
    assert [layer.name for layer in rebuilt.layers] == [layer.name for layer in final.layers]
    assert [w.shape for w in rebuilt.weights] == [w.shape for w in final.weights]
    rebuilt.load_weights(run / "model.keras")
    x = np.random.default_rng(0).normal(size=(4, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(rebuilt.predict(x, verbose=0), result.model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_run_json_of_an_unregistered_builder_names_no_builder():
    config = resolve()
    assert config.architecture() == {"builder": None, "options": {"input_shape": [16, 16, 3], "classes": 10}}
    assert resolve(model=keras_convnets.ResNet20).builder_name == "resnet20"


RESOLVE = dict(
    model=resnet8,
    dataset=None,
    epochs=1,
    batch_size=16,
    recipe="cifar",
    strategy="one_device",
    mixed_precision="float32",
    jit_compile=False,
    output_dir=None,
    export_dir=None,
    seed=0,
    deterministic=False,
    data_dir=None,
    sync_bn=False,
    steps_per_epoch=None,
    image_size=None,
    model_options=None,
    validation_split="auto",
)


def resolve(**changes):
    """`resolve_config` with the arguments `train` would pass for `RESOLVE` and `changes`."""
    return trainer.resolve_config(**{**RESOLVE, "dataset": tiny(), **changes})


def test_the_configuration_is_frozen():
    config = resolve()
    with pytest.raises(AttributeError):
        config.epochs = 2


def test_plateau_recipe_holds_out_a_validation_split_by_default():
    plateau = resolve(recipe="imagenet", image_size=16)
    assert (plateau.validation_split, plateau.data.num_validation, plateau.data.num_train) == (0.1, 6, 58)
    assert plateau.steps_per_epoch == 58 // 16 and plateau.validation_name == "validation"
    cifar = resolve()
    assert (cifar.validation_split, cifar.data.num_validation, cifar.data.num_train) == (0.0, 0, 64)
    with pytest.raises(ValueError, match="needs a validation split.*validation_split=0"):
        resolve(recipe="imagenet", validation_split=0)
    with pytest.raises(ValueError, match="`validation_split` must be less than 1"):
        resolve(validation_split=1.0)


def test_validation_split_measures_the_epochs_and_the_test_split_is_evaluated_once(tmp_path):
    evaluated = []

    class CountTests(keras.callbacks.Callback):
        def on_test_begin(self, logs=None):
            evaluated.append(1)

    result = trainer.train(
        resnet8,
        tiny(),
        epochs=2,
        batch_size=16,
        recipe="cifar",
        mixed_precision="float32",
        validation_split=0.25,
        callbacks=[CountTests()],
        print_fn=None,
    )
    config = result.config
    assert (config["validation_examples"], config["train_examples"], config["steps_per_epoch"]) == (16, 48, 3)
    # the last epoch's val_* are the final model's on the 16 held-out images, computed here independently
    held_out = keras_convnets.data.holdout_validation(tiny(), 0.25, seed=0)
    images, labels = map(np.stack, zip(*held_out.validation.as_numpy_iterator()))
    probabilities = result.model.predict(result.preprocessing(images.astype("float32")).numpy(), verbose=0)
    assert result.history[-1]["val_accuracy"] == pytest.approx(float(np.mean(probabilities.argmax(-1) == labels)))
    loss = float(np.mean(-np.log(probabilities[np.arange(len(labels)), labels])))
    assert result.history[-1]["val_loss"] == pytest.approx(loss, rel=1e-4)
    assert len(evaluated) == 2  # once per epoch, on the validation split: the test split only after fit
    test_images, test_labels = map(np.stack, zip(*tiny().test.as_numpy_iterator()))
    test_probabilities = result.model.predict(result.preprocessing(test_images.astype("float32")).numpy(), verbose=0)
    test_loss = float(np.mean(-np.log(test_probabilities[np.arange(len(test_labels)), test_labels])))
    assert result.metrics["test_loss"] == pytest.approx(test_loss, rel=1e-4)


def tiny_aux(input_shape, classes, aux_loss_weight=0.25, **options):
    image = keras.Input(input_shape, name="input")
    x = keras.layers.Rescaling(1 / 128, name="scale")(image)  # mean_rgb leaves pixels in [-128, 128]
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    heads = {
        "predictions": keras.layers.Dense(classes, activation="softmax", name="predictions")(x),
        "aux1": keras.layers.Dense(classes, activation="softmax", name="aux1")(x),
        "aux2": keras.layers.Dense(classes, activation="softmax", name="aux2")(x),
    }
    return keras_convnets.AuxClassifierModel(image, heads, name="tiny_aux", aux_loss_weight=aux_loss_weight)


@pytest.mark.parametrize("model_options, weight", [(None, 0.25), ({"aux_loss_weight": 0.5}, 0.5)])
def test_aux_models_keep_their_weight_and_report_the_main_heads_test_loss(model_options, weight):
    result = trainer.train(
        tiny_aux,
        tiny(n_train=32),
        epochs=1,
        batch_size=16,
        recipe="googlenet",  # its aux_loss_weight is 0.3
        image_size=16,
        mixed_precision="float32",
        model_options=model_options,
        print_fn=None,
    )
    assert result.model.aux_loss_weight == weight
    ds = keras_convnets.data.eval_pipeline(
        tiny(n_train=32), batch_size=16, image_size=16, augmentation="inception", preprocessing=result.preprocessing
    )
    outputs, labels = [], []
    for x, y in ds.as_numpy_iterator():
        outputs.append(result.model.predict(x, verbose=0))
        labels.append(y)
    labels = np.concatenate(labels)

    def cross_entropy(head):
        p = np.clip(np.concatenate([o[head] for o in outputs]), 1e-7, 1 - 1e-7)  # as Keras's cross-entropy clips
        return float(np.mean(-np.log(p[np.arange(len(labels)), labels])))

    main = cross_entropy("predictions")
    assert result.metrics["test_loss"] == pytest.approx(main, rel=1e-4)
    total = main + weight * (cross_entropy("aux1") + cross_entropy("aux2"))
    assert result.metrics["test_total_loss"] == pytest.approx(total, rel=1e-4)


def test_a_global_batch_that_does_not_divide_by_the_replicas_is_refused(tmp_path):
    three = types.SimpleNamespace(num_replicas_in_sync=3)
    with pytest.raises(ValueError, match=r"divide by the number of replicas \(3.*Received: batch_size=16"):
        distribute.check_global_batch(16, three)
    distribute.check_global_batch(15, three)
    with pytest.raises(ValueError, match=r"divide by the number of replicas \(3.*Received: batch_size=16"):
        trainer.train(resnet8, tiny(), epochs=1, batch_size=16, strategy=three, output_dir=str(tmp_path / "r"))
    assert not (tmp_path / "r").exists()


def test_run_json_is_written_before_the_checkpoint_directory(tmp_path, monkeypatch):
    from keras_convnets.trainer import run_dir

    seen = []
    write = run_dir.write_json_atomic

    def recording(path, data):
        seen.append(os.path.exists(tmp_path / "run" / "checkpoints"))
        write(path, data)

    monkeypatch.setattr(run_dir, "write_json_atomic", recording)
    config = resolve()
    run_dir.write_run_files(str(tmp_path / "run"), config.run_json(), Preprocessing.none(), ["a"])
    assert seen == [False] and (tmp_path / "run" / "checkpoints").is_dir()


def test_a_truncated_checkpoint_falls_back_to_the_newest_that_loads(finished_run, tmp_path):
    import shutil

    _, root, _ = finished_run
    run = tmp_path / "run"
    shutil.copytree(root / "run", run)
    for name in ("model.keras", "metrics.json"):
        (run / name).unlink()
    weights = run / "checkpoints" / "epoch-0003" / "weights.weights.h5"
    weights.write_bytes(weights.read_bytes()[:1000])  # a power loss before the file was complete
    lines = []
    with pytest.warns(UserWarning, match="epoch-0003.*Resuming from .*epoch-0002"):
        again = trainer.train(
            resnet8,
            tiny(),
            epochs=3,
            batch_size=16,
            recipe="cifar",
            mixed_precision="float32",
            output_dir=str(run),
            seed=1,
            print_fn=lines.append,
        )
    assert any(line.startswith("Resuming from") and "epoch-0002" in line for line in lines)
    assert [line.split(" ")[1] for line in lines if line.startswith("epoch ")] == ["3/3"]
    assert len(again.history) == 3 and (run / "metrics.json").exists()
    for checkpoint in ("epoch-0002", "epoch-0003"):  # the torn one is replaced
        (run / "checkpoints" / checkpoint / "weights.weights.h5").write_bytes(b"garbage")
    (run / "metrics.json").unlink()
    with pytest.raises(ValueError, match="No checkpoint of the run loads"):
        trainer.train(
            resnet8,
            tiny(),
            epochs=3,
            batch_size=16,
            recipe="cifar",
            mixed_precision="float32",
            output_dir=str(run),
            seed=1,
            print_fn=None,
        )


def test_cli_validation_split(tmp_path):
    import argparse

    from keras_convnets.cli import train as cli_train

    parser = argparse.ArgumentParser()
    cli_train.configure(parser)
    assert parser.parse_args(["--validation-split", "0.2"]).validation_split == 0.2
    assert parser.parse_args([]).validation_split is None  # train's "auto"
    with pytest.raises(SystemExit):
        parser.parse_args(["--validation-split", "1"])
    (tmp_path / "run.json").write_text(json.dumps({"model": "resnet20", "validation_split": 0.2}))
    assert cli_train.resume_settings(parser.parse_args(["--resume", str(tmp_path)]))["validation_split"] == 0.2
    (tmp_path / "run.json").write_text(json.dumps({"model": "resnet20"}))  # a run from before the option: none
    assert cli_train.resume_settings(parser.parse_args(["--resume", str(tmp_path)]))["validation_split"] == 0.0


def test_a_run_of_another_recipe_names_only_the_fields_that_differ(tmp_path):
    from keras_convnets.trainer import recipes, run_dir

    config = resolve().run_json()
    run_dir.write_run_files(str(tmp_path), config, Preprocessing.none(), ["a"])
    changed = dict(config, recipe=recipes.with_overrides(recipes.RECIPES["cifar"], learning_rate=0.05).to_dict())
    with pytest.raises(ValueError, match=r"\(recipe.learning_rate: 0.1 there, 0.05 now\)") as error:
        run_dir.check_run_dir(str(tmp_path), changed)
    assert len(str(error.value)) < 300


def test_a_model_that_does_not_build_leaves_no_run_directory(tmp_path):
    def too_small(input_shape, classes):
        raise ValueError(f"`input_shape` is too small. Received: input_shape={input_shape}")

    with pytest.raises(ValueError, match="too small"):
        trainer.train(too_small, tiny(), epochs=1, batch_size=16, output_dir=str(tmp_path / "run"), print_fn=None)
    assert not (tmp_path / "run").exists()  # the corrected command is not refused as another run


def test_auto_xla_stays_off_under_multi_worker(monkeypatch):
    """Under MultiWorkerMirroredStrategy the XLA fallback cannot try a first step, so `jit_compile="auto"` does
    not turn XLA on there even where it would (a GPU, simulated); `jit_compile=True` still does. The default
    strategy stands in for the multi-worker one (a real one configures collectives for the whole process)."""
    from keras_convnets.trainer import config as config_module

    default = tf.distribute.get_strategy()
    monkeypatch.setattr(config_module, "resolve_jit_compile", lambda choice: True)  # as on a GPU
    assert resolve(jit_compile="auto", strategy=default).jit is True
    monkeypatch.setattr(tf.distribute, "MultiWorkerMirroredStrategy", type(default))
    assert resolve(jit_compile="auto", strategy=default).jit is False
    assert resolve(jit_compile=True, strategy=default).jit is True
