"""Argument checks with Keras's wording: the argument in backticks, what is allowed, and what was received.

One rule: a value of the wrong type is a `TypeError`, a value of the right type out of range a `ValueError`.
`requirement` replaces what follows the argument ("must be a positive integer", "widths must be positive
integers") in both errors, and `received` the text after "Received: " (default `argument=value`), for a check of
one member of a sequence or of a row.
"""

from __future__ import annotations

from typing import Any, Sequence

__all__ = ["check_choice", "check_fraction", "check_int", "check_number"]


def _message(argument: str, default: str, value: Any, requirement: str | None, received: str | None) -> str:
    return f"`{argument}` {requirement or f'must be {default}'}. Received: {received or f'{argument}={value!r}'}"


def check_choice(argument: str, value: Any, allowed: Sequence[Any]) -> None:
    """`value` must be one of `allowed` (compared with `in`)."""
    if value not in allowed:
        shown = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"`{argument}` must be one of {shown}. Received: {argument}={value!r}")


def check_int(
    argument: str,
    value: Any,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    types: tuple[type, ...] = (int,),
    requirement: str | None = None,
    received: str | None = None,
) -> None:
    """An integer (not a bool; an instance of `types`) in [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, types):
        raise TypeError(_message(argument, "an integer", value, requirement, received))
    if minimum is not None and value < minimum:
        raise ValueError(_message(argument, f"at least {minimum}", value, requirement, received))
    if maximum is not None and value > maximum:
        raise ValueError(_message(argument, f"at most {maximum}", value, requirement, received))


def check_number(
    argument: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
    exclusive_maximum: bool = False,
    requirement: str | None = None,
    received: str | None = None,
) -> float:
    """A real number (not a bool, not NaN) within the bounds; returns it as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise TypeError(_message(argument, "a number", value, requirement, received))
    if minimum is not None and (value <= minimum if exclusive_minimum else value < minimum):
        word = "greater than" if exclusive_minimum else "at least"
        raise ValueError(_message(argument, f"{word} {minimum}", value, requirement, received))
    if maximum is not None and (value >= maximum if exclusive_maximum else value > maximum):
        word = "less than" if exclusive_maximum else "at most"
        raise ValueError(_message(argument, f"{word} {maximum}", value, requirement, received))
    return float(value)


def check_fraction(argument: str, value: Any) -> None:
    """A dropout-like rate in [0, 1): a TypeError for what is not a number, a ValueError out of the range."""
    message = f"`{argument}` must be a number in [0, 1). Received: {argument}={value!r}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise TypeError(message)
    if not 0 <= value < 1:
        raise ValueError(message)
