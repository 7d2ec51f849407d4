"""One harness over every registered model (`list_models()`): output shapes, layer names, the config and `.keras`
safe-mode round trips, bad arguments, and float32 heads under mixed precision.

Each model is built small (a small input, 7 classes, VGG with narrow fully connected layers) so that the whole
table runs on a laptop; the heavy builds (ResNet-1202, Inception v3 with its auxiliary head at 299x299) are `slow`,
and so are the `.keras` round trips of the large nets (tens of millions of parameters: hundreds of MB written).
The family tests (`test_resnet_vgg.py`, `test_inception.py`) pin parameter counts, MACs and structure.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_convnets
from keras_convnets.models import common
from keras_convnets.models.aux import AuxClassifierModel

CLASSES = 7
IMAGENET_RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "plainnet18", "plainnet34")
SLOW_BUILDS = {"resnet1202", "inception_v3-299"}
# The `.keras` round trip runs by default on one model of each kind; on the others (large files) it is `slow`.
QUICK_SAVES = {"resnet18", "resnet50", "resnet20", "plainnet20", "vgg11", "googlenet", "inception_v3"}


def small_kwargs(name: str) -> dict:
    """Arguments that keep a registered model small and fast while keeping its structure."""
    if name.startswith("vgg"):
        return {"input_shape": (32, 32, 3), "classes": CLASSES, "fc_units": 32}
    if name in IMAGENET_RESNETS:
        return {"input_shape": (32, 32, 3), "classes": CLASSES}
    if name == "googlenet":  # the smallest input its paper aux heads (5x5/3 pooling) accept
        return {"input_shape": (79, 79, 3), "classes": CLASSES}
    if name == "inception_v3":  # its aux head needs 299x299: at 75x75 without it; with it in the `slow` case
        return {"input_shape": (75, 75, 3), "classes": CLASSES, "aux_logits": False}
    if name == "inception_v3-299":
        return {"input_shape": (299, 299, 3), "classes": CLASSES}
    if name == "resnet1202":
        # At initialisation each of its 600 residual blocks doubles the activations' variance (inference-mode batch
        # norm does not normalise): the outputs overflow to NaN. Zero-initialised residual branches keep them finite.
        return {"input_shape": (16, 16, 3), "classes": CLASSES, "zero_init_residual": True}
    return {"input_shape": (16, 16, 3), "classes": CLASSES}  # CIFAR ResNets and plain nets


def registered(name: str) -> str:
    return name.split("-")[0]


CASES = [*keras_convnets.list_models(), "inception_v3-299"]


def cases(quick: set[str] | None = None) -> list:
    """Every case, marked `slow` when its build is heavy (or, given `quick`, when it is not in `quick`)."""
    params = []
    for case in CASES:
        slow = case in SLOW_BUILDS or (quick is not None and case not in quick)
        params.append(pytest.param(case, id=case, marks=[pytest.mark.slow] if slow else []))
    return params


def build(case: str, **overrides) -> keras.Model:
    return keras_convnets.get_model(registered(case), **{**small_kwargs(case), **overrides})


def images(model: keras.Model, count: int = 2) -> np.ndarray:
    shape = tuple(model.inputs[0].shape[1:])
    return np.random.default_rng(0).uniform(0, 255, (count, *shape)).astype("float32")


def head_names(model: keras.Model) -> list[str]:
    """`["predictions"]`, or the heads of an aux model (`["predictions", "aux1", ...]`)."""
    return model.head_names if isinstance(model, AuxClassifierModel) else ["predictions"]


def as_dict(outputs, heads: list[str]) -> dict[str, np.ndarray]:
    if isinstance(outputs, dict):
        return {key: np.asarray(outputs[key]) for key in heads}
    return {heads[0]: np.asarray(outputs)}


def expected_layers(case: str) -> set[str]:
    name = registered(case)
    if name.startswith("vgg"):
        return {"block1_conv1", "block1_pool", "block5_pool", "flatten", "fc1", "fc2", "predictions"}
    if name == "googlenet":
        return {"conv1_7x7_conv", "pool1_pool", "inception3a_concat", "inception5b_concat", "avg_pool", "aux1", "aux2"}
    if name == "inception_v3":
        names = {"conv1a_3x3_conv", "conv4a_3x3_bn", "mixed5b_concat", "mixed7c_concat", "avg_pool", "predictions"}
        return names | ({"aux1_conv0_conv", "aux1"} if case.endswith("299") else set())
    return {"conv1_conv", "conv1_bn", "conv1_relu", "conv2_block1_1_conv", "conv2_block1_out", "avg_pool"}


def test_the_table_covers_every_registered_model():
    assert [registered(c) for c in CASES[:-1]] == keras_convnets.list_models()
    assert len(keras_convnets.list_models()) == 24


@pytest.mark.parametrize("case", cases())
def test_output_shapes_and_layer_names(case):
    model = build(case)
    heads = head_names(model)
    expected_heads = {"googlenet": ["predictions", "aux1", "aux2"], "inception_v3-299": ["predictions", "aux1"]}
    assert heads == expected_heads.get(case, ["predictions"])
    outputs = as_dict(model(images(model), training=False), heads)
    assert {key: value.shape for key, value in outputs.items()} == {key: (2, CLASSES) for key in heads}
    for value in outputs.values():  # softmax heads
        assert np.all(np.isfinite(value))
        np.testing.assert_allclose(value.sum(axis=-1), 1.0, rtol=1e-5)
    names = [layer.name for layer in model.layers]
    assert len(names) == len(set(names))
    assert expected_layers(case) | set(heads) <= set(names)
    for head in heads:
        assert model.get_layer(head).activation.__name__ == "softmax"
    assert model.name == registered(case)

    no_top = {"aux_logits": False} if registered(case) in ("googlenet", "inception_v3") else {}
    pooled = build(case, include_top=False, pooling="avg", **no_top)
    assert len(pooled.output_shape) == 2 and pooled.layers[-1].name == "avg_pool"
    assert "predictions" not in {layer.name for layer in pooled.layers}


@pytest.mark.parametrize("case", cases(quick=set(CASES) - {"resnet101", "resnet152"}))
def test_config_round_trip(case):
    model = build(case)
    clone = type(model).from_config(model.get_config())
    assert type(clone) is type(model) and clone.name == model.name
    assert [(type(a).__name__, a.name) for a in clone.layers] == [(type(b).__name__, b.name) for b in model.layers]
    assert [a.get_config() for a in clone.layers] == [b.get_config() for b in model.layers]
    if case == "resnet20":  # option A's zero-padding shortcut keeps its width
        assert clone.get_layer("conv3_block1_0_pad").get_config()["filters"] == 32
    if isinstance(model, AuxClassifierModel):
        assert clone.aux_loss_weight == model.aux_loss_weight
    clone.set_weights(model.get_weights())
    x = images(model)
    heads = head_names(model)
    ours, theirs = as_dict(model(x, training=False), heads), as_dict(clone(x, training=False), heads)
    for head in heads:
        np.testing.assert_array_equal(theirs[head], ours[head])


@pytest.mark.parametrize("case", cases(quick=QUICK_SAVES))
def test_keras_round_trip_in_safe_mode(case, tmp_path):
    model = build(case)
    x = images(model)
    path = tmp_path / f"{case}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded) is type(model)
    assert loaded.name == model.name
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    heads = head_names(model)
    ours, theirs = as_dict(model.predict(x, verbose=0), heads), as_dict(loaded.predict(x, verbose=0), heads)
    for head in heads:
        assert np.all(np.isfinite(ours[head]))
        np.testing.assert_allclose(theirs[head], ours[head], atol=1e-6)


BAD_ARGUMENTS = [
    ({"classes": 0}, ValueError, r"Received: classes=0"),
    ({"pooling": "mean"}, ValueError, r"`pooling` must be one of None, 'avg', 'max'. Received: pooling='mean'"),
    ({"include_top": "yes"}, TypeError, r"Received: include_top='yes'"),
    ({"weights": 42}, TypeError, r"Received: weights=42"),
    ({"weights": "missing.weights.h5"}, ValueError, r"Received: weights='missing.weights.h5', which does not exist"),
    ({"classifier_activation": "nope"}, ValueError, r"Received: classifier_activation='nope'"),
    ({"input_shape": (8, 8)}, ValueError, r"3 dimensions .*Received: input_shape=\(8, 8\)"),
    ({"input_shape": (2, 2, 3)}, ValueError, r"too small.*Received: input_shape=\(2, 2, 3\)"),
]


@pytest.mark.parametrize("name", keras_convnets.list_models())
@pytest.mark.parametrize("kwargs, error, message", BAD_ARGUMENTS, ids=lambda value: None)
def test_bad_arguments_are_refused_before_building(name, kwargs, error, message, monkeypatch):
    built = []
    monkeypatch.setattr(
        keras.layers.Conv2D, "__init__", lambda *a, **k: built.append(1) or (_ for _ in ()).throw(RuntimeError)
    )
    with pytest.raises(error, match=message):
        keras_convnets.get_model(name, **kwargs)
    assert not built


# ----------------------------------------------------------------------------------------------
# Float32 heads under mixed precision

POLICIES = ["float32", "mixed_bfloat16", "mixed_float16"]


@pytest.fixture
def policy(request):
    keras.mixed_precision.set_global_policy(request.param)
    try:
        yield request.param
    finally:
        keras.mixed_precision.set_global_policy("float32")


def confident_mistake(model: keras.Model, head: str) -> tuple[float, float]:
    """Loss and gradient norm (w.r.t. the head's bias, i.e. its logits) of one image whose `head` logits are
    exactly [50, 0, 0] (zero kernel, bias [50, 0, 0]) and whose label is 1."""
    dense = model.get_layer(head)
    dense.set_weights([np.zeros(dense.kernel.shape, "float32"), np.array([50.0, 0.0, 0.0], "float32")])
    x = images(model, count=1)
    with tf.GradientTape() as tape:
        outputs = model(x, training=False)
        probabilities = outputs[head] if isinstance(outputs, dict) else outputs
        loss = keras.losses.SparseCategoricalCrossentropy()(np.array([1]), probabilities)
    gradient = tape.gradient(loss, dense.bias)
    return float(loss), float(np.linalg.norm(np.asarray(gradient, "float32")))


@pytest.mark.parametrize("policy", POLICIES, indirect=True)
def test_classifier_head_keeps_the_loss_of_a_confident_mistake(policy):
    """FACTS.md: float32 gives loss 50.0 and gradient norm sqrt(2); a bfloat16 softmax gave 16.12 and 0.0."""
    image = keras.Input((1, 1, 3))
    probabilities = common.classifier_head(
        image, include_top=True, pooling=None, classes=3, classifier_activation="softmax"
    )
    model = keras.Model(image, probabilities)
    assert model.outputs[0].dtype == "float32"
    model.get_layer("predictions").set_weights([np.eye(3, dtype="float32"), np.zeros(3, "float32")])
    x, y = np.array([[[[50.0, 0.0, 0.0]]]], "float32"), np.array([1])
    bias = model.get_layer("predictions").bias
    with tf.GradientTape() as tape:
        loss = keras.losses.SparseCategoricalCrossentropy()(y, model(x))
    assert float(loss) == pytest.approx(50.0, abs=1e-4)
    assert float(np.linalg.norm(tape.gradient(loss, bias))) == pytest.approx(math.sqrt(2), rel=1e-5)
    # The compiled path (graph mode, Keras's own loss handling) agrees.
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    assert model.evaluate(x, y, verbose=0) == pytest.approx(50.0, abs=1e-4)


@pytest.mark.parametrize("policy", POLICIES, indirect=True)
@pytest.mark.parametrize("case", ["resnet20", "vgg11", "googlenet"])
def test_every_head_keeps_the_loss_of_a_confident_mistake(case, policy):
    model = build(case, classes=3)
    for head in head_names(model):
        loss, gradient = confident_mistake(model, head)
        assert loss == pytest.approx(50.0, abs=1e-4), head
        assert gradient == pytest.approx(math.sqrt(2), rel=1e-5), head


@pytest.mark.parametrize("policy", ["mixed_bfloat16"], indirect=True)
@pytest.mark.parametrize("case", cases())
def test_outputs_are_float32_under_mixed_precision(case, policy):
    model = build(case)
    heads = head_names(model)
    for head in heads:
        layer = model.get_layer(head)
        assert (layer.dtype_policy.compute_dtype, layer.dtype_policy.variable_dtype) == ("float32", "float32")
    assert [tensor.dtype for tensor in model.outputs] == ["float32"] * len(heads)
    body = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert body and all(layer.compute_dtype == "bfloat16" for layer in body)  # only the heads are float32
    outputs = as_dict(model(images(model), training=False), heads)
    assert {key: value.dtype for key, value in outputs.items()} == {key: np.float32 for key in heads}
