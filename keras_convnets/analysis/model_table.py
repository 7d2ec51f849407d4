"""The table of every registered model (input, parameters, MACs) kept in the README.

`python -m keras_convnets.analysis.model_table --update README.md` rewrites the block between the markers;
the test suite fails when that block is out of date.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass

from keras_convnets.analysis.profiler import profile
from keras_convnets.models.aux import strip_aux
from keras_convnets.models.registry import get_model, list_models
from keras_convnets.utils.io import write_text_atomic

__all__ = [
    "END",
    "START",
    "ModelRow",
    "current_block",
    "main",
    "markdown",
    "model_row",
    "replace_block",
]

START = "<!-- model-table:start -->"
END = "<!-- model-table:end -->"


@dataclass(frozen=True)
class ModelRow:
    name: str
    input_shape: tuple
    classes: int
    trainable_params: int
    macs: int


def model_row(name: str, model=None) -> ModelRow:
    """The row of one registered model, built with its defaults (or `model`, built that way)."""
    model = model if model is not None else get_model(name)
    report = profile(model)
    output = strip_aux(model).outputs[0]  # the main head of a model with auxiliary classifiers
    return ModelRow(name, report.input_shape, int(output.shape[-1]), report.trainable_params, report.macs)


def markdown(rows: list[ModelRow]) -> str:
    lines = [
        "| model | input | classes | trainable parameters | MACs |",
        "|---|---|---|---:|---:|",
    ]
    for row in rows:
        size = "x".join(str(d) for d in row.input_shape)
        lines.append(f"| `{row.name}` | {size} | {row.classes} | {row.trainable_params:,} | {row.macs / 1e9:.3f} G |")
    return "\n".join(lines)


def replace_block(text: str, table: str) -> str:
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError(f"The README has no model table block ({START} ... {END}).")
    return pattern.sub(lambda _: f"{START}\n{table}\n{END}", text)


def current_block(text: str) -> str:
    match = re.search(re.escape(START) + r"\n(.*?)\n" + re.escape(END), text, re.S)
    return match.group(1) if match else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--update", metavar="README", help="rewrite the table block of this file")
    args = parser.parse_args(argv)
    table = markdown([model_row(name) for name in list_models()])
    if args.update:
        with open(args.update, encoding="utf-8") as f:
            text = f.read()
        write_text_atomic(args.update, replace_block(text, table))
    else:
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
