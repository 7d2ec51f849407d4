"""keras-tuner searches over bottleneck widths (issue 6): spaces, budget, resume, aux objective, results."""

from __future__ import annotations

import json
import os

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

import keras_convnets
from keras_convnets import tuning
from keras_convnets.data import ImageData, holdout_validation
from keras_convnets.data.preprocessing import Preprocessing
from keras_convnets.models import googlenet, resnet
from keras_convnets.trainer import recipes

# A bottleneck ResNet small enough to train in a test: CIFAR stem, one block per stage, paper widths 16/32/64.
TINY = resnet.ResNetSpec("bottleneck", (1, 1, 1), (16, 32, 64), "cifar", 32, 10)
SIZE, CLASSES = 16, 4
# The CIFAR recipe (crop and flip, per-pixel mean, SGD with momentum, step schedule) at a rate that learns in
# 32 iterations of 16 images.
RECIPE = recipes.with_overrides(recipes.RECIPES["cifar"], learning_rate=0.05, batch_size=16)


def quadrants(n_train: int = 64, n_test: int = 32, seed: int = 0) -> ImageData:
    """A learnable task: the class is the bright quadrant of a noisy image."""
    rng = np.random.RandomState(seed)

    def make(n):
        labels = rng.randint(0, CLASSES, n).astype("int32")
        images = rng.randint(0, 60, (n, SIZE, SIZE, 3)).astype("uint8")
        half = SIZE // 2
        for image, label in zip(images, labels):
            row, col = divmod(int(label), 2)
            image[row * half : (row + 1) * half, col * half : (col + 1) * half] += 180
        return images, labels

    (x_train, y_train), (x_test, y_test) = make(n_train), make(n_test)
    return ImageData(
        name="quadrants",
        train=tf.data.Dataset.from_tensor_slices((x_train, y_train)),
        test=tf.data.Dataset.from_tensor_slices((x_test, y_test)),
        num_train=n_train,
        num_test=n_test,
        labels=["top-left", "top-right", "bottom-left", "bottom-right"],
        image_size=SIZE,
        horizontal_flip=False,
        suggested_batch_size=16,
        train_arrays=(x_train, y_train),
    )


def tiny_resnet(**kwargs) -> tuning.ResNetHyperModel:
    kwargs.setdefault("recipe", RECIPE)
    return tuning.ResNetHyperModel(TINY, input_shape=(SIZE, SIZE, 3), classes=CLASSES, **kwargs)


def block_widths(model: keras.Model, stages=("conv2", "conv3", "conv4")) -> dict[str, int]:
    widths = {}
    for stage in stages:
        first = model.get_layer(f"{stage}_block1_1_conv").filters
        assert model.get_layer(f"{stage}_block1_2_conv").filters == first
        widths[f"{stage}_width"] = first
    return widths


@pytest.fixture
def fit_log(monkeypatch):
    """Every `BottleneckHyperModel.fit` that reaches `keras.Model.fit`: (hyperparameter values, block widths)."""
    calls = []
    original = keras.Model.fit

    def counting_fit(model, *args, **kwargs):
        calls.append(block_widths(model))
        return original(model, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", counting_fit)
    return calls


# ----------------------------------------------------------------------------------------------- spaces


def test_resnet50_defaults_rebuild_the_paper_net():
    hypermodel = tuning.ResNetHyperModel(50)
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    assert hp.values == {"conv2_width": 64, "conv3_width": 128, "conv4_width": 256, "conv5_width": 512}
    assert block_widths(model, ("conv2", "conv3", "conv4", "conv5")) == hp.values
    assert tuning.model_cost(model).params == 25_557_032
    assert model.optimizer is not None and isinstance(model.optimizer, keras.optimizers.SGD)
    # the space: a quarter to all of the paper's width
    assert hypermodel.space().get_config()["space"][0]["config"]["values"] == [16, 32, 48, 64]


@pytest.mark.parametrize("granularity", ["stage", "module"])
def test_googlenet_defaults_rebuild_the_paper_net(granularity):
    hypermodel = tuning.InceptionHyperModel(granularity=granularity, model_options={"norm": "lrn"})
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    assert isinstance(model, keras_convnets_aux_model())
    assert sorted(model.output.keys()) == ["aux1", "aux2", "predictions"]
    assert model.aux_loss_weight == pytest.approx(0.3)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 13_378_280  # with both aux heads
    assert tuning.model_cost(model).params == 6_998_552  # the paper's net, aux heads stripped
    names = set(hp.values)
    if granularity == "stage":
        assert names == {f"inception{s}_{b}_scale" for s in "345" for b in ("3x3_reduce", "5x5_reduce", "pool_proj")}
        assert set(hp.values.values()) == {1.0}
    else:
        assert len(names) == 27
        assert hp.values["inception4a_5x5_reduce"] == 16 and hp.values["inception5b_pool_proj"] == 128


def keras_convnets_aux_model():
    from keras_convnets.models.aux import AuxClassifierModel

    return AuxClassifierModel


def test_chosen_widths_are_the_built_widths():
    hypermodel = tiny_resnet(widths={"conv2": [4, 8], "conv4": 24})
    space = hypermodel.space()
    assert [p.name for p in space.space] == ["conv2_width", "conv3_width", "conv4_width"]
    assert space.space[0].values == [4, 8] and space.space[2].value == 24
    hp = keras_tuner.HyperParameters()
    hp.Fixed("conv3_width", 12)  # the user narrows the space as keras-tuner does
    hp = hypermodel.space(hp)
    hp.values["conv2_width"] = 4
    model = hypermodel.build(hp)
    assert block_widths(model) == {"conv2_width": 4, "conv3_width": 12, "conv4_width": 24}
    # outputs keep the paper's expansion: 4 x 16, 4 x 32, 4 x 64
    assert [model.get_layer(f"conv{s}_block1_3_conv").filters for s in (2, 3, 4)] == [64, 128, 256]

    inception = tuning.InceptionHyperModel(
        input_shape=(32, 32, 3),
        classes=3,
        granularity="module",
        branches=["5x5_reduce", "pool_proj"],
        scales=[0.5, 1],
        model_options={"variant": "torchvision", "aux_logits": False},
    )
    hp = inception.space()
    assert hp.space[0].name == "inception3a_5x5_reduce" and hp.space[0].values == [8, 16]
    hp.values["inception3a_5x5_reduce"] = 8
    hp.values["inception4e_pool_proj"] = 64
    model = inception.build(hp)
    assert model.get_layer("inception3a_5x5_reduce_conv").filters == 8
    assert model.get_layer("inception4e_pool_proj_conv").filters == 64
    assert model.get_layer("inception3a_3x3_reduce_conv").filters == 96  # not searched: the paper's


def test_shortcut_option_is_searched_on_request():
    hypermodel = tiny_resnet(shortcuts=["A", "B"], max_params=1e9)
    hp = hypermodel.space()
    assert hp.values["shortcut"] == "B" and hp.space[-1].values == ["A", "B"]
    hp.values["shortcut"] = "A"
    model = hypermodel.build(hp)
    names = {layer.name for layer in model.layers}
    assert "conv3_block1_0_pad" in names and "conv3_block1_0_conv" not in names  # option A: zero padding
    # the narrowest configurations: every width at its least, once per shortcut option
    options = {values["shortcut"]: cost for values, cost in hypermodel.narrowest()}
    assert sorted(options) == ["A", "B"] and options["A"].params < options["B"].params
    assert hypermodel.check_budget() == options["A"]


# ----------------------------------------------------------------------------------------------- budget


def test_budget_rejects_an_over_budget_trial_without_training_it(tmp_path, fit_log):
    hypermodel = tiny_resnet(widths={"conv2": [4, 16], "conv3": 8, "conv4": 16})
    narrow, wide = (
        tiny_resnet(widths={"conv2": w, "conv3": 8, "conv4": 16}).cost(keras_tuner.HyperParameters()) for w in (4, 16)
    )
    assert narrow.params < wide.params
    hypermodel.max_params = (narrow.params + wide.params) / 2
    result = tuning.search(
        hypermodel,
        quadrants(n_train=80),
        directory=tmp_path / "s",
        tuner="bayesian",
        max_trials=2,
        validation_split=16,  # 64 images left to train on
        print_fn=None,
    )
    rows = {row["values"]["conv2_width"]: row for row in result.rows}
    assert rows[4]["status"] == "COMPLETED" and rows[4]["score"] is not None
    assert rows[16]["status"] == "FAILED" and rows[16]["score"] is None
    assert rows[16]["message"].startswith("Over budget, not trained")
    # both trials record their cost, the rejected one too
    assert (rows[4]["macs"], rows[4]["params"]) == (narrow.macs, narrow.params)
    assert (rows[16]["macs"], rows[16]["params"]) == (wide.macs, wide.params)
    assert fit_log == [{"conv2_width": 4, "conv3_width": 8, "conv4_width": 16}]  # one fit: the one under budget
    assert "OVER BUDGET" in result.table
    assert result.metrics["params"] == narrow.params
    # the trials trained with the recipe's schedule over this search's length (64 images, batch 16, 1 epoch)
    assert (hypermodel.batch_size, hypermodel.epochs, hypermodel.steps_per_epoch) == (16, 1, 4)
    assert isinstance(hypermodel.learning_rate(), keras.optimizers.schedules.LearningRateSchedule)


def test_budget_check_in_fit_raises_a_failed_trial_error(fit_log):
    hypermodel = tiny_resnet(max_macs=1000)
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    x = np.zeros((4, SIZE, SIZE, 3), "float32")
    with pytest.raises(keras_tuner.errors.FailedTrialError, match="max_macs"):
        hypermodel.fit(hp, model, x, np.zeros(4, "int32"), epochs=1, verbose=0)
    assert fit_log == []


def test_nothing_under_budget_is_an_error_before_searching(tmp_path):
    hypermodel = tiny_resnet(max_macs=1e5)
    with pytest.raises(ValueError, match=r"No configuration of the search space fits the budget.*conv2_width=4"):
        tuning.search(hypermodel, quadrants(), directory=tmp_path / "s", print_fn=None)
    assert not os.path.exists(tmp_path / "s" / "tuner")
    # a narrower space the user fixes is what counts
    hp = keras_tuner.HyperParameters()
    hp.Fixed("conv2_width", 16)
    cheapest = tiny_resnet(max_params=1e9).check_budget(hp)
    assert cheapest == tiny_resnet(widths={"conv2": 16, "conv3": 8, "conv4": 16}).cost(keras_tuner.HyperParameters())


# ----------------------------------------------------------------------------------------------- search


def test_model_selection_never_sees_the_test_split(tmp_path, monkeypatch):
    """The trials are validated on images held out of the training set, never on the test split."""
    given = []
    original = keras.Model.fit

    def recording_fit(model, *args, **kwargs):
        given.append(kwargs.get("validation_data"))
        return original(model, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", recording_fit)
    data = quadrants(n_train=80, n_test=32)
    hypermodel = tiny_resnet(widths={"conv2": 4, "conv3": 8, "conv4": 16})
    result = tuning.search(
        hypermodel, data, directory=tmp_path / "s", max_trials=1, validation_split=0.2, export_formats=(), print_fn=None
    )
    assert len(given) == 1 and given[0] is not None
    x_val, y_val = (np.concatenate(parts) for parts in zip(*given[0].as_numpy_iterator()))
    assert len(x_val) == 16 and result.metrics["num_validation"] == 16  # 20% of 80
    # the search trained on the 64 others: 4 full batches of 16
    assert hypermodel.steps_per_epoch == 4
    preprocessing = Preprocessing.load(tmp_path / "s" / "preprocessing.json")
    x_train, y_train = data.train_arrays
    x_test, y_test = (t.numpy() for t in next(iter(data.test.batch(100))))

    def distances(a, b):  # (len(a), len(b)) largest absolute pixel difference
        a, b = np.asarray(a, "float32").reshape(len(a), -1), np.asarray(b, "float32").reshape(len(b), -1)
        return np.abs(a[:, None, :] - b[None, :, :]).max(axis=-1)

    to_train = distances(x_val, preprocessing(x_train))
    to_test = distances(x_val, preprocessing(x_test))
    assert np.all(to_test.min(axis=1) > 50)  # no validation image is a test image
    matches = to_train.argmin(axis=1)
    assert np.all(to_train.min(axis=1) < 1e-3) and len(set(matches)) == 16  # each is a training image
    np.testing.assert_array_equal(y_val, y_train[matches])
    # the same images `holdout_validation` holds out from the seed
    held = holdout_validation(data, 0.2, seed=0)
    np.testing.assert_array_equal(
        np.sort(matches), np.sort(distances(next(iter(held.validation.batch(100)))[0], x_train).argmin(axis=1))
    )
    # the objective the tuner recorded is the accuracy on those images, which the best model reproduces
    predicted = np.argmax(result.best_model.predict(x_val, verbose=0), axis=-1)
    assert result.rows[0]["score"] == pytest.approx(float(np.mean(predicted == y_val)), abs=1e-6)
    # and the test split is evaluated once, for the best model
    predicted = np.argmax(result.best_model.predict(preprocessing(x_test), verbose=0), axis=-1)
    assert result.metrics["test_accuracy"] == pytest.approx(float(np.mean(predicted == y_test)), abs=1e-6)


@pytest.mark.parametrize(
    "validation_split, message",
    [
        (0.0, r"`validation_split` must be greater than 0"),
        (1.0, r"`validation_split` must be less than 1"),
        (80, r"`validation_split` must be at most 79"),
        (0, r"`validation_split` must be at least 1"),
        ("10%", r"`validation_split` must be an integer"),
    ],
)
def test_bad_validation_split_is_refused_before_anything_is_written(tmp_path, validation_split, message):
    with pytest.raises((ValueError, TypeError), match=message):
        tuning.search(
            tiny_resnet(),
            quadrants(n_train=80),
            directory=tmp_path / "s",
            validation_split=validation_split,
            print_fn=None,
        )
    assert not os.path.exists(tmp_path / "s")


@pytest.mark.slow
def test_search_resumes_and_writes_table_plot_and_best_model(tmp_path, fit_log):
    directory = tmp_path / "search"
    data = quadrants(n_train=512)  # 2 epochs of 32 iterations: every width learns it
    first = tuning.search(tiny_resnet(), data, directory=directory, max_trials=2, epochs=2, print_fn=None)
    assert [row["status"] for row in first.rows] == ["COMPLETED", "COMPLETED"]
    with pytest.raises(ValueError, match="already holds a search"):
        tuning.search(tiny_resnet(), data, directory=directory, max_trials=3, epochs=2, resume=False, print_fn=None)
    with pytest.raises(ValueError, match="another configuration"):
        tuning.search(tiny_resnet(), data, directory=directory, max_trials=3, epochs=1, resume=True, print_fn=None)
    result = tuning.search(tiny_resnet(), data, directory=directory, max_trials=3, epochs=2, resume=True, print_fn=None)
    assert len(fit_log) == 3  # two trials, then one more
    assert [row["trial_id"] for row in result.rows][:2] == [row["trial_id"] for row in first.rows]
    assert len(result.rows) == 3 and all(row["status"] == "COMPLETED" for row in result.rows)
    # each trained model had the widths its trial chose
    assert fit_log == [row["values"] for row in result.rows]
    # the search learned the task (4 classes: chance is 0.25)
    assert max(row["score"] for row in result.rows) >= 0.75
    for row in result.rows:
        assert (
            row["macs"]
            == tiny_resnet(widths={f"conv{s}": row["values"][f"conv{s}_width"] for s in (2, 3, 4)})
            .cost(keras_tuner.HyperParameters())
            .macs
        )
    assert "conv2_width" in result.table and "val_accuracy" in result.table
    with open(directory / "pareto.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert set(result.pareto) <= {row["trial_id"] for row in result.rows} and result.pareto
    with open(directory / "trials.csv", encoding="utf-8") as f:
        assert len(f.read().strip().splitlines()) == 4
    best = keras.saving.load_model(directory / "best" / "model.keras", safe_mode=True)
    assert [layer.name for layer in best.layers] == ["images", "preprocessing", "resnet11"]  # raw pixels in
    assert block_widths(best.get_layer("resnet11")) == result.metrics["hyperparameters"]
    assert block_widths(result.best_model) == result.metrics["hyperparameters"]
    with open(directory / "best" / "metrics.json", encoding="utf-8") as f:
        metrics = json.load(f)
    assert metrics["score"] == pytest.approx(max(row["score"] for row in result.rows))
    # the score is the best model's accuracy on the validation split held out of the training set (10%: 51 of
    # 512, drawn from the seed), the test accuracy its accuracy on the test split
    held = holdout_validation(data, 0.1, seed=0)
    assert metrics["num_validation"] == held.num_validation == 51
    preprocessing = Preprocessing.load(directory / "preprocessing.json")
    for split, key in ((held.validation, "score"), (data.test, "test_accuracy")):
        x, y = next(iter(split.batch(1000)))
        predicted = np.argmax(result.best_model.predict(preprocessing(x), verbose=0), axis=-1)
        assert metrics[key] == pytest.approx(float(np.mean(predicted == y.numpy())), abs=1e-6)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")  # keras-tuner's reload of the best
def test_aux_objective_is_the_main_head_accuracy(tmp_path):
    hypermodel = tuning.InceptionHyperModel(
        input_shape=(32, 32, 3),
        classes=CLASSES,
        scales=[0.25, 0.5],
        recipe="cifar",
        model_options={"variant": "torchvision", "norm": "batch"},
    )
    data = quadrants(n_train=48, n_test=32, seed=1)
    x, y = data.train_arrays
    x_val = np.asarray(tf.image.resize(tf.cast(next(iter(data.test.batch(32)))[0], "float32"), (32, 32)))
    y_val = next(iter(data.test.batch(32)))[1].numpy()
    x = np.asarray(tf.image.resize(tf.cast(x, "float32"), (32, 32))) / 255.0
    x_val = x_val / 255.0
    tuner = keras_tuner.Hyperband(
        hypermodel, objective=tuning.OBJECTIVE, max_epochs=1, directory=tmp_path, project_name="aux", seed=0
    )  # a stock keras-tuner tuner
    tuner.search(x, y, validation_data=(x_val, y_val), batch_size=16, verbose=0)
    trial = tuner.oracle.get_best_trials(1)[0]
    model = tuner.get_best_models(1)[0]
    assert sorted(model.output.keys()) == ["aux1", "aux2", "predictions"]
    outputs = model.predict(x_val, verbose=0)
    main, aux = outputs["predictions"], outputs["aux1"]
    accuracy = float(np.mean(np.argmax(main, axis=-1) == y_val))
    assert trial.score == pytest.approx(accuracy, abs=1e-6)
    assert trial.metrics.get_last_value("params") == tuning.model_cost(model).params
    assert aux.shape == main.shape


# ----------------------------------------------------------------------------------------------- helpers, errors


def test_pareto_front():
    points = [(10, 0.5), (20, 0.7), (15, 0.4), (30, 0.7), (5, 0.1), (25, 0.9)]
    assert tuning.pareto_front(points) == [4, 0, 1, 5]


def test_make_tuner_builds_the_stock_tuners(tmp_path):
    hypermodel = tiny_resnet()
    kinds = {
        "random": keras_tuner.RandomSearch,
        "bayesian": keras_tuner.BayesianOptimization,
        "hyperband": keras_tuner.Hyperband,
    }
    for name, kind in kinds.items():
        made = tuning.make_tuner(name, hypermodel, directory=str(tmp_path), project_name=name, max_trials=4)
        assert isinstance(made, kind)
        assert made.oracle.max_trials == 4 and made.oracle.max_consecutive_failed_trials == 5
        assert made.oracle.objective.name == "val_accuracy" and made.oracle.objective.direction == "max"


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: tiny_resnet(widths=[0, 16]), r"`widths` widths must be positive integers. Received: widths=0"),
        (lambda: tiny_resnet(widths={"conv2": -4}), r"`widths` widths must be positive integers"),
        (lambda: tiny_resnet(widths={"conv7": 4}), r"`widths` keys must be stages among conv2, conv3, conv4"),
        (lambda: tiny_resnet(scales=[0.5, 0]), r"`scales` must be a non-empty sequence of positive numbers"),
        (lambda: tiny_resnet(shortcuts=["D"]), r"`shortcuts` must be one of 'A', 'B', 'C'"),
        (lambda: tiny_resnet(max_macs=-1), r"`max_macs` must be a positive number or None"),
        (lambda: tuning.ResNetHyperModel(18), r"`depth` must name a bottleneck ResNet"),
        (lambda: tuning.InceptionHyperModel(granularity="block"), r"`granularity` must be one of 'stage', 'module'"),
        (lambda: tuning.InceptionHyperModel(branches=["1x1"]), r"`branches` must be one of"),
        (
            lambda: tuning.make_tuner("grid", tiny_resnet(), directory="unused"),
            r"`tuner` must be one of 'random', "
            r"'bayesian', 'hyperband'. Received: tuner='grid'",
        ),
        (lambda: tuning.hypermodel_for("resnet20"), r"`model` must be a net with bottlenecks"),
    ],
)
def test_bad_input(build, message):
    with pytest.raises((ValueError, TypeError), match=message):
        build()


def test_googlenet_table_is_checked():
    rows = list(googlenet.INCEPTION_TABLE)
    rows[0] = googlenet.InceptionSpec("3a", 64, 0, 128, 16, 32, 32)
    with pytest.raises(ValueError, match=r"`table` widths must be positive integers. Received: n3x3_reduce=0"):
        googlenet.GoogLeNet(table=rows)
    with pytest.raises(TypeError, match=r"`table` must be 9 InceptionSpec rows"):
        googlenet.GoogLeNet(table=rows[:3])


def test_cli_refuses_bad_input_before_searching(tmp_path, capsys):
    from keras_convnets.cli.main import main

    with pytest.raises(SystemExit):
        main(["tune", "--tuner", "grid"])
    assert "invalid choice: 'grid'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["tune", "--widths", "16,0"])
    assert "comma-separated positive integers" in capsys.readouterr().err
    for bad in ("1.5", "0", "-3", "0.0"):
        with pytest.raises(SystemExit):
            main(["tune", "--validation-split", bad])
        assert "--validation-split: must be a fraction in (0, 1)" in capsys.readouterr().err
    out = tmp_path / "cli"
    assert main(["tune", "--model", "resnet50", "--max-macs", "1e6", "--output-dir", str(out)]) == 2
    assert "No configuration of the search space fits the budget" in capsys.readouterr().err
    assert not os.path.exists(out / "tuner")


def trainable(model: keras.Model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


@pytest.mark.parametrize("model", ["resnet50", "googlenet"])
def test_architecture_rebuilds_the_chosen_network(model):
    """`architecture(hp)` is what the exported card records: `get_model(builder, **options)` is the trial's net."""
    size = {"resnet50": 32, "googlenet": 80}[model]  # GoogLeNet's auxiliary heads need 79x79
    hypermodel = tuning.hypermodel_for(model, input_shape=(size, size, 3), classes=CLASSES, scales=[0.25, 0.5])
    hp = hypermodel.space()
    for entry in hp.space:  # not the default configuration: the narrowest choice of every searched width
        hp.values[entry.name] = min(entry.values)
    architecture = hypermodel.architecture(hp)
    assert architecture["builder"] == model
    assert json.loads(json.dumps(architecture)) == architecture
    rebuilt = keras_convnets.get_model(architecture["builder"], **architecture["options"])
    built = hypermodel.build(hp)
    assert trainable(rebuilt) == trainable(built) < trainable(hypermodel.build(hypermodel.space()))
    assert rebuilt.name == built.name and rebuilt.input_shape == built.input_shape
    assert tiny_resnet().architecture(keras_tuner.HyperParameters()) is None  # a custom spec: no builder


@pytest.mark.slow
def test_cli_search_then_resume(tmp_path, capsys):
    from keras_convnets.cli.main import main

    out = tmp_path / "cli"
    command = [
        "tune",
        "--model",
        "resnet50",
        "--dataset",
        "digits",
        "--image-size",
        "32",
        "--max-trials",
        "1",
        "--epochs",
        "1",
        "--steps-per-epoch",
        "2",
        "--scales",
        "0.25,0.5",
        "--output-dir",
        str(out),
    ]
    assert main(command) == 0
    printed = capsys.readouterr().out
    assert "conv5_width" in printed and "MACs" in printed and "val_accuracy" in printed
    assert os.path.exists(out / "pareto.png") and os.path.exists(out / "best" / "model.keras")
    assert main(command) == 2  # an existing search is left alone without --resume or --overwrite
    assert "already holds a search" in capsys.readouterr().err
    assert main(command + ["--resume"]) == 0  # nothing left to run: the table again, the same best model
    with open(out / "trials.csv", encoding="utf-8") as f:
        assert len(f.read().strip().splitlines()) == 2
    # the card names the builder and options that rebuild the best network
    with open(out / "best" / "model_card.json", encoding="utf-8") as f:
        card = json.load(f)
    assert card["architecture"]["builder"] == "resnet50"
    rebuilt = keras_convnets.get_model(card["architecture"]["builder"], **card["architecture"]["options"])
    best = keras.saving.load_model(out / "best" / "model.keras", safe_mode=True)
    assert trainable(rebuilt) == trainable(best) == card["parameters"]["trainable"]
    assert rebuilt.input_shape == (None, 32, 32, 3)
