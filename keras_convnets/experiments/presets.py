"""Presets of the experiments: a frozen dataclass per experiment, with checked overrides.

Every experiment has three: `quick` (minutes, on the embedded digits), `real` (about half an hour of 2 CPU
cores, measured, on 20,000 of Fashion-MNIST's real photos) and `full` (the paper's setting, on CIFAR-10)."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from keras_convnets.utils.validation import check_int

__all__ = ["PRESET_NAMES", "check_int_tuple", "check_positive_int", "check_seeds", "select", "with_overrides"]

PRESET_NAMES = ("quick", "real", "full")

T = TypeVar("T")


def with_overrides(preset: T, overrides: dict[str, Any]) -> T:
    """`preset` with some fields replaced; an unknown field is a `ValueError` listing the fields."""
    fields = [f.name for f in dataclasses.fields(preset)]
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ValueError(
            f"Unknown setting {unknown[0]!r} for this experiment. Settings: {', '.join(fields)}. "
            f"Received: {unknown[0]}={overrides[unknown[0]]!r}"
        )
    return dataclasses.replace(preset, **overrides)


def select(table: dict[str, T], preset: str | None, quick: bool = True) -> tuple[str, T]:
    """The preset named `preset` in `table` (one of `PRESET_NAMES`), or, when `preset` is None, "quick" or "full" as
    `quick` says. Returns (name, preset)."""
    name = preset if preset is not None else ("quick" if quick else "full")
    if name not in table:
        raise ValueError(f"`preset` must be one of {', '.join(map(repr, table))}. Received: preset={preset!r}")
    return name, table[name]


def check_positive_int(argument: str, value: Any) -> int:
    check_int(argument, value, minimum=1, requirement="must be a positive integer")
    return value


def check_int_tuple(argument: str, value: Any, *, length: int | None = None) -> tuple[int, ...]:
    try:
        items = tuple(value)
    except TypeError:
        items = None
    size = f"{length} " if length else ""
    requirement = f"must be a tuple of {size}positive integers"
    if not items or (length is not None and len(items) != length):
        raise (TypeError if items is None else ValueError)(
            f"`{argument}` {requirement}. Received: {argument}={value!r}"
        )
    for item in items:
        check_int(argument, item, minimum=1, requirement=requirement, received=f"{argument}={value!r}")
    return items


def check_seeds(seeds: Any) -> tuple[int, ...]:
    """`seeds`: a non-empty tuple of distinct non-negative integers (not bools)."""
    requirement = "must be a non-empty tuple of distinct non-negative integers"
    if not isinstance(seeds, tuple):
        raise TypeError(f"`seeds` {requirement}. Received: seeds={seeds!r}")
    if not seeds or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in seeds):
        raise ValueError(f"`seeds` {requirement}. Received: seeds={seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"`seeds` must be distinct. Received: seeds={seeds!r}")
    return seeds
