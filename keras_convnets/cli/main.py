"""`convnets`: one command, one sub-command per job. Each sub-command is a module of `keras_convnets.cli`
with `configure(parser)` and `run(args) -> int`, imported only when it is used."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# sub-command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "models": ("keras_convnets.cli.models", "list the registered models with parameters and MACs"),
    "profile": ("keras_convnets.cli.profile", "print a model's parameters and MACs per stage or per layer"),
    "experiment": ("keras_convnets.cli.experiment", "run one of the papers' experiments and write its report"),
    "train": (
        "keras_convnets.cli.train",
        "train a model with its paper's recipe (default: ResNet-20 on the embedded digits)",
    ),
    "export": ("keras_convnets.cli.export", "export a run to SavedModel, TFLite and .keras, checked against Keras"),
    "predict": ("keras_convnets.cli.predict", "top-k classes of images from an exported model"),
    "tune": ("keras_convnets.cli.tune", "search bottleneck widths with keras-tuner within a MACs/parameter budget"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convnets", description="The classic convnets of the ResNet and Inception papers."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for command, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        command_parser = sub.add_parser(command, help=help_text, description=module.__doc__)
        module.configure(command_parser)
        command_parser.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, FileExistsError) as error:
        print(f"convnets {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
