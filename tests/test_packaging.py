"""setup.cfg's lower bounds admit no version known to be unsafe or to lack what the package uses."""

from __future__ import annotations

import configparser
import os
import re

import keras
import pytest

SETUP_CFG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "setup.cfg")


def lower_bounds(section: str, key: str) -> dict[str, tuple[int, ...]]:
    config = configparser.ConfigParser()
    config.read(SETUP_CFG, encoding="utf-8")
    bounds = {}
    for line in config[section][key].strip().splitlines():
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)>=([0-9.]+)", line.strip())
        assert match, f"a requirement without a plain lower bound: {line!r}"
        bounds[match.group(1).lower()] = tuple(int(part) for part in match.group(2).split("."))
    return bounds


def test_lower_bounds_are_safe_versions():
    required = lower_bounds("options", "install_requires")
    assert required["keras"] >= (3, 13)  # AdaptiveAveragePooling2D (3.13); safe_mode fixes (CVE-2025-1550: 3.9)
    assert required["pillow"] >= (10, 3)  # CVE-2024-28219
    assert required["scikit-learn"] >= (1, 5)  # CVE-2024-5206
    assert lower_bounds("options.extras_require", "torch")["torch"] >= (2, 6)  # CVE-2025-32434
    # the ONNX export's install hint names the `onnx` extra; the tests install it and JAX with `test`
    onnx = lower_bounds("options.extras_require", "onnx")
    assert onnx == {"tf2onnx": (1, 17), "onnx": (1, 23), "onnxruntime": (1, 31)}  # the versions tested together
    assert set(onnx) | {"jax"} <= set(lower_bounds("options.extras_require", "test"))
    config = configparser.ConfigParser()
    config.read(SETUP_CFG, encoding="utf-8")
    assert config["options"]["python_requires"].strip() == ">=3.11"  # what keras 3.13 requires


@pytest.mark.parametrize("name", ["AdaptiveAveragePooling2D"])
def test_the_installed_keras_has_the_layers_the_bound_is_for(name):
    assert hasattr(keras.layers, name)
