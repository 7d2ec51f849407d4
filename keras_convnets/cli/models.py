"""List the registered models; with --table, their input, classes, trainable parameters and MACs."""

from __future__ import annotations

import argparse

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pattern", nargs="?", default=None, help="a glob pattern, e.g. 'resnet*'")
    parser.add_argument("--table", action="store_true", help="build each model and print a markdown table")


def run(args: argparse.Namespace) -> int:
    from keras_convnets.analysis import model_table
    from keras_convnets.models.registry import list_models

    names = list_models(args.pattern)
    if args.table:
        print(model_table.markdown([model_table.model_row(name) for name in names]))
    else:
        print("\n".join(names))
    return 0
