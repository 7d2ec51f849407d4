"""Train a registered model with its paper's recipe, evaluate it on the test split and export it.

With no arguments: ResNet-20 on the embedded digits data (no network needed), a few minutes on a CPU.
Rerunning the same command after an interruption resumes from the last epoch's checkpoint.
"""

from __future__ import annotations

import argparse
import os

__all__ = ["configure", "interrupted", "main", "resume_settings", "run", "run_directory"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text!r}")
    return value


def _jit(text: str):
    lowered = text.lower()
    if lowered in ("auto", "true", "false", "on", "off"):
        return "auto" if lowered == "auto" else lowered in ("true", "on")
    raise argparse.ArgumentTypeError(f"must be auto, true or false, got {text!r}")


def _steps_per_execution(text: str):
    if text.lower() == "auto":
        return "auto"
    return _positive_int(text)


def configure(parser: argparse.ArgumentParser) -> None:
    from keras_convnets.cli.choices import MIXED_PRECISION, RECIPES, STRATEGIES

    parser.add_argument("--model", default=None, help="a registered model (see `convnets models`); default resnet20")
    parser.add_argument(
        "--dataset",
        default=None,
        help="'digits' (embedded, default), a tensorflow-datasets name (cifar10, imagenette, ...) "
        "or a directory with one sub-folder of images per class",
    )
    parser.add_argument(
        "--epochs",
        type=_positive_int,
        default=None,
        help="default: the dataset's suggestion (digits: 15) or the recipe's length",
    )
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        help="global batch, split over the replicas (default: digits 64, else the recipe's)",
    )
    parser.add_argument("--recipe", choices=RECIPES, default=None, help="default: the model's paper's")
    parser.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="auto",
        help="tf.distribute strategy (auto: mirrored over several GPUs, multi_worker with TF_CONFIG)",
    )
    parser.add_argument(
        "--mixed-precision",
        choices=MIXED_PRECISION,
        default="auto",
        help="auto: mixed_float16 on recent GPUs, mixed_bfloat16 on CPUs with AVX512-BF16/AMX",
    )
    parser.add_argument(
        "--jit-compile",
        type=_jit,
        default="auto",
        help="XLA: auto (GPUs only), true or false; if the first step fails in XLA, training goes on without it",
    )
    parser.add_argument(
        "--steps-per-execution",
        type=_steps_per_execution,
        default="auto",
        help="training steps per call of the compiled step; must divide the steps of an epoch (auto: 1)",
    )
    parser.add_argument("--output-dir", default=None, help="the run directory (default runs/MODEL-DATASET)")
    parser.add_argument(
        "--export-dir", default=None, help="where the model is exported (default saved_models/MODEL-DATASET)"
    )
    parser.add_argument(
        "--resume",
        default=None,
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR with the configuration in its run.json",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    parser.add_argument("--deterministic", action="store_true", help="deterministic ops (bit-exact resumes, slower)")
    parser.add_argument(
        "--data-dir", default=None, help="tensorflow-datasets data directory (run.json records it: --resume reads it)"
    )
    parser.add_argument("--sync-bn", action="store_true", help="synchronize batch-norm statistics across replicas")
    parser.add_argument(
        "--steps-per-epoch", type=_positive_int, default=None, help="default: full batches of the training set"
    )
    parser.add_argument("--image-size", type=_positive_int, default=None, help="default: the dataset's or the recipe's")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a builder option of the model, e.g. --option batch_norm=true (VGG) or --option variant=torchvision "
        "(GoogLeNet); repeatable, recorded in run.json (--resume reads them)",
    )
    parser.add_argument(
        "--validation-split",
        type=_fraction,
        default=None,
        help="fraction of the training set held out for the per-epoch validation and the plateau schedule "
        "(default: 0.1 for the plateau recipe, else 0: the per-epoch numbers are the test split's)",
    )


def _slug(text: str) -> str:
    return os.path.basename(os.path.normpath(text)).replace(os.sep, "_") or "data"


def resume_settings(args: argparse.Namespace) -> dict:
    """What `--resume RUN_DIR` takes from the run's run.json for the arguments not given on the command line."""
    import json

    from keras_convnets.trainer.recipes import RECIPES

    path = os.path.join(args.resume, "run.json")
    if not os.path.isfile(path):
        raise ValueError(
            f"`--resume` must name a run directory (one holding run.json). Received: --resume {args.resume}"
        )
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    recipe = config.get("recipe", {}).get("name")
    return {
        "model": config.get("model"),
        "dataset": config.get("dataset_source") or config.get("dataset"),
        "data_dir": config.get("data_dir"),
        "epochs": config.get("epochs"),
        "batch_size": config.get("batch_size"),
        "recipe": recipe if recipe in RECIPES else None,
        "seed": config.get("seed"),
        "steps_per_epoch": config.get("steps_per_epoch"),
        "image_size": config.get("image_size"),
        "validation_split": config.get("validation_split", 0.0),
        "model_options": config.get("model_options") or {},
    }


def run_directory(args: argparse.Namespace) -> str:
    """The run directory the command trains in: --resume's, --output-dir, or runs/MODEL-DATASET."""
    from keras_convnets.utils.naming import canonical_model_name

    if args.resume is not None:
        return args.resume
    if args.output_dir is not None:
        return args.output_dir
    model, dataset = args.model or "resnet20", args.dataset or "digits"
    return os.path.join("runs", f"{canonical_model_name(model, argument='--model')}-{_slug(dataset)}")


def interrupted(args: argparse.Namespace) -> str:
    """What Ctrl-C prints: the epoch of the newest checkpoint in the run directory, and that the same command
    resumes from it."""
    import json

    from keras_convnets.trainer.callbacks import CHECKPOINT_PATTERN, list_checkpoints

    directory = run_directory(args)
    checkpoints = list_checkpoints(os.path.join(directory, "checkpoints"))
    try:
        with open(os.path.join(directory, "run.json"), encoding="utf-8") as f:
            of = f" of {int(json.load(f)['epochs'])}"
    except (OSError, ValueError, KeyError, TypeError):
        of = ""
    if not checkpoints:
        return f"interrupted before the first epoch's checkpoint in {directory}: the same command starts it again."
    epoch = int(CHECKPOINT_PATTERN.match(os.path.basename(checkpoints[0])).group(1))
    return (
        f"interrupted: stopped after epoch {epoch}{of} (checkpoint {checkpoints[0]}); "
        "the same command resumes from there."
    )


def run(args: argparse.Namespace) -> int:
    from keras_convnets.trainer import train
    from keras_convnets.utils.backend import require_tensorflow_backend
    from keras_convnets.utils.naming import canonical_model_name

    require_tensorflow_backend("training")
    output_dir = args.output_dir
    saved = {}
    if args.resume is not None:
        if output_dir is not None and os.path.normpath(output_dir) != os.path.normpath(args.resume):
            raise ValueError(
                f"`--resume` and `--output-dir` name different directories. Received: --resume {args.resume} "
                f"--output-dir {output_dir}"
            )
        saved = resume_settings(args)
        output_dir = args.resume

    from keras_convnets.cli.profile import parse_options

    model_options = parse_options(args.option, flag="--option") if args.option else saved.get("model_options", {})

    def setting(key, default=None):
        value = getattr(args, key)
        return value if value is not None else saved.get(key) if saved.get(key) is not None else default

    model, dataset = setting("model", "resnet20"), setting("dataset", "digits")
    name = f"{canonical_model_name(model, argument='--model')}-{_slug(dataset)}"
    result = train(
        model,
        dataset,
        epochs=setting("epochs"),
        batch_size=setting("batch_size"),
        recipe=setting("recipe"),
        strategy=args.strategy,
        mixed_precision=args.mixed_precision,
        jit_compile=args.jit_compile,
        steps_per_execution=args.steps_per_execution,
        output_dir=output_dir or os.path.join("runs", name),
        export_dir=args.export_dir or os.path.join("saved_models", name),
        seed=setting("seed", 0),
        deterministic=args.deterministic,
        data_dir=setting("data_dir"),
        sync_bn=args.sync_bn,
        steps_per_epoch=setting("steps_per_epoch"),
        image_size=setting("image_size"),
        validation_split=setting("validation_split", "auto"),
        model_options=model_options,
    )
    return 0 if result.metrics else 1


def main(argv: list[str] | None = None) -> int:
    """`python -m keras_convnets.cli.train ARGS` is `convnets train ARGS`."""
    import sys

    from keras_convnets.cli.main import main as cli_main

    return cli_main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
