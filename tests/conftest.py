"""Shared fixtures. Models built with their defaults are cached per test process: the parameter,
MAC, layer-name and README-table tests all read the same instances (they share an xdist group)."""

from __future__ import annotations

import functools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402

import keras_convnets  # noqa: E402


@functools.lru_cache(maxsize=None)
def default_model(name: str) -> keras.Model:
    """The registered model `name` built with its defaults (cached)."""
    return keras_convnets.get_model(name)


@pytest.fixture(autouse=True)
def _clear_keras_names():
    """Keep Keras's global name counters from growing across tests."""
    yield
    keras.backend.clear_session(free_memory=False)
