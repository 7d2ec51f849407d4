"""Names to builders: `list_models`, `get_model`, and the `register_model` decorator."""

from __future__ import annotations

import difflib
import fnmatch
from typing import Any, Callable

import keras

from keras_convnets.utils.naming import canonical_model_name

__all__ = ["get_builder", "get_model", "list_models", "register_model"]

_MODELS: dict[str, Callable[..., keras.Model]] = {}


def register_model(name: str) -> Callable[[Callable[..., keras.Model]], Callable[..., keras.Model]]:
    """Register a builder under a lower-case name; a name registered twice is refused."""

    def decorator(builder: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
        if name in _MODELS:
            raise ValueError(f"A model named {name!r} is already registered (by {_MODELS[name].__qualname__}).")
        if name != name.lower():
            raise ValueError(f"Model names are lower case. Received: name={name!r}")
        _MODELS[name] = builder
        return builder

    return decorator


def list_models(pattern: str | None = None) -> list[str]:
    """The registered model names in registration order, optionally filtered by a glob pattern
    (`list_models("resnet*")`)."""
    names = list(_MODELS)
    if pattern is not None:
        names = [n for n in names if fnmatch.fnmatch(n, pattern.lower())]
    return names


def get_builder(name: str) -> Callable[..., keras.Model]:
    """The builder registered under `name`, spelt any way `canonical_model_name` accepts (`"ResNet-50"`,
    `"resnet_50"`, `"Inception-v3"`); an unknown name is refused with the closest registered ones."""
    key = canonical_model_name(name)
    if key in _MODELS:
        return _MODELS[key]
    by_canonical = {canonical_model_name(registered): registered for registered in _MODELS}
    if key in by_canonical:
        return _MODELS[by_canonical[key]]
    close = difflib.get_close_matches(key, list(_MODELS), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"Unknown model name.{hint} Available models: {', '.join(_MODELS)}. Received: name={name!r}")


def get_model(name: str, **kwargs: Any) -> keras.Model:
    """Build the registered model `name` (`"resnet50"`, `"ResNet-50"` and `"resnet-50"` all work)."""
    return get_builder(name)(**kwargs)
