"""Stage outputs (`feature_extractor`, `feature_info`) for every registered model: keys, layers, channels and
strides measured on two input sizes, shared weights, and values equal to an intermediate model's."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_convnets
from keras_convnets.models.features import FeatureStage, feature_extractor, feature_info

IMAGENET_RESNET_REPEATS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


def _resnet(repeats, channels, strides):
    return {
        f"conv{k + 2}": (f"conv{k + 2}_block{n}_out", stride, width)
        for k, (n, width, stride) in enumerate(zip(repeats, channels, strides))
    }


def _expected() -> dict[str, dict[str, tuple[str, int, int]]]:
    """Per registered model: stage -> (layer, stride, channels), written from the papers' tables."""
    table = {
        "googlenet": {
            "conv2": ("conv2_3x3_relu", 4, 192),
            "inception3": ("inception3b_concat", 8, 480),
            "inception4": ("inception4e_concat", 16, 832),
            "inception5": ("inception5b_concat", 32, 1024),
        },
        "inception_v3": {
            "conv4": ("conv4a_3x3_relu", 4, 192),
            "mixed5": ("mixed5d_concat", 8, 288),
            "mixed6": ("mixed6e_concat", 16, 768),
            "mixed7": ("mixed7c_concat", 32, 2048),
        },
    }
    for depth, repeats in IMAGENET_RESNET_REPEATS.items():
        widths = (256, 512, 1024, 2048) if depth >= 50 else (64, 128, 256, 512)
        table[f"resnet{depth}"] = _resnet(repeats, widths, (4, 8, 16, 32))
        if depth <= 34:
            table[f"plainnet{depth}"] = table[f"resnet{depth}"]
    for depth in (20, 32, 44, 56, 110, 1202):
        n = (depth - 2) // 6
        table[f"resnet{depth}"] = _resnet((n, n, n), (16, 32, 64), (1, 2, 4))
        if depth != 1202:
            table[f"plainnet{depth}"] = table[f"resnet{depth}"]
    vgg = {f"block{k}": (f"block{k}_pool", 2**k, width) for k, width in enumerate((64, 128, 256, 512, 512), 1)}
    table.update({f"vgg{depth}": vgg for depth in (11, 13, 16, 19)})
    return table


EXPECTED = _expected()
SLOW = {"resnet101", "resnet152", "resnet1202", "inception_v3", "plainnet110", "resnet110"}
# Two input sides per model (the second = first + 64): the smallest each allows, kept small for speed.
SIDES = {"inception_v3": 75, "googlenet": 64}


def _small_side(name: str) -> int:
    return SIDES.get(name, 32)


def _build(name: str, **kwargs) -> keras.Model:
    if name in ("googlenet", "inception_v3"):
        kwargs.setdefault("aux_logits", False)
    return keras_convnets.get_model(name, **kwargs)


def _images(side: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, (2, side, side, 3)).astype("float32")


def _spatial(tensor) -> int:
    height, width = tensor.shape[1:3]
    assert height == width
    return int(height)


def test_every_registered_model_has_an_expected_table():
    assert sorted(EXPECTED) == sorted(keras_convnets.list_models())


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in keras_convnets.list_models()]
)
def test_stages_shapes_strides_and_shared_weights(name):
    model = _build(name, include_top=False, input_shape=(None, None, 3))
    info = feature_info(model)
    assert {stage: (s.layer, s.stride, s.channels) for stage, s in info.items()} == EXPECTED[name]
    assert all(isinstance(s, FeatureStage) for s in info.values())

    extractor = feature_extractor(model)
    assert isinstance(extractor, keras.Model) and extractor.name == f"{model.name}_features"
    small = _small_side(name)
    first, second = extractor(_images(small), training=False), extractor(_images(small + 64), training=False)
    assert list(first) == list(EXPECTED[name])
    for stage, (_, stride, channels) in EXPECTED[name].items():
        assert tuple(first[stage].shape) == (2, _spatial(first[stage]), _spatial(first[stage]), channels)
        # The stride measured: 64 more input pixels give 64 / stride more feature pixels.
        assert (_spatial(second[stage]) - _spatial(first[stage])) * stride == 64, stage
        if name != "inception_v3":  # 'same' padding: input side = stride x feature side
            assert _spatial(first[stage]) * stride == small, stage
    # Inception v3 pads 'valid': its maps lag the nominal side by a few pixels (75 -> 15, 7, 3, 1).
    if name == "inception_v3":
        assert [_spatial(first[s]) for s in first] == [15, 7, 3, 1]
        assert [_spatial(second[s]) for s in second] == [31, 15, 7, 3]

    # The extractor is the model's own layers: the same variable objects, all of them (the last stage is the end
    # of an include_top=False model).
    assert [id(v) for v in extractor.weights] == [id(v) for v in model.weights]
    assert extractor.count_params() == model.count_params()


def test_features_equal_an_intermediate_model_and_follow_weight_changes():
    model = keras_convnets.ResNet20(input_shape=(32, 32, 3))  # include_top=True: the head is left out
    extractor = feature_extractor(model, stages=["conv4", "conv2"])
    assert list(extractor.output) == ["conv4", "conv2"]
    intermediate = keras.Model(model.inputs, model.get_layer("conv3_block3_out").output)
    x = _images(32, seed=1)

    def check():
        features = extractor.predict(x, verbose=0)
        for stage, layer in (("conv4", "conv4_block3_out"), ("conv2", "conv2_block3_out")):
            reference = keras.Model(model.inputs, model.get_layer(layer).output).predict(x, verbose=0)
            # The same graph on the same kernels: measured max abs difference 0.0.
            np.testing.assert_allclose(features[stage], reference, rtol=0, atol=1e-6)
        return features

    before = check()
    assert extractor.get_layer("conv1_conv") is model.get_layer("conv1_conv")
    kernel = model.get_layer("conv1_conv").kernel
    kernel.assign(kernel.numpy() * 2.0)  # changed through the model, seen by the extractor
    after = check()
    assert float(np.max(np.abs(after["conv2"] - before["conv2"]))) > 1e-2
    # A stage in between, through the stage key alone.
    np.testing.assert_allclose(
        feature_extractor(model, "conv3").predict(x, verbose=0)["conv3"],
        intermediate.predict(x, verbose=0),
        rtol=0,
        atol=1e-6,
    )


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("resnet20", {"input_shape": (32, 32, 3)}),
        ("vgg11", {"input_shape": (32, 32, 3), "fc_units": 16, "batch_norm": True}),
        ("resnet18", {"input_shape": (64, 64, 3), "pooling": "avg", "include_top": False}),
        ("googlenet", {"input_shape": (96, 96, 3), "aux_logits": True}),
        ("googlenet", {"input_shape": (64, 64, 3), "norm": "lrn"}),
        pytest.param("inception_v3", {"input_shape": (299, 299, 3), "aux_logits": True}, marks=pytest.mark.slow),
    ],
)
def test_models_with_their_top_or_aux_heads(name, kwargs):
    model = _build(name, **kwargs)
    info = feature_info(model)
    expected = dict(EXPECTED[name])
    if kwargs.get("norm") == "lrn":
        expected["conv2"] = ("conv2_norm", 4, 192)
    assert {stage: (s.layer, s.stride, s.channels) for stage, s in info.items()} == expected
    side = kwargs["input_shape"][0]
    outputs = feature_extractor(model).predict(_images(side), verbose=0)
    assert isinstance(outputs, dict) and list(outputs) == list(expected)
    for stage, (_, stride, channels) in expected.items():
        if name != "inception_v3":
            assert outputs[stage].shape == (2, side // stride, side // stride, channels)
    if name == "inception_v3":  # at 299: the 71, 35, 17 and 8 grids
        assert [outputs[s].shape[1] for s in outputs] == [71, 35, 17, 8]
    head = {layer.name for layer in model.layers} - {layer.name for layer in feature_extractor(model).layers}
    assert ("predictions" in head) == kwargs.get("include_top", True)


def test_a_registered_name_builds_the_backbone():
    extractor = feature_extractor("ResNet-20", stages="conv3", input_shape=(32, 32, 3))
    assert extractor.name == "resnet20_features"
    assert "predictions" not in {layer.name for layer in extractor.layers}
    assert extractor.predict(_images(32), verbose=0)["conv3"].shape == (2, 16, 16, 32)
    # Builders with auxiliary heads are built without them (include_top=False needs aux_logits=False).
    extractor = feature_extractor("googlenet", stages=["inception5"], input_shape=(64, 64, 3))
    assert not any(layer.name.startswith("aux") for layer in extractor.layers)


def test_bad_arguments_are_refused():
    model = keras_convnets.ResNet20(input_shape=(32, 32, 3))
    with pytest.raises(ValueError, match=r"`stages` must be one or more of 'conv2', 'conv3', 'conv4'.*conv5"):
        feature_extractor(model, stages=["conv2", "conv5"])
    with pytest.raises(ValueError, match="must be one or more of"):
        feature_extractor(model, stages=[])
    with pytest.raises(ValueError, match="must not repeat a stage"):
        feature_extractor(model, stages=("conv2", "conv2"))
    with pytest.raises(TypeError, match="`stages` must be None or stage names"):
        feature_extractor(model, stages=3)
    with pytest.raises(TypeError, match="only when `model` is a registered name.*input_shape"):
        feature_extractor(model, input_shape=(32, 32, 3))
    with pytest.raises(TypeError, match="`model` must be a keras.Model. Received: model='resnet20'"):
        feature_info("resnet20")
    with pytest.raises(ValueError, match="Unknown model name"):
        feature_extractor("resnet21")
    inputs = keras.Input((32, 32, 3))
    foreign = keras.Model(inputs, keras.layers.Conv2D(4, 3, strides=2, name="conv")(inputs), name="foreign")
    with pytest.raises(ValueError, match="`model` must be built by keras_convnets.*Received: model 'foreign'"):
        feature_extractor(foreign)


def test_keras_applications_models_with_the_same_names():
    vgg = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    assert {stage: (s.layer, s.stride, s.channels) for stage, s in feature_info(vgg).items()} == EXPECTED["vgg16"]
    # Strides come from the graph, not from the key: ResNet50V2 downsamples in each stage's last block.
    v2 = keras.applications.ResNet50V2(weights=None, include_top=False, input_shape=(64, 64, 3))
    assert [s.stride for s in feature_info(v2).values()] == [8, 16, 32, 32]
    assert [v.shape[1] for v in feature_extractor(v2)(_images(64)).values()] == [8, 4, 2, 2]
