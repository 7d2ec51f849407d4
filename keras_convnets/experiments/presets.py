"""Presets of the experiments: a frozen dataclass per experiment, `quick` and `full`, with checked overrides."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from keras_convnets.utils.validation import check_int

__all__ = ["check_int_tuple", "check_positive_int", "with_overrides"]

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
