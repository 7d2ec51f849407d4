"""Search the bottleneck widths of ResNet-50/101/152 or GoogLeNet with keras-tuner, within a budget.

Each trial trains with the model's paper's recipe on the package's data pipelines and is scored on a validation
split held out of the training set (--validation-split, default 10%); the test split is evaluated once, for the
best model. The search lives in --output-dir: stop it at any time and rerun with --resume to continue
(--overwrite starts over). At the end it prints a table of the trials (widths, MACs, parameters, accuracy), writes
trials.csv and pareto.png (accuracy against MACs, Pareto front marked), and exports the best model without
auxiliary heads to OUTPUT_DIR/best/.

Example: convnets tune --model resnet50 --dataset digits --max-trials 8 --max-macs 2e8 --tuner bayesian
"""

from __future__ import annotations

import argparse
import os

from keras_convnets.utils.backend import require_tensorflow_backend
from keras_convnets.utils.naming import canonical_model_name
from keras_convnets.utils.validation import check_int, check_number

__all__ = ["configure", "main", "run"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
        check_int("value", value, minimum=1)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    return value


def _positive_number(text: str) -> float:
    try:
        return check_number("value", float(text), minimum=0, exclusive_minimum=True)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"must be a positive number such as 2e9, got {text!r}") from None


def _widths(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
        for value in values:
            check_int("value", value, minimum=1)
    except (TypeError, ValueError):
        values = []
    if not values:
        raise argparse.ArgumentTypeError(f"must be comma-separated positive integers, got {text!r}")
    return values


def _scales(text: str) -> list[float]:
    try:
        values = [
            check_number("value", float(part), minimum=0, exclusive_minimum=True)
            for part in text.split(",")
            if part.strip()
        ]
    except (TypeError, ValueError):
        values = []
    if not values:
        raise argparse.ArgumentTypeError(f"must be comma-separated positive numbers, got {text!r}")
    return values


def _validation_split(text: str) -> int | float:
    """A count of training examples ("5000") or a fraction of the training set ("0.1")."""
    try:
        if text.strip().isdigit():
            value = int(text)
            check_int("value", value, minimum=1)
            return value
        return check_number("value", float(text), minimum=0, maximum=1, exclusive_minimum=True, exclusive_maximum=True)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(
            f"must be a fraction in (0, 1) such as 0.1, or a count of training examples, got {text!r}"
        ) from None


def _formats(text: str) -> list[str]:
    from keras_convnets.cli.choices import EXPORT_FORMATS as FORMATS

    values = [part.strip() for part in text.split(",") if part.strip()]
    if not values or any(v not in FORMATS for v in values):
        raise argparse.ArgumentTypeError(f"must be comma-separated among {', '.join(FORMATS)}, got {text!r}")
    return values


def configure(parser: argparse.ArgumentParser) -> None:
    from keras_convnets.cli.choices import GRANULARITIES, RECIPES, STRATEGIES, TUNERS

    parser.add_argument("--model", default="resnet50", help="resnet50 (default), resnet101, resnet152 or googlenet")
    parser.add_argument(
        "--dataset",
        default="digits",
        help="'digits' (embedded, default), a tensorflow-datasets name or a directory of class folders",
    )
    parser.add_argument("--tuner", choices=TUNERS, default="random", help="keras-tuner search (default random)")
    parser.add_argument(
        "--max-trials", type=_positive_int, default=10, help="trials in all, over-budget ones included (default 10)"
    )
    parser.add_argument("--max-macs", type=_positive_number, default=None, help="budget: MACs per image, e.g. 2e9")
    parser.add_argument(
        "--max-params",
        type=_positive_number,
        default=None,
        help="budget: trainable parameters of the inference model, e.g. 2e7",
    )
    parser.add_argument(
        "--epochs", type=_positive_int, default=1, help="epochs per trial (hyperband: the most a trial gets); default 1"
    )
    parser.add_argument(
        "--batch-size", type=_positive_int, default=None, help="global batch (default: digits 64, else the recipe's)"
    )
    parser.add_argument(
        "--steps-per-epoch", type=_positive_int, default=None, help="default: full batches of the training set"
    )
    parser.add_argument(
        "--validation-split",
        type=_validation_split,
        default=None,
        help="training examples held out for the trials' val_accuracy: a fraction (default 0.1) or a count; the "
        "test split is evaluated once, for the best model",
    )
    parser.add_argument(
        "--image-size",
        type=_positive_int,
        default=None,
        help="input side (default: the dataset's when it has one, else the recipe's 224)",
    )
    parser.add_argument("--recipe", choices=RECIPES, default=None, help="default: the model's paper's")
    parser.add_argument(
        "--widths",
        type=_widths,
        default=None,
        help="ResNet: candidate bottleneck widths for every stage, e.g. 16,32,64 (default: the "
        "paper's widths times --scales)",
    )
    parser.add_argument(
        "--scales",
        type=_scales,
        default=None,
        help="multipliers of the paper's widths to search (default 0.25,0.5,0.75,1)",
    )
    parser.add_argument(
        "--granularity",
        choices=GRANULARITIES,
        default="stage",
        help="GoogLeNet: one width scale per stage (default) or one width per module",
    )
    parser.add_argument(
        "--export-formats",
        type=_formats,
        default=["keras"],
        help="how the best model is exported to OUTPUT_DIR/best: comma-separated among keras "
        "(default), saved_model, tflite",
    )
    parser.add_argument("--strategy", choices=STRATEGIES, default=None, help="tf.distribute strategy (default: none)")
    parser.add_argument("--output-dir", default=None, help="the search directory (default tuning/MODEL-DATASET)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue the search in --output-dir")
    group.add_argument("--overwrite", action="store_true", help="delete the search in --output-dir and start over")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--data-dir", default=None, help="tensorflow-datasets data directory")


def _slug(text: str) -> str:
    return os.path.basename(os.path.normpath(text)).replace(os.sep, "_") or "data"


def run(args: argparse.Namespace) -> int:
    import keras

    from keras_convnets import data as data_lib
    from keras_convnets import tuning
    from keras_convnets.trainer import RECIPE_IMAGE_SIZE

    require_tensorflow_backend("tuning")
    model = canonical_model_name(args.model, argument="--model")
    kwargs = {"max_macs": args.max_macs, "max_params": args.max_params}
    if args.recipe:
        kwargs["recipe"] = args.recipe
    if args.scales:
        kwargs["scales"] = args.scales
    if model == "googlenet":
        if args.widths:
            raise ValueError(
                "`--widths` applies to ResNets; GoogLeNet searches `--scales` of its widths. "
                f"Received: --widths {','.join(map(str, args.widths))}"
            )
        kwargs["granularity"] = args.granularity
    elif args.widths:
        kwargs["widths"] = args.widths

    data = data_lib.load_dataset(args.dataset, data_dir=args.data_dir)
    recipe = kwargs.get("recipe") or ("googlenet" if model == "googlenet" else "imagenet")
    size = args.image_size or data.image_size or RECIPE_IMAGE_SIZE[recipe]
    shape = (3, size, size) if keras.config.image_data_format() == "channels_first" else (size, size, 3)
    hypermodel = tuning.hypermodel_for(model, input_shape=shape, classes=data.num_classes, **kwargs)
    output_dir = args.output_dir or os.path.join("tuning", f"{model}-{_slug(args.dataset)}")
    result = tuning.search(
        hypermodel,
        data,
        directory=output_dir,
        tuner=args.tuner,
        max_trials=args.max_trials,
        epochs=args.epochs,
        batch_size=args.batch_size,
        steps_per_epoch=args.steps_per_epoch,
        validation_split=args.validation_split,
        overwrite=args.overwrite,
        resume=True if args.resume else (None if args.overwrite else False),
        distribution_strategy=args.strategy,
        seed=args.seed,
        export_formats=args.export_formats,
    )
    print(
        f"Pareto front (trials): {', '.join(result.pareto) or '-'}. Results: {output_dir} "
        "(trials.csv, pareto.png, best/model.keras)."
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m keras_convnets.cli.tune ARGS` is `convnets tune ARGS`."""
    import sys

    from keras_convnets.cli.main import main as cli_main

    return cli_main(["tune", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
