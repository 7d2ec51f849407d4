"""Lesion study (Veit et al. 2016, "Residual networks behave like ensembles of relatively shallow networks").

A ResNet and its plain twin are trained with the same recipe and seed. Then, at test time and without any
retraining, `keras_convnets.analysis.lesion` deletes blocks:

1. each block in turn (one at a time): the test error for each;
2. k random blocks for k = 1..n, several draws each: the test error against k.

Removing a residual block leaves its shortcut (identity, or the projection / zero padding where the block
changes shape). Removing a plain block makes it the identity, which only the blocks that keep the shape allow,
so the plain net's downsampling blocks are not deleted, and the random draws of both nets come from the blocks
that keep the shape, the same candidates for both. The paper's findings, against which the report checks the
numbers: single deletions barely hurt a ResNet except at downsampling blocks, its error grows smoothly with k,
and a plain net collapses.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from keras_convnets.analysis.lesion import lesion, list_blocks
from keras_convnets.experiments import presets
from keras_convnets.experiments import training as tr
from keras_convnets.experiments.report import Report, new_figure, sampling_error

__all__ = ["PRESETS", "REAL", "FULL", "QUICK", "LesionPreset", "findings", "run"]


@dataclass(frozen=True)
class LesionPreset:
    depth: int = 110  # a CIFAR ResNet depth (6n+2); the paper's ResNet-110
    dataset: str = "cifar10"
    image_size: int = 32
    epochs: int | None = None  # None: the recipe's length
    batch_size: int = 128
    recipe: str = "cifar"
    seed: int = 0
    draws: int = 10  # random draws per k
    max_k: int | None = None  # None: every candidate block
    points: int = 20
    max_train: int | None = None
    max_test: int | None = None
    run_eagerly: bool = False  # no graph tracing: for tiny budgets (tests) and debugging


FULL = LesionPreset()
QUICK = LesionPreset(depth=20, dataset="digits", image_size=16, epochs=10, batch_size=64, draws=5, points=10)
REAL = LesionPreset(
    depth=56,
    dataset="fashion_mnist",
    image_size=28,
    epochs=6,
    draws=3,
    max_k=12,
    points=12,
    max_train=20_000,
    max_test=2_000,
)
PRESETS = {"quick": QUICK, "real": REAL, "full": FULL}


def _check(preset: LesionPreset) -> None:
    from keras_convnets.models.resnet import cifar_spec

    cifar_spec(preset.depth)
    for argument in ("image_size", "batch_size", "draws", "points"):
        presets.check_positive_int(argument, getattr(preset, argument))
    for argument in ("epochs", "max_k"):
        if getattr(preset, argument) is not None:
            presets.check_positive_int(argument, getattr(preset, argument))


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
    """Train the ResNet and its plain twin, lesion them, write `report.md`, `lesion.png`, `results.json`,
    `single.csv` and `random.csv` into `output_dir`, and return the results. Overrides: `LesionPreset`'s fields."""
    started = time.perf_counter()
    from keras_convnets.models.resnet import CifarResNet

    preset_name, base = presets.select(PRESETS, preset, quick)
    setup = tr.prepare(base, overrides, check=_check, dataset=dataset, data_dir=data_dir)
    preset, recipe, data, epochs = setup.preset, setup.recipe, setup.data, setup.epochs
    test_eval = setup.test_eval

    models, curves = {}, {}
    for kind, residual in (("residual", True), ("plain", False)):
        name = f"{'resnet' if residual else 'plainnet'}{preset.depth}"
        keras.utils.set_random_seed(preset.seed)
        model = CifarResNet(
            preset.depth, input_shape=(preset.image_size,) * 2 + (3,), classes=data.num_classes, residual=residual
        )
        curves[kind] = setup.train(name, model)
        models[kind] = model

    baseline = {kind: test_eval.error(lesion(m, [])) for kind, m in models.items()}
    blocks = {kind: list_blocks(m) for kind, m in models.items()}
    single = []
    for res_block, plain_block in zip(blocks["residual"], blocks["plain"]):
        row = {
            "block": res_block.name,
            "downsampling": res_block.changes_shape,
            "residual_error": test_eval.error(lesion(models["residual"], [res_block.name])),
            "plain_error": test_eval.error(lesion(models["plain"], [plain_block.name]))
            if plain_block.removable
            else None,
        }
        single.append(row)

    candidates = [b.name for b in blocks["plain"] if b.removable]
    max_k = min(preset.max_k or len(candidates), len(candidates))
    rng = np.random.RandomState(preset.seed)
    random_rows = []
    for k in range(1, max_k + 1):
        for draw in range(preset.draws):
            chosen = sorted(rng.choice(candidates, size=k, replace=False).tolist())
            random_rows.append(
                {
                    "k": k,
                    "draw": draw,
                    "blocks": " ".join(chosen),
                    "residual_error": test_eval.error(lesion(models["residual"], chosen)),
                    "plain_error": test_eval.error(lesion(models["plain"], chosen)),
                }
            )

    results = {
        "preset": preset_name,
        "settings": preset,
        "dataset": {"name": data.name, "train": data.num_train, "test": data.num_test, "classes": data.num_classes},
        "recipe": recipe.name,
        "epochs": epochs,
        "training": curves,
        "baseline_test_error": baseline,
        "single": single,
        "random_candidates": candidates,
        "random": random_rows,
        "random_by_k": _by_k(random_rows),
    }
    results["findings"] = findings(results, data.num_classes)
    _write_report(output_dir, time.perf_counter() - started, results, preset, command)
    return results


def _by_k(rows: list[dict]) -> list[dict]:
    out = []
    for k in sorted({r["k"] for r in rows}):
        at_k = [r for r in rows if r["k"] == k]
        res = np.array([r["residual_error"] for r in at_k])
        plain = np.array([r["plain_error"] for r in at_k])
        out.append(
            {
                "k": k,
                "residual_mean": float(res.mean()),
                "residual_std": float(res.std()),
                "plain_mean": float(plain.mean()),
                "plain_std": float(plain.std()),
            }
        )
    return out


def findings(results: dict, classes: int) -> dict:
    """The paper's claims measured: increases over the intact nets' test errors."""
    base = results["baseline_test_error"]
    single = results["single"]
    chance = 1.0 - 1.0 / classes
    res_plain_blocks = [r["residual_error"] - base["residual"] for r in single if not r["downsampling"]]
    res_down_blocks = [r["residual_error"] - base["residual"] for r in single if r["downsampling"]]
    plain_blocks = [r["plain_error"] - base["plain"] for r in single if r["plain_error"] is not None]
    by_k = results["random_by_k"]
    res_means = [r["residual_mean"] for r in by_k]
    plain_means = [r["plain_mean"] for r in by_k]

    def steps_up(intact, means):
        # the steps of k from 0 (the intact net) to the largest k: the same steps as the mean step and the jump
        curve = [intact] + means
        return sum(b >= a for a, b in zip(curve, curve[1:]))

    def first_near_chance(means):
        return next((r["k"] for r, m in zip(by_k, means) if m >= chance - 0.1), None)

    n_test = results["dataset"]["test"]
    p = base["residual"]
    quartile = float(np.percentile(res_plain_blocks, 75)) if res_plain_blocks else None
    return {
        # two binomial standard errors of the intact ResNet's test error: smaller differences are noise
        "noise_level": 2 * max(sampling_error(p, n_test), 1.0 / n_test),
        "residual_k_largest_jump": float(max(np.diff([base["residual"]] + res_means))) if res_means else None,
        "residual_k_near_chance": first_near_chance(res_means),
        "plain_k_near_chance": first_near_chance(plain_means),
        "chance_error": chance,
        "residual_single_median_increase": float(np.median(res_plain_blocks)) if res_plain_blocks else None,
        "residual_single_max_increase": float(np.max(res_plain_blocks)) if res_plain_blocks else None,
        "residual_downsampling_mean_increase": float(np.mean(res_down_blocks)) if res_down_blocks else None,
        "residual_other_mean_increase": float(np.mean(res_plain_blocks)) if res_plain_blocks else None,
        # block to block spread: a downsampling block hurts "more" when its increase is above the upper quartile
        # of the other blocks' increases (not merely above their mean, which a few costly blocks can inflate)
        "residual_downsampling_increases": [float(x) for x in res_down_blocks],
        "residual_other_upper_quartile": quartile,
        "residual_downsampling_above_upper_quartile": (
            int(sum(x > quartile for x in res_down_blocks)) if quartile is not None else 0
        ),
        # smoothness of the k curve: its largest step against its mean step (1 for a straight line)
        "residual_k_mean_step": float((res_means[-1] - base["residual"]) / len(res_means)) if res_means else None,
        "plain_single_median_increase": float(np.median(plain_blocks)) if plain_blocks else None,
        "plain_single_min_increase": float(np.min(plain_blocks)) if plain_blocks else None,
        "plain_deletions_near_chance": int(
            sum(r["plain_error"] >= chance - 0.1 for r in single if r["plain_error"] is not None)
        ),
        "plain_deletions": len(plain_blocks),
        "residual_k_curve_nondecreasing_steps": steps_up(base["residual"], res_means),
        "plain_k_curve_nondecreasing_steps": steps_up(base["plain"], plain_means),
        "k_steps": len(by_k),
        "residual_below_plain_at_every_k": all(r < p for r, p in zip(res_means, plain_means)),
    }


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def _pp(x) -> str:
    return "n/a" if x is None else f"{100 * x:+.2f} points"


def _write_report(
    output_dir: str, wall_seconds: float, results: dict, preset: LesionPreset, command: str | None
) -> None:
    report = Report(
        output_dir,
        "Lesion study: deleting blocks of a trained ResNet and of its plain twin",
        command=command,
        wall_seconds=wall_seconds,
    )
    ds, base, f = results["dataset"], results["baseline_test_error"], results["findings"]
    train = results["training"]
    report.text(
        f"ResNet-{preset.depth} and its plain twin trained on `{ds['name']}` ({ds['train']:,} training, "
        f"{ds['test']:,} test images) at {preset.image_size}x{preset.image_size} with recipe `{results['recipe']}` "
        f"at batch {preset.batch_size} for {results['epochs']} epochs, seed {preset.seed}. Blocks are deleted at "
        "test time with `keras_convnets.analysis.lesion` (shared weights, no retraining; batch norm uses its trained "
        "statistics). Errors are on the test split."
    )
    report.table(
        ["net", "params", "train seconds", "test error (intact)"],
        [[train[k].name, train[k].params, round(train[k].seconds, 1), _pct(base[k])] for k in ("residual", "plain")],
    )
    report.heading("Deleting one block")
    report.table(
        ["block", "changes shape", "ResNet test error", "plain net test error"],
        [
            [
                r["block"],
                "yes" if r["downsampling"] else "",
                _pct(r["residual_error"]),
                _pct(r["plain_error"]) if r["plain_error"] is not None else "not removable (shape change)",
            ]
            for r in results["single"]
        ],
    )
    report.heading(f"Deleting k random blocks ({preset.draws} draws per k)")
    report.text(
        "Candidates (the blocks that keep the shape, the same for both nets): "
        + ", ".join(results["random_candidates"])
        + "."
    )
    report.table(
        ["k", "ResNet mean", "ResNet std", "plain mean", "plain std"],
        [
            [r["k"], _pct(r["residual_mean"]), _pct(r["residual_std"]), _pct(r["plain_mean"]), _pct(r["plain_std"])]
            for r in results["random_by_k"]
        ],
    )

    report.heading("What the numbers show, against the paper")
    report.bullets(
        [
            f"Intact test error: ResNet {_pct(base['residual'])}, plain net {_pct(base['plain'])} "
            f"(chance {_pct(f['chance_error'])}).",
            "ResNet, one block deleted (blocks that keep the shape): median increase "
            f"{_pp(f['residual_single_median_increase'])}, "
            f"largest {_pp(f['residual_single_max_increase'])}; downsampling blocks: mean increase "
            f"{_pp(f['residual_downsampling_mean_increase'])} against {_pp(f['residual_other_mean_increase'])} "
            "for the others.",
            f"Plain net, one block deleted: median increase {_pp(f['plain_single_median_increase'])}, smallest "
            f"{_pp(f['plain_single_min_increase'])}; {f['plain_deletions_near_chance']} of {f['plain_deletions']} "
            "deletions within 10 points of chance.",
            "Random deletions: the ResNet's mean error did not decrease in "
            f"{f['residual_k_curve_nondecreasing_steps']} "
            f"of {f['k_steps']} steps of k (from the intact net, k = 0), the plain net's in "
            f"{f['plain_k_curve_nondecreasing_steps']} of "
            f"{f['k_steps']}; the ResNet was below the plain net at every k: "
            f"{'yes' if f['residual_below_plain_at_every_k'] else 'no'}.",
        ]
    )
    noise = f["noise_level"]
    verdicts = []
    median = f["residual_single_median_increase"]
    if median is not None:
        verdicts.append(
            "single deletions barely hurt the ResNet: "
            + (
                f"yes (median increase {_pp(median)}, within the noise of {100 * noise:.1f} points)"
                if median <= noise
                else f"no, they hurt it (median increase {_pp(median)}, beyond the noise of {100 * noise:.1f} points)"
            )
        )
    down, other = f["residual_downsampling_mean_increase"], f["residual_other_mean_increase"]
    quartile = f.get("residual_other_upper_quartile")
    if down is not None and other is not None and quartile is not None:
        above, n_down = f["residual_downsampling_above_upper_quartile"], len(f["residual_downsampling_increases"])
        verdicts.append(
            "deleting a downsampling block hurt the ResNet more than deleting another block: "
            + ("yes" if above == n_down else "partly" if above else "no")
            + f" ({above} of {n_down} downsampling blocks above the upper quartile of the other blocks' increases, "
            f"{_pp(quartile)}; their increases "
            + ", ".join(_pp(x) for x in f["residual_downsampling_increases"])
            + f"; mean increases {_pp(down)} and {_pp(other)}; one seed, so how a block's cost varies from seed "
            "to seed is not measured)"
        )
    if f["plain_single_median_increase"] is not None and median is not None:
        verdicts.append(
            "single deletions hurt the ResNet less than the plain net: "
            + ("yes" if median + noise < f["plain_single_median_increase"] else "no")
            + f" (median increases {_pp(median)} and {_pp(f['plain_single_median_increase'])}); the plain net "
            + ("collapsed" if f["plain_deletions_near_chance"] * 2 > f["plain_deletions"] else "did not collapse")
            + f" ({f['plain_deletions_near_chance']} of {f['plain_deletions']} deletions within 10 points of chance)"
        )
    if f["residual_k_largest_jump"] is not None:
        near = f["residual_k_near_chance"]
        mean_step, jump = f.get("residual_k_mean_step"), f["residual_k_largest_jump"]
        smooth = (
            mean_step is not None
            and mean_step > 0
            and jump <= 2 * mean_step
            and f["residual_k_curve_nondecreasing_steps"] == f["k_steps"]
        )
        ratio = f", {jump / mean_step:.1f}x" if mean_step else ""
        verdicts.append(
            "the ResNet's mean error grew smoothly with k: "
            + ("yes" if smooth else "no")
            + f" (largest step {_pp(jump)} against a mean step of {_pp(mean_step)}{ratio}; smooth means every step "
            "up and none above twice the mean step)"
        )
        verdicts.append(
            f"with k random deletions the ResNet's mean error rose by at most {_pp(f['residual_k_largest_jump'])} "
            "per added block and "
            + (f"came within 10 points of chance at k = {near}" if near else "stayed more than 10 points below chance")
            + f" (the plain net: {'k = ' + str(f['plain_k_near_chance']) if f['plain_k_near_chance'] else 'never'})"
        )
    report.text(
        "Against Veit et al. (ResNet-110 fully trained on CIFAR-10: single deletions barely hurt except at "
        "downsampling blocks, the error grows smoothly with k, a plain net collapses), this run:"
    )
    report.bullets(verdicts)
    report.text(
        f"One seed, ResNet-{preset.depth} ({len(results['single'])} blocks) trained for "
        f"{results['epochs']} epochs, and a test split of {results['dataset']['test']} images: a short "
        "net with few blocks has fewer paths to fall back on than the paper's ResNet-110, so this run "
        "says how this net behaves, not whether the paper's does."
    )

    figure, (left, right) = new_figure(9.5, 3.6, ncols=2)
    names = [r["block"] for r in results["single"]]
    x = np.arange(len(names))
    left.plot(x, [100 * r["residual_error"] for r in results["single"]], "o-", label="ResNet, block deleted")
    plain_points = [
        (i, 100 * r["plain_error"]) for i, r in enumerate(results["single"]) if r["plain_error"] is not None
    ]
    if plain_points:
        left.plot(*zip(*plain_points), "s--", label="plain, block deleted")
    left.axhline(100 * base["residual"], color="C0", alpha=0.5, linewidth=1, label="ResNet intact")
    left.axhline(100 * base["plain"], color="C1", alpha=0.5, linewidth=1, linestyle="--", label="plain intact")
    for i, r in enumerate(results["single"]):
        if r["downsampling"]:
            left.axvline(i, color="grey", alpha=0.3, linewidth=6)
    left.set_xticks(x)
    left.set_xticklabels([n.replace("_block", ".") for n in names], rotation=90, fontsize=7)
    left.set_ylabel("test error (%)")
    left.set_title("one block deleted (grey: downsampling)", fontsize=9)
    left.set_ylim(0, 118)
    left.legend(fontsize=6, loc="upper center", ncol=2)
    by_k = results["random_by_k"]
    ks = [r["k"] for r in by_k]
    right.errorbar(
        ks,
        [100 * r["residual_mean"] for r in by_k],
        yerr=[100 * r["residual_std"] for r in by_k],
        fmt="o-",
        capsize=3,
        label="ResNet",
    )
    right.errorbar(
        ks,
        [100 * r["plain_mean"] for r in by_k],
        yerr=[100 * r["plain_std"] for r in by_k],
        fmt="s--",
        capsize=3,
        label="plain",
    )
    right.set_xlabel("k blocks deleted at random")
    right.set_ylabel("test error (%)")
    right.set_title("k random blocks deleted (mean, std over draws)", fontsize=9)
    right.set_ylim(0, 105)
    right.legend(fontsize=8)
    for axis in (left, right):
        axis.grid(alpha=0.3)
    report.figure(figure, "lesion.png", "Test error after deleting blocks at test time")
    report.json("results.json", results)
    report.csv("single.csv", results["single"])
    report.csv("random.csv", results["random"])
    report.write()
