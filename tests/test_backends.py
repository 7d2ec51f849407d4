"""Every registered model on the JAX and PyTorch backends (issue 16), one subprocess per backend
(tests/backend_child.py: Keras reads KERAS_BACKEND once, when it is imported).

- every registered model builds and predicts finite outputs of the right shape;
- the `.weights.h5` file of a representative set, written here by the TensorFlow backend with non-trivial batch-norm
  statistics and biases, loads strictly and gives TensorFlow's outputs on the same images;
- `keras_convnets.models` imports without TensorFlow;
- training, export and tuning refuse the backend with one clear error, in Python and at the command line, and
  write nothing.

A backend whose package is not installed is skipped (`pip install jax jaxlib`, `pip install torch==2.13.0`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_convnets

pytestmark = pytest.mark.xdist_group("backends")

BACKENDS = {"jax": "jax", "torch": "torch"}  # backend -> the package it needs
CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "backend_child.py")
CLASSES = 7
LOGITS = {"classes": CLASSES, "classifier_activation": None}
# The representative set: name -> (registered model, arguments). Logits, not probabilities: a softmax would hide
# differences in the saturated classes.
CASES = {
    "resnet20": ["resnet20", {"input_shape": [16, 16, 3], **LOGITS}],  # option A: the parameter-free shortcut
    "resnet18": ["resnet18", {"input_shape": [32, 32, 3], **LOGITS}],  # 1x1 projections, explicit stride padding
    "plainnet20": ["plainnet20", {"input_shape": [16, 16, 3], **LOGITS}],
    "vgg11_bn": ["vgg11", {"input_shape": [32, 32, 3], "batch_norm": True, "fc_units": 32, **LOGITS}],
    # the paper's GoogLeNet: local response normalization, biases, both aux heads
    "googlenet_lrn": ["googlenet", {"input_shape": [79, 79, 3], "norm": "lrn", **LOGITS}],
    "inception_v3": ["inception_v3", {"input_shape": [299, 299, 3], **LOGITS}],  # with its aux head
}
# Relative to the largest output of a head. Measured (max abs difference / largest abs output, over every head):
# jax 1.1e-6 (googlenet_lrn), torch 2.2e-6 (googlenet_lrn); the randomized statistics and biases alone move
# ResNet-20's outputs by 0.37 of their largest, so a file that loads partly or into the wrong places fails.
TOLERANCE = 1e-4
# ResNet-1202 is called in inference mode rather than through `predict`, which on jax has XLA compile its
# 1,202-layer graph first (over 15 minutes here); building it takes about 155 s on jax and 57 s on torch.
SKIPPED = ()
AUX_HEADS = {"googlenet": ["aux1", "aux2"], "googlenet_lrn": ["aux1", "aux2"], "inception_v3": ["aux1"]}
MESSAGE = "needs the TensorFlow backend (KERAS_BACKEND=tensorflow)"


def randomize(model: keras.Model, rng: np.random.Generator) -> None:
    """Batch-norm statistics, scales, offsets and biases away from their initial 0 and 1, so that a file whose
    variables load into the wrong places or not at all gives other outputs."""
    draws = {
        "gamma": lambda shape: rng.uniform(0.5, 1.5, shape),
        "beta": lambda shape: rng.normal(0, 0.1, shape),
        "bias": lambda shape: rng.normal(0, 0.1, shape),
        "moving_mean": lambda shape: rng.normal(0, 0.1, shape),
        "moving_variance": lambda shape: rng.uniform(0.5, 2.0, shape),
    }
    for variable in model.weights:
        draw = draws.get(variable.name.split("/")[-1])
        if draw is not None:
            variable.assign(draw(variable.shape).astype("float32"))


def heads(outputs) -> dict[str, np.ndarray]:
    if isinstance(outputs, dict):
        return {key: np.asarray(value) for key, value in outputs.items()}
    return {"predictions": np.asarray(outputs)}


def write_references(directory) -> dict:
    """Build each case on this process's (TensorFlow) backend with `randomize`d variables; write `cases.json`, its
    weights files and images into `directory`; return its outputs (case -> head -> array)."""
    rng = np.random.default_rng(0)
    expected = {}
    for case, (name, kwargs) in CASES.items():
        keras.utils.set_random_seed(0)
        model = keras_convnets.get_model(name, **kwargs)
        randomize(model, rng)
        images = rng.normal(size=(2, *model.inputs[0].shape[1:])).astype("float32")
        model.save_weights(os.path.join(directory, f"{case}.weights.h5"))
        np.save(os.path.join(directory, f"{case}.npy"), images)
        expected[case] = heads(model.predict(images, verbose=0))
        keras.backend.clear_session()
    with open(os.path.join(directory, "cases.json"), "w") as file:
        json.dump(CASES, file)
    return expected


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """The cases' weights files, images and TensorFlow outputs, in one directory."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip(f"the references come from the TensorFlow backend; this process runs {keras.backend.backend()}")
    directory = tmp_path_factory.mktemp("backends")
    return directory, write_references(directory)


@pytest.fixture(scope="module", params=list(BACKENDS))
def child(request, references):
    """The child's RESULT on one backend, with the reference directory."""
    backend = request.param
    if importlib.util.find_spec(BACKENDS[backend]) is None:
        pytest.skip(f"{BACKENDS[backend]} is not installed: the {backend} backend cannot be tested")
    directory, _ = references
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "JAX_PLATFORMS": "cpu"}
    process = subprocess.run(
        [sys.executable, CHILD, os.fspath(directory), "--skip", *SKIPPED],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    lines = [line for line in process.stdout.splitlines() if line.startswith("RESULT ")]
    assert process.returncode == 0 and lines, f"the {backend} child failed:\n{process.stderr[-4000:]}"
    result = json.loads(lines[-1][len("RESULT ") :])
    assert result["backend"] == backend
    return result, directory


@pytest.mark.slow
def test_the_builders_import_without_tensorflow(child):
    result, _ = child
    assert result["tensorflow_imported"] is False


@pytest.mark.slow
def test_every_registered_model_builds_and_predicts(child):
    result, _ = child
    built = dict(result["built"])
    covered = (set(built) - set(CASES)) | {name for name, _ in CASES.values()}
    assert sorted(covered) == sorted(name for name in keras_convnets.list_models() if name not in SKIPPED)
    for name, entry in built.items():
        assert entry["finite"] is True, name
        assert entry["outputs"] == {head: [2, CLASSES] for head in ["predictions", *AUX_HEADS.get(name, [])]}, name


@pytest.mark.slow
def test_tensorflow_weights_give_the_same_outputs(child, references):
    result, directory = child
    _, expected = references
    backend = result["backend"]
    worst = {}
    for case, reference in expected.items():
        with np.load(directory / backend / f"{case}.npz") as outputs:
            assert sorted(outputs.files) == sorted(reference), case
            for head, value in reference.items():
                scale = float(np.max(np.abs(value)))
                assert scale > 0, (case, head)
                worst[f"{case}/{head}"] = float(np.max(np.abs(outputs[head] - value))) / scale
    print(f"{backend}: max abs difference / largest output:", json.dumps(worst))
    assert max(worst.values()) < TOLERANCE, worst


@pytest.mark.slow
def test_training_export_and_tuning_refuse_the_backend(child):
    result, _ = child
    backend = result["backend"]
    received = f"Received: backend={backend!r}"
    names = {
        "train": "`train`",
        "export_saved_model": "`export_saved_model`",
        "export_tflite": "`export_tflite` of a Keras model",
        "export_onnx": "`export_onnx`",
        "export_bundle": "`export_bundle`",
        "search": "`search`",
    }
    for call, name in names.items():
        message = result["refusals"][call]
        assert message is not None and message.startswith(f"ValueError: {name} {MESSAGE}"), (call, message)
        assert message.endswith(received), (call, message)
    for command, (status, stderr) in result["cli"].items():
        lines = stderr.strip().splitlines()
        assert status == 2, (command, stderr)
        assert len(lines) == 1 and lines[0].startswith(f"convnets {command}: error: "), (command, stderr)
        assert MESSAGE in lines[0] and lines[0].endswith(received), (command, stderr)
    assert result["scratch_exists"] is False  # nothing was written


def test_the_refusal_names_what_and_the_backend(monkeypatch):
    from keras_convnets.utils.backend import require_tensorflow_backend

    require_tensorflow_backend("`train`")  # this process runs TensorFlow: nothing happens
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(ValueError) as caught:
        require_tensorflow_backend("`train`")
    assert str(caught.value) == (
        "`train` needs the TensorFlow backend (KERAS_BACKEND=tensorflow): training, export and tuning run on "
        "TensorFlow only (the models build and predict on every backend). Received: backend='jax'"
    )
