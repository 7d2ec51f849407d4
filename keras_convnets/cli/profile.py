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


def _plain(value) -> bool:
    """Whether `value` is made of what JSON writes (run.json records the options): None, bool, int, float, str,
    and lists, tuples and string-keyed dicts of those."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return not isinstance(value, float) or value == value and abs(value) != float("inf")
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def parse_options(pairs: list[str], flag: str = "--option") -> dict:
    """`["stride_in=3x3", "aux_logits=false"]` -> `{"stride_in": "3x3", "aux_logits": False}`: each value a Python
    literal (numbers, tuples, lists, dicts, true/false/none in any case), else the text itself."""
    import ast

    options = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key.strip():
            raise ValueError(f"`{flag}` must be KEY=VALUE. Received: {flag} {pair}")
        key = key.strip()
        lowered = value.lower()
        if lowered in ("true", "false", "none"):
            options[key] = {"true": True, "false": False, "none": None}[lowered]
            continue
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed = value  # not a literal: the text (variant=torchvision)
        except (TypeError, MemoryError, RecursionError):  # {[1]: 2}, or nested too deep
            raise ValueError(
                f"`{flag} {key}` must be a number, text, true/false/none, or a list or dict of those. Received: {value}"
            ) from None
        if not _plain(parsed):
            raise ValueError(
                f"`{flag} {key}` must be a number, text, true/false/none, or a list or dict of those. Received: {value}"
            )
        options[key] = parsed
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
