"""The ResNet family, its plain twins and VGG: one table drives sizes, shapes and names. The config and `.keras`
safe-mode round trips of every registered model are in `test_models.py`."""

from __future__ import annotations

import math
import sys

import keras
import numpy as np
import pytest

import keras_convnets
from keras_convnets.analysis.profiler import profile
from tests.conftest import default_model, default_profile

# name -> (trainable parameters, MACs) at the default input size and classes.
# References: torchvision (ResNet-18..152 with shortcut B: 11,689,512 / 21,797,672 / 25,557,032 / 44,549,160 /
# 60,192,808), keras.applications (VGG-11..19), He et al. 2016 Table 6 (CIFAR: 0.27M/0.46M/0.66M/0.85M/1.7M/19.4M).
# Plain twins are checked below against the residual nets minus their projection shortcuts.
EXPECTED = {
    "resnet18": (11_689_512, 1_814_073_344),
    "resnet34": (21_797_672, 3_663_761_408),
    "resnet50": (25_557_032, 3_857_973_248),
    "resnet101": (44_549_160, 7_570_194_432),
    "resnet152": (60_192_808, 11_282_415_616),
    "resnet20": (269_722, 40_551_040),
    "resnet32": (464_154, 68_862_592),
    "resnet44": (658_586, 97_174_144),
    "resnet56": (853_018, 125_485_696),
    "resnet110": (1_727_962, 252_887_680),
    "plainnet18": (11_515_688, 1_794_805_760),
    "plainnet34": (21_623_848, 3_644_493_824),
    "plainnet20": (269_722, 40_551_040),
    "plainnet32": (464_154, 68_862_592),
    "plainnet44": (658_586, 97_174_144),
    "plainnet56": (853_018, 125_485_696),
    "plainnet110": (1_727_962, 252_887_680),
    "vgg11": (132_863_336, 7_609_090_048),
    "vgg13": (133_047_848, 11_308_466_176),
    "vgg16": (138_357_544, 15_470_264_320),
    "vgg19": (143_667_240, 19_632_062_464),
}
PAPER_TABLE6 = {"resnet20": 0.27, "resnet32": 0.46, "resnet44": 0.66, "resnet56": 0.85, "resnet110": 1.7}
FAMILY = [n for n in keras_convnets.list_models() if n.startswith(("resnet", "plainnet", "vgg"))]
LIGHT = [n for n in FAMILY if n != "resnet1202"]


def trainable(model: keras.Model) -> int:
    return sum(math.prod(w.shape) for w in model.trainable_weights)


def small_kwargs(name: str) -> dict:
    """Arguments that keep a model small and fast while keeping its structure."""
    if name.startswith("vgg"):
        return {"input_shape": (32, 32, 3), "classes": 7, "fc_units": 32}
    if name in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "plainnet18", "plainnet34"):
        return {"input_shape": (32, 32, 3), "classes": 7}
    return {"input_shape": (16, 16, 3), "classes": 7}


def test_every_family_member_is_pinned():
    assert sorted(LIGHT) == sorted(EXPECTED)


@pytest.mark.xdist_group("default_models")
@pytest.mark.parametrize("name", LIGHT)
def test_trainable_parameters_and_macs(name):
    report, _ = default_profile(name)
    assert (report.trainable_params, report.macs) == EXPECTED[name]
    assert sum(s.macs for s in report.stages) == report.macs
    if name in PAPER_TABLE6:
        assert round(report.trainable_params / 1e6, 2 if name != "resnet110" else 1) == PAPER_TABLE6[name]


@pytest.mark.slow
@pytest.mark.xdist_group("default_models")
def test_resnet1202_builds_and_restores_recursion_limit():
    limit = sys.getrecursionlimit()
    report, row = default_profile("resnet1202")
    assert sys.getrecursionlimit() == limit
    assert report.trainable_params == 19_421_274  # the paper's 19.4M
    assert row.classes == 10 and row.input_shape == (32, 32, 3)
    assert len([r for r in report.layers if r.name.endswith("_add")]) == 600


@pytest.mark.parametrize("depth, projections", [(18, 3), (34, 3)])
def test_plain_twin_is_the_resnet_without_shortcuts(depth, projections):
    """A plain net has exactly the residual net's parameters minus its projection shortcuts."""
    res = default_model(f"resnet{depth}")
    plain = default_model(f"plainnet{depth}")
    shortcut_params = sum(trainable_layer(l) for l in res.layers if "_0_" in l.name)
    assert len([l for l in res.layers if l.name.endswith("_0_conv")]) == projections
    assert trainable(plain) == trainable(res) - shortcut_params
    assert not [l for l in plain.layers if l.name.endswith(("_add", "_0_conv", "_0_pad"))]
    assert [l.name for l in plain.layers if isinstance(l, keras.layers.Conv2D)] == [
        l.name for l in res.layers if isinstance(l, keras.layers.Conv2D) and "_0_" not in l.name
    ]


def trainable_layer(layer) -> int:
    return sum(math.prod(w.shape) for w in layer.trainable_weights)


@pytest.mark.parametrize(
    "depth, macs",
    [(50, 4_089_184_256), (101, 7_801_405_440), (152, 11_513_626_624)],
)
def test_stride_in_3x3_matches_torchvision_macs(depth, macs):
    model = keras_convnets.ResNet(depth, stride_in="3x3")
    assert keras_convnets.profile(model).macs == macs
    assert trainable(model) == EXPECTED[f"resnet{depth}"][0]
    assert model.get_layer("conv3_block1_1_conv").strides == (1, 1)
    assert model.get_layer("conv3_block1_2_conv").strides == (2, 2)
    assert default_model(f"resnet{depth}").get_layer("conv3_block1_1_conv").strides == (2, 2)


@pytest.mark.parametrize("name", LIGHT)
def test_output_shapes_with_and_without_top(name):
    kwargs = small_kwargs(name)
    side = kwargs["input_shape"][0]
    model = keras_convnets.get_model(name, **kwargs)
    assert model.output_shape == (None, 7)
    assert model.get_layer("predictions").activation.__name__ == "softmax"
    final_channels = (
        512
        if name.startswith("vgg")
        else (2048 if name in ("resnet50", "resnet101", "resnet152") else (512 if side == 32 else 64))
    )
    features = keras_convnets.get_model(name, include_top=False, input_shape=(side, side, 3))
    stride = 32 if side == 32 else 4
    assert features.output_shape == (None, side // stride, side // stride, final_channels)
    for pooling, layer in (("avg", "avg_pool"), ("max", "max_pool")):
        pooled = keras_convnets.get_model(name, include_top=False, pooling=pooling, input_shape=(side, side, 3))
        assert pooled.output_shape == (None, final_channels)
        assert pooled.layers[-1].name == layer
    variable = keras_convnets.get_model(name, include_top=False, pooling="avg")
    assert variable.input_shape[1:3] == (None, None)


@pytest.mark.parametrize("name", LIGHT)
def test_layer_names_follow_keras_applications(name):
    model = keras_convnets.get_model(name, **small_kwargs(name))
    names = {layer.name for layer in model.layers}
    if name.startswith("vgg"):
        assert {"block1_conv1", "block1_pool", "block5_pool", "flatten", "fc1", "fc2", "predictions"} <= names
        return
    assert {"conv1_conv", "conv1_bn", "conv1_relu", "conv2_block1_1_conv", "conv2_block1_out", "predictions"} <= names
    assert "avg_pool" in names
    last_stage = "conv5" if name in EXPECTED and EXPECTED[name][1] > 1e9 else "conv4"
    assert f"{last_stage}_block1_1_conv" in names
    if name.startswith("plainnet"):
        assert not any(n.endswith("_add") for n in names)
    elif last_stage == "conv5":  # ImageNet nets, shortcut B: projections where the shape changes
        assert {"conv2_block1_add", "conv3_block1_0_conv", "conv3_block1_0_bn", "pool1_pool"} <= names
        assert "conv3_block2_0_conv" not in names
    else:  # CIFAR nets, option A: parameter-free shortcut
        assert {"conv2_block1_add", "conv3_block1_0_pad", "conv4_block1_0_pad"} <= names
        assert not any(n.endswith("_0_conv") for n in names)


def test_option_a_shortcut_subsamples_and_pads_with_zeros():
    layer = keras_convnets.IdentityShortcut(8, strides=2)
    x = np.random.default_rng(1).normal(size=(2, 5, 5, 3)).astype("float32")
    y = np.asarray(layer(x))
    assert y.shape == (2, 3, 3, 8) == layer.compute_output_shape(x.shape)
    np.testing.assert_array_equal(y[..., :3], x[:, ::2, ::2, :])
    np.testing.assert_array_equal(y[..., 3:], 0)
    with pytest.raises(ValueError, match="filters"):
        keras_convnets.IdentityShortcut(0)


def test_shortcut_options_change_only_the_shortcuts():
    a = keras_convnets.ResNet20(shortcut="A")
    b = keras_convnets.ResNet20(shortcut="B")
    c = keras_convnets.ResNet20(shortcut="C")
    # B: projections at the two downsampling blocks; C: a projection on each of the 9 blocks.
    assert trainable(b) - trainable(a) == (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
    assert len([l for l in c.layers if l.name.endswith("_0_conv")]) == 9
    assert trainable(c) - trainable(a) == 3 * (16 * 16 + 32) + (16 * 32 + 64) + 2 * (32 * 32 + 64) + (
        32 * 64 + 128
    ) + 2 * (64 * 64 + 128)
    r50a = keras_convnets.ResNet50(shortcut="A", input_shape=(32, 32, 3))
    assert trainable(r50a) == 22_780_456
    assert r50a.get_layer("conv2_block1_0_pad").filters == 256


def test_bottleneck_width_sets_the_reduction_convs():
    model = keras_convnets.ResNet50(bottleneck_width=(16, 32, 48, 64), input_shape=(32, 32, 3), classes=10)
    for stage, width in zip((2, 3, 4, 5), (16, 32, 48, 64)):
        assert model.get_layer(f"conv{stage}_block1_1_conv").filters == width
        assert model.get_layer(f"conv{stage}_block2_2_conv").filters == width
        assert model.get_layer(f"conv{stage}_block1_3_conv").filters == 256 * 2 ** (stage - 2)
    ratio = keras_convnets.ResNet50(bottleneck_width=0.125, input_shape=(32, 32, 3))
    assert [ratio.get_layer(f"conv{s}_block1_1_conv").filters for s in (2, 3, 4, 5)] == [32, 64, 128, 256]
    paper = keras_convnets.ResNet50(bottleneck_width=(64, 128, 256, 512), input_shape=(32, 32, 3))
    assert trainable(paper) == EXPECTED["resnet50"][0]


def _cifar_bottleneck_counts(n: int, shortcut: str, size: int = 32, classes: int = 10) -> tuple[int, int]:
    """(trainable parameters, MACs) of the bottleneck CIFAR ResNet of depth 9n+2, counted by hand: every conv
    without a bias and followed by a batch norm (gamma, beta); stages reduce to 16/32/64 and expand 4x; the first
    block of stages 2 and 3 strides in its first 1x1 conv (and its projection)."""
    params, macs = 3 * 3 * 3 * 16 + 2 * 16, size * size * 27 * 16  # the 3x3 stem
    channels, side = 16, size
    for stage, width in enumerate((16, 32, 64)):
        out = 4 * width
        for index in range(n):
            stride = 2 if index == 0 and stage > 0 else 1
            side //= stride
            params += channels * width + 2 * width + 9 * width * width + 2 * width + width * out + 2 * out
            macs += side * side * (channels * width + 9 * width * width + width * out)
            if shortcut == "B" and (channels != out or stride > 1):
                params += channels * out + 2 * out  # the 1x1 projection
                macs += side * side * channels * out
            channels = out
    return params + channels * classes + classes, macs + channels * classes


@pytest.mark.parametrize("depth, shortcut", [(29, "A"), (29, "B"), (164, None)])
def test_cifar_bottleneck_nets(depth, shortcut):
    model = keras_convnets.CifarResNet(depth, block="bottleneck", shortcut=shortcut)
    n = (depth - 2) // 9
    params, macs = _cifar_bottleneck_counts(n, shortcut or "B")  # option B by default, as He et al. 2016b's code
    assert (trainable(model), profile(model).macs) == (params, macs)
    assert model.name == f"resnet{depth}_bottleneck" and model.output_shape == (None, 10)
    assert sum(layer.name.endswith("_3_conv") for layer in model.layers) == 3 * n  # n 1x1-3x3-1x1 blocks a stage
    assert model.get_layer("conv4_block1_3_conv").filters == 256
    assert model.get_layer("conv2_block1_1_conv").filters == 16
    assert model.get_layer("conv3_block1_1_conv").strides == (2, 2)  # the paper's stride on the first 1x1
    assert model.get_layer("conv3_block1_2_conv").strides == (1, 1)
    assert model.get_layer("conv4_block3_out").output.shape[1:] == (8, 8, 256)
    if depth == 164:  # He et al. 2016b, Table 2: ResNet-164, 1.7M parameters
        assert (trainable(model), profile(model).macs) == (1_704_154, 244_500_992)
    if depth == 29 and shortcut == "A":  # ResNet-20's 269,722 parameters and 40,551,040 MACs, within 0.2% and 5%
        assert (params, macs) == (270_234, 38_717_952)
        assert abs(params / 269_722 - 1) < 0.002 and abs(macs / 40_551_040 - 1) < 0.05
    narrow = keras_convnets.CifarResNet(29, block="bottleneck", bottleneck_width=(8, 16, 32))
    assert [narrow.get_layer(f"conv{s}_block2_2_conv").filters for s in (2, 3, 4)] == [8, 16, 32]
    assert narrow.get_layer("conv4_block3_3_conv").filters == 256
    assert keras_convnets.CifarResNet(29, block="bottleneck", residual=False).name == "plainnet29_bottleneck"


def test_zero_init_residual_makes_blocks_start_as_shortcuts():
    model = keras_convnets.ResNet20(zero_init_residual=True)
    gammas = [model.get_layer(f"conv{s}_block{b}_2_bn").gamma.numpy() for s in (2, 3, 4) for b in (1, 2, 3)]
    assert all(np.all(g == 0) for g in gammas)
    assert np.all(model.get_layer("conv2_block1_1_bn").gamma.numpy() == 1)


def test_input_tensor_and_regularizer():
    inputs = keras.Input((32, 32, 3), name="pixels")
    model = keras_convnets.ResNet20(input_tensor=inputs, kernel_regularizer=keras.regularizers.L2(1e-4))
    assert model.inputs[0] is inputs
    assert len(model.losses) == 19 + 1  # every conv and the classifier
    model = keras_convnets.VGG11(batch_norm=True, input_shape=(32, 32, 3), classes=3, fc_units=8)
    assert model.get_layer("block1_conv1").use_bias is False
    assert isinstance(model.get_layer("block1_conv1_bn"), keras.layers.BatchNormalization)
    assert trainable(keras_convnets.VGG19(batch_norm=True)) == 143_672_744  # vgg19 without conv biases, + BN


def test_weights_file_loads_and_mismatch_is_refused(tmp_path):
    model = keras_convnets.ResNet20(classes=4)
    path = tmp_path / "r20.weights.h5"
    model.save_weights(path)
    loaded = keras_convnets.ResNet20(classes=4, weights=str(path))
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(loaded.predict(images, verbose=0), model.predict(images, verbose=0))
    keras_path = tmp_path / "r20.keras"
    model.save(keras_path)
    np.testing.assert_array_equal(
        keras_convnets.ResNet20(classes=4, weights=str(keras_path)).predict(images, verbose=0),
        model.predict(images, verbose=0),
    )
    with pytest.raises(ValueError, match="does not match the architecture of model 'resnet32'"):
        keras_convnets.ResNet32(classes=4, weights=str(path))
    with pytest.raises(ValueError, match="does not match the architecture"):
        keras_convnets.ResNet20(classes=5, weights=str(path))
    with pytest.raises(ValueError, match="does not exist"):
        keras_convnets.ResNet20(weights=str(tmp_path / "missing.weights.h5"))


BAD_INPUTS = [
    (lambda: keras_convnets.CifarResNet(42), ValueError, r"6n\+2.*Received: depth=42"),
    (lambda: keras_convnets.CifarResNet(2), ValueError, r"Received: depth=2"),
    (lambda: keras_convnets.CifarResNet(20.0), TypeError, r"Received: depth=20.0"),
    (
        lambda: keras_convnets.CifarResNet(30, block="bottleneck"),
        ValueError,
        r"bottleneck CIFAR ResNet must be 9n\+2.*Received: depth=30",
    ),
    (
        lambda: keras_convnets.CifarResNet(29, block="wide"),
        ValueError,
        r"`block` must be one of 'basic', 'bottleneck'. Received: block='wide'",
    ),
    (lambda: keras_convnets.CifarResNet(20, bottleneck_width=0.25), ValueError, r"only to bottleneck ResNets"),
    (lambda: keras_convnets.ResNet20(block="bottleneck"), TypeError, r"ResNet20 is built of basic blocks"),
    (lambda: keras_convnets.PlainNet56(block="bottleneck"), TypeError, r"Received: block='bottleneck'"),
    (lambda: keras_convnets.ResNet(42), ValueError, r"18, 34, 50, 101, 152. Received: depth=42"),
    (
        lambda: keras_convnets.ResNet50(input_shape=(16, 16, 3)),
        ValueError,
        r"at least 32x32. Received: input_shape=\(16, 16, 3\)",
    ),
    (lambda: keras_convnets.VGG16(input_shape=(None, None, 3)), ValueError, r"needs a defined spatial size"),
    (lambda: keras_convnets.ResNet20(classes=0), ValueError, r"at least 1. Received: classes=0"),
    (
        lambda: keras_convnets.ResNet20(pooling="mean"),
        ValueError,
        r"`pooling` must be one of None, 'avg', 'max'. Received: pooling='mean'",
    ),
    (
        lambda: keras_convnets.ResNet20(shortcut="D"),
        ValueError,
        r"`shortcut` must be one of 'A', 'B', 'C'. Received: shortcut='D'",
    ),
    (lambda: keras_convnets.ResNet50(stride_in="2x2"), ValueError, r"Received: stride_in='2x2'"),
    (
        lambda: keras_convnets.ResNet50(bottleneck_width=(64, 0, 256, 512)),
        ValueError,
        r"4 positive integers.*Received: bottleneck_width=\(64, 0, 256, 512\)",
    ),
    (lambda: keras_convnets.ResNet50(bottleneck_width=(64, 128)), ValueError, r"4 positive integers"),
    (lambda: keras_convnets.ResNet50(bottleneck_width=-0.5), ValueError, r"Received: bottleneck_width=-0.5"),
    (lambda: keras_convnets.ResNet50(bottleneck_width=64), ValueError, r"ratio in \(0, 1\] or a tuple"),
    (lambda: keras_convnets.ResNet18(bottleneck_width=0.25), ValueError, r"only to bottleneck ResNets"),
    (lambda: keras_convnets.ResNet20(weights=42), TypeError, r"Received: weights=42"),
    (lambda: keras_convnets.ResNet20(include_top="yes"), TypeError, r"Received: include_top='yes'"),
    (
        lambda: keras_convnets.ResNet20(classifier_activation="nope"),
        ValueError,
        r"Received: classifier_activation='nope'",
    ),
    (lambda: keras_convnets.ResNet20(input_shape=(32, 32)), ValueError, r"3 dimensions"),
    (lambda: keras_convnets.PlainNet20(shortcut="B"), TypeError, r"no shortcuts"),
    (lambda: keras_convnets.VGG(15), ValueError, r"11, 13, 16, 19. Received: depth=15"),
    (lambda: keras_convnets.VGG11(dropout=1.0), ValueError, r"\[0, 1\). Received: dropout=1.0"),
    (lambda: keras_convnets.ResNet20(bn_momentum=1.5), ValueError, r"Received: bn_momentum=1.5"),
]


@pytest.mark.parametrize("build, error, message", BAD_INPUTS)
def test_bad_input_is_refused_before_building(build, error, message, monkeypatch):
    built = []
    monkeypatch.setattr(
        keras.layers.Conv2D, "__init__", lambda *a, **k: built.append(1) or (_ for _ in ()).throw(RuntimeError)
    )
    with pytest.raises(error, match=message):
        build()
    assert not built


def test_registry():
    names = keras_convnets.list_models()
    assert {"resnet50", "resnet20", "plainnet34", "vgg19", "resnet1202", "plainnet110"} <= set(names)
    assert keras_convnets.list_models("vgg*") == ["vgg11", "vgg13", "vgg16", "vgg19"]
    assert keras_convnets.get_model("ResNet-20", classes=3).output_shape == (None, 3)
    with pytest.raises(ValueError, match=r"Did you mean 'resnet56', 'resnet50'.*Received: name='resnet5'"):
        keras_convnets.get_model("resnet5")
    with pytest.raises(ValueError, match="already registered"):
        keras_convnets.register_model("resnet50")(lambda **kw: None)
    with pytest.raises(TypeError, match="must be a string"):
        keras_convnets.get_model(50)
