"""Auxiliary classifiers (Szegedy et al. 2014, Section 5): GoogLeNet trained with and without its two
auxiliary heads, with the same recipe, budget, seed and data order; curves and final errors of the main head.

With the heads, the loss is main + 0.3 x (aux1 + aux2) (`keras_convnets.models.aux`); without them, the main loss
alone. The papers find the effect small (Szegedy et al. 2014, Section 5: "relatively minor (around 0.5%)";
Szegedy et al. 2015, Section 4: no gain early in training, a slightly higher plateau near the end); the report
only states what this run shows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from keras_convnets.experiments import presets
from keras_convnets.experiments import training as tr
from keras_convnets.experiments.report import Report, label_error_axes, new_figure, plot_error_curves, sampling_error
from keras_convnets.models import common

__all__ = ["PRESETS", "REAL", "FULL", "QUICK", "AuxPreset", "run"]


@dataclass(frozen=True)
class AuxPreset:
    dataset: str = "cifar10"
    image_size: int = 96  # the paper variant's aux heads need at least 79x79
    variant: str = "paper"  # "paper" or "torchvision" (adaptive aux pooling: works from 31x31)
    norm: str | None = "batch"
    aux_loss_weight: float = 0.3
    epochs: int | None = 30
    batch_size: int = 128
    recipe: str = "cifar"
    seed: int = 0
    seeds: tuple[int, ...] = ()  # several seeds: both nets trained once per seed (empty: `seed` alone)
    points: int = 30
    max_train: int | None = None
    max_test: int | None = None
    run_eagerly: bool = False  # no graph tracing: for tiny budgets (tests) and debugging


FULL = AuxPreset()
QUICK = AuxPreset(dataset="digits", image_size=32, variant="torchvision", epochs=10, batch_size=64, points=12)
REAL = AuxPreset(
    dataset="fashion_mnist", image_size=32, variant="torchvision", epochs=8, points=16, max_train=20_000, seeds=(0, 1)
)
PRESETS = {"quick": QUICK, "real": REAL, "full": FULL}


def _check(preset: AuxPreset) -> None:
    from keras_convnets.models.googlenet import NORM_OPTIONS, VARIANT_OPTIONS, minimum_size

    common.check_choice("variant", preset.variant, VARIANT_OPTIONS)
    common.check_choice("norm", preset.norm, NORM_OPTIONS)
    for argument in ("image_size", "batch_size", "points"):
        presets.check_positive_int(argument, getattr(preset, argument))
    if preset.epochs is not None:
        presets.check_positive_int("epochs", preset.epochs)
    if preset.seeds != ():
        presets.check_seeds(preset.seeds)
    smallest = minimum_size(preset.variant, aux_logits=True)
    if preset.image_size < smallest:
        raise ValueError(
            f"`image_size` must be at least {smallest} for GoogLeNet variant {preset.variant!r} with its auxiliary "
            f"classifiers. Received: image_size={preset.image_size}"
        )


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
    """Train GoogLeNet with and without aux heads, write `report.md`, `curves.png`, `results.json` and
    `curves.csv` into `output_dir`, and return the results. Overrides: the fields of `AuxPreset`."""
    started = time.perf_counter()
    from keras_convnets.models.googlenet import GoogLeNet

    preset_name, base = presets.select(PRESETS, preset, quick)
    setup = tr.prepare(base, overrides, check=_check, dataset=dataset, data_dir=data_dir)
    preset, recipe, data = setup.preset, setup.recipe, setup.data
    steps, epochs = setup.steps, setup.epochs

    seeds = tuple(preset.seeds) or (preset.seed,)
    per_seed = []
    for seed in seeds:
        runs = {}
        for aux in (True, False):
            name = ("with aux heads" if aux else "without aux heads") + (f", seed {seed}" if len(seeds) > 1 else "")
            keras.utils.set_random_seed(seed)
            model = GoogLeNet(
                input_shape=(preset.image_size, preset.image_size, 3),
                classes=data.num_classes,
                aux_logits=aux,
                norm=preset.norm,
                variant=preset.variant,
                aux_loss_weight=preset.aux_loss_weight,
            )
            curves = setup.train(name, model, model_name="googlenet")
            runs["aux" if aux else "no_aux"] = curves
            keras.backend.clear_session()
        per_seed.append({"seed": seed, **runs})

    runs = {"aux": per_seed[0]["aux"], "no_aux": per_seed[0]["no_aux"]}
    results = {
        "preset": preset_name,
        "settings": preset,
        "dataset": {"name": data.name, "train": data.num_train, "test": data.num_test, "classes": data.num_classes},
        "recipe": recipe.name,
        "epochs": epochs,
        "iterations": epochs * steps,
        "runs": runs,
        "seeds": [
            {
                "seed": r["seed"],
                "test_error_with_aux": r["aux"].final_test_error,
                "test_error_without_aux": r["no_aux"].final_test_error,
            }
            for r in per_seed
        ],
        "findings": findings(per_seed, data.num_test),
    }
    results["all_runs"] = [c for r in per_seed for c in (r["aux"], r["no_aux"])]
    _write_report(output_dir, time.perf_counter() - started, results, preset, command)
    return results


def findings(per_seed: list[dict], num_test: int) -> dict:
    """The aux heads' effect on the main head's final test error: per seed, and its mean with the seed-to-seed
    spread (standard deviation over seeds, 0 with one seed) of each net and of the difference; the final training
    errors (inference mode) are means over the seeds too."""
    with_aux = np.array([r["aux"].final_test_error for r in per_seed])
    without = np.array([r["no_aux"].final_test_error for r in per_seed])
    difference = with_aux - without
    spread = lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0
    return {
        "seeds": [r["seed"] for r in per_seed],
        "test_error_with_aux": float(with_aux.mean()),
        "test_error_without_aux": float(without.mean()),
        "test_error_difference": float(difference.mean()),
        "test_error_differences": difference.tolist(),
        "seed_spread_with_aux": spread(with_aux),
        "seed_spread_without_aux": spread(without),
        "seed_spread_difference": spread(difference),
        "train_error_with_aux": float(np.mean([r["aux"].final_train_error for r in per_seed])),
        "train_error_without_aux": float(np.mean([r["no_aux"].final_train_error for r in per_seed])),
        "seconds_with_aux": float(sum(r["aux"].seconds for r in per_seed)),
        "seconds_without_aux": float(sum(r["no_aux"].seconds for r in per_seed)),
        "test_errors_examples": [round(float(with_aux.mean()) * num_test), round(float(without.mean()) * num_test)],
    }


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _write_report(output_dir: str, wall_seconds: float, results: dict, preset: AuxPreset, command: str | None) -> None:
    report = Report(
        output_dir,
        "Auxiliary classifiers: GoogLeNet with and without its aux heads",
        command=command,
        wall_seconds=wall_seconds,
    )
    ds, runs, f = results["dataset"], results["runs"], results["findings"]
    report.text(
        f"GoogLeNet (variant `{preset.variant}`, norm `{preset.norm}`) on `{ds['name']}` ({ds['train']:,} training, "
        f"{ds['test']:,} test images) at {preset.image_size}x{preset.image_size}, recipe `{results['recipe']}` at "
        f"batch {preset.batch_size} for {results['epochs']} epochs ({results['iterations']:,} iterations), seed(s) "
        f"{', '.join(map(str, f['seeds']))}, for both nets. "
        f"With the heads the loss is main + {preset.aux_loss_weight} x (aux1 + aux2). "
        "Errors are those of the main head; training error on the training batches as trained (curve) and on the "
        "training split in inference mode (end)."
    )
    report.table(
        ["net", "params", "train error (curve end)", "train error (inference)", "test error", "train seconds"],
        [
            [
                c.name,
                c.params,
                _pct(c.last_train_error),
                _pct(c.final_train_error),
                _pct(c.final_test_error),
                round(c.seconds, 1),
            ]
            for c in results.get("all_runs", list(runs.values()))
        ],
    )
    diff = f["test_error_difference"]
    errors_a, errors_b = f["test_errors_examples"]
    n = len(f["seeds"])
    if n > 1:
        noise = max(f["seed_spread_with_aux"], f["seed_spread_without_aux"])
        verdict = (
            f"Over {n} seeds ({', '.join(map(str, f['seeds']))}) the mean test error is "
            f"{_pct(f['test_error_with_aux'])} "
            f"with the aux heads and {_pct(f['test_error_without_aux'])} without: a difference of "
            f"{100 * diff:+.2f} points (per seed: {', '.join(f'{100 * d:+.2f}' for d in f['test_error_differences'])}; "
            f"standard deviation {100 * f['seed_spread_difference']:.2f}), against a seed-to-seed spread of "
            f"{100 * noise:.2f} points within one net. "
        )
        p = (f["test_error_with_aux"] + f["test_error_without_aux"]) / 2
        sampling = 2**0.5 * sampling_error(p, ds["test"])  # standard error of a difference of two test errors
        verdict += f"The test split alone makes a difference of one run uncertain by {100 * sampling:.2f} points. "
        if abs(diff) <= 2 * max(noise, f["seed_spread_difference"], sampling):  # every seed sees the same split
            verdict += "The effect is within the noise of this budget: this run cannot tell it from zero."
        else:
            verdict += (
                f"The net {'with' if diff < 0 else 'without'} the aux heads is better by more than twice the spread."
            )
    elif abs(errors_a - errors_b) <= max(2, round(0.01 * ds["test"])):
        verdict = (
            f"The two nets ended within {abs(errors_a - errors_b)} test images of each other "
            f"({errors_a} vs {errors_b} errors of {ds['test']}): no difference this run can resolve."
        )
    else:
        verdict = (
            f"The net {'with' if diff < 0 else 'without'} the aux heads ended with the lower test error, "
            f"by {abs(100 * diff):.2f} points ({errors_a} vs {errors_b} errors of {ds['test']}); one seed, "
            "so this is one sample of the difference, not its expectation."
        )
    report.heading("What the numbers show")
    report.text(
        verdict + f" Training with the heads took {f['seconds_with_aux'] / f['seconds_without_aux']:.2f}x the time."
    )
    unconverged = [c.name for c in results.get("all_runs", list(runs.values())) if c.final_train_error > 0.05]
    if unconverged:
        report.text(
            f"Training error above 5% at the end ({', '.join(unconverged)}): this budget compares early training. "
            "The papers find a small effect of full training runs on ImageNet (Szegedy et al. 2014, Section 5: "
            "'relatively minor (around 0.5%)'; Szegedy et al. 2015, Section 4: no gain early in training, a "
            "slightly higher plateau near the end), which a run this short cannot show or refute."
        )
    figure, (left, right) = new_figure(9.0, 3.4, ncols=2)
    for key, style in (("aux", "-"), ("no_aux", "--")):
        c = runs[key]
        plot_error_curves(left, right, c, style)
    label_error_axes(left, right, of=" (main head)")
    report.figure(figure, "curves.png", "GoogLeNet with aux heads (solid) and without (dashed)")
    report.json("results.json", results)
    report.csv("curves.csv", tr.curves_rows(results.get("all_runs", list(runs.values()))))
    report.write()
