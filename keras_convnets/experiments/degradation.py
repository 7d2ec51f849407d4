"""Degradation (He et al. 2016, Figures 1 and 6): deeper plain nets train worse; deeper ResNets do not.

Plain nets and ResNets of two (or more) depths are trained with the same recipe, batch, seed and data order,
and their training and test errors are plotted against iterations, plain dashed and residual solid. The report
states, from the numbers, whether the deeper plain net ended with a higher training error than the shallower one
and whether the deeper residual net ended lower.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from keras_convnets.experiments import presets
from keras_convnets.experiments import training as tr
from keras_convnets.experiments.report import Report, label_error_axes, new_figure, plot_error_curves, sampling_error
from keras_convnets.models import common

__all__ = [
    "PRESETS",
    "REAL",
    "FAMILIES",
    "FULL",
    "QUICK",
    "DegradationPreset",
    "build",
    "findings",
    "findings_over_seeds",
    "net_name",
    "run",
]

FAMILIES = ("cifar", "imagenet")


@dataclass(frozen=True)
class DegradationPreset:
    depths: tuple[int, ...] = (20, 56)  # CIFAR nets: 6n+2; ImageNet nets: 18 and 34
    family: str = "cifar"  # "cifar" (CifarResNet, option A) or "imagenet" (ResNet, option B)
    dataset: str = "cifar10"
    image_size: int = 32
    epochs: int | None = None  # None: the recipe's length (64k iterations at batch 128 for "cifar")
    batch_size: int = 128
    recipe: str = "cifar"
    seed: int = 0
    seeds: tuple[int, ...] = ()  # several seeds: every net trained once per seed (empty: `seed` alone)
    points: int = 40  # points per curve
    max_train: int | None = None  # cut the training split (tests, quick looks)
    max_test: int | None = None
    run_eagerly: bool = False  # no graph tracing: for tiny budgets (tests) and debugging


FULL = DegradationPreset()
QUICK = DegradationPreset(depths=(8, 32), dataset="digits", image_size=16, epochs=8, batch_size=64, points=16)
REAL = DegradationPreset(
    dataset="fashion_mnist", image_size=16, epochs=8, points=16, max_train=20_000, max_test=5_000, seeds=(0, 1)
)
PRESETS = {"quick": QUICK, "real": REAL, "full": FULL}


def build(family: str, depth: int, residual: bool, *, image_size: int, classes: int) -> keras.Model:
    from keras_convnets.models.resnet import CifarResNet, ResNet

    builder = CifarResNet if family == "cifar" else ResNet
    return builder(depth, input_shape=(image_size, image_size, 3), classes=classes, residual=residual)


def net_name(depth: int, residual: bool) -> str:
    return f"{'resnet' if residual else 'plainnet'}{depth}"


def _check(preset: DegradationPreset) -> None:
    common.check_choice("family", preset.family, FAMILIES)
    depths = presets.check_int_tuple("depths", preset.depths)
    if len(depths) < 2 or list(depths) != sorted(set(depths)):
        raise ValueError(
            f"`depths` must hold at least two depths in increasing order. Received: depths={preset.depths!r}"
        )
    for argument in ("image_size", "batch_size", "points"):
        presets.check_positive_int(argument, getattr(preset, argument))
    if preset.epochs is not None:
        presets.check_positive_int("epochs", preset.epochs)
    if preset.seeds != ():
        presets.check_seeds(preset.seeds)
    for depth in depths:  # the builders' own checks, before any training
        if preset.family == "cifar":
            from keras_convnets.models.resnet import cifar_spec

            cifar_spec(depth)
        else:
            from keras_convnets.models.resnet import imagenet_spec

            imagenet_spec(depth)


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
    """Train every (depth, plain/residual) pair, write `report.md`, `curves.png`, `results.json` and
    `curves.csv` into `output_dir`, and return the results. Overrides: the fields of `DegradationPreset`."""
    started = time.perf_counter()

    preset_name, base = presets.select(PRESETS, preset, quick)
    setup = tr.prepare(base, overrides, check=_check, dataset=dataset, data_dir=data_dir)
    preset, recipe, data = setup.preset, setup.recipe, setup.data
    steps, epochs = setup.steps, setup.epochs

    seeds = tuple(preset.seeds) or (preset.seed,)
    per_seed: list[dict[str, tr.Curves]] = []
    for seed in seeds:  # a seed sets the initialisation and the data order, the same for every net
        seeded = dataclasses.replace(setup, preset=dataclasses.replace(preset, seed=seed))
        seed_runs: dict[str, tr.Curves] = {}
        for depth in preset.depths:
            for residual in (False, True):
                name = net_name(depth, residual)
                keras.utils.set_random_seed(seed)
                model = build(preset.family, depth, residual, image_size=preset.image_size, classes=data.num_classes)
                label = name if len(seeds) == 1 else f"{name}, seed {seed}"
                seed_runs[name] = seeded.train(label, model, model_name=name)
                keras.backend.clear_session()
        per_seed.append(seed_runs)
    runs = per_seed[0]

    results = {
        "preset": preset_name,
        "settings": preset,
        "dataset": {"name": data.name, "train": data.num_train, "test": data.num_test, "classes": data.num_classes},
        "recipe": recipe.name,
        "epochs": epochs,
        "iterations": epochs * steps,
        "runs": {name: c for name, c in runs.items()},
        "findings": findings(runs, preset.depths),
    }
    if len(seeds) > 1:
        results["seeds"] = list(seeds)
        results["runs_per_seed"] = per_seed
        results["findings_over_seeds"] = findings_over_seeds(per_seed, seeds, preset.depths)
    _write_report(output_dir, time.perf_counter() - started, results, runs, preset, command)
    return results


def findings(runs: dict[str, tr.Curves], depths) -> dict:
    """The paper's two claims, checked on the numbers: for the shallowest and the deepest depth, the final
    training error (training batches, last tenth of the curve; and the training split in inference mode)."""
    low, high = min(depths), max(depths)
    out = {}
    for kind, residual in (("plain", False), ("residual", True)):
        a, b = runs[net_name(low, residual)], runs[net_name(high, residual)]
        out[kind] = {
            "shallow": net_name(low, residual),
            "deep": net_name(high, residual),
            "train_error_curve_end": [a.last_train_error, b.last_train_error],
            "train_error_inference": [a.final_train_error, b.final_train_error],
            "test_error": [a.final_test_error, b.final_test_error],
            "deeper_has_higher_train_error": b.last_train_error > a.last_train_error,
            "deeper_has_higher_train_error_inference": b.final_train_error > a.final_train_error,
            "deeper_has_lower_train_error": b.last_train_error < a.last_train_error,
            "deeper_has_lower_train_error_inference": b.final_train_error < a.final_train_error,
            "deeper_has_lower_test_error": b.final_test_error < a.final_test_error,
        }
    return out


def findings_over_seeds(per_seed: list[dict[str, tr.Curves]], seeds, depths) -> dict:
    """The two claims over seeds: per seed and on average, the deep net's final training error (training split,
    inference mode) minus the shallow one's, with the spread of that difference over seeds (sample standard
    deviation), and in how many seeds each claim held on it."""
    low, high = min(depths), max(depths)
    out = {"seeds": list(seeds)}
    for kind, residual in (("plain", False), ("residual", True)):
        differences = np.array(
            [
                r[net_name(high, residual)].final_train_error - r[net_name(low, residual)].final_train_error
                for r in per_seed
            ]
        )
        holds = differences > 0 if kind == "plain" else differences < 0  # plain: deeper worse; residual: better
        out[kind] = {
            "train_error_difference_inference": float(differences.mean()),
            "train_error_differences_inference": differences.tolist(),
            "seed_spread_of_the_difference": float(np.std(differences, ddof=1)),
            "claim_holds_in_seeds": int(holds.sum()),
        }
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _write_report(output_dir, wall_seconds, results, runs, preset, command) -> None:
    report = Report(
        output_dir, "Degradation: plain nets against ResNets at two depths", command=command, wall_seconds=wall_seconds
    )
    ds = results["dataset"]
    seeds = results.get("seeds") or [preset.seed]
    seeds_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(map(str, seeds))}"
    report.text(
        f"Dataset `{ds['name']}` ({ds['train']:,} training and {ds['test']:,} test images, {ds['classes']} classes) "
        f"at {preset.image_size}x{preset.image_size}; recipe `{results['recipe']}` (its optimizer, schedule, "
        f"augmentation and preprocessing) at batch {preset.batch_size} for {results['epochs']} epochs "
        f"({results['iterations']:,} iterations), {seeds_text}, the same for every net. Training error: "
        "the training batches as trained (augmented, training mode), averaged between points; at the end also "
        "the whole training split in inference mode. Test error: the test split in inference mode."
    )
    rows = []
    for name, c in runs.items():
        rows.append(
            [
                name,
                c.params,
                _pct(c.last_train_error),
                _pct(c.final_train_error),
                _pct(c.final_test_error),
                round(c.seconds, 1),
            ]
        )
    report.table(
        ["net", "params", "train error (curve end)", "train error (inference)", "test error", "train seconds"], rows
    )

    f = results["findings"]
    p, r = f["plain"], f["residual"]

    def verdict(flag: bool) -> str:
        return "yes" if flag else "no"

    report.heading("What the numbers show")
    report.bullets(
        [
            f"Deeper plain net ({p['deep']}) ended with a higher training error than the shallower ({p['shallow']}): "
            f"{verdict(p['deeper_has_higher_train_error'])} on the training curve "
            f"({_pct(p['train_error_curve_end'][1])} vs {_pct(p['train_error_curve_end'][0])}), "
            f"{verdict(p['deeper_has_higher_train_error_inference'])} on the training split in inference mode "
            f"({_pct(p['train_error_inference'][1])} vs {_pct(p['train_error_inference'][0])}).",
            f"Deeper residual net ({r['deep']}) ended with a lower training error than the shallower ({r['shallow']}): "
            f"{verdict(r['deeper_has_lower_train_error'])} on the training curve "
            f"({_pct(r['train_error_curve_end'][1])} vs {_pct(r['train_error_curve_end'][0])}), "
            f"{verdict(r['deeper_has_lower_train_error_inference'])} on the training split in inference mode "
            f"({_pct(r['train_error_inference'][1])} vs {_pct(r['train_error_inference'][0])}).",
            f"Test error, shallow vs deep: plain {_pct(p['test_error'][0])} vs {_pct(p['test_error'][1])}, residual "
            f"{_pct(r['test_error'][0])} vs {_pct(r['test_error'][1])}.",
        ]
    )
    paper = p["deeper_has_higher_train_error"] and r["deeper_has_lower_train_error"]
    over = results.get("findings_over_seeds")
    if over is None:
        report.text(
            "The paper's pattern (deeper plain worse, deeper residual better, on training error) "
            + (
                "appears in this run (one seed)."
                if paper
                else "does not fully appear in this run (one seed: how much the differences vary from seed to "
                "seed is not measured)."
            )
        )
    else:
        n = len(over["seeds"])
        lines = []
        for kind, claim in (
            ("plain", "the deeper plain net trains worse"),
            ("residual", "the deeper ResNet trains better"),
        ):
            o = over[kind]
            lines.append(
                f"{claim.capitalize()}: held in {o['claim_holds_in_seeds']} of {n} seeds; deep - shallow training "
                f"error (inference mode) {100 * o['train_error_difference_inference']:+.2f} points on average "
                f"(per seed {', '.join(f'{100 * d:+.2f}' for d in o['train_error_differences_inference'])}; "
                f"spread {100 * o['seed_spread_of_the_difference']:.2f})."
            )
        report.text(
            f"Over seeds {', '.join(map(str, over['seeds']))} (the tables and curves above are seed "
            f"{over['seeds'][0]}'s; every run is in results.json and curves.csv):"
        )
        report.bullets(lines)
    n_train = ds["train"]
    largest = max(max(c.final_train_error for c in runs.values()), 0.0)
    report.text(
        f"How far this run speaks to the claim: the schedule is the recipe's, compressed into "
        f"{results['iterations']:,} iterations (He et al. trained 64k on CIFAR-10, dividing the rate at 32k and 48k); "
        "in their Figure 6 the deeper ResNets end that schedule with the lower training error, and their CIFAR-10 "
        "test errors are ResNet-20 8.75% and ResNet-56 6.97% (Table 6). The "
        f"training split of {n_train:,} images measures a training error to within "
        f"{100 * sampling_error(largest, n_train):.2f} points (one standard error at the largest here, "
        f"{_pct(largest)}); where there are several seeds, their spread (above) is the noise to read the "
        "differences against."
    )

    figure, (left, right) = new_figure(9.0, 3.6, ncols=2)
    colors = {d: f"C{i}" for i, d in enumerate(preset.depths)}
    for depth in preset.depths:
        for residual in (False, True):
            c = runs[net_name(depth, residual)]
            style = dict(color=colors[depth], linestyle="-" if residual else "--", label=c.name)
            plot_error_curves(left, right, c, **style)
    label_error_axes(left, right)
    report.figure(figure, "curves.png", "Error against iterations: plain nets dashed, ResNets solid")
    report.json("results.json", results)
    every = [c for r in results.get("runs_per_seed", [runs]) for c in r.values()]
    report.csv("curves.csv", tr.curves_rows(every))
    report.write()
