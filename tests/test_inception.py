"""GoogLeNet and Inception v3: parameter counts, shapes, names, the LRN layer, MACs and bad input."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

import keras_convnets
from keras_convnets.models import googlenet, inception_v3
from keras_convnets.models.layers import LocalResponseNormalization
from tests.conftest import default_model


def trainable(model: keras.Model) -> int:
    return sum(math.prod(w.shape) for w in model.trainable_weights)


# Trainable parameters at 1000 classes. The paper's net (norm="lrn", and norm=None, which has the same
# weights) is 6,998,552 / 13,378,280 (FACTS.md). Batch norm drops the 7,280 conv biases of the body (320 in the
# stem, 6,960 in the modules) and adds 2 x 7,280 gammas and betas: +7,280; each aux head's 1x1 conv adds 128.
# Torchvision's googlenet(aux_logits=True) has 13,004,888, without aux 6,624,904 (its "5x5" is a 3x3).
GOOGLENET_COUNTS = {
    # (variant, norm): (without aux, with aux)
    ("paper", "lrn"): (6_998_552, 13_378_280),
    ("paper", None): (6_998_552, 13_378_280),
    ("paper", "batch"): (7_005_832, 13_385_816),
    ("torchvision", "batch"): (6_624_904, 13_004_888),
}


@pytest.mark.parametrize("variant, norm", list(GOOGLENET_COUNTS))
def test_googlenet_parameter_counts(variant, norm):
    without, with_aux = GOOGLENET_COUNTS[(variant, norm)]
    # Without aux heads the count does not depend on the input size (global average pooling): build small.
    small = googlenet.GoogLeNet(aux_logits=False, norm=norm, variant=variant, input_shape=(32, 32, 3))
    assert trainable(small) == without
    # The paper's aux FC sees the 4x4 grid of 5x5/3 pooling on 14x14 (inputs 223..270); torchvision's pools
    # adaptively to 4x4 at any size.
    size = 224 if variant == "paper" else 96
    assert trainable(googlenet.GoogLeNet(norm=norm, variant=variant, input_shape=(size, size, 3))) == with_aux


def test_googlenet_batch_norm_count_is_lrn_count_plus_conv_widths():
    convs = (
        64
        + 64
        + 192
        + sum(s.n1x1 + s.n3x3_reduce + s.n3x3 + s.n5x5_reduce + s.n5x5 + s.pool_proj for s in googlenet.INCEPTION_TABLE)
    )
    assert convs == 7_280
    assert GOOGLENET_COUNTS[("paper", "batch")][0] == GOOGLENET_COUNTS[("paper", "lrn")][0] + convs
    assert GOOGLENET_COUNTS[("paper", "batch")][1] == GOOGLENET_COUNTS[("paper", "lrn")][1] + convs + 2 * 128


def test_googlenet_table_is_the_papers():
    rows = {
        s.name: (s.n1x1, s.n3x3_reduce, s.n3x3, s.n5x5_reduce, s.n5x5, s.pool_proj) for s in googlenet.INCEPTION_TABLE
    }
    assert list(rows) == ["3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b"]
    assert rows["4d"] == (112, 144, 288, 32, 64, 64)
    # Output depths of Table 1.
    assert [s.out_channels for s in googlenet.INCEPTION_TABLE] == [256, 480, 512, 512, 512, 528, 832, 832, 1024]


@pytest.mark.xdist_group("default_models")
def test_googlenet_default_outputs_names_and_macs():
    model = default_model("googlenet")
    assert isinstance(model, keras_convnets.AuxClassifierModel)
    assert model.name == "googlenet"
    assert sorted(model.output) == ["aux1", "aux2", "predictions"]
    assert {k: tuple(v.shape) for k, v in model.output.items()} == {
        "predictions": (None, 1000),
        "aux1": (None, 1000),
        "aux2": (None, 1000),
    }
    sides = {
        name: model.get_layer(name).output.shape[1]
        for name in ("conv1_7x7_relu", "pool1_pool", "pool2_pool", "pool3_pool", "pool4_pool", "inception5b_concat")
    }
    assert sides == {
        "conv1_7x7_relu": 112,
        "pool1_pool": 56,
        "pool2_pool": 28,
        "pool3_pool": 14,
        "pool4_pool": 7,
        "inception5b_concat": 7,
    }
    for suffix in (
        "1x1_conv",
        "1x1_bn",
        "3x3_reduce_conv",
        "3x3_conv",
        "5x5_reduce_conv",
        "5x5_conv",
        "pool",
        "pool_proj_conv",
        "pool_proj_bn",
        "concat",
    ):
        model.get_layer(f"inception4b_{suffix}")
    assert model.get_layer("inception3a_5x5_conv").kernel_size == (5, 5)
    assert model.get_layer("aux1_pool").output.shape[1:3] == (4, 4)
    for name in ("aux2_1x1_conv", "aux2_1x1_bn", "aux2_fc1", "aux2_dropout", "aux2"):
        model.get_layer(name)
    assert model.get_layer("aux1_dropout").rate == 0.7
    assert model.get_layer("dropout").rate == 0.4


def test_googlenet_paper_macs():
    report = keras_convnets.profile(googlenet.GoogLeNet(norm="lrn", aux_logits=False))
    assert report.trainable_params == 6_998_552
    assert report.macs == 1_582_671_872  # about 1.58 G, as in FACTS.md
    assert {s.name for s in report.stages} >= {"conv1", "pool1", "conv2", "inception3a", "inception5b", "head"}
    with_aux = keras_convnets.profile(googlenet.GoogLeNet(norm="lrn"))
    assert with_aux.macs == 1_591_044_096
    assert {"aux1", "aux2"} <= {s.name for s in with_aux.stages}


def test_googlenet_lrn_layers_and_biases():
    model = googlenet.GoogLeNet(norm="lrn", aux_logits=False, input_shape=(64, 64, 3))
    assert isinstance(model.get_layer("pool1_norm"), LocalResponseNormalization)
    assert isinstance(model.get_layer("conv2_norm"), LocalResponseNormalization)
    assert model.get_layer("inception3a_1x1_conv").use_bias
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)
    plain = googlenet.GoogLeNet(norm=None, aux_logits=False, input_shape=(64, 64, 3))
    normalizers = (keras.layers.BatchNormalization, LocalResponseNormalization)
    assert not any(isinstance(layer, normalizers) for layer in plain.layers)
    batch = googlenet.GoogLeNet(norm="batch", aux_logits=False, input_shape=(64, 64, 3))
    assert not batch.get_layer("inception3a_1x1_conv").use_bias
    assert batch.get_layer("inception3a_1x1_bn").epsilon == 1e-3


def test_googlenet_torchvision_variant_structure():
    model = googlenet.GoogLeNet(variant="torchvision", input_shape=(224, 224, 3), dropout=0.2)
    assert model.get_layer("inception3a_5x5_conv").kernel_size == (3, 3)
    assert model.get_layer("pool4_pool").pool_size == (2, 2)
    assert model.get_layer("pool4_pool").output.shape[1] == 7
    assert isinstance(model.get_layer("aux1_pool"), keras.layers.AdaptiveAveragePooling2D)
    assert model.get_layer("aux1_fc1").kernel.shape == (2048, 1024)
    assert all(not layer.use_bias for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
    assert all(layer.epsilon == 1e-3 for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))
    assert model.get_layer("dropout").rate == 0.2
    assert model.get_layer("conv1_7x7_pad").padding == ((3, 3), (3, 3))


def test_googlenet_reduction_scale_scales_only_reductions():
    model = googlenet.GoogLeNet(aux_logits=False, norm=None, reduction_scale=0.5, input_shape=(32, 32, 3))
    assert model.get_layer("inception3a_3x3_reduce_conv").filters == 48
    assert model.get_layer("inception3a_5x5_reduce_conv").filters == 8
    assert model.get_layer("inception3a_3x3_conv").filters == 128
    assert model.get_layer("inception3a_concat").output.shape[-1] == 256
    assert trainable(model) < GOOGLENET_COUNTS[("paper", None)][0]


def test_googlenet_without_top_and_pooling():
    features = googlenet.GoogLeNet(include_top=False, aux_logits=False, input_shape=(64, 64, 3))
    assert features.output_shape == (None, 2, 2, 1024)
    pooled = googlenet.GoogLeNet(include_top=False, aux_logits=False, pooling="avg")
    assert pooled.output_shape == (None, 1024)
    assert not isinstance(pooled, keras_convnets.AuxClassifierModel)


def test_googlenet_minimum_sizes():
    assert googlenet.minimum_size("paper", aux_logits=False) == 31
    assert googlenet.minimum_size("paper", aux_logits=True) == 79
    model = googlenet.GoogLeNet(classes=3, input_shape=(79, 79, 3))
    assert model.get_layer("aux1_pool").output.shape[1:3] == (1, 1)
    out = model(np.zeros((1, 79, 79, 3), "float32"))
    assert {k: tuple(v.shape) for k, v in out.items()} == {"predictions": (1, 3), "aux1": (1, 3), "aux2": (1, 3)}
    small = googlenet.GoogLeNet(classes=3, aux_logits=False, input_shape=(31, 31, 3))
    assert small.output_shape == (None, 3)


@pytest.mark.xdist_group("default_models")
def test_inception_v3_counts_outputs_names_and_macs():
    model = default_model("inception_v3")
    assert trainable(model) == 27_161_264
    assert sorted(model.output) == ["aux1", "predictions"]
    assert tuple(model.output["aux1"].shape) == (None, 1000)
    assert model.get_layer("mixed6e_concat").output.shape[1:] == (17, 17, 768)
    assert model.get_layer("mixed7c_concat").output.shape[1:] == (8, 8, 2048)
    assert model.get_layer("aux1_conv1_conv").output.shape[1:] == (1, 1, 768)
    for name in (
        "conv1a_3x3_conv",
        "conv4a_3x3_bn",
        "mixed5b_5x5_2_conv",
        "mixed5b_pool_pad",
        "mixed5b_pool_proj_bn",
        "mixed6a_3x3dbl_3_conv",
        "mixed6b_7x7dbl_5_conv",
        "mixed7a_7x7x3_4_conv",
        "mixed7b_3x3_2b_conv",
        "mixed7c_3x3dbl_concat",
        "aux1_conv0_bn",
        "predictions",
    ):
        model.get_layer(name)
    assert model.get_layer("mixed6b_7x7_2_conv").kernel_size == (1, 7)
    assert all(
        layer.center and layer.scale and layer.epsilon == 1e-3
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    )
    report = keras_convnets.profile(model)
    assert report.macs == 5_718_899_296  # about 5.71 G at 299; the aux head adds 5.7 M
    assert {"mixed5b", "mixed7c", "aux1", "head"} <= {s.name for s in report.stages}


def test_inception_v3_without_aux():
    model = inception_v3.InceptionV3(aux_logits=False)
    assert trainable(model) == 23_834_568
    assert keras_convnets.profile(model).macs == 5_713_216_096
    small = inception_v3.InceptionV3(aux_logits=False, classes=5, input_shape=(75, 75, 3))
    assert small.output_shape == (None, 5)
    assert trainable(small) == 23_834_568 - 2048 * 995 - 995


def test_inception_v3_minimum_sizes():
    assert inception_v3.minimum_size(aux_logits=False) == 75
    assert inception_v3.minimum_size(aux_logits=True) == 299
    assert inception_v3.grid_sizes(299) == {"35": 35, "17": 17, "8": 8}


def test_inception_v3_pool_counts_padding():
    # torchvision's avg_pool2d(3, 1, padding=1) divides by 9 at the border too (count_include_pad).
    image = keras.Input((7, 7, 192))
    branch = inception_v3.avg_pool_branch(image, 8, "mixed5b")
    model = keras.Model(image, branch)
    probe = keras.Model(image, model.get_layer("mixed5b_pool").output)
    ones = np.ones((1, 7, 7, 192), "float32")
    out = np.asarray(probe(ones))
    assert out[0, 0, 0, 0] == pytest.approx(4 / 9)
    assert out[0, 3, 3, 0] == pytest.approx(1.0)


def test_local_response_normalization_matches_tf_and_caffe():
    tf = pytest.importorskip("tensorflow")
    x = np.random.default_rng(0).normal(scale=20.0, size=(2, 3, 3, 11)).astype("float32")
    layer = LocalResponseNormalization()
    reference = tf.nn.local_response_normalization(x, depth_radius=2, bias=1.0, alpha=1e-4 / 5, beta=0.75)
    np.testing.assert_allclose(layer(x), reference, rtol=1e-5, atol=1e-5)
    # Caffe by hand at one position: x / (1 + alpha/size * sum of squares of channels c-2..c+2) ** beta.
    c = 0
    expected = x[0, 0, 0, c] / (1 + 1e-4 / 5 * np.sum(x[0, 0, 0, : c + 3] ** 2)) ** 0.75
    assert float(layer(x)[0, 0, 0, c]) == pytest.approx(float(expected), rel=1e-5)
    clone = LocalResponseNormalization.from_config(layer.get_config())
    assert (clone.size, clone.alpha, clone.beta, clone.k) == (5, 1e-4, 0.75, 1.0)
    with pytest.raises(ValueError, match="`size` must be a positive odd integer"):
        LocalResponseNormalization(size=4)


@pytest.mark.parametrize(
    "builder, kwargs, match",
    [
        (googlenet.GoogLeNet, {"include_top": False}, r"`aux_logits=True` needs `include_top=True`.*include_top=False"),
        (googlenet.GoogLeNet, {"input_shape": (78, 78, 3)}, r"at least 79x79.*without them the minimum is 31x31"),
        (googlenet.GoogLeNet, {"aux_logits": False, "input_shape": (30, 30, 3)}, r"at least 31x31"),
        (googlenet.GoogLeNet, {"norm": "group"}, r"`norm` must be one of None, 'batch', 'lrn'. Received: norm='group'"),
        (googlenet.GoogLeNet, {"dropout": 1.0}, r"`dropout` must be a number in \[0, 1\). Received: dropout=1.0"),
        (googlenet.GoogLeNet, {"aux_dropout": -0.1}, r"`aux_dropout` must be a number in \[0, 1\)"),
        (googlenet.GoogLeNet, {"aux_loss_weight": -0.3}, r"`aux_loss_weight` must be a non-negative number"),
        (googlenet.GoogLeNet, {"reduction_scale": 0}, r"`reduction_scale` must be a positive number"),
        (googlenet.GoogLeNet, {"variant": "caffe"}, r"`variant` must be one of 'paper', 'torchvision'"),
        (googlenet.GoogLeNet, {"variant": "torchvision", "norm": "lrn"}, r"needs `norm='batch'`. Received: norm='lrn'"),
        (inception_v3.InceptionV3, {"include_top": False}, r"`aux_logits=True` needs `include_top=True`"),
        (inception_v3.InceptionV3, {"input_shape": (298, 298, 3)}, r"at least 299x299.*minimum is 75x75"),
        (inception_v3.InceptionV3, {"aux_logits": False, "input_shape": (74, 74, 3)}, r"at least 75x75"),
        (inception_v3.InceptionV3, {"dropout": 1.5}, r"`dropout` must be a number in \[0, 1\)"),
        (inception_v3.InceptionV3, {"aux_loss_weight": -1}, r"`aux_loss_weight` must be a non-negative number"),
    ],
)
def test_bad_arguments(builder, kwargs, match):
    with pytest.raises(ValueError, match=match):
        builder(**kwargs)


def test_lrn_round_trip_safe_mode(tmp_path):
    image = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3, name="conv")(image)
    model = keras.Model(image, LocalResponseNormalization(size=3, alpha=0.5, name="norm")(x))
    images = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    path = tmp_path / "lrn.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.get_layer("norm").get_config()["alpha"] == 0.5
    np.testing.assert_allclose(
        loaded.predict(images, verbose=0), model.predict(images, verbose=0), rtol=1e-5, atol=1e-6
    )


def test_registered():
    assert {"googlenet", "inception_v3"} <= set(keras_convnets.list_models())
    assert keras_convnets.models.registry.get_builder("GoogLeNet") is googlenet.GoogLeNet
    assert keras_convnets.models.registry.get_builder("Inception-v3") is inception_v3.InceptionV3
    model = keras_convnets.get_model("googlenet", aux_logits=False, classes=4, input_shape=(32, 32, 3))
    assert model.output_shape == (None, 4)


# ---- Parity with torchvision's GoogLeNet, written out in plain torch.nn (torchvision does not import here). ----

TORCH_UNITS = {
    "conv1_7x7": "conv1",
    "conv2_3x3_reduce": "conv2",
    "conv2_3x3": "conv3",
    "aux1_1x1": "aux1.conv",
    "aux2_1x1": "aux2.conv",
}
TORCH_BRANCHES = {
    "1x1": "branch1",
    "3x3_reduce": "branch2.0",
    "3x3": "branch2.1",
    "5x5_reduce": "branch3.0",
    "5x5": "branch3.1",
    "pool_proj": "branch4.1",
}


def torch_unit(keras_unit: str) -> str:
    """The torchvision state-dict prefix of a Keras conv unit (the scheme of googlenet.py's docstring)."""
    if keras_unit in TORCH_UNITS:
        return TORCH_UNITS[keras_unit]
    module, branch = keras_unit.split("_", 1)
    return f"{module}.{TORCH_BRANCHES[branch]}"


def torch_googlenet(classes: int):
    nn = pytest.importorskip("torch.nn")
    torch = pytest.importorskip("torch")

    class BasicConv2d(nn.Module):
        def __init__(self, cin, cout, kernel, stride=1, padding=0):
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
            self.bn = nn.BatchNorm2d(cout, eps=0.001)

        def forward(self, x):
            return torch.relu(self.bn(self.conv(x)))

    class Inception(nn.Module):
        def __init__(self, cin, spec):
            super().__init__()
            self.branch1 = BasicConv2d(cin, spec.n1x1, 1)
            self.branch2 = nn.Sequential(
                BasicConv2d(cin, spec.n3x3_reduce, 1), BasicConv2d(spec.n3x3_reduce, spec.n3x3, 3, padding=1)
            )
            self.branch3 = nn.Sequential(
                BasicConv2d(cin, spec.n5x5_reduce, 1), BasicConv2d(spec.n5x5_reduce, spec.n5x5, 3, padding=1)
            )
            self.branch4 = nn.Sequential(
                nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True), BasicConv2d(cin, spec.pool_proj, 1)
            )

        def forward(self, x):
            return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)

    class InceptionAux(nn.Module):
        def __init__(self, cin):
            super().__init__()
            self.conv = BasicConv2d(cin, 128, 1)
            self.fc1 = nn.Linear(2048, 1024)
            self.fc2 = nn.Linear(1024, classes)

        def forward(self, x):
            x = torch.flatten(self.conv(nn.functional.adaptive_avg_pool2d(x, (4, 4))), 1)
            return self.fc2(torch.relu(self.fc1(x)))

    class GoogLeNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = BasicConv2d(3, 64, 7, stride=2, padding=3)
            self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            self.conv2 = BasicConv2d(64, 64, 1)
            self.conv3 = BasicConv2d(64, 192, 3, padding=1)
            self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            cin = 192
            for spec in googlenet.INCEPTION_TABLE:
                setattr(self, f"inception{spec.name}", Inception(cin, spec))
                cin = spec.out_channels
            self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
            self.aux1 = InceptionAux(512)
            self.aux2 = InceptionAux(528)
            self.fc = nn.Linear(1024, classes)

        def forward(self, x):
            x = self.maxpool1(self.conv1(x))
            x = self.maxpool2(self.conv3(self.conv2(x)))
            x = self.inception3b(self.inception3a(x))
            x = self.inception4a(self.maxpool3(x))
            aux1 = self.aux1(x)
            x = self.inception4d(self.inception4c(self.inception4b(x)))
            aux2 = self.aux2(x)
            x = self.maxpool4(self.inception4e(x))
            x = self.inception5b(self.inception5a(x))
            return {"predictions": self.fc(torch.flatten(x.mean((2, 3)), 1)), "aux1": aux1, "aux2": aux2}

    return GoogLeNet()


@pytest.mark.slow
@pytest.mark.parametrize("size", [97])  # odd: exercises ceil-mode pooling; aux pools 6x6 -> 4x4 adaptively
def test_googlenet_torchvision_variant_matches_torch(size):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    reference = torch_googlenet(classes=5).eval()
    state = reference.state_dict()
    with torch.no_grad():  # non-trivial batch-norm statistics
        for key, value in state.items():
            if key.endswith("running_mean"):
                value.uniform_(-0.2, 0.2)
            elif key.endswith("running_var"):
                value.uniform_(0.5, 1.5)
            elif key.endswith("bn.weight"):
                value.uniform_(0.5, 1.5)
    assert sum(v.numel() for k, v in state.items() if "running" not in k and "num_batches" not in k) == (
        13_004_888 - 1000 * 1025 * 3 + 5 * 1025 * 3
    )
    model = googlenet.GoogLeNet(
        variant="torchvision", classes=5, classifier_activation=None, input_shape=(size, size, 3)
    )
    copied = set()
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            prefix = torch_unit(layer.name[: -len("_conv")])
            layer.kernel.assign(state[f"{prefix}.conv.weight"].numpy().transpose(2, 3, 1, 0))
            copied.add(f"{prefix}.conv.weight")
        elif isinstance(layer, keras.layers.BatchNormalization):
            prefix = torch_unit(layer.name[: -len("_bn")]) + ".bn"
            names = ("weight", "bias", "running_mean", "running_var")
            layer.set_weights([state[f"{prefix}.{n}"].numpy() for n in names])
            copied.update(f"{prefix}.{n}" for n in names)
        elif isinstance(layer, keras.layers.Dense):
            prefix = {"predictions": "fc", "aux1": "aux1.fc2", "aux2": "aux2.fc2"}.get(layer.name)
            prefix = prefix or layer.name.replace("_fc1", ".fc1")
            kernel = state[f"{prefix}.weight"].numpy().T
            if prefix.endswith("fc1"):  # torch flattens (channel, row, column); Keras (row, column, channel)
                kernel = kernel.reshape(128, 4, 4, 1024).transpose(1, 2, 0, 3).reshape(2048, 1024)
            layer.set_weights([kernel, state[f"{prefix}.bias"].numpy()])
            copied.update([f"{prefix}.weight", f"{prefix}.bias"])
    assert copied == {k for k in state if not k.endswith("num_batches_tracked")}
    images = np.random.default_rng(0).uniform(-1, 1, (2, size, size, 3)).astype("float32")
    with torch.no_grad():
        expected = reference(torch.from_numpy(images.transpose(0, 3, 1, 2)))
    got = model(images, training=False)
    for key in ("predictions", "aux1", "aux2"):
        assert np.abs(expected[key].numpy()).max() > 1e-2  # not a vacuous comparison of near-zero logits
        np.testing.assert_allclose(np.asarray(got[key]), expected[key].numpy(), rtol=1e-3, atol=1e-4)


def torch_inception_v3(classes: int):
    """torchvision's Inception3 (with AuxLogits) in plain torch.nn, returning both heads in eval mode."""
    nn = pytest.importorskip("torch.nn")
    torch = pytest.importorskip("torch")
    F = nn.functional

    class BasicConv2d(nn.Module):
        def __init__(self, cin, cout, kernel, stride=1, padding=0):
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
            self.bn = nn.BatchNorm2d(cout, eps=0.001)

        def forward(self, x):
            return torch.relu(self.bn(self.conv(x)))

    class Block(nn.Module):
        def __init__(self, units):
            super().__init__()
            for name, *args in units:
                setattr(self, f"branch{name}", BasicConv2d(*args))

        def run(self, x, *names):
            for name in names:
                x = getattr(self, f"branch{name}")(x)
            return x

        def pool(self, x):
            return self.run(F.avg_pool2d(x, 3, stride=1, padding=1), "_pool")

    class A(Block):
        def __init__(self, cin, pf):
            super().__init__(
                [
                    ("1x1", cin, 64, 1),
                    ("5x5_1", cin, 48, 1),
                    ("5x5_2", 48, 64, 5, 1, 2),
                    ("3x3dbl_1", cin, 64, 1),
                    ("3x3dbl_2", 64, 96, 3, 1, 1),
                    ("3x3dbl_3", 96, 96, 3, 1, 1),
                    ("_pool", cin, pf, 1),
                ]
            )

        def forward(self, x):
            return torch.cat(
                [
                    self.run(x, "1x1"),
                    self.run(x, "5x5_1", "5x5_2"),
                    self.run(x, "3x3dbl_1", "3x3dbl_2", "3x3dbl_3"),
                    self.pool(x),
                ],
                1,
            )

    class B(Block):
        def __init__(self, cin):
            super().__init__(
                [
                    ("3x3", cin, 384, 3, 2),
                    ("3x3dbl_1", cin, 64, 1),
                    ("3x3dbl_2", 64, 96, 3, 1, 1),
                    ("3x3dbl_3", 96, 96, 3, 2),
                ]
            )

        def forward(self, x):
            return torch.cat(
                [self.run(x, "3x3"), self.run(x, "3x3dbl_1", "3x3dbl_2", "3x3dbl_3"), F.max_pool2d(x, 3, stride=2)], 1
            )

    class C(Block):
        def __init__(self, cin, c7):
            h, v = ((1, 7), (0, 3)), ((7, 1), (3, 0))
            super().__init__(
                [
                    ("1x1", cin, 192, 1),
                    ("7x7_1", cin, c7, 1),
                    ("7x7_2", c7, c7, h[0], 1, h[1]),
                    ("7x7_3", c7, 192, v[0], 1, v[1]),
                    ("7x7dbl_1", cin, c7, 1),
                    ("7x7dbl_2", c7, c7, v[0], 1, v[1]),
                    ("7x7dbl_3", c7, c7, h[0], 1, h[1]),
                    ("7x7dbl_4", c7, c7, v[0], 1, v[1]),
                    ("7x7dbl_5", c7, 192, h[0], 1, h[1]),
                    ("_pool", cin, 192, 1),
                ]
            )

        def forward(self, x):
            return torch.cat(
                [
                    self.run(x, "1x1"),
                    self.run(x, "7x7_1", "7x7_2", "7x7_3"),
                    self.run(x, *(f"7x7dbl_{i}" for i in range(1, 6))),
                    self.pool(x),
                ],
                1,
            )

    class D(Block):
        def __init__(self, cin):
            super().__init__(
                [
                    ("3x3_1", cin, 192, 1),
                    ("3x3_2", 192, 320, 3, 2),
                    ("7x7x3_1", cin, 192, 1),
                    ("7x7x3_2", 192, 192, (1, 7), 1, (0, 3)),
                    ("7x7x3_3", 192, 192, (7, 1), 1, (3, 0)),
                    ("7x7x3_4", 192, 192, 3, 2),
                ]
            )

        def forward(self, x):
            return torch.cat(
                [
                    self.run(x, "3x3_1", "3x3_2"),
                    self.run(x, *(f"7x7x3_{i}" for i in range(1, 5))),
                    F.max_pool2d(x, 3, stride=2),
                ],
                1,
            )

    class E(Block):
        def __init__(self, cin):
            super().__init__(
                [
                    ("1x1", cin, 320, 1),
                    ("3x3_1", cin, 384, 1),
                    ("3x3_2a", 384, 384, (1, 3), 1, (0, 1)),
                    ("3x3_2b", 384, 384, (3, 1), 1, (1, 0)),
                    ("3x3dbl_1", cin, 448, 1),
                    ("3x3dbl_2", 448, 384, 3, 1, 1),
                    ("3x3dbl_3a", 384, 384, (1, 3), 1, (0, 1)),
                    ("3x3dbl_3b", 384, 384, (3, 1), 1, (1, 0)),
                    ("_pool", cin, 192, 1),
                ]
            )

        def forward(self, x):
            b3 = self.run(x, "3x3_1")
            bd = self.run(x, "3x3dbl_1", "3x3dbl_2")
            return torch.cat(
                [
                    self.run(x, "1x1"),
                    self.run(b3, "3x3_2a"),
                    self.run(b3, "3x3_2b"),
                    self.run(bd, "3x3dbl_3a"),
                    self.run(bd, "3x3dbl_3b"),
                    self.pool(x),
                ],
                1,
            )

    class Aux(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv0 = BasicConv2d(768, 128, 1)
            self.conv1 = BasicConv2d(128, 768, 5)
            self.fc = nn.Linear(768, classes)

        def forward(self, x):
            x = self.conv1(self.conv0(F.avg_pool2d(x, 5, stride=3)))
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, (1, 1)), 1))

    class Inception3(nn.Module):
        def __init__(self):
            super().__init__()
            self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
            self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
            self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
            self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
            self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
            self.Mixed_5b, self.Mixed_5c, self.Mixed_5d = A(192, 32), A(256, 64), A(288, 64)
            self.Mixed_6a = B(288)
            self.Mixed_6b, self.Mixed_6c = C(768, 128), C(768, 160)
            self.Mixed_6d, self.Mixed_6e = C(768, 160), C(768, 192)
            self.AuxLogits = Aux()
            self.Mixed_7a, self.Mixed_7b, self.Mixed_7c = D(768), E(1280), E(2048)
            self.fc = nn.Linear(2048, classes)

        def forward(self, x):
            x = F.max_pool2d(self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x))), 3, stride=2)
            x = F.max_pool2d(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)), 3, stride=2)
            for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e"):
                x = getattr(self, f"Mixed_{name}")(x)
            aux = self.AuxLogits(x)
            for name in ("7a", "7b", "7c"):
                x = getattr(self, f"Mixed_{name}")(x)
            return {"predictions": self.fc(x.mean((2, 3))), "aux1": aux}

    return Inception3()


def torch_v3_unit(keras_unit: str) -> str:
    """The torchvision state-dict prefix of an Inception v3 conv unit (see inception_v3.py's docstring)."""
    module, branch = keras_unit.split("_", 1)
    if module.startswith("conv"):
        return f"Conv2d_{module[4:]}_{branch}"
    if module == "aux1":
        return f"AuxLogits.{branch}"
    return f"Mixed_{module[5:]}.branch{'_pool' if branch == 'pool_proj' else branch}"


@pytest.mark.slow
def test_inception_v3_matches_torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    reference = torch_inception_v3(classes=5).eval()
    state = reference.state_dict()
    with torch.no_grad():
        for key, value in state.items():
            if key.endswith("running_mean"):
                value.uniform_(-0.2, 0.2)
            elif key.endswith(("running_var", "bn.weight")):
                value.uniform_(0.5, 1.5)
    assert sum(v.numel() for k, v in state.items() if "running" not in k and "num_batches" not in k) == (
        27_161_264 - 2049 * 995 - 769 * 995
    )
    model = inception_v3.InceptionV3(classes=5, classifier_activation=None)
    copied = set()
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            prefix = torch_v3_unit(layer.name[: -len("_conv")])
            layer.kernel.assign(state[f"{prefix}.conv.weight"].numpy().transpose(2, 3, 1, 0))
            copied.add(f"{prefix}.conv.weight")
        elif isinstance(layer, keras.layers.BatchNormalization):
            prefix = torch_v3_unit(layer.name[: -len("_bn")]) + ".bn"
            names = ("weight", "bias", "running_mean", "running_var")
            layer.set_weights([state[f"{prefix}.{n}"].numpy() for n in names])
            copied.update(f"{prefix}.{n}" for n in names)
        elif isinstance(layer, keras.layers.Dense):
            prefix = {"predictions": "fc", "aux1": "AuxLogits.fc"}[layer.name]
            layer.set_weights([state[f"{prefix}.weight"].numpy().T, state[f"{prefix}.bias"].numpy()])
            copied.update([f"{prefix}.weight", f"{prefix}.bias"])
    assert copied == {k for k in state if not k.endswith("num_batches_tracked")}
    images = np.random.default_rng(0).uniform(-1, 1, (1, 299, 299, 3)).astype("float32")
    with torch.no_grad():
        expected = reference(torch.from_numpy(images.transpose(0, 3, 1, 2)))
    got = model(images, training=False)
    for key in ("predictions", "aux1"):
        assert np.abs(expected[key].numpy()).max() > 1e-2  # not a vacuous comparison of near-zero logits
        np.testing.assert_allclose(np.asarray(got[key]), expected[key].numpy(), rtol=1e-3, atol=1e-4)
