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
from keras_convnets import imagenet
from keras_convnets import weights as pretrained

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


@functools.lru_cache(maxsize=None)
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
        rtol=0, atol=1e-7,
    )

    legacy = _save_legacy_h5(reference, tmp_path / "resnet50.h5")
    ours = pretrained.from_keras_applications(
        legacy, "resnet50", input_shape=(SIZE, SIZE, 3), classifier_activation=None
    )
    assert _max_diff(ours(x, training=False), expected) < TOLERANCE

    # A Keras 3 `.weights.h5`, loaded into a net with another batch-norm epsilon (folded into the variance).
    reference.save_weights(tmp_path / "resnet50.weights.h5")
    ours = pretrained.from_keras_applications(
        tmp_path / "resnet50.weights.h5", "ResNet-50", input_shape=(SIZE, SIZE, 3), classifier_activation=None,
        bn_epsilon=1e-5,
    )
    assert ours.get_layer("conv1_bn").epsilon == 1e-5
    assert _max_diff(ours(x, training=False), expected) < TOLERANCE


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
    monkeypatch.setattr(pretrained, "KERAS_APPLICATIONS_FILES", table)
    monkeypatch.setenv(pretrained.BASE_URL_ENVIRONMENT_VARIABLE, mirror.as_uri())
    monkeypatch.setattr(
        pretrained, "keras_applications_file",
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
    for name in pretrained.KERAS_APPLICATIONS_MODELS:
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
    with pytest.raises(ValueError, match="truncated or corrupted: its md5 hash is not 4d473c1dd8becc155b73f8504c6f6626"):
        pretrained.keras_applications_file("resnet50", False, base_url=mirror.as_uri(), cache_dir=str(tmp_path))
    # Through `weights="imagenet"` the same check runs, and no model is returned.
    monkeypatch.setenv(pretrained.BASE_URL_ENVIRONMENT_VARIABLE, mirror.as_uri())
    monkeypatch.setattr(
        pretrained, "keras_applications_file",
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
        imagenet.preprocess_input(pixels, mode="caffe")[0, 0, 0], [255 - 103.939, 127.5 - 116.779, 0 - 123.68],
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        imagenet.preprocess_input(pixels, mode="torch")[0, 0, 0],
        [(0 - 0.485) / 0.229, (0.5 - 0.456) / 0.224, (1 - 0.406) / 0.225], rtol=1e-6,
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
    np.testing.assert_allclose(torch_input * std / 0.5 + (mean - 0.5) / 0.5, imagenet.preprocess_input(pixels, mode="tf"), atol=1e-6)
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
