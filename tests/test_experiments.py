"""The papers' experiments: each quick path on a tiny budget writes its report, figures and numbers."""

import csv
import json
import math

import pytest

from keras_convnets.experiments import get_experiment, list_experiments, run_experiment
from keras_convnets.experiments.report import Report, new_figure

# Tiny budgets: a few dozen examples, one epoch, eager steps (no graph tracing).
TINY = dict(epochs=1, max_train=64, max_test=16, batch_size=32, points=2, run_eagerly=True)


def _read(path):
    with open(path) as f:
        return f.read()


def test_list_experiments():
    assert list_experiments() == ["degradation", "bottleneck", "lesion", "aux"]
    with pytest.raises(ValueError, match="`experiment` must be one of 'degradation', 'bottleneck', 'lesion', 'aux'"):
        get_experiment("ablation")


def test_report_writer(tmp_path):
    report = Report(tmp_path / "r", "A title", command="convnets experiment x --quick")
    report.text("Some text.")
    report.table(["name", "count", "ratio"], [["a", 1234567, 0.123456], ["b", 2, float("nan")]])
    figure, (axis,) = new_figure(3, 2)
    axis.plot([0, 1], [1, 0])
    report.figure(figure, "line.png", "A line")
    report.json("numbers.json", {"ratio": float("nan"), "values": (1, 2)})
    report.csv("rows.csv", [{"a": 1, "b": 2}, {"a": 3, "c": 4}])
    text = _read(report.write())
    assert text.startswith("# A title\n\n- Command: `convnets experiment x --quick`\n- Date: ")
    assert "- Machine: " in text and "CPU cores" in text
    assert "| a | 1,234,567 | 0.1235 |" in text
    assert "![A line](line.png)" in text
    assert "[numbers.json](numbers.json), [rows.csv](rows.csv)" in text
    assert json.loads(_read(tmp_path / "r" / "numbers.json")) == {"ratio": None, "values": [1, 2]}
    with open(tmp_path / "r" / "rows.csv") as f:
        assert list(csv.DictReader(f)) == [{"a": "1", "b": "2", "c": ""}, {"a": "3", "b": "", "c": "4"}]
    assert (tmp_path / "r" / "line.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bottleneck_experiment(tmp_path):
    results = run_experiment("bottleneck", str(tmp_path), stage="conv5", batch_size=1, rounds=1, warmup=0)
    res = results["resnet50"]["designs"]
    # conv5: 7x7, 2048 channels, reduced to 512 (He et al. 2016, Table 1)
    assert res["bottleneck"]["macs"] == 49 * (2048 * 512 + 9 * 512 * 512 + 512 * 2048)
    assert res["basic_full_width"]["macs"] == 49 * 2 * 9 * 2048 * 2048
    assert res["basic_reduced_width"]["macs"] == 49 * 2 * 9 * 512 * 512
    assert res["bottleneck"]["params"] == 2048 * 512 + 9 * 512 * 512 + 512 * 2048 + 2 * (512 + 512 + 2048)
    inc = results["inception3a"]["designs"]
    # 28x28x192 in; Table 1's 3a row: 64, 96, 128, 16, 32, 32
    assert inc["naive"]["macs"] == 784 * 192 * (64 + 9 * 128 + 25 * 32) == 303_464_448
    assert inc["reduced"]["macs"] == 784 * (192 * (64 + 96 + 16 + 32) + 9 * 96 * 128 + 25 * 16 * 32) == 128_049_152
    assert inc["naive"]["output_shape"] == [28, 28, 416] and inc["reduced"]["output_shape"] == [28, 28, 256]
    assert math.isclose(results["inception3a"]["macs_ratio_naive_over_reduced"], 303_464_448 / 128_049_152)
    assert sorted(r["layer"] for r in inc["reduced"]["layers"]) == [
        "inception3a_1x1_conv",
        "inception3a_3x3_conv",
        "inception3a_3x3_reduce_conv",
        "inception3a_5x5_conv",
        "inception3a_5x5_reduce_conv",
        "inception3a_pool_proj_conv",
    ]
    assert all(len(d["seconds_per_batch"]) == 1 for d in {**res, **inc}.values())
    text = _read(tmp_path / "report.md")
    assert "| naive (Fig. 2a) | 416 | 387,296 | 303,464,448 |" in text
    assert "2.37x the MACs" in text
    for name in ("compute.png", "results.json", "layers.csv"):
        assert (tmp_path / name).stat().st_size > 0


@pytest.mark.slow
@pytest.mark.xdist_group("experiments")
def test_degradation_experiment(tmp_path, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="keras_convnets.experiments"):
        results = run_experiment("degradation", str(tmp_path), depths=(8, 14), image_size=16, **TINY)
    assert list(results["runs"]) == ["plainnet8", "resnet8", "plainnet14", "resnet14"]
    said = [r.getMessage() for r in caplog.records if r.name == "keras_convnets.experiments"]
    assert len(said) == 8 and said[0].startswith("plainnet8: training, 1 epochs of 2 iterations (")
    resnet14 = results["runs"]["resnet14"]
    assert said[-1] == (
        f"resnet14: done in {resnet14.seconds:.0f} s; train error {100 * resnet14.final_train_error:.2f}%, "
        f"test error {100 * resnet14.final_test_error:.2f}%"
    )
    assert results["iterations"] == 2 and results["dataset"]["train"] == 64 and results["dataset"]["test"] == 16
    for curves in results["runs"].values():
        assert curves.iterations == [1, 2]
        assert all(0 <= e <= 1 for e in curves.train_error + curves.test_error)
        # One batch of 32 per point: a training error is a count of mistakes out of 32, a test error out of 16.
        assert all(abs(e * 32 - round(e * 32)) < 1e-4 for e in curves.train_error)
        assert all(abs(e * 16 - round(e * 16)) < 1e-6 for e in curves.test_error + [curves.final_test_error])
    runs = results["runs"]
    # With 2 points the "last tenth" of a curve is its last point.
    plain = results["findings"]["plain"]
    assert plain["train_error_curve_end"] == [runs["plainnet8"].train_error[-1], runs["plainnet14"].train_error[-1]]
    assert plain["test_error"] == [runs["plainnet8"].final_test_error, runs["plainnet14"].final_test_error]
    text = _read(tmp_path / "report.md")
    assert "## What the numbers show" in text and "Deeper plain net (plainnet14)" in text
    saved = json.loads(_read(tmp_path / "results.json"))
    assert saved["runs"]["resnet14"]["iterations"] == [1, 2]
    for name in ("curves.png", "curves.csv"):
        assert (tmp_path / name).stat().st_size > 0


@pytest.mark.slow
@pytest.mark.xdist_group("experiments")
def test_lesion_experiment(tmp_path):
    results = run_experiment("lesion", str(tmp_path), depth=14, image_size=16, draws=2, max_k=2, **TINY)
    single = results["single"]
    assert [r["block"] for r in single] == [f"conv{s}_block{i}" for s in (2, 3, 4) for i in (1, 2)]
    assert [r["downsampling"] for r in single] == [False, False, True, False, True, False]
    assert [r["plain_error"] is None for r in single] == [False, False, True, False, True, False]
    assert results["random_candidates"] == ["conv2_block1", "conv2_block2", "conv3_block2", "conv4_block2"]
    assert [(r["k"], len(r["blocks"].split())) for r in results["random"]] == [(1, 1), (1, 1), (2, 2), (2, 2)]
    assert [r["k"] for r in results["random_by_k"]] == [1, 2]
    text = _read(tmp_path / "report.md")
    assert "not removable (shape change)" in text and "Against Veit et al." in text
    for name in ("lesion.png", "single.csv", "random.csv", "results.json"):
        assert (tmp_path / name).stat().st_size > 0


@pytest.mark.slow
@pytest.mark.xdist_group("experiments")
def test_aux_experiment(tmp_path):
    results = run_experiment("aux", str(tmp_path), **TINY)
    assert set(results["runs"]) == {"aux", "no_aux"}
    assert results["runs"]["aux"].params > results["runs"]["no_aux"].params
    assert results["settings"].variant == "torchvision" and results["settings"].image_size == 32
    text = _read(tmp_path / "report.md")
    assert "GoogLeNet (variant `torchvision`" in text and "## What the numbers show" in text
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="has 10 training examples, fewer than one batch of 64: too few"):
        run_experiment("lesion", str(tmp_path), max_train=10)
    with pytest.raises(ValueError, match="has 5 test examples; an error rate needs at least 10"):
        run_experiment("degradation", str(tmp_path), max_test=5)
    with pytest.raises(ValueError, match="Unknown setting 'width'.*Settings: depths, family"):
        run_experiment("degradation", str(tmp_path), width=3)
    with pytest.raises(ValueError, match="`depths` must hold at least two depths in increasing order"):
        run_experiment("degradation", str(tmp_path), depths=(20,))
    with pytest.raises(ValueError, match="`depth` of a CIFAR ResNet must be 6n\\+2"):
        run_experiment("lesion", str(tmp_path), depth=21)
    with pytest.raises(ValueError, match="`image_size` must be at least 79 for GoogLeNet variant 'paper'"):
        run_experiment("aux", str(tmp_path), variant="paper", image_size=64)
    with pytest.raises(ValueError, match=r"`basic_depth` must be 6n\+2 with n >= 1.*Received: basic_depth=21"):
        run_experiment("bottleneck", str(tmp_path), dataset="digits", basic_depth=21)
    with pytest.raises(ValueError, match=r"`bottleneck_depth` must be 9n\+2.*Received: bottleneck_depth=21"):
        run_experiment("bottleneck", str(tmp_path), bottleneck_depth=21)
    with pytest.raises(ValueError, match="`seeds` must be distinct"):
        run_experiment("bottleneck", str(tmp_path), seeds=(1, 1))
    with pytest.raises(ValueError, match="`stage` must be one of 'conv2', 'conv3', 'conv4', 'conv5'"):
        run_experiment("bottleneck", str(tmp_path), stage="conv6")
    assert not (tmp_path / "report.md").exists()


def test_bottleneck_accuracy_side(tmp_path):
    """With a dataset the bottleneck experiment also trains a basic and a bottleneck CIFAR ResNet of equal MACs."""
    timing = dict(stage="conv5", batch_size=1, rounds=1, warmup=0)
    tiny = {key: value for key, value in TINY.items() if key != "batch_size"}  # `batch_size` times the designs
    results = run_experiment(
        "bottleneck",
        str(tmp_path),
        dataset="digits",
        image_size=16,
        train_batch_size=32,
        seeds=(0, 3),
        **timing,
        **tiny,
    )
    acc = results["accuracy"]
    assert acc["dataset"] == {"name": "digits", "train": 64, "test": 16, "classes": 10}
    assert acc["epochs"] == 1 and acc["iterations"] == 2  # 64 images, batch 32
    # at 16x16, option A both: ResNet-20 and ResNet-29 (tests/test_resnet_vgg.py counts the same nets by hand)
    assert acc["nets"] == {
        "basic": {"model": "resnet20", "params": 269_722, "macs": 10_138_240},
        "bottleneck": {"model": "resnet29_bottleneck", "params": 270_234, "macs": 9_681_408},
    }
    assert acc["macs_ratio_bottleneck_over_basic"] == pytest.approx(9_681_408 / 10_138_240)
    assert [c.name for c in acc["runs"]] == [
        "ResNet-20 (basic), seed 0",
        "ResNet-29 (bottleneck), seed 0",
        "ResNet-20 (basic), seed 3",
        "ResNet-29 (bottleneck), seed 3",
    ]
    f = acc["findings"]
    per_seed = [(s["test_error_basic"], s["test_error_bottleneck"]) for s in acc["seeds"]]
    assert f["seeds"] == [0, 3]
    assert f["test_error_difference"] == pytest.approx(sum(b - a for a, b in per_seed) / 2)
    for c in acc["runs"]:
        assert 0 <= c.final_test_error <= 1 and round(c.final_test_error * 16) == pytest.approx(c.final_test_error * 16)
    text = _read(tmp_path / "report.md")
    assert "## The accuracy side: basic against bottleneck blocks at 0.95x the MACs" in text
    assert "The claim (at about equal cost, the bottleneck design is the more accurate): " in text
    assert "| ResNet-29 (bottleneck), seed 3 |" in text and "![basic blocks (solid)" in text
    assert (tmp_path / "accuracy.png").read_bytes()[:4] == b"\x89PNG"
    with open(tmp_path / "curves.csv") as handle:
        assert {row["run"] for row in csv.DictReader(handle)} == {c.name for c in acc["runs"]}
    assert json.loads(_read(tmp_path / "results.json"))["accuracy"]["findings"]["seeds"] == [0, 3]


def test_bottleneck_accuracy_findings():
    from keras_convnets.experiments.bottleneck import accuracy_findings
    from keras_convnets.experiments.training import Curves

    def seed(s, basic, bottleneck):
        return {
            "seed": s,
            "basic": Curves("b", final_test_error=basic, seconds=10.0),
            "bottleneck": Curves("n", final_test_error=bottleneck, seconds=12.0),
        }

    f = accuracy_findings([seed(0, 0.10, 0.08), seed(1, 0.12, 0.09), seed(2, 0.11, 0.07)], num_test=5000)
    assert f["test_error_basic"] == pytest.approx(0.11) and f["test_error_bottleneck"] == pytest.approx(0.08)
    assert f["test_error_differences"] == pytest.approx([-0.02, -0.03, -0.04])
    assert f["seed_spread_basic"] == pytest.approx(0.01) and f["seed_spread_difference"] == pytest.approx(0.01)
    p = (0.11 + 0.08) / 2
    assert f["sampling_error_of_a_difference"] == pytest.approx(math.sqrt(2 * p * (1 - p) / 5000))  # 0.0059
    assert f["noise"] == pytest.approx(0.01) and f["resolved"]  # -3 points against a noise of 1
    assert f["seconds_bottleneck"] / f["seconds_basic"] == pytest.approx(1.2)
    close = accuracy_findings([seed(0, 0.10, 0.09), seed(1, 0.12, 0.12)], num_test=5000)
    assert close["test_error_difference"] == pytest.approx(-0.005) and not close["resolved"]
    # seeds that agree closely: the test split's sampling error is the noise, whatever the number of seeds
    steady = [seed(s, 0.100 + 0.001 * s, 0.088 + 0.001 * s) for s in range(4)]
    f = accuracy_findings(steady, num_test=1000)
    p = (0.1015 + 0.0895) / 2
    assert f["noise"] == pytest.approx(math.sqrt(2 * p * (1 - p) / 1000))  # 0.0132 > the -0.012 difference
    assert f["seed_spread_difference"] == pytest.approx(0.0) and not f["resolved"]
    assert accuracy_findings(steady, num_test=100_000)["resolved"]  # the same seeds on a large split: resolved
    single = accuracy_findings([seed(0, 0.10, 0.05)], num_test=100)
    assert single["seed_spread_basic"] is None and not single["resolved"]  # one seed: no spread known
    assert single["noise"] == pytest.approx(math.sqrt(2 * 0.075 * 0.925 / 100))


def test_bottleneck_accuracy_checks_come_before_the_timing(tmp_path, monkeypatch):
    from keras_convnets.experiments import bottleneck

    monkeypatch.setattr(bottleneck, "_time_designs", lambda *a: pytest.fail("timed before the checks"))
    with pytest.raises(ValueError, match="no_such_set"):
        run_experiment("bottleneck", str(tmp_path), dataset="no_such_set")
    with pytest.raises(ValueError, match="Received: input_shape=\\(2, 2, 3\\)"):
        run_experiment("bottleneck", str(tmp_path), dataset="digits", image_size=2, max_train=64, max_test=16)
    with pytest.raises(ValueError, match="`recipe` must be one of"):
        run_experiment("bottleneck", str(tmp_path), dataset="digits", recipe="fast")
    with pytest.raises(TypeError, match="`seeds` must be a non-empty tuple.*Received: seeds=\\[0, 1\\]"):
        run_experiment("bottleneck", str(tmp_path), seeds=[0, 1])
    with pytest.raises(ValueError, match="Received: seeds=\\(True, 2\\)"):
        run_experiment("bottleneck", str(tmp_path), seeds=(True, 2))
    assert list(tmp_path.iterdir()) == []


def test_cli(tmp_path, capsys):
    from keras_convnets.cli.main import main

    out = tmp_path / "bn"
    assert (
        main(
            [
                "experiment",
                "bottleneck",
                "--quick",
                "--output-dir",
                str(out),
                "--set",
                "stage=conv5",
                "--set",
                "rounds=1",
                "--set",
                "batch_size=1",
                "--set",
                "warmup=0",
            ]
        )
        == 0
    )
    assert "report written to" in capsys.readouterr().out
    assert (
        f"- Command: `convnets experiment bottleneck --quick --output-dir {out} --set stage=conv5 --set rounds=1"
        in _read(out / "report.md")
    )
    assert main(["experiment", "lesion", "--quick", "--output-dir", str(tmp_path / "l"), "--set", "max_train=10"]) == 2
    assert "too few for this experiment's split" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["experiment", "ablation"])


def test_evaluator_in_memory_and_streamed_agree():
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_convnets.experiments.training import Evaluator

    rng = np.random.RandomState(0)
    images = rng.uniform(size=(23, 4, 4, 3)).astype("float32")
    labels = rng.randint(0, 3, size=23).astype("int32")
    x = keras.Input((4, 4, 3))
    model = keras.Model(x, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x)))
    expected = float(np.mean(model.predict(images, verbose=0).argmax(-1) != labels))
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(5)
    held = Evaluator(dataset, num_examples=23, image_size=4)
    streamed = Evaluator(dataset, num_examples=23, image_size=4, memory_limit=0)
    assert held.images is not None and streamed.images is None
    assert held.error(model) == streamed.error(model) == expected


def test_presets_follow_the_papers():
    degradation, lesion, aux, bottleneck = (get_experiment(n) for n in ("degradation", "lesion", "aux", "bottleneck"))
    full = degradation.FULL
    assert (full.depths, full.dataset, full.recipe) == ((20, 56), "cifar10", "cifar")
    assert degradation.FULL.epochs is None and degradation.FULL.batch_size == 128  # the recipe's 64k iterations
    assert (lesion.FULL.depth, lesion.FULL.dataset, lesion.FULL.recipe) == (110, "cifar10", "cifar")
    assert (aux.FULL.variant, aux.FULL.aux_loss_weight) == ("paper", 0.3)
    for module in (degradation, lesion, aux):
        module._check(module.FULL)
        module._check(module.QUICK)
        module._check(module.REAL)
        assert module.QUICK.dataset == "digits" and module.REAL.dataset == "fashion_mnist"
        assert module.REAL.max_train == 20_000 and set(module.PRESETS) == {"quick", "real", "full"}
    assert bottleneck.QUICK.stage == "conv2" and bottleneck.QUICK.dataset is None  # quick: no training
    for preset in (bottleneck.QUICK, bottleneck.REAL, bottleneck.FULL):
        bottleneck._check(preset)
    real = bottleneck.REAL
    assert (real.dataset, real.max_train, real.seeds) == ("fashion_mnist", 20_000, (0, 1))
    assert (bottleneck.FULL.dataset, bottleneck.FULL.recipe) == ("cifar10", "cifar")
    assert (bottleneck.REAL.basic_depth, bottleneck.REAL.bottleneck_depth) == (20, 29)
    # the real presets: the issue's nets (plain-20/56 and ResNet-20/56; ResNet-56's 27 blocks; aux with 2 seeds)
    assert degradation.REAL.depths == (20, 56) and degradation.REAL.recipe == "cifar"
    assert lesion.REAL.depth == 56 and aux.REAL.seeds == (0, 1)
    # at least 2 seeds where the effect is small (the deeper ResNet's), each real preset about half an hour
    assert degradation.REAL.seeds == (0, 1) and bottleneck.REAL.seeds == (0, 1)


def test_preset_selection():
    from keras_convnets.experiments import presets

    table = {"quick": 1, "real": 2, "full": 3}
    assert presets.select(table, None, True) == ("quick", 1)
    assert presets.select(table, None, False) == ("full", 3)
    assert presets.select(table, "real", True) == ("real", 2)
    with pytest.raises(ValueError, match="`preset` must be one of 'quick', 'real', 'full'. Received: preset='big'"):
        presets.select(table, "big")


def test_cli_preset_flags(capsys):
    from keras_convnets.cli.main import main

    assert main(["experiment", "aux", "--quick", "--preset", "real"]) == 2
    assert "`--quick` is `--preset quick`. Received: --quick --preset real" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["experiment", "aux", "--preset", "huge"])


@pytest.mark.slow
@pytest.mark.xdist_group("experiments")
def test_aux_experiment_over_seeds(tmp_path):
    results = run_experiment("aux", str(tmp_path), preset="quick", seeds=(0, 1), **TINY)
    f = results["findings"]
    assert f["seeds"] == [0, 1] and len(results["all_runs"]) == 4
    per_seed = [s["test_error_with_aux"] - s["test_error_without_aux"] for s in results["seeds"]]
    assert f["test_error_differences"] == pytest.approx(per_seed)
    assert f["test_error_difference"] == pytest.approx(sum(per_seed) / 2)
    assert f["seed_spread_difference"] == pytest.approx(abs(per_seed[0] - per_seed[1]) / math.sqrt(2))
    text = _read(tmp_path / "report.md")
    assert "Over 2 seeds (0, 1)" in text and "seed(s) 0, 1" in text
    with pytest.raises(ValueError, match="`seeds` must be distinct. Received: seeds=\\(1, 1\\)"):
        run_experiment("aux", str(tmp_path / "x"), seeds=(1, 1), **TINY)


def _curves(name, train_error, final_train_error, final_test_error):
    from keras_convnets.experiments.training import Curves

    return Curves(
        name=name,
        iterations=list(range(1, len(train_error) + 1)),
        train_error=list(train_error),
        final_train_error=final_train_error,
        final_test_error=final_test_error,
    )


def test_lesion_findings_on_known_numbers():
    from keras_convnets.experiments.lesion_study import findings

    def block(residual, plain, down=False):
        return {"residual_error": residual, "plain_error": None if down else plain, "downsampling": down}

    # the ResNet's intact error 0.10: the other blocks cost +0.01, +0.02, +0.03, +0.30 (one costly block inflates
    # their mean to +0.09, but their upper quartile is +0.0975); downsampling blocks cost +0.05 and +0.20
    single = [block(0.11, 0.85), block(0.12, 0.9), block(0.13, 0.85), block(0.40, 0.7)]  # plain: 3 near chance
    single += [block(0.15, None, down=True), block(0.30, None, down=True)]
    results = {
        "baseline_test_error": {"residual": 0.10, "plain": 0.30},
        "single": single,
        "random_by_k": [
            {"k": 1, "residual_mean": 0.12, "plain_mean": 0.8},  # above the intact 0.10: a step up
            {"k": 2, "residual_mean": 0.11, "plain_mean": 0.88},  # a step down
            {"k": 3, "residual_mean": 0.22, "plain_mean": 0.9},
        ],
        "dataset": {"test": 2_000},
    }
    f = findings(results, classes=10)
    assert f["residual_other_mean_increase"] == pytest.approx(0.09)
    assert f["residual_other_upper_quartile"] == pytest.approx(0.0975)
    assert f["residual_downsampling_increases"] == pytest.approx([0.05, 0.20])
    assert f["residual_downsampling_above_upper_quartile"] == 1  # +0.05 is below it: "partly", not "yes"
    assert f["residual_k_mean_step"] == pytest.approx(0.04) and f["residual_k_largest_jump"] == pytest.approx(0.11)
    # the steps of k count from the intact net (k = 0), as the mean step does: 0.10 -> 0.12 -> 0.11 -> 0.22 has 2
    # steps up of 3 (counted from k = 1 it would be 1 of 2)
    assert f["residual_k_curve_nondecreasing_steps"] == 2 and f["k_steps"] == 3
    assert f["plain_k_curve_nondecreasing_steps"] == 3
    assert f["plain_deletions_near_chance"] == 3 and f["chance_error"] == pytest.approx(0.9)


def test_aux_findings_on_known_runs():
    from keras_convnets.experiments import aux_classifiers

    per_seed = [
        {"seed": 0, "aux": _curves("a0", [0.3], 0.20, 0.100), "no_aux": _curves("n0", [0.3], 0.10, 0.120)},
        {"seed": 3, "aux": _curves("a3", [0.3], 0.30, 0.130), "no_aux": _curves("n3", [0.3], 0.14, 0.140)},
    ]
    f = aux_classifiers.findings(per_seed, num_test=1_000)
    assert f["seeds"] == [0, 3]
    assert f["test_error_with_aux"] == pytest.approx(0.115) and f["test_error_without_aux"] == pytest.approx(0.13)
    assert f["test_error_differences"] == pytest.approx([-0.02, -0.01])
    assert f["seed_spread_difference"] == pytest.approx(0.01 / math.sqrt(2))
    # the training errors are the seeds' mean, not the first seed's
    assert f["train_error_with_aux"] == pytest.approx(0.25) and f["train_error_without_aux"] == pytest.approx(0.12)
    assert f["test_errors_examples"] == [115, 130]


def test_degradation_findings_on_known_curves():
    from keras_convnets.experiments.degradation import findings

    # 20 points: the curve's end is the mean of its last 2 points (a tenth of the curve).
    runs = {
        "plainnet8": _curves("plainnet8", [0.9] * 18 + [0.20, 0.30], 0.15, 0.25),
        "plainnet32": _curves("plainnet32", [0.1] * 18 + [0.40, 0.50], 0.35, 0.45),
        "resnet8": _curves("resnet8", [0.9] * 18 + [0.30, 0.10], 0.12, 0.22),
        "resnet32": _curves("resnet32", [0.9] * 18 + [0.05, 0.15], 0.08, 0.30),
    }
    out = findings(runs, (8, 32))
    plain, residual = out["plain"], out["residual"]
    assert plain["train_error_curve_end"] == pytest.approx([0.25, 0.45])
    assert residual["train_error_curve_end"] == pytest.approx([0.20, 0.10])
    assert (plain["shallow"], plain["deep"], residual["deep"]) == ("plainnet8", "plainnet32", "resnet32")
    assert plain["deeper_has_higher_train_error"] is True and plain["deeper_has_lower_train_error"] is False
    assert plain["deeper_has_higher_train_error_inference"] is True
    assert residual["deeper_has_lower_train_error"] is True and residual["deeper_has_higher_train_error"] is False
    assert residual["deeper_has_lower_train_error_inference"] is True
    assert residual["deeper_has_lower_test_error"] is False  # 0.30 against 0.22
    assert plain["test_error"] == [0.25, 0.45]


def test_degradation_findings_over_seeds():
    from keras_convnets.experiments.degradation import findings_over_seeds

    def seed(plain8, plain32, res8, res32):  # final training errors (inference mode)
        return {
            name: _curves(name, [0.5, 0.5], error, 0.3)
            for name, error in zip(("plainnet8", "plainnet32", "resnet8", "resnet32"), (plain8, plain32, res8, res32))
        }

    out = findings_over_seeds([seed(0.10, 0.20, 0.10, 0.08), seed(0.12, 0.18, 0.09, 0.10)], (0, 5), (8, 32))
    assert out["seeds"] == [0, 5]
    assert out["plain"]["train_error_differences_inference"] == pytest.approx([0.10, 0.06])
    assert out["plain"]["train_error_difference_inference"] == pytest.approx(0.08)
    assert out["plain"]["seed_spread_of_the_difference"] == pytest.approx(0.04 / 2**0.5)
    assert out["plain"]["claim_holds_in_seeds"] == 2  # deeper plain worse in both seeds
    assert out["residual"]["train_error_differences_inference"] == pytest.approx([-0.02, 0.01])
    assert out["residual"]["claim_holds_in_seeds"] == 1  # deeper ResNet better in one seed of two


@pytest.mark.slow
@pytest.mark.xdist_group("experiments")
def test_degradation_experiment_over_seeds(tmp_path):
    results = run_experiment("degradation", str(tmp_path), depths=(8, 14), image_size=16, seeds=(0, 2), **TINY)
    assert results["seeds"] == [0, 2] and len(results["runs_per_seed"]) == 2
    second = results["runs_per_seed"][1]
    assert second["resnet14"].name == "resnet14, seed 2"
    assert results["runs"]["resnet14"].name == "resnet14, seed 0"
    over = results["findings_over_seeds"]["residual"]
    expected = [r["resnet14"].final_train_error - r["resnet8"].final_train_error for r in results["runs_per_seed"]]
    assert over["train_error_differences_inference"] == pytest.approx(expected)
    text = _read(tmp_path / "report.md")
    assert "Over seeds 0, 2 (the tables and curves above are seed 0's" in text
    with open(tmp_path / "curves.csv") as handle:
        assert len({row["run"] for row in csv.DictReader(handle)}) == 8  # 4 nets x 2 seeds
    with pytest.raises(ValueError, match="`seeds` must be distinct"):
        run_experiment("degradation", str(tmp_path / "x"), seeds=(1, 1))


def test_max_train_cuts_in_memory_data():
    """The digits are in memory (`train_arrays`): with max_train=200 every epoch trains on exactly 200 distinct
    training images, each once, drawn over the whole training split (all ten classes, not its first 200), and
    never on the other 1,238."""
    import numpy as np

    from keras_convnets import data as data_lib
    from keras_convnets.experiments.training import load_data

    full = data_lib.load_dataset("digits")
    assert full.num_train == 1438
    data = load_data("digits", data_dir=None, max_train=200, max_test=50, batch_size=40)
    assert (data.num_train, data.num_test) == (200, 50)
    everything = {x.tobytes(): int(y) for x, y in full.train.as_numpy_iterator()}
    first = {x.tobytes() for x, _ in full.train.take(200).as_numpy_iterator()}
    sample = [x.tobytes() for x, _ in data.train.as_numpy_iterator()]
    assert len(sample) == len(set(sample)) == 200 and set(sample) <= set(everything) and set(sample) != first
    assert sorted({everything[x] for x in sample}) == list(range(10))
    pipeline = data_lib.train_pipeline(data, batch_size=40, image_size=32, augmentation="none", seed=3, epochs=2)
    batches = [x for x, _ in pipeline.as_numpy_iterator()]
    assert len(batches) == 2 * 5
    for epoch in (0, 1):
        seen = np.concatenate(batches[5 * epoch : 5 * epoch + 5]).astype("uint8")
        assert sorted(x.tobytes() for x in seen) == sorted(sample)
    assert sum(1 for _ in data.test.as_numpy_iterator()) == 50


def test_experiments_train_with_the_recipe_loss():
    """A preset whose recipe smooths labels (inception_v3: 0.1) compiles that loss: on a known prediction the
    compiled loss equals numpy's cross-entropy against the smoothed target."""
    import keras
    import numpy as np

    from keras_convnets.experiments import degradation
    from keras_convnets.experiments import training as tr

    setup = tr.prepare(
        degradation.QUICK,
        dict(recipe="inception_v3", max_train=32, max_test=16, batch_size=16, epochs=1),
        check=degradation._check,
        dataset=None,
        data_dir=None,
    )
    assert setup.recipe.label_smoothing == 0.1
    x = keras.Input((16, 16, 3))
    y = keras.layers.Dense(10, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(x, y)
    tr.train(
        "tiny",
        model,
        setup.data,
        recipe=setup.recipe,
        epochs=1,
        batch_size=16,
        image_size=16,
        seed=0,
        points=1,
        preprocessing=setup.preprocessing,
        evaluators=(setup.train_eval, setup.test_eval),
        run_eagerly=True,
    )
    probabilities = np.array([[0.56, 0.25, 0.05] + [0.02] * 7], "float32")  # sums to 1
    target = np.full(10, 0.1 / 10)
    target[1] += 0.9
    expected = -np.sum(target * np.log(probabilities[0]))
    assert float(model.loss(np.array([1]), probabilities)) == pytest.approx(expected, rel=1e-5)
    assert expected == pytest.approx(1.57112, abs=1e-5)  # without smoothing: -log(0.25) = 1.38629
