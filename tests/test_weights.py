"""Pretrained weights without network: reference nets with random weights and random batch-norm
statistics (keras.applications models, and torchvision's architectures written in plain torch.nn),
converted through our loaders, give the same outputs as the reference."""

from __future__ import annotations

import functools
import hashlib
import os

import h5py
import keras
import numpy as np
import pytest

import keras_convnets
from keras_convnets import weights as pretrained
from keras_convnets.models import imagenet

TOLERANCE = 1e-4
SIZE = 64


def _randomize_keras(model: keras.Model, seed: int = 0) -> keras.Model:
    """Random conv/dense weights with nonzero biases and random batch-norm statistics, scaled so
    that activations stay of order one through 50 layers."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape
            layer.gamma.assign(rng.uniform(0.3, 0.6, n))
            layer.beta.assign(rng.normal(0, 0.1, n))
            layer.moving_mean.assign(rng.normal(0, 0.1, n))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, n))
        elif layer.weights:
            fan_in = int(np.prod(layer.kernel.shape[:-1]))
            layer.kernel.assign(rng.normal(0, fan_in**-0.5, layer.kernel.shape))
            layer.bias.assign(rng.normal(0, 0.1, layer.bias.shape))
    return model


@functools.cache
def keras_reference(include_top: bool) -> keras.Model:
    """keras.applications ResNet50 with random weights and statistics (logits, no softmax)."""
    model = keras.applications.ResNet50(
        weights=None, include_top=include_top, input_shape=(SIZE, SIZE, 3), classifier_activation=None
    )
    return _randomize_keras(model, seed=int(include_top))


def _images(count: int = 2, seed: int = 0) -> np.ndarray:
    pixels = np.random.default_rng(seed).uniform(0, 255, (count, SIZE, SIZE, 3)).astype("float32")
    return imagenet.preprocess_input(pixels, mode="caffe")


def _max_diff(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


def _save_legacy_h5(model: keras.Model, path) -> str:
    """The format keras.applications ships its weights in (Keras 2 HDF5, layers by name)."""
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, model)
    return str(path)


# ----------------------------------------------------------------------------------------------
# keras.applications


@pytest.mark.xdist_group("keras_applications")
def test_keras_applications_live_model_and_files_give_the_same_outputs(tmp_path):
    reference = keras_reference(include_top=True)
    x = _images()
    expected = reference(x, training=False)
    ours = pretrained.from_keras_applications(
        reference, "resnet50", input_shape=(SIZE, SIZE, 3), classifier_activation=None
    )
    assert ours.name == "resnet50"
    assert ours.get_layer("conv1_conv").bias is None and ours.get_layer("conv1_bn").epsilon == 1.001e-5
    assert _max_diff(ours(x, training=False), expected) < TOLERANCE
    # The fold is exact: conv bias b into the next batch norm's moving mean.
    np.testing.assert_allclose(
        ours.get_layer("conv2_block1_0_bn").moving_mean.numpy(),
        reference.get_layer("conv2_block1_0_bn").moving_mean.numpy()
        - reference.get_layer("conv2_block1_0_conv").bias.numpy(),
        rtol=0,
        atol=1e-7,
    )

    legacy = _save_legacy_h5(reference, tmp_path / "resnet50.h5")
    ours = pretrained.from_keras_applications(
        legacy, "resnet50", input_shape=(SIZE, SIZE, 3), classifier_activation=None
    )
    assert _max_diff(ours(x, training=False), expected) < TOLERANCE

    # A Keras 3 `.weights.h5`, loaded into a net with another batch-norm epsilon (folded into the variance).
    reference.save_weights(tmp_path / "resnet50.weights.h5")
    ours = pretrained.from_keras_applications(
        tmp_path / "resnet50.weights.h5",
        "ResNet-50",
        input_shape=(SIZE, SIZE, 3),
        classifier_activation=None,
        bn_epsilon=1e-5,
    )
    assert ours.get_layer("conv1_bn").epsilon == 1e-5
    assert _max_diff(ours(x, training=False), expected) < TOLERANCE

    # Another architecture (here: another head) is refused naming the layer and both shapes.
    with pytest.raises(ValueError, match=r"'predictions' `kernel` has shape \(2048, 1000\).*\(2048, 10\)"):
        pretrained.from_keras_applications(reference, "resnet50", classes=10, input_shape=(SIZE, SIZE, 3))


@pytest.mark.xdist_group("keras_applications")
def test_weights_imagenet_loads_the_no_top_file_through_get_file(tmp_path, monkeypatch):
    reference = keras_reference(include_top=False)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    entry = pretrained.KERAS_APPLICATIONS_FILES[("resnet50", False)]
    path = _save_legacy_h5(reference, mirror / entry.file_name)
    md5 = hashlib.md5(open(path, "rb").read()).hexdigest()
    # The real file's hash cannot match a locally made file: swap the table for this test only.
    table = dict(pretrained.KERAS_APPLICATIONS_FILES)
    table[("resnet50", False)] = pretrained.WeightsFile(entry.file_name, md5)
    monkeypatch.setattr(pretrained.keras_applications, "KERAS_APPLICATIONS_FILES", table)
    monkeypatch.setenv(pretrained.BASE_URL_ENVIRONMENT_VARIABLE, mirror.as_uri())
    monkeypatch.setattr(
        pretrained.keras_applications,
        "keras_applications_file",
        functools.partial(pretrained.keras_applications_file, cache_dir=str(tmp_path / "cache")),
    )

    ours = keras_convnets.ResNet50(weights="imagenet", include_top=False, input_shape=(SIZE, SIZE, 3))
    x = _images()
    assert _max_diff(ours(x, training=False), reference(x, training=False)) < TOLERANCE
    assert os.path.isfile(tmp_path / "cache" / "models" / entry.file_name)  # cached like keras.applications
    # The no-top weights cannot fill a top.
    with pytest.raises(ValueError, match="no `predictions` layer"):
        pretrained.from_keras_applications(path, "resnet50", input_shape=(SIZE, SIZE, 3))


def test_keras_applications_table_matches_keras():
    from keras.src.applications import resnet as keras_resnet

    assert pretrained.KERAS_APPLICATIONS_BASE_URL == keras_resnet.BASE_WEIGHTS_PATH
    assert pretrained.KERAS_APPLICATIONS_MODELS == ("resnet50", "resnet101", "resnet152", "inception_v3")
    for name in pretrained.KERAS_APPLICATIONS_MODELS[:3]:  # inception_v3: tests/test_inception_weights.py
        top, notop = keras_resnet.WEIGHTS_HASHES[name]
        assert pretrained.KERAS_APPLICATIONS_FILES[(name, True)] == pretrained.WeightsFile(
            f"{name}_weights_tf_dim_ordering_tf_kernels.h5", top
        )
        assert pretrained.KERAS_APPLICATIONS_FILES[(name, False)] == pretrained.WeightsFile(
            f"{name}_weights_tf_dim_ordering_tf_kernels_notop.h5", notop
        )


def test_corrupted_download_fails_the_hash_check(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    name = pretrained.KERAS_APPLICATIONS_FILES[("resnet50", False)].file_name
    (mirror / name).write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    with pytest.raises(
        ValueError, match="truncated or corrupted: its md5 hash is not 4d473c1dd8becc155b73f8504c6f6626"
    ):
        pretrained.keras_applications_file("resnet50", False, base_url=mirror.as_uri(), cache_dir=str(tmp_path))
    # Through `weights="imagenet"` the same check runs, and no model is returned.
    monkeypatch.setenv(pretrained.BASE_URL_ENVIRONMENT_VARIABLE, mirror.as_uri())
    monkeypatch.setattr(
        pretrained.keras_applications,
        "keras_applications_file",
        functools.partial(pretrained.keras_applications_file, cache_dir=str(tmp_path)),
    )
    with pytest.raises(ValueError, match="truncated or corrupted"):
        keras_convnets.ResNet50(weights="imagenet", include_top=False, input_shape=(SIZE, SIZE, 3))
    with pytest.raises(OSError, match="Could not fetch the weights file"):
        pretrained.keras_applications_file(
            "resnet101", True, base_url=(tmp_path / "missing").as_uri(), cache_dir=str(tmp_path)
        )


def test_unreadable_weights_file_is_refused(tmp_path):
    broken = tmp_path / "broken.h5"
    broken.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(ValueError, match="cannot be read as HDF5"):
        pretrained.from_keras_applications(broken, "resnet50", include_top=False, input_shape=(SIZE, SIZE, 3))


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: keras_convnets.VGG16(weights="imagenet"), "`weights='imagenet'` is not available for this model"),
        (lambda: keras_convnets.GoogLeNet(weights="imagenet"), "`weights='imagenet'` is not available for this model"),
        (lambda: keras_convnets.ResNet18(weights="imagenet"), "available for ResNet50, ResNet101 and ResNet152"),
        (lambda: keras_convnets.ResNet20(weights="imagenet"), "available for ResNet50, ResNet101 and ResNet152"),
        (lambda: keras_convnets.ResNet50(weights="imagenet", stride_in="3x3"), "need `stride_in='1x1'`"),
        (lambda: keras_convnets.ResNet50(weights="imagenet", shortcut="C"), "need `shortcut='B'`"),
        (lambda: keras_convnets.ResNet101(weights="imagenet", classes=10), "`classes` should be 1000"),
        (lambda: pretrained.from_keras_applications("x.h5", "resnet18"), "keras.applications weights"),
        (lambda: pretrained.from_keras_applications("x.h5", "resnet50", stride_in="3x3"), "need `stride_in='1x1'`"),
        (lambda: pretrained.from_torchvision({}, "vgg16"), "torchvision weights"),
        (lambda: pretrained.from_torchvision({}, "resnet50", stride_in="1x1"), "need `stride_in='3x3'`"),
        (lambda: imagenet.preprocess_input(np.zeros((2, 2, 4)), mode="torch"), "3 channels"),
        (lambda: imagenet.preprocess_input(np.zeros((2, 2, 3)), mode="BGR"), "`mode` must be one of"),
        (lambda: imagenet.decode_predictions(np.zeros((2, 10))), r"shape \(samples, 1000\)"),
    ],
)
def test_bad_arguments_are_refused_before_building(build, match):
    with pytest.raises(ValueError, match=match):
        build()


# ----------------------------------------------------------------------------------------------
# Preprocessing and class names


def test_preprocess_input_modes():
    pixels = np.array([[[[0.0, 127.5, 255.0]]]], dtype="float32")  # one RGB pixel
    np.testing.assert_allclose(
        imagenet.preprocess_input(pixels, mode="caffe")[0, 0, 0],
        [255 - 103.939, 127.5 - 116.779, 0 - 123.68],
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        imagenet.preprocess_input(pixels, mode="torch")[0, 0, 0],
        [(0 - 0.485) / 0.229, (0.5 - 0.456) / 0.224, (1 - 0.406) / 0.225],
        rtol=1e-6,
    )
    np.testing.assert_allclose(imagenet.preprocess_input(pixels, mode="tf")[0, 0, 0], [-1, 0, 1], atol=1e-7)
    # Tensors in, tensors out; channels-first too; the input array is left alone.
    tensor = imagenet.preprocess_input(keras.ops.convert_to_tensor(pixels), mode="caffe")
    assert keras.ops.is_tensor(tensor)
    np.testing.assert_allclose(tensor, imagenet.preprocess_input(pixels, mode="caffe"), rtol=1e-6)
    first = imagenet.preprocess_input(np.transpose(pixels, (0, 3, 1, 2)), mode="caffe", data_format="channels_first")
    np.testing.assert_allclose(first[0, :, 0, 0], [255 - 103.939, 127.5 - 116.779, -123.68], rtol=1e-6)
    assert pixels[0, 0, 0, 0] == 0.0
    # torchvision's transform_input (GoogLeNet, Inception v3) applied to "torch" inputs is exactly "tf".
    torch_input = imagenet.preprocess_input(pixels, mode="torch")
    std, mean = np.array(imagenet.TORCH_RGB_STD), np.array(imagenet.TORCH_RGB_MEAN)
    np.testing.assert_allclose(
        torch_input * std / 0.5 + (mean - 0.5) / 0.5, imagenet.preprocess_input(pixels, mode="tf"), atol=1e-6
    )
    assert pretrained.preprocessing_mode("resnet50", "keras.applications") == "caffe"
    assert pretrained.preprocessing_mode("resnet18") == "torch"


def test_decode_predictions_names_the_best_classes():
    classes = imagenet.imagenet_classes()
    assert len(classes) == 1000 and len({name for _, name in classes}) == 1000
    assert classes[0] == ("n01440764", "tench") and classes[999] == ("n15075141", "toilet tissue")
    assert classes[281] == ("n02123045", "tabby") and classes[134][1] == "crane bird" and classes[517][1] == "crane"
    probs = np.zeros((2, 1000), "float32")
    probs[0, [281, 1, 999]] = [0.7, 0.2, 0.1]
    probs[1, 409] = 1.0
    decoded = imagenet.decode_predictions(probs, top=3)
    assert decoded[0] == [
        ("n02123045", "tabby", pytest.approx(0.7)),
        ("n01443537", "goldfish", pytest.approx(0.2)),
        ("n15075141", "toilet tissue", pytest.approx(0.1)),
    ]
    assert decoded[1][0] == ("n02708093", "analog clock", 1.0)
    assert len(imagenet.decode_predictions(keras.ops.convert_to_tensor(probs))[1]) == 5
    assert keras_convnets.decode_predictions is imagenet.decode_predictions
    assert keras_convnets.preprocess_input is imagenet.preprocess_input


# ----------------------------------------------------------------------------------------------
# torchvision architectures in plain torch.nn (torchvision itself does not import beside torch here)


def _torch_resnet(block: str, repeats: tuple[int, ...], classes: int = 1000):
    """torchvision's ResNet (v1.5: the stride in the 3x3 conv), module names as in torchvision."""
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Basic(nn.Module):
        expansion = 1

        def __init__(self, inplanes, planes, stride, downsample):
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU()
            self.downsample = downsample

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(out)) + identity)

    class Bottleneck(nn.Module):
        expansion = 4

        def __init__(self, inplanes, planes, stride, downsample):
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(planes * 4)
            self.relu = nn.ReLU()
            self.downsample = downsample

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            return self.relu(self.bn3(self.conv3(out)) + identity)

    unit = Basic if block == "basic" else Bottleneck

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU()
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            inplanes = 64
            for index, (planes, count) in enumerate(zip((64, 128, 256, 512), repeats)):
                stride = 1 if index == 0 else 2
                blocks = []
                for b in range(count):
                    downsample = None
                    if b == 0 and (stride != 1 or inplanes != planes * unit.expansion):
                        downsample = nn.Sequential(
                            nn.Conv2d(inplanes, planes * unit.expansion, 1, stride, bias=False),
                            nn.BatchNorm2d(planes * unit.expansion),
                        )
                    blocks.append(unit(inplanes, planes, stride if b == 0 else 1, downsample))
                    inplanes = planes * unit.expansion
                setattr(self, f"layer{index + 1}", nn.Sequential(*blocks))
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(inplanes, classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return ResNet()


def _randomize_torch(net, seed: int = 0):
    """Random weights and batch-norm running statistics of order one; eval mode."""
    torch = pytest.importorskip("torch")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(torch.rand(n, generator=generator) * 0.3 + 0.3)
                module.bias.copy_(torch.randn(n, generator=generator) * 0.1)
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            elif isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * fan_in**-0.5)
                if module.bias is not None:
                    module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1)
    return net.eval()


def _torch_outputs(net, images: np.ndarray) -> np.ndarray:
    """Run `net` on channels-last `images` (the torch net reads NCHW)."""
    torch = pytest.importorskip("torch")
    with torch.no_grad():
        return net(torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))).numpy()


def _torch_images(count: int = 2, size: int = SIZE, seed: int = 1) -> np.ndarray:
    pixels = np.random.default_rng(seed).uniform(0, 255, (count, size, size, 3)).astype("float32")
    return imagenet.preprocess_input(pixels, mode="torch")


@functools.cache
def torch_resnet18():
    return _randomize_torch(_torch_resnet("basic", (2, 2, 2, 2)), seed=18)


def test_torchvision_resnet18_state_dict_npz_and_pth(tmp_path):
    torch = pytest.importorskip("torch")
    net = torch_resnet18()
    x = _torch_images()
    expected = _torch_outputs(net, x)
    ours = pretrained.from_torchvision(
        net.state_dict(), "resnet18", input_shape=(SIZE, SIZE, 3), classifier_activation=None
    )
    assert ours.get_layer("conv2_block1_1_conv").strides == (1, 1)
    assert _max_diff(ours(x, training=False), expected) < TOLERANCE

    # A `.npz` of the state dict needs no torch to load; a `.pth` goes through torch.load.
    np.savez(tmp_path / "resnet18.npz", **{k: v.numpy() for k, v in net.state_dict().items()})
    torch.save(net.state_dict(), tmp_path / "resnet18.pth")
    for path in (tmp_path / "resnet18.npz", tmp_path / "resnet18.pth"):
        ours = pretrained.from_torchvision(path, "resnet18", include_top=False, input_shape=(SIZE, SIZE, 3))
        assert ours.output.shape == (None, 2, 2, 512)
        pooled = np.mean(np.asarray(ours(x, training=False)), axis=(1, 2))
        logits = pooled @ net.fc.weight.detach().numpy().T + net.fc.bias.detach().numpy()
        assert _max_diff(logits, expected) < TOLERANCE


@pytest.mark.slow
def test_torchvision_resnet50_gives_the_same_outputs():
    net = _randomize_torch(_torch_resnet("bottleneck", (3, 4, 6, 3)), seed=50)
    x = _torch_images()
    ours = pretrained.from_torchvision(
        net.state_dict(), "resnet50", input_shape=(SIZE, SIZE, 3), classifier_activation=None
    )
    assert ours.get_layer("conv3_block1_2_conv").strides == (2, 2)  # torchvision: the stride in the 3x3
    assert _max_diff(ours(x, training=False), _torch_outputs(net, x)) < TOLERANCE


def test_torchvision_wrong_architecture_names_the_first_mismatched_tensor():
    pytest.importorskip("torch")
    state = torch_resnet18().state_dict()
    with pytest.raises(ValueError, match=r"no tensor 'layer1\.2\.conv1\.weight'.*shape \(64, 64, 3, 3\)"):
        pretrained.from_torchvision(state, "resnet34", include_top=False, input_shape=(SIZE, SIZE, 3))
    extra = dict(state)
    extra["layer4.2.conv1.weight"] = extra["layer4.1.conv1.weight"]
    with pytest.raises(
        ValueError, match=r"does not use, the first 'layer4\.2\.conv1\.weight' of shape \(512, 512, 3, 3\)"
    ):
        pretrained.from_torchvision(extra, "resnet18", include_top=False, input_shape=(SIZE, SIZE, 3))
    wrong = dict(state)
    wrong["layer2.0.conv1.weight"] = wrong["layer2.0.conv1.weight"][:, :, :1, :1]
    with pytest.raises(
        ValueError, match=r"Tensor 'layer2\.0\.conv1\.weight' has shape \(128, 64, 1, 1\).*needs \(128, 64, 3, 3\)"
    ):
        pretrained.from_torchvision(wrong, "resnet18", include_top=False, input_shape=(SIZE, SIZE, 3))
    # A checkpoint fine-tuned to other classes loads with matching `classes`; a mismatch names `fc.weight`.
    with pytest.raises(ValueError, match=r"Tensor 'fc\.weight' has shape \(1000, 512\).*needs \(10, 512\)"):
        pretrained.from_torchvision(state, "resnet18", classes=10, input_shape=(SIZE, SIZE, 3))


def test_torchvision_damaged_files_are_refused(tmp_path, monkeypatch):
    (tmp_path / "cut.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match="cannot be read"):
        pretrained.read_state_dict(tmp_path / "cut.npz")
    (tmp_path / "cut.pth").write_bytes(b"PK\x03\x04 truncated")
    monkeypatch.setitem(__import__("sys").modules, "torch", None)  # as if torch were not installed
    with pytest.raises(ImportError, match=r"needs PyTorch.*\.npz"):
        pretrained.read_state_dict(tmp_path / "cut.pth")
    monkeypatch.undo()
    if __import__("importlib").util.find_spec("torch") is not None:
        with pytest.raises(ValueError, match="cannot be read"):
            pretrained.read_state_dict(tmp_path / "cut.pth")
    state = {"conv1.weight": np.zeros((64, 3, 7, 7)), "bn1.num_batches_tracked": np.array(3)}
    assert list(pretrained.read_state_dict({f"module.{k}": v for k, v in state.items()})) == ["conv1.weight"]


def _basic_conv(cin: int, cout: int, kernel, stride=1, padding=0):
    """torchvision's BasicConv2d: conv (no bias), batch norm (epsilon 1e-3), ReLU."""
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class BasicConv2d(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, bias=False)
            self.bn = nn.BatchNorm2d(cout, eps=0.001)

        def forward(self, x):
            return torch.relu(self.bn(self.conv(x)))

    return BasicConv2d()


def _torch_googlenet(classes: int = 1000):
    """torchvision's `googlenet` (transform_input=False), returning (logits, aux1, aux2) in eval mode too."""
    torch = pytest.importorskip("torch")
    nn, F = torch.nn, torch.nn.functional

    class Inception(nn.Module):
        def __init__(self, cin, n1, r3, n3, r5, n5, proj):
            super().__init__()
            self.branch1 = _basic_conv(cin, n1, 1)
            self.branch2 = nn.Sequential(_basic_conv(cin, r3, 1), _basic_conv(r3, n3, 3, padding=1))
            self.branch3 = nn.Sequential(_basic_conv(cin, r5, 1), _basic_conv(r5, n5, 3, padding=1))
            self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), _basic_conv(cin, proj, 1))

        def forward(self, x):
            return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)

    class Aux(nn.Module):
        def __init__(self, cin):
            super().__init__()
            self.conv = _basic_conv(cin, 128, 1)
            self.fc1 = nn.Linear(2048, 1024)
            self.fc2 = nn.Linear(1024, classes)

        def forward(self, x):
            x = torch.flatten(self.conv(F.adaptive_avg_pool2d(x, (4, 4))), 1)
            return self.fc2(F.relu(self.fc1(x)))

    class GoogLeNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = _basic_conv(3, 64, 7, 2, 3)
            self.maxpool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv2 = _basic_conv(64, 64, 1)
            self.conv3 = _basic_conv(64, 192, 3, padding=1)
            self.maxpool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
            self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
            self.maxpool3 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
            self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
            self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
            self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
            self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
            self.maxpool4 = nn.MaxPool2d(2, 2, ceil_mode=True)
            self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
            self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)
            self.aux1 = Aux(512)
            self.aux2 = Aux(528)
            self.fc = nn.Linear(1024, classes)

        def forward(self, x):
            x = self.maxpool1(self.conv1(x))
            x = self.maxpool2(self.conv3(self.conv2(x)))
            x = self.maxpool3(self.inception3b(self.inception3a(x)))
            x = self.inception4a(x)
            aux1 = self.aux1(x)
            x = self.inception4d(self.inception4c(self.inception4b(x)))
            aux2 = self.aux2(x)
            x = self.maxpool4(self.inception4e(x))
            x = self.inception5b(self.inception5a(x))
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)), aux1, aux2

    return GoogLeNet()


def _torch_inception_v3(classes: int = 1000):
    """torchvision's `inception_v3` (transform_input=False), returning (logits, aux) in eval mode too."""
    torch = pytest.importorskip("torch")
    nn, F = torch.nn, torch.nn.functional
    bc = _basic_conv

    def avg_pool(x):
        return F.avg_pool2d(x, 3, 1, 1)  # count_include_pad=True, as torchvision

    class A(nn.Module):
        def __init__(self, cin, pool_features):
            super().__init__()
            self.branch1x1 = bc(cin, 64, 1)
            self.branch5x5_1, self.branch5x5_2 = bc(cin, 48, 1), bc(48, 64, 5, padding=2)
            self.branch3x3dbl_1, self.branch3x3dbl_2 = bc(cin, 64, 1), bc(64, 96, 3, padding=1)
            self.branch3x3dbl_3 = bc(96, 96, 3, padding=1)
            self.branch_pool = bc(cin, pool_features, 1)

        def forward(self, x):
            b5 = self.branch5x5_2(self.branch5x5_1(x))
            bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
            return torch.cat([self.branch1x1(x), b5, bd, self.branch_pool(avg_pool(x))], 1)

    class B(nn.Module):
        def __init__(self, cin):
            super().__init__()
            self.branch3x3 = bc(cin, 384, 3, 2)
            self.branch3x3dbl_1, self.branch3x3dbl_2 = bc(cin, 64, 1), bc(64, 96, 3, padding=1)
            self.branch3x3dbl_3 = bc(96, 96, 3, 2)

        def forward(self, x):
            bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
            return torch.cat([self.branch3x3(x), bd, F.max_pool2d(x, 3, 2)], 1)

    class C(nn.Module):
        def __init__(self, cin, c7):
            super().__init__()
            self.branch1x1 = bc(cin, 192, 1)
            self.branch7x7_1 = bc(cin, c7, 1)
            self.branch7x7_2 = bc(c7, c7, (1, 7), padding=(0, 3))
            self.branch7x7_3 = bc(c7, 192, (7, 1), padding=(3, 0))
            self.branch7x7dbl_1 = bc(cin, c7, 1)
            self.branch7x7dbl_2 = bc(c7, c7, (7, 1), padding=(3, 0))
            self.branch7x7dbl_3 = bc(c7, c7, (1, 7), padding=(0, 3))
            self.branch7x7dbl_4 = bc(c7, c7, (7, 1), padding=(3, 0))
            self.branch7x7dbl_5 = bc(c7, 192, (1, 7), padding=(0, 3))
            self.branch_pool = bc(cin, 192, 1)

        def forward(self, x):
            b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
            bd = x
            for i in range(1, 6):
                bd = getattr(self, f"branch7x7dbl_{i}")(bd)
            return torch.cat([self.branch1x1(x), b7, bd, self.branch_pool(avg_pool(x))], 1)

    class D(nn.Module):
        def __init__(self, cin):
            super().__init__()
            self.branch3x3_1, self.branch3x3_2 = bc(cin, 192, 1), bc(192, 320, 3, 2)
            self.branch7x7x3_1 = bc(cin, 192, 1)
            self.branch7x7x3_2 = bc(192, 192, (1, 7), padding=(0, 3))
            self.branch7x7x3_3 = bc(192, 192, (7, 1), padding=(3, 0))
            self.branch7x7x3_4 = bc(192, 192, 3, 2)

        def forward(self, x):
            b3 = self.branch3x3_2(self.branch3x3_1(x))
            b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
            return torch.cat([b3, b7, F.max_pool2d(x, 3, 2)], 1)

    class E(nn.Module):
        def __init__(self, cin):
            super().__init__()
            self.branch1x1 = bc(cin, 320, 1)
            self.branch3x3_1 = bc(cin, 384, 1)
            self.branch3x3_2a = bc(384, 384, (1, 3), padding=(0, 1))
            self.branch3x3_2b = bc(384, 384, (3, 1), padding=(1, 0))
            self.branch3x3dbl_1, self.branch3x3dbl_2 = bc(cin, 448, 1), bc(448, 384, 3, padding=1)
            self.branch3x3dbl_3a = bc(384, 384, (1, 3), padding=(0, 1))
            self.branch3x3dbl_3b = bc(384, 384, (3, 1), padding=(1, 0))
            self.branch_pool = bc(cin, 192, 1)

        def forward(self, x):
            b3 = self.branch3x3_1(x)
            b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
            bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
            bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
            return torch.cat([self.branch1x1(x), b3, bd, self.branch_pool(avg_pool(x))], 1)

    class Aux(nn.Module):
        def __init__(self, cin):
            super().__init__()
            self.conv0, self.conv1 = bc(cin, 128, 1), bc(128, 768, 5)
            self.fc = nn.Linear(768, classes)

        def forward(self, x):
            x = self.conv1(self.conv0(F.avg_pool2d(x, 5, 3)))
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    class InceptionV3(nn.Module):
        def __init__(self):
            super().__init__()
            self.Conv2d_1a_3x3 = bc(3, 32, 3, 2)
            self.Conv2d_2a_3x3 = bc(32, 32, 3)
            self.Conv2d_2b_3x3 = bc(32, 64, 3, padding=1)
            self.Conv2d_3b_1x1 = bc(64, 80, 1)
            self.Conv2d_4a_3x3 = bc(80, 192, 3)
            self.Mixed_5b, self.Mixed_5c, self.Mixed_5d = A(192, 32), A(256, 64), A(288, 64)
            self.Mixed_6a = B(288)
            self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e = (
                C(768, 128),
                C(768, 160),
                C(768, 160),
                C(768, 192),
            )
            self.AuxLogits = Aux(768)
            self.Mixed_7a, self.Mixed_7b, self.Mixed_7c = D(768), E(1280), E(2048)
            self.fc = nn.Linear(2048, classes)

        def forward(self, x, aux: bool = True):
            x = F.max_pool2d(self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x))), 3, 2)
            x = F.max_pool2d(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)), 3, 2)
            for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e"):
                x = getattr(self, f"Mixed_{name}")(x)
            aux_logits = self.AuxLogits(x) if aux else None
            for name in ("7a", "7b", "7c"):
                x = getattr(self, f"Mixed_{name}")(x)
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)), aux_logits

    return InceptionV3()


def _tf_images(count: int, size: int, seed: int = 2) -> np.ndarray:
    pixels = np.random.default_rng(seed).uniform(0, 255, (count, size, size, 3)).astype("float32")
    return imagenet.preprocess_input(pixels, mode="tf")


def test_torchvision_googlenet_with_aux_heads_gives_the_same_outputs():
    torch = pytest.importorskip("torch")
    net = _randomize_torch(_torch_googlenet(), seed=1)
    x = _tf_images(2, 96)  # 96: the aux heads' adaptive pooling maps 6x6 to 4x4 (overlapping bins)
    with torch.no_grad():
        expected = [t.numpy() for t in net(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))))]
    ours = pretrained.from_torchvision(
        net.state_dict(), "googlenet", aux_logits=True, input_shape=(96, 96, 3), classifier_activation=None
    )
    assert ours.get_layer("inception3a_5x5_conv").kernel.shape == (3, 3, 16, 32)  # torchvision's "5x5" is 3x3
    outputs = ours(x, training=False)
    for key, reference in zip(("predictions", "aux1", "aux2"), expected):
        assert _max_diff(outputs[key], reference) < TOLERANCE, key
    # Without aux heads (the default here) the aux tensors of the checkpoint are left out.
    plain = pretrained.from_torchvision(
        net.state_dict(), "googlenet", input_shape=(96, 96, 3), classifier_activation=None
    )
    assert not any(layer.name.startswith("aux") for layer in plain.layers)
    assert _max_diff(plain(x, training=False), expected[0]) < TOLERANCE
    with pytest.raises(ValueError, match="need `variant='torchvision'`"):
        pretrained.from_torchvision(net.state_dict(), "googlenet", variant="paper")


def test_torchvision_inception_v3_gives_the_same_outputs():
    torch = pytest.importorskip("torch")
    net = _randomize_torch(_torch_inception_v3(), seed=3)
    x = _tf_images(1, 75)
    with torch.no_grad():
        expected = net(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))), aux=False)[0].numpy()
    ours = pretrained.from_torchvision(
        net.state_dict(), "Inception-v3", input_shape=(75, 75, 3), classifier_activation=None
    )
    assert _max_diff(ours(x, training=False), expected) < TOLERANCE


@pytest.mark.slow
def test_torchvision_inception_v3_aux_head_at_299():
    torch = pytest.importorskip("torch")
    net = _randomize_torch(_torch_inception_v3(), seed=4)
    x = _tf_images(1, 299)
    with torch.no_grad():
        expected = [t.numpy() for t in net(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))))]
    ours = pretrained.from_torchvision(net.state_dict(), "inception_v3", aux_logits=True, classifier_activation=None)
    outputs = ours(x, training=False)
    assert _max_diff(outputs["predictions"], expected[0]) < TOLERANCE
    assert _max_diff(outputs["aux1"], expected[1]) < TOLERANCE
