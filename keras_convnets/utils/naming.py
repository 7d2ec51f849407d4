"""One spelling of a model name: the registry's key."""

from __future__ import annotations

from typing import Any

__all__ = ["canonical_model_name"]

_ALIASES = {"inceptionv3": "inception_v3"}


def canonical_model_name(name: Any, *, argument: str = "name") -> str:
    """The registry's key for a model name written by a user: case, spaces, `-` and `_` are ignored
    (`"ResNet-50"`, `"resnet_50"` and `"resnet50"` are one model; `"Inception-v3"` is `"inception_v3"`).

    Only normalises; whether the name is registered is the registry's question (`get_builder`).
    """
    if not isinstance(name, str):
        raise TypeError(f"`{argument}` must be a string. Received: {argument}={name!r}")
    key = "".join(name.split()).lower().replace("-", "").replace("_", "")
    return _ALIASES.get(key, key)
