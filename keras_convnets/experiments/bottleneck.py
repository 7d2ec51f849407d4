"""What the bottleneck saves (He et al. 2016, Section 3.3 and Figure 5; Szegedy et al. 2014, Section 4 and
Figure 2): parameters and multiply-accumulates (MACs) of the naive designs against the reduced ones, layer by
layer from `keras_convnets.profile`, and the forward time of each measured on this machine in the same run.

- ResNet-50, one block of a stage (conv2: 56x56, 256 channels): the bottleneck (1x1 reduce to 64 -> 3x3 ->
  1x1 expand to 256) against a basic block (two 3x3 convs) at the full 256 width, and, as the paper's Figure 5
  does, against a basic block at the reduced width (64 channels in and out).
- GoogLeNet's inception 3a (28x28x192 in; Table 1: 64, 96, 128, 16, 32, 32): the naive module of Figure 2(a)
  (1x1, 3x3 and 5x5 convs on the full input and a 3x3 max pool, concatenated) against the module with 1x1
  reductions of Figure 2(b).

No training: the numbers are exact counts and wall-clock medians.
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
from keras_convnets.experiments.report import Report, new_figure, quiet_retracing
from keras_convnets.models import common

__all__ = [
    "PRESETS",
    "REAL",
    "FULL",
    "LABELS",
    "QUICK",
    "BottleneckPreset",
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
    batch_size: int = 8  # images per timed forward pass
    rounds: int = 11  # timed passes per design (the median is reported)
    warmup: int = 2  # untimed passes first
    seed: int = 0


QUICK = BottleneckPreset()
FULL = BottleneckPreset(batch_size=32, rounds=21, warmup=3)
REAL = FULL  # no training: the real preset is the full measurement
PRESETS = {"quick": QUICK, "real": REAL, "full": FULL}


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
    `output_dir`, and return the results. `dataset` is not used (no training); overrides: the fields of
    `BottleneckPreset` (`stage`, `batch_size`, `rounds`, `warmup`, `seed`)."""
    started = time.perf_counter()
    if dataset is not None:
        raise ValueError(
            f"The bottleneck experiment trains nothing and takes no dataset. Received: dataset={dataset!r}"
        )
    preset_name, base = presets.select(PRESETS, preset, quick)
    preset = presets.with_overrides(base, overrides)
    common.check_choice("stage", preset.stage, tuple(RESNET50_STAGES))
    for argument in ("batch_size", "rounds"):
        presets.check_positive_int(argument, getattr(preset, argument))
    common.check_int("warmup", preset.warmup, minimum=0)

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
        "No training. Parameters (trainable) and multiply-accumulates per image come from "
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
