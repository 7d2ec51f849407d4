"""What the bottleneck saves (He et al. 2016, Section 4.1 and Figure 5; Szegedy et al. 2014, Section 4 and
Figure 2): parameters and multiply-accumulates (MACs) of the naive designs against the reduced ones, layer by
layer from `keras_convnets.profile`, and the forward time of each measured on this machine in the same run.

- ResNet-50, one block of a stage (conv2: 56x56, 256 channels): the bottleneck (1x1 reduce to 64 -> 3x3 ->
  1x1 expand to 256) against a basic block (two 3x3 convs) at the full 256 width, and, as the paper's Figure 5
  does, against a basic block at the reduced width (64 channels in and out).
- GoogLeNet's inception 3a (28x28x192 in; Table 1: 64, 96, 128, 16, 32, 32): the naive module of Figure 2(a)
  (1x1, 3x3 and 5x5 convs on the full input and a 3x3 max pool, concatenated) against the module with 1x1
  reductions of Figure 2(b).

These numbers are exact counts and wall-clock medians. With a `dataset` (the `real` and `full` presets) the
accuracy side is trained too: what the bottleneck buys at equal cost. He et al. 2016 spend the savings on depth
(Table 3: the bottleneck ResNet-50 is more accurate than the basic ResNet-34 at about the same FLOPs); at CIFAR
scale a bottleneck CIFAR ResNet of depth 9n+2 (three 1x1-3x3-1x1 blocks per stage for ResNet-29, outputs 4x
wider) has about the MACs and parameters of the basic ResNet of depth 6n+2 with as many blocks (ResNet-20). Both
are trained with the same recipe, batch, data order and seeds, and their test errors are compared against the
seed-to-seed spread.

One module over 450 lines on purpose: the compute and accuracy sides share one preset, one `run` and one report,
and the CLI and the presets table reach the experiment by this one module name.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from keras_convnets.analysis.profiler import profile
from keras_convnets.experiments import presets
from keras_convnets.experiments import training as tr
from keras_convnets.experiments.report import (
    Report,
    label_error_axes,
    new_figure,
    plot_error_curves,
    quiet_retracing,
    sampling_error,
)
from keras_convnets.models import common

__all__ = [
    "PRESETS",
    "REAL",
    "FULL",
    "LABELS",
    "QUICK",
    "BottleneckPreset",
    "accuracy_findings",
    "accuracy_nets",
    "inception_designs",
    "resnet_designs",
    "run",
]

# ResNet-50, He et al. 2016 Table 1: stage -> (feature-map side at 224, reduction width); outputs are 4x wider.
RESNET50_STAGES = {"conv2": (56, 64), "conv3": (28, 128), "conv4": (14, 256), "conv5": (7, 512)}
INCEPTION_3A_INPUT = (28, 28, 192)


@dataclass(frozen=True)
class BottleneckPreset:
    stage: str = "conv2"  # the ResNet-50 stage whose block is compared
    batch_size: int = 8  # images per timed forward pass (the training batch is `train_batch_size`)
    rounds: int = 11  # timed passes per design (the median is reported)
    warmup: int = 2  # untimed passes first
    seed: int = 0  # the timed random images (training uses `seeds`)
    # The accuracy side: a basic and a bottleneck CIFAR ResNet of about equal MACs, trained alike on `dataset`.
    dataset: str | None = None  # None: no training, the compute comparison alone
    basic_depth: int = 20  # 6n+2: n basic blocks per stage
    bottleneck_depth: int = 29  # 9n+2: n bottleneck blocks per stage
    image_size: int = 32
    epochs: int | None = None  # None: the recipe's length
    train_batch_size: int = 128
    recipe: str = "cifar"
    seeds: tuple[int, ...] = (0,)  # both nets trained once per seed
    points: int = 24  # points per curve
    max_train: int | None = None
    max_test: int | None = None
    run_eagerly: bool = False  # no graph tracing: for tiny budgets (tests) and debugging


QUICK = BottleneckPreset(image_size=16, epochs=8, train_batch_size=64, points=16)  # trains only given a dataset
FULL = BottleneckPreset(batch_size=32, rounds=21, warmup=3, dataset="cifar10", seeds=(0, 1))
REAL = BottleneckPreset(
    batch_size=32,
    rounds=21,
    warmup=3,
    dataset="fashion_mnist",
    image_size=28,
    epochs=8,
    seeds=(0, 1),
    points=16,
    max_train=20_000,
    max_test=5_000,
)
PRESETS = {"quick": QUICK, "real": REAL, "full": FULL}


@dataclass(frozen=True)
class _Training:
    """The fields of a `BottleneckPreset` that `experiments.training` reads, under the names it reads them by."""

    dataset: str
    image_size: int
    epochs: int | None
    batch_size: int
    recipe: str
    seed: int
    points: int
    max_train: int | None
    max_test: int | None
    run_eagerly: bool


def _check(preset: BottleneckPreset) -> None:
    common.check_choice("stage", preset.stage, tuple(RESNET50_STAGES))
    for argument in ("batch_size", "rounds", "image_size", "train_batch_size", "points"):
        presets.check_positive_int(argument, getattr(preset, argument))
    common.check_int("warmup", preset.warmup, minimum=0)
    if preset.epochs is not None:
        presets.check_positive_int("epochs", preset.epochs)
    presets.check_seeds(preset.seeds)
    for argument, step in (("basic_depth", 6), ("bottleneck_depth", 9)):  # 2 or 3 layers a block, 3 stages
        value = getattr(preset, argument)
        requirement = f"must be {step}n+2 with n >= 1 ({step + 2}, {2 * step + 2}, {3 * step + 2}, ...)"
        common.check_int(argument, value, minimum=step + 2, requirement=requirement)
        if (value - 2) % step:
            raise ValueError(f"`{argument}` {requirement}. Received: {argument}={value}")


def accuracy_nets(preset: BottleneckPreset, *, classes: int, channels: int = 3) -> dict[str, keras.Model]:
    """The two nets of the accuracy side: the basic CIFAR ResNet of depth `basic_depth` and the bottleneck one of
    depth `bottleneck_depth`, both with option A shortcuts. Option A keeps the pair at equal cost (ResNet-20 and
    ResNet-29: 269,722 and 270,234 parameters, 0.955x the MACs); it is not the bottleneck net's default (B, as
    He et al. 2016b's code): the first bottleneck block's shortcut pads 16 channels to 64 with zeros, so 48 of its
    64 output channels come from the residual branch alone, where B would add a 16x64 projection (+16% parameters
    and +13% MACs for ResNet-29)."""
    from keras_convnets.models.resnet import CifarResNet

    shape = (preset.image_size, preset.image_size, channels)
    return {
        "basic": CifarResNet(preset.basic_depth, input_shape=shape, classes=classes, shortcut="A"),
        "bottleneck": CifarResNet(
            preset.bottleneck_depth, input_shape=shape, classes=classes, block="bottleneck", shortcut="A"
        ),
    }


def _spread(values: np.ndarray) -> float | None:
    """The sample standard deviation; None (unknown) with one value."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else None


def accuracy_findings(per_seed: list[dict], num_test: int) -> dict:
    """The bottleneck net's final test error against the basic net's, paired by seed.

    Returns the means, the mean difference (bottleneck - basic) and the per-seed ones, the seed-to-seed spreads
    (sample standard deviations over seeds: None with one seed), and `sampling_error_of_a_difference`, the
    standard error of one difference that the test split's finite size alone would cause if the two nets erred
    independently (an upper bound: they share the test images; it does not shrink with more seeds, which all see
    the same split). `noise` is the largest of these; `resolved` says whether the mean difference is more than
    twice it, and is never true with one seed (no spread is known)."""
    basic = np.array([r["basic"].final_test_error for r in per_seed])
    bottleneck = np.array([r["bottleneck"].final_test_error for r in per_seed])
    difference = bottleneck - basic
    p = float((basic.mean() + bottleneck.mean()) / 2)
    # of a difference, as if the two nets erred independently (an upper bound: they share the test images)
    sampling = 2**0.5 * sampling_error(p, num_test)
    spreads = [_spread(basic), _spread(bottleneck), _spread(difference)]
    known = len(per_seed) > 1
    noise = max([sampling] + [x for x in spreads if x is not None])
    return {
        "seeds": [r["seed"] for r in per_seed],
        "test_error_basic": float(basic.mean()),
        "test_error_bottleneck": float(bottleneck.mean()),
        "test_error_difference": float(difference.mean()),
        "test_error_differences": difference.tolist(),
        "seed_spread_basic": spreads[0],
        "seed_spread_bottleneck": spreads[1],
        "seed_spread_difference": spreads[2],
        "sampling_error_of_a_difference": sampling,
        "noise": noise,
        "resolved": bool(known and abs(difference.mean()) > 2 * noise),
        "seconds_basic": float(sum(r["basic"].seconds for r in per_seed)),
        "seconds_bottleneck": float(sum(r["bottleneck"].seconds for r in per_seed)),
    }


@dataclass
class _Accuracy:
    """The accuracy side, prepared before anything is timed: the data loaded, the recipe and the nets checked."""

    settings: _Training
    setup: Any
    nets: dict[str, dict]  # "basic"/"bottleneck" -> model name, trainable params, MACs per image


def _prepare_accuracy(preset: BottleneckPreset, data_dir: str | None) -> _Accuracy:
    settings = _Training(
        dataset=preset.dataset,
        image_size=preset.image_size,
        epochs=preset.epochs,
        batch_size=preset.train_batch_size,
        recipe=preset.recipe,
        seed=preset.seeds[0],
        points=preset.points,
        max_train=preset.max_train,
        max_test=preset.max_test,
        run_eagerly=preset.run_eagerly,
    )
    setup = tr.prepare(settings, {}, check=lambda _: None, dataset=None, data_dir=data_dir)
    nets = {}
    for key, model in accuracy_nets(preset, classes=setup.data.num_classes).items():  # too small an image fails here
        report = profile(model)
        nets[key] = {"model": model.name, "params": report.trainable_params, "macs": report.macs}
    keras.backend.clear_session()
    return _Accuracy(settings, setup, nets)


def _train_accuracy(preset: BottleneckPreset, prepared: _Accuracy) -> dict:
    import dataclasses

    setup, nets = prepared.setup, prepared.nets
    data = setup.data
    per_seed = []
    for seed in preset.seeds:
        seeded = dataclasses.replace(setup, preset=dataclasses.replace(prepared.settings, seed=seed))
        runs = {}
        for key in ("basic", "bottleneck"):
            keras.utils.set_random_seed(seed)
            # both nets built from the seed, then the one trained: each seed's draws are those of the committed runs
            model = accuracy_nets(preset, classes=data.num_classes)[key]
            depth = preset.basic_depth if key == "basic" else preset.bottleneck_depth
            name = f"ResNet-{depth} ({key})" + (f", seed {seed}" if len(preset.seeds) > 1 else "")
            runs[key] = seeded.train(name, model, model_name=model.name)
            keras.backend.clear_session()
        per_seed.append({"seed": seed, **runs})
    return {
        "dataset": {"name": data.name, "train": data.num_train, "test": data.num_test, "classes": data.num_classes},
        "recipe": setup.recipe.name,
        "epochs": setup.epochs,
        "iterations": setup.epochs * setup.steps,
        "nets": nets,
        "macs_ratio_bottleneck_over_basic": nets["bottleneck"]["macs"] / nets["basic"]["macs"],
        "params_ratio_bottleneck_over_basic": nets["bottleneck"]["params"] / nets["basic"]["params"],
        "seeds": [
            {
                "seed": r["seed"],
                "test_error_basic": r["basic"].final_test_error,
                "test_error_bottleneck": r["bottleneck"].final_test_error,
            }
            for r in per_seed
        ],
        "runs": [c for r in per_seed for c in (r["basic"], r["bottleneck"])],
        "findings": accuracy_findings(per_seed, data.num_test),
    }


def _bn() -> dict:
    return dict(bn_momentum=0.9, bn_epsilon=1e-5)


def resnet_designs(stage: str = "conv2") -> dict[str, keras.Model]:
    """One block of ResNet-50's `stage` in three designs, each a small functional model (name -> model)."""
    from keras_convnets.models.resnet import residual_block

    common.check_choice("stage", stage, tuple(RESNET50_STAGES))
    size, width = RESNET50_STAGES[stage]
    wide = 4 * width
    options = dict(strides=1, residual=True, shortcut_option="B", stride_in="1x1", zero_init_residual=False, **_bn())
    designs = {}
    for key, block, block_width, channels in (
        ("bottleneck", "bottleneck", width, wide),
        ("basic_full_width", "basic", wide, wide),
        ("basic_reduced_width", "basic", width, width),
    ):
        x = keras.Input((size, size, channels), name="input")
        y = residual_block(x, block_width, channels, block=block, name=f"{stage}_block2", **options)
        designs[key] = keras.Model(x, y, name=f"{stage}_{key}")
    return designs


def inception_designs() -> dict[str, keras.Model]:
    """Inception 3a as in Figure 2(a) (naive) and Figure 2(b) (with 1x1 reductions): convs with bias and ReLU,
    as in the paper (no batch norm)."""
    from keras import layers

    from keras_convnets.models.googlenet import INCEPTION_TABLE, conv_unit, inception_module

    spec = INCEPTION_TABLE[0]
    x = keras.Input(INCEPTION_3A_INPUT, name="input")
    reduced = inception_module(x, spec, norm=None, variant="paper")
    name = f"inception{spec.name}"
    branches = [
        conv_unit(x, spec.n1x1, 1, name=f"{name}_1x1", norm=None),
        conv_unit(x, spec.n3x3, 3, name=f"{name}_3x3", norm=None),
        conv_unit(x, spec.n5x5, 5, name=f"{name}_5x5", norm=None),
        layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x),
    ]
    naive = layers.Concatenate(axis=common.channel_axis(), name=f"{name}_concat")(branches)
    return {
        "naive": keras.Model(x, naive, name="inception3a_naive"),
        "reduced": keras.Model(x, reduced, name="inception3a_reduced"),
    }


def _layer_rows(model: keras.Model) -> list[dict]:
    return [
        {"layer": r.name, "type": r.type, "output_shape": list(r.output_shape), "params": r.params, "macs": r.macs}
        for r in profile(model).layers
        if r.params or r.macs
    ]


def _forward(model: keras.Model):
    import tensorflow as tf

    return tf.function(lambda x: model(x, training=False))


def _time_designs(models: dict[str, keras.Model], preset: BottleneckPreset) -> dict[str, list[float]]:
    """Seconds per forward pass of each model on one batch, the designs interleaved round by round so that
    the load of a shared machine falls on all of them alike."""
    import tensorflow as tf

    rng = np.random.RandomState(preset.seed)
    inputs, functions = {}, {}
    for key, model in models.items():
        shape = (preset.batch_size, *model.inputs[0].shape[1:])
        inputs[key] = tf.constant(rng.uniform(0, 1, size=shape).astype("float32"))
        functions[key] = _forward(model)
    for key in models:
        for _ in range(preset.warmup):
            functions[key](inputs[key]).numpy()
    times: dict[str, list[float]] = {key: [] for key in models}
    for _ in range(preset.rounds):
        for key in models:
            start = time.perf_counter()
            functions[key](inputs[key]).numpy()
            times[key].append(time.perf_counter() - start)
    return times


def _summaries(models: dict[str, keras.Model], times: dict[str, list[float]], batch: int) -> dict[str, dict]:
    out = {}
    for key, model in models.items():
        report = profile(model)
        out[key] = {
            "model": model.name,
            "input_shape": list(model.inputs[0].shape[1:]),
            "output_shape": list(model.outputs[0].shape[1:]),
            "params": report.trainable_params,
            "macs": report.macs,
            "median_seconds_per_batch": statistics.median(times[key]),
            "median_ms_per_image": 1000 * statistics.median(times[key]) / batch,
            "seconds_per_batch": times[key],
            "layers": _layer_rows(model),
        }
    return out


def run(
    output_dir: str,
    *,
    preset: str | None = None,
    quick: bool = True,
    dataset: str | None = None,
    data_dir: str | None = None,
    command: str | None = None,
    **overrides: Any,
) -> dict:
    """Measure both comparisons, write `report.md`, `compute.png`, `results.json` and `layers.csv` into
    `output_dir`, and return the results. With a `dataset` (the preset's, or this argument) also train the
    accuracy side and write `accuracy.png` and `curves.csv`. Overrides: the fields of `BottleneckPreset`
    (`batch_size` is the timing batch, `train_batch_size` the training one)."""
    started = time.perf_counter()
    preset_name, base = presets.select(PRESETS, preset, quick)
    if dataset is not None:
        overrides = {**overrides, "dataset": dataset}
    preset = presets.with_overrides(base, overrides)
    _check(preset)
    # the accuracy side's data, recipe and nets are checked before the timing side runs
    prepared = _prepare_accuracy(preset, data_dir) if preset.dataset is not None else None

    resnet = resnet_designs(preset.stage)
    inception = inception_designs()
    with quiet_retracing():
        times = _time_designs({**resnet, **inception}, preset)
    res = _summaries(resnet, times, preset.batch_size)
    inc = _summaries(inception, times, preset.batch_size)

    def ratio(a: dict, b: dict, key: str) -> float:
        return a[key] / b[key]

    results = {
        "preset": preset_name,
        "settings": preset,
        "resnet50": {
            "stage": preset.stage,
            "designs": res,
            "macs_ratio_full_width_over_bottleneck": ratio(res["basic_full_width"], res["bottleneck"], "macs"),
            "params_ratio_full_width_over_bottleneck": ratio(res["basic_full_width"], res["bottleneck"], "params"),
            "time_ratio_full_width_over_bottleneck": ratio(
                res["basic_full_width"], res["bottleneck"], "median_seconds_per_batch"
            ),
            "macs_ratio_bottleneck_over_reduced_basic": ratio(res["bottleneck"], res["basic_reduced_width"], "macs"),
            "time_ratio_bottleneck_over_reduced_basic": ratio(
                res["bottleneck"], res["basic_reduced_width"], "median_seconds_per_batch"
            ),
        },
        "inception3a": {
            "designs": inc,
            "macs_ratio_naive_over_reduced": ratio(inc["naive"], inc["reduced"], "macs"),
            "params_ratio_naive_over_reduced": ratio(inc["naive"], inc["reduced"], "params"),
            "time_ratio_naive_over_reduced": ratio(inc["naive"], inc["reduced"], "median_seconds_per_batch"),
        },
    }
    if prepared is not None:
        results["accuracy"] = _train_accuracy(preset, prepared)
    _write_report(output_dir, time.perf_counter() - started, results, preset, command)
    return results


LABELS = {
    "bottleneck": "bottleneck 1x1-3x3-1x1",
    "basic_full_width": "basic 3x3-3x3, full width",
    "basic_reduced_width": "basic 3x3-3x3, reduced width",
    "naive": "naive (Fig. 2a)",
    "reduced": "1x1 reductions (Fig. 2b)",
}


def _write_report(
    output_dir: str, wall_seconds: float, results: dict, preset: BottleneckPreset, command: str | None
) -> None:
    report = Report(
        output_dir,
        "The bottleneck's savings: parameters, MACs and measured time",
        command=command,
        wall_seconds=wall_seconds,
    )
    res, inc = results["resnet50"], results["inception3a"]
    size, width = RESNET50_STAGES[preset.stage]
    report.text(
        "The compute side trains nothing. Parameters (trainable) and multiply-accumulates per image come from "
        "`keras_convnets.profile`; times are the median of "
        f"{preset.rounds} forward passes of a batch of {preset.batch_size} random images per design, the designs "
        f"interleaved round by round after {preset.warmup} warm-up passes, in inference mode, in this one run. "
        "Absolute times depend on the machine and its load; the ratios are the result."
    )
    report.heading(f"ResNet-50, one block of stage {preset.stage} ({size}x{size})")
    rows = []
    for key, d in res["designs"].items():
        rows.append(
            [
                LABELS[key],
                "x".join(map(str, d["input_shape"])),
                d["params"],
                d["macs"],
                round(d["median_ms_per_image"], 3),
            ]
        )
    report.table(["design", "input", "params", "MACs / image", "ms / image (median)"], rows)
    report.bullets(
        [
            f"A basic block at the full {4 * width} width costs "
            f"{res['macs_ratio_full_width_over_bottleneck']:.2f}x the MACs and "
            f"{res['params_ratio_full_width_over_bottleneck']:.2f}x the parameters of the bottleneck, and took "
            f"{res['time_ratio_full_width_over_bottleneck']:.2f}x its time here.",
            f"The bottleneck on {4 * width} channels against the basic block on {width} channels "
            f"(the paper's Figure 5, 'similar time complexity'): "
            f"{res['macs_ratio_bottleneck_over_reduced_basic']:.2f}x the MACs, "
            f"{res['time_ratio_bottleneck_over_reduced_basic']:.2f}x the measured time.",
        ]
    )
    report.heading("GoogLeNet inception 3a (28x28x192 in)")
    rows = []
    for key, d in inc["designs"].items():
        rows.append([LABELS[key], d["output_shape"][-1], d["params"], d["macs"], round(d["median_ms_per_image"], 3)])
    report.table(["design", "output channels", "params", "MACs / image", "ms / image (median)"], rows)
    naive_out = inc["designs"]["naive"]["output_shape"][-1]
    report.bullets(
        [
            f"The naive module costs {inc['macs_ratio_naive_over_reduced']:.2f}x the MACs and "
            f"{inc['params_ratio_naive_over_reduced']:.2f}x the parameters of the module with 1x1 reductions, and took "
            f"{inc['time_ratio_naive_over_reduced']:.2f}x its time here.",
            f"Its output is also wider ({naive_out} channels against "
            f"{inc['designs']['reduced']['output_shape'][-1]}): the pooling branch passes all 192 input channels on, "
            "so stacking naive modules would widen every following stage (the paper's Section 4).",
        ]
    )

    figure, (left, right) = new_figure(9.0, 3.4, ncols=2)
    keys = list(res["designs"]) + list(inc["designs"])
    names = [LABELS[k] for k in keys]
    designs = {**res["designs"], **inc["designs"]}
    colors = ["tab:blue"] * len(res["designs"]) + ["tab:orange"] * len(inc["designs"])
    positions = np.arange(len(keys))
    left.barh(positions, [designs[k]["macs"] / 1e6 for k in keys], color=colors)
    left.set_xlabel("MMACs per image (log scale)")
    right.barh(positions, [designs[k]["median_ms_per_image"] for k in keys], color=colors)
    right.set_xlabel("ms per image (median, log scale)")
    for axis in (left, right):
        axis.set_xscale("log")
        axis.set_yticks(positions)
        axis.invert_yaxis()
    left.set_yticklabels(names, fontsize=8)
    right.set_yticklabels([])
    left.set_title(f"ResNet-50 {preset.stage} block (blue), inception 3a (orange)", fontsize=9)
    report.figure(figure, "compute.png", "MACs per image (left) and measured forward time per image (right)")

    if "accuracy" in results:
        _write_accuracy(report, results["accuracy"], preset)

    report.heading("Layer by layer")
    for group, data in (("ResNet-50", res["designs"]), ("inception 3a", inc["designs"])):
        for key, d in data.items():
            report.text(f"**{group}, {LABELS[key]}**")
            report.table(
                ["layer", "type", "output", "params", "MACs"],
                [
                    [r["layer"], r["type"], "x".join(map(str, r["output_shape"])), r["params"], r["macs"]]
                    for r in d["layers"]
                ],
            )
    report.json("results.json", results)
    report.csv(
        "layers.csv",
        [
            {"comparison": group, "design": key, **row}
            for group, data in (("resnet50", res["designs"]), ("inception3a", inc["designs"]))
            for key, d in data.items()
            for row in d["layers"]
        ],
    )
    report.write()


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _points(x: float | None) -> str:
    return "unknown (one seed)" if x is None else f"{100 * x:.2f}"


def _write_accuracy(report: Report, acc: dict, preset: BottleneckPreset) -> None:
    ds, nets, f = acc["dataset"], acc["nets"], acc["findings"]
    basic_n = (preset.basic_depth - 2) // 6
    bottleneck_n = (preset.bottleneck_depth - 2) // 9
    macs_ratio, params_ratio = acc["macs_ratio_bottleneck_over_basic"], acc["params_ratio_bottleneck_over_basic"]
    report.heading(f"The accuracy side: basic against bottleneck blocks at {macs_ratio:.2f}x the MACs")
    report.text(
        f"ResNet-{preset.basic_depth} ({basic_n} basic blocks per stage, 16/32/64 channels) against "
        f"ResNet-{preset.bottleneck_depth} ({bottleneck_n} bottleneck blocks per stage, reducing to 16/32/64 and "
        f"expanding to 64/128/256), on `{ds['name']}` ({ds['train']:,} training, {ds['test']:,} test images) at "
        f"{preset.image_size}x{preset.image_size}, recipe `{acc['recipe']}` at batch {preset.train_batch_size} for "
        f"{acc['epochs']} epoch(s) ({acc['iterations']:,} iterations), seed(s) {', '.join(map(str, f['seeds']))} "
        "(a seed sets the initialisation and the data order, the same order for both nets). The bottleneck net costs "
        f"{macs_ratio:.3f}x the MACs and {params_ratio:.3f}x the trainable parameters of the basic one. Both have "
        "option A shortcuts, which keep that cost equal: in the first bottleneck block the shortcut pads 16 "
        "channels to 64 with zeros (the bottleneck net's default, option B, would add a projection there and "
        "about 16% parameters). Post-activation units (He et al. 2016). Training error on the training batches as "
        "trained (curve) and on the training split in inference mode (end)."
    )
    report.table(
        [
            "net",
            "trainable params",
            "MACs / image",
            "train error (curve end)",
            "train error (inference)",
            "test error",
            "train seconds",
        ],
        [
            [
                c.name,
                nets[key]["params"],
                nets[key]["macs"],
                _pct(c.last_train_error),
                _pct(c.final_train_error),
                _pct(c.final_test_error),
                round(c.seconds, 1),
            ]
            for index, c in enumerate(acc["runs"])  # per seed: basic, then bottleneck
            for key in ["basic" if index % 2 == 0 else "bottleneck"]
        ],
    )
    n = len(f["seeds"])
    diff = f["test_error_difference"]
    verdict = (
        f"Mean test error over {n} seed(s): {_pct(f['test_error_basic'])} basic, "
        f"{_pct(f['test_error_bottleneck'])} bottleneck, a difference of {100 * diff:+.2f} points (bottleneck - "
        f"basic; per seed {', '.join(f'{100 * d:+.2f}' for d in f['test_error_differences'])}). "
        f"Seed-to-seed spread (standard deviation over seeds): {_points(f['seed_spread_basic'])} points (basic), "
        f"{_points(f['seed_spread_bottleneck'])} (bottleneck), {_points(f['seed_spread_difference'])} (the "
        "per-seed differences). The test split's size alone makes one difference uncertain by at most "
        f"{100 * f['sampling_error_of_a_difference']:.2f} points (a standard error; the nets share the test images, "
        "so it is an upper bound, and it does not shrink with more seeds). "
    )
    claim = "The claim (at about equal cost, the bottleneck design is the more accurate)"
    if n == 1:
        verdict += f"One seed gives no spread, so nothing is resolved. {claim}: not tested by one seed."
    elif f["resolved"]:
        holds = diff < 0
        verdict += (
            f"The mean difference is more than twice the largest of these ({100 * f['noise']:.2f} points). "
            f"{claim}: {'holds' if holds else 'does not hold'} here; the {'bottleneck' if holds else 'basic'} net is "
            "better."
        )
    else:
        verdict += (
            f"The mean difference is within twice the largest of these ({100 * f['noise']:.2f} points). "
            f"{claim}: not resolved at this budget; the run cannot tell the two designs apart."
        )
    report.heading("What the accuracy side shows")
    report.text(
        verdict
        + f" Training the bottleneck net took {f['seconds_bottleneck'] / f['seconds_basic']:.2f}x the time of the "
        f"basic one here, at {macs_ratio:.2f}x its MACs: its activations are up to 4x wider. The papers' claim is at "
        "full length and scale: ResNet-50 (bottleneck) against ResNet-34 (basic) at about the same FLOPs, 22.85% "
        "against 24.52% top-1 error on ImageNet (He et al. 2016, Table 3, 10-crop), and, on CIFAR-10, the "
        "bottleneck ResNet-164 at 5.93% against the basic ResNet-110 at 6.61% with about the same parameters "
        "(He et al. 2016b, Table 2); a run this short says what the designs do early in training."
    )
    figure, (left, right) = new_figure(9.0, 3.4, ncols=2)
    for index, c in enumerate(acc["runs"]):
        style = "-" if index % 2 == 0 else "--"
        color = f"C{index // 2}"
        plot_error_curves(left, right, c, style, color=color)
    label_error_axes(left, right, legend_fontsize=7)
    report.figure(figure, "accuracy.png", "basic blocks (solid) and bottleneck blocks (dashed), one color per seed")
    report.csv("curves.csv", tr.curves_rows(acc["runs"]))
