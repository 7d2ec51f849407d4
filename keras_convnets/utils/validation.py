"""Argument checks with Keras's wording: the argument in backticks, what is allowed, and what was received."""

from __future__ import annotations

from typing import Any, Sequence

__all__ = ["check_choice", "check_fraction", "check_int", "check_number"]


def check_choice(argument: str, value: Any, allowed: Sequence[Any]) -> None:
    """`value` must be one of `allowed` (compared with `in`)."""
    if value not in allowed:
        shown = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"`{argument}` must be one of {shown}. Received: {argument}={value!r}")


def check_int(argument: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> None:
    """An integer (not a bool) in [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"`{argument}` must be an integer. Received: {argument}={value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"`{argument}` must be at least {minimum}. Received: {argument}={value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"`{argument}` must be at most {maximum}. Received: {argument}={value!r}")


def check_number(
    argument: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
    exclusive_maximum: bool = False,
) -> float:
    """A real number (not a bool) within the bounds; returns it as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise TypeError(f"`{argument}` must be a number. Received: {argument}={value!r}")
    if minimum is not None and (value <= minimum if exclusive_minimum else value < minimum):
        word = "greater than" if exclusive_minimum else "at least"
        raise ValueError(f"`{argument}` must be {word} {minimum}. Received: {argument}={value!r}")
    if maximum is not None and (value >= maximum if exclusive_maximum else value > maximum):
        word = "less than" if exclusive_maximum else "at most"
        raise ValueError(f"`{argument}` must be {word} {maximum}. Received: {argument}={value!r}")
    return float(value)


def check_fraction(argument: str, value: Any) -> None:
    """A dropout-like rate in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"`{argument}` must be a number in [0, 1). Received: {argument}={value!r}")
