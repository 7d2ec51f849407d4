"""Presets of the experiments: a frozen dataclass per experiment, `quick` and `full`, with checked overrides."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

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
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{argument}` must be a positive integer. Received: {argument}={value!r}")
    return value


def check_int_tuple(argument: str, value: Any, *, length: int | None = None) -> tuple[int, ...]:
    try:
        items = tuple(value)
    except TypeError:
        items = None
    if (
        not items
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in items)
        or (length is not None and len(items) != length)
    ):
        size = f"{length} " if length else ""
        raise ValueError(f"`{argument}` must be a tuple of {size}positive integers. Received: {argument}={value!r}")
    return items
