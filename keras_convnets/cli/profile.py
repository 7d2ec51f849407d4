"""Print a registered model's trainable and total parameters and its MACs, per stage or per layer."""

from __future__ import annotations

import argparse

__all__ = ["configure", "parse_options", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a registered model name (see `convnets models`)")
    parser.add_argument("--input-size", type=int, default=None, help="height and width (default: the model's)")
    parser.add_argument("--classes", type=int, default=None, help="number of classes (default: the model's)")
    parser.add_argument("--layers", action="store_true", help="one row per layer instead of per stage")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a builder option, e.g. --option stride_in=3x3 --option shortcut=A (repeatable)",
    )


def parse_options(pairs: list[str], flag: str = "--option") -> dict:
    """`["stride_in=3x3", "aux_logits=false"]` -> `{"stride_in": "3x3", "aux_logits": False}`."""
    import ast

    options = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"`{flag}` must be KEY=VALUE. Received: {flag} {pair}")
        key, value = pair.split("=", 1)
        lowered = value.lower()
        if lowered in ("true", "false", "none"):
            options[key] = {"true": True, "false": False, "none": None}[lowered]
            continue
        try:
            options[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[key] = value
    return options


def run(args: argparse.Namespace) -> int:
    import keras_convnets

    kwargs = parse_options(args.option)
    if args.classes is not None:
        kwargs["classes"] = args.classes
    builder = keras_convnets.models.registry.get_builder(args.model)
    if args.input_size is not None:
        kwargs["input_shape"] = (args.input_size, args.input_size, 3)
    model = builder(**kwargs)
    print(keras_convnets.profile(model).table(by="layer" if args.layers else "stage"))
    return 0
