"""Grad-CAM (keras_convnets.explain, `convnets predict --cam`).

The fast tests run on random weights: the map of a global-average-pooling + Dense head equals CAM (Selvaraju et al.
2017, Section 3.1) computed by hand from the logits' kernel, every family gives maps of the right shape and range at
its pinned default layer, and the arguments are checked. The slow test trains a CIFAR ResNet-8 on real
Fashion-MNIST garments placed beside a distractor and measures where the map's mass lies.
"""

from __future__ import annotations

import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import keras_convnets
from keras_convnets import explain
from keras_convnets.data.preprocessing import Preprocessing

SIZE = 32


def random_images(count: int, shape, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-2, 2, (count, *shape)).astype("float32")


@pytest.fixture(scope="module")
def resnet8():
    """A CIFAR ResNet-8 on random weights (5 classes, 32x32) and six images."""
    keras.utils.set_random_seed(0)
    return keras_convnets.CifarResNet(8, input_shape=(SIZE, SIZE, 3), classes=5), random_images(6, (SIZE, SIZE, 3))


def feature_model(model, name):
    return keras.Model(model.inputs[0], model.get_layer(name).output)


def upsampled_and_scaled(maps: np.ndarray, size: int) -> np.ndarray:
    maps = tf.image.resize(maps[..., None], (size, size), method="bilinear").numpy()[..., 0]
    return maps / np.maximum(maps.max(axis=(1, 2), keepdims=True), 1e-30)


# ------------------------------------------------------------------------------------------- the method


def test_a_pooled_dense_head_gives_cam_from_the_logits_kernel(resnet8):
    """With GAP + Dense, d logit_c / d A_k(i, j) = w_kc / Z: Grad-CAM is ReLU(sum_k w_kc A_k), CAM (Section 3.1)."""
    model, images = resnet8
    classes = [0, 1, 2, 3, 4, 0]
    maps = explain.grad_cam(model, images, class_index=classes)
    features = feature_model(model, "conv4_block1_out")(images).numpy()
    kernel = model.get_layer("predictions").kernel.numpy()
    cam = np.maximum(np.einsum("nhwk,kn->nhw", features, kernel[:, classes]), 0)
    np.testing.assert_allclose(maps, upsampled_and_scaled(cam, SIZE), atol=1e-5)  # measured 1.5e-6
    # the softmax's probabilities instead of the logits give another map (differences up to 1.0 measured)
    with tf.GradientTape() as tape:
        a, p = keras.Model(model.inputs[0], [model.get_layer("conv4_block1_out").output, model.output])(images)
        score = tf.reduce_sum(tf.gather(p, tf.constant(classes)[:, None], batch_dims=1))
    g = tape.gradient(score, a).numpy()
    from_probabilities = np.maximum((g.mean(axis=(1, 2), keepdims=True) * a.numpy()).sum(-1), 0)
    assert np.abs(upsampled_and_scaled(from_probabilities, SIZE) - maps).max() > 0.5


def test_class_index_none_int_and_per_image(resnet8):
    model, images = resnet8
    predicted = keras.ops.convert_to_numpy(model(images)).argmax(-1)
    np.testing.assert_array_equal(explain.grad_cam(model, images), explain.grad_cam(model, images, predicted))
    one = explain.grad_cam(model, images, class_index=3)
    np.testing.assert_array_equal(one, explain.grad_cam(model, images, class_index=np.full(6, 3)))
    np.testing.assert_array_equal(one, explain.grad_cam(model, images, class_index=np.int64(3)))
    other = explain.grad_cam(model, images, class_index=1)
    assert np.abs(one - other).max() > 0.1  # another class, another map
    mixed = explain.grad_cam(model, images, class_index=[3, 1, 3, 1, 3, 1])
    np.testing.assert_array_equal(mixed[0::2], one[0::2])
    np.testing.assert_array_equal(mixed[1::2], other[1::2])
    # in chunks of 4 and 2 images: the same maps
    np.testing.assert_allclose(explain.grad_cam(model, images, class_index=3, batch_size=4), one, atol=1e-6)
    assert explain.grad_cam(model, images[:0]).shape == (0, SIZE, SIZE)


@pytest.mark.parametrize(
    "class_index, error, message",
    [
        (5, ValueError, r"`class_index` must be None, a class \(an integer in \[0, 5\)\) .* Received: class_index=5"),
        (-1, ValueError, r"Received: class_index=-1"),
        ([0, 1, 2], ValueError, r"one class per image \(6 images\). Received: class_index with 3 entries"),
        ([0, 1, 2, 3, 4, 5], ValueError, r"Received: class_index=\[0, 1, 2, 3, 4, 5\]"),
        (1.5, TypeError, r"`class_index` must be None, a class .* Received: class_index=1.5"),
        (True, TypeError, r"Received: class_index=True"),
        ("cat", TypeError, r"Received: class_index='cat'"),
        ([[0], [1]], TypeError, r"Received: class_index=\[\[0\], \[1\]\]"),
    ],
)
def test_bad_class_index(resnet8, class_index, error, message):
    model, images = resnet8
    with pytest.raises(error, match=message):
        explain.grad_cam(model, images, class_index=class_index)


def test_layer_argument_and_bad_arguments(resnet8):
    model, images = resnet8
    assert explain.default_layer(model) == "conv4_block1_out"
    default = explain.grad_cam(model, images)
    np.testing.assert_array_equal(explain.grad_cam(model, images, layer="conv4_block1_out"), default)
    np.testing.assert_array_equal(explain.grad_cam(model, images, layer=model.get_layer("conv4_block1_out")), default)
    earlier = explain.grad_cam(model, images, layer="conv3_block1_out")  # a 16x16 map, upsampled to 32x32
    assert earlier.shape == (6, SIZE, SIZE) and np.abs(earlier - default).max() > 0.1
    with pytest.raises(
        ValueError, match=r"`layer` must be the name of a layer of model 'resnet8'. Received: layer='x'"
    ):
        explain.grad_cam(model, images, layer="x")
    with pytest.raises(
        ValueError, match=r"4D feature map .* Received: layer='avg_pool' with output shape \(None, 64\)"
    ):
        explain.grad_cam(model, images, layer="avg_pool")
    stranger = keras.layers.Dense(3, name="stranger")
    with pytest.raises(ValueError, match=r"`layer` must be a layer of model 'resnet8'. Received: layer='stranger'"):
        explain.grad_cam(model, images, layer=stranger)
    with pytest.raises(TypeError, match=r"`layer` must be None, a layer name or a keras layer. Received: layer=3"):
        explain.grad_cam(model, images, layer=3)
    with pytest.raises(ValueError, match=r"`images` must be a batch \(N, 32, 32, 3\) .* shape \(32, 32, 3\)"):
        explain.grad_cam(model, images[0])
    with pytest.raises(ValueError, match=r"shape \(2, 16, 16, 3\)"):
        explain.grad_cam(model, images[:2, :16, :16])
    with pytest.raises(TypeError, match=r"`images` must be an array of numbers"):
        explain.grad_cam(model, [["a"]])
    with pytest.raises(ValueError, match=r"`batch_size` must be at least 1. Received: batch_size=0"):
        explain.grad_cam(model, images, batch_size=0)
    with pytest.raises(TypeError, match=r"`model` must be a keras.Model. Received: model='resnet8'"):
        explain.grad_cam("resnet8", images)
    features = keras_convnets.CifarResNet(8, include_top=False, input_shape=(SIZE, SIZE, 3))
    with pytest.raises(ValueError, match=r"classifier with output \(batch, classes\).* \(None, 8, 8, 64\)"):
        explain.grad_cam(features, images)


def test_grad_cam_needs_the_tensorflow_backend(resnet8, monkeypatch):
    model, images = resnet8
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(ValueError, match=r"^`grad_cam` needs the TensorFlow backend .* Received: backend='jax'$"):
        explain.grad_cam(model, images)


def test_mixed_precision_maps_match_float32(resnet8):
    model, images = resnet8
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        mixed = keras_convnets.CifarResNet(8, input_shape=(SIZE, SIZE, 3), classes=5)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    mixed.set_weights(model.get_weights())
    assert mixed.get_layer("conv4_block1_out").compute_dtype == "bfloat16"
    maps, reference = explain.grad_cam(mixed, images), explain.grad_cam(model, images)
    assert maps.dtype == np.float32 and 0 <= maps.min() and maps.max() == 1
    # measured: largest difference 0.052, mean 0.0015, correlation per image at least 0.999
    assert np.abs(maps - reference).max() < 0.15 and np.abs(maps - reference).mean() < 0.005
    assert min(np.corrcoef(m.ravel(), r.ravel())[0, 1] for m, r in zip(maps, reference)) > 0.99


def test_a_wrapped_model_is_explained_through_its_classifier(resnet8, tmp_path):
    """The `model.keras` of an export: raw pixels -> Normalization -> the network (a nested model), saved and
    loaded; its maps of raw pixels are the network's maps of the normalised images."""
    model, images = resnet8
    preprocessing = Preprocessing.mean_rgb([100.0, 110.0, 120.0], 50.0)
    inputs = keras.Input((SIZE, SIZE, 3), name="images")
    wrapper = keras.Model(inputs, model(preprocessing.layer()(inputs)), name="wrapper")
    wrapper.save(tmp_path / "wrapper.keras")
    loaded = keras.saving.load_model(tmp_path / "wrapper.keras", compile=False, safe_mode=True)
    raw = images * 50 + np.array([100.0, 110.0, 120.0], "float32")
    assert explain.default_layer(loaded) == "conv4_block1_out"
    np.testing.assert_allclose(
        explain.grad_cam(loaded, raw), explain.grad_cam(model, images), atol=1e-4
    )  # measured 4.4e-6


# ------------------------------------------------------------------------------------------ every family

# (registered name, builder options, default layer, its grid): small inputs, random weights
FAMILIES = [
    pytest.param("resnet20", {"input_shape": (32, 32, 3)}, "conv4_block3_out", 8, id="resnet20"),
    pytest.param("plainnet20", {"input_shape": (32, 32, 3)}, "conv4_block3_out", 8, id="plainnet20"),
    pytest.param("resnet18", {"input_shape": (64, 64, 3)}, "conv5_block2_out", 2, id="resnet18"),
    pytest.param(
        "plainnet18", {"input_shape": (64, 64, 3)}, "conv5_block2_out", 2, id="plainnet18", marks=pytest.mark.slow
    ),
    pytest.param(
        "resnet50", {"input_shape": (64, 64, 3)}, "conv5_block3_out", 2, id="resnet50", marks=pytest.mark.slow
    ),
    pytest.param("vgg11", {"input_shape": (64, 64, 3), "fc_units": 32}, "block5_conv2", 4, id="vgg11"),
    pytest.param(
        "vgg11", {"input_shape": (64, 64, 3), "fc_units": 32, "batch_norm": True}, "block5_conv2_relu", 4, id="vgg11_bn"
    ),
    pytest.param(
        "googlenet", {"input_shape": (64, 64, 3), "aux_logits": False}, "inception5b_concat", 2, id="googlenet"
    ),
    pytest.param(
        "googlenet", {"input_shape": (79, 79, 3)}, "inception5b_concat", 2, id="googlenet_aux", marks=pytest.mark.slow
    ),
    pytest.param(
        "inception_v3",
        {"input_shape": (107, 107, 3), "aux_logits": False},
        "mixed7c_concat",
        2,
        id="inception_v3",
        marks=pytest.mark.slow,
    ),
    pytest.param(
        "inception_v3",
        {"input_shape": (299, 299, 3)},
        "mixed7c_concat",
        8,
        id="inception_v3_aux",
        marks=pytest.mark.slow,
    ),
]


@pytest.mark.parametrize("name, options, layer, grid", FAMILIES)
def test_every_family(name, options, layer, grid):
    keras.utils.set_random_seed(0)
    model = keras_convnets.get_model(name, classes=7, **options)
    shape = options["input_shape"]
    images = random_images(2, shape, seed=1)
    assert explain.default_layer(model) == layer
    assert tuple(model.get_layer(layer).output.shape[1:3]) == (grid, grid)
    maps = explain.grad_cam(model, images)
    assert maps.shape == (2, shape[0], shape[1]) and maps.dtype == np.float32
    assert np.all(np.isfinite(maps)) and maps.min() >= 0
    peaks = maps.max(axis=(1, 2))
    assert np.all((peaks == 1) | (peaks == 0)) and peaks.max() == 1
    if isinstance(model.output, dict):  # the main head: the same maps as the inference model's
        np.testing.assert_array_equal(maps, explain.grad_cam(keras_convnets.strip_aux(model), images))


# --------------------------------------------------------------------------------------------- overlay


def test_overlay_blends_and_writes_a_png(tmp_path):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (40, 60, 3)).astype("uint8")
    heatmap = rng.uniform(0, 1, (8, 12)).astype("float32")
    path = tmp_path / "cam.png"
    blended = explain.overlay(image, heatmap, path, alpha=0.4, colormap="turbo")
    assert blended.shape == (40, 60, 3) and blended.dtype == np.uint8
    with Image.open(path) as written:
        assert (written.format, written.mode, written.size) == ("PNG", "RGB", (60, 40))
        np.testing.assert_array_equal(np.asarray(written), blended)
    assert sorted(os.listdir(tmp_path)) == ["cam.png"]  # no temporary file left
    # alpha 0: the image; alpha 1: the colormap of the map resized to the image (jet's top, (0.5, 0, 0), at 1.0)
    np.testing.assert_array_equal(explain.overlay(image, heatmap, alpha=0), image)
    np.testing.assert_array_equal(explain.overlay(image, np.ones((4, 4)), alpha=1), np.full((40, 60, 3), [128, 0, 0]))
    gray = explain.overlay(image[..., 0], heatmap, alpha=0)
    np.testing.assert_array_equal(gray, np.repeat(image[..., :1], 3, -1))
    rgba = np.concatenate([image, np.zeros((40, 60, 1), "uint8")], -1)
    np.testing.assert_array_equal(explain.overlay(rgba, heatmap), explain.overlay(image, heatmap))


def test_overlay_bad_arguments(tmp_path):
    image, heatmap = np.zeros((8, 8, 3), "uint8"), np.zeros((8, 8))
    with pytest.raises(ValueError, match=r"`alpha` must be a number in \[0, 1\]. Received: alpha=1.5"):
        explain.overlay(image, heatmap, alpha=1.5)
    with pytest.raises(ValueError, match=r"`colormap` must be the name of a matplotlib colormap .* colormap='nope'"):
        explain.overlay(image, heatmap, colormap="nope")
    with pytest.raises(ValueError, match=r"`heatmap` must be one map .* values in \[0, 2\]"):
        explain.overlay(image, heatmap + 2 * np.eye(8))
    with pytest.raises(ValueError, match=r"`heatmap` must be one map .* shape \(1, 8, 8\)"):
        explain.overlay(image, heatmap[None])
    with pytest.raises(ValueError, match=r"`image` must be raw pixels .* shape \(8, 8, 2\)"):
        explain.overlay(np.zeros((8, 8, 2)), heatmap)
    with pytest.raises(ValueError, match=r"`path` must be a `.png` file name. Received: path='.*cam.jpg'"):
        explain.overlay(image, heatmap, tmp_path / "cam.jpg")
    with pytest.raises(FileNotFoundError, match=r"The directory of `path` does not exist"):
        explain.overlay(image, heatmap, tmp_path / "missing" / "cam.png")
    assert os.listdir(tmp_path) == []


def test_cam_paths(tmp_path):
    out = str(tmp_path / "cam.png")
    assert explain.cam_paths(out, ["x/a.jpg"]) == [out]
    stem = str(tmp_path / "cam")
    assert explain.cam_paths(out, ["x/a.jpg", "b.png"]) == [f"{stem}_a.png", f"{stem}_b.png"]
    assert explain.cam_paths(out, ["x/a.jpg", "y/a.png", "a"]) == [
        f"{stem}_a.png",
        f"{stem}_a_2.png",
        f"{stem}_a_3.png",
    ]
    with pytest.raises(ValueError, match=r"`--cam` must be a `.png` file name. Received: --cam='cam.jpg'"):
        explain.cam_paths("cam.jpg", ["a.jpg"])
    with pytest.raises(FileNotFoundError, match=r"The directory of `--cam` does not exist"):
        explain.cam_paths(str(tmp_path / "no" / "cam.png"), ["a.jpg"])
    with pytest.raises(ValueError, match=r"`--cam` would overwrite the image"):
        explain.cam_paths(str(tmp_path / "a.png"), [str(tmp_path / "a.png")])
    (tmp_path / "cam_b.png").write_bytes(b"mine")  # an existing file at a derived name: refused, left as it is
    with pytest.raises(FileExistsError, match=r"would replace the existing file '.*cam_b.png': remove it or choose"):
        explain.cam_paths(out, ["x/a.jpg", "b.png"])
    assert (tmp_path / "cam_b.png").read_bytes() == b"mine"
    explain.cam_paths(out, ["x/a.jpg", "c.png"])  # other names are free


def test_top_classes_rank_as_the_predictor_prints():
    from keras_convnets.explain.cam_files import top_classes

    probabilities = np.array([[0.1, 0.2, 0.7], [0.5, 0.5, 0.0], [0.2, 0.3, 0.5]], "float32")
    np.testing.assert_array_equal(top_classes(probabilities), [2, 0, 2])  # a tie: the first, as top_k ranks it


class _NoPredicting:
    """A stand-in for `export.Predictor` whose export has no model.keras; predicting fails the test."""

    notes: list = []

    def __init__(self, path):
        self.path = str(path)

    def __call__(self, images):
        raise AssertionError("predicted before the --cam checks")

    def load_files(self, paths):
        raise AssertionError("read the images before the --cam checks")


def test_cli_predict_cam_checks_before_predicting(tmp_path, monkeypatch, capsys):
    from keras_convnets import export
    from keras_convnets.cli.main import main

    monkeypatch.setattr(export, "Predictor", _NoPredicting)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "model_card.json").write_text("{}")
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), "uint8")).save(image)

    def error(*cam: str) -> str:
        assert main(["predict", str(bundle), str(image), "--cam", *cam]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and len(captured.err.splitlines()) == 1  # nothing printed, one line
        return captured.err

    assert "`--cam` must be a `.png` file name. Received: --cam=" in error(str(tmp_path / "x.jpg"))
    (tmp_path / "old.png").write_bytes(b"mine")
    message = error(str(tmp_path / "old.png"))
    assert f"would replace the existing file '{tmp_path / 'old.png'}'" in message
    assert (tmp_path / "old.png").read_bytes() == b"mine"
    assert "`--cam` needs the Keras model of an export (model.keras" in error(str(tmp_path / "new.png"))
    assert sorted(os.listdir(tmp_path)) == ["a.png", "bundle", "old.png"]


def test_export_keras_model_finds_the_bundles_model(tmp_path):
    bundle = tmp_path / "bundle"
    (bundle / "saved_model").mkdir(parents=True)
    (bundle / "saved_model" / "saved_model.pb").write_bytes(b"")
    (bundle / "model_float32.tflite").write_bytes(b"")
    with pytest.raises(ValueError, match=r"`--cam` needs the Keras model of an export .* none in '.*bundle'"):
        explain.export_keras_model(bundle)
    (bundle / "model.keras").write_bytes(b"")
    with pytest.raises(ValueError, match=r"model.keras beside model_card.json"):  # a run's model.keras: not raw pixels
        explain.export_keras_model(bundle)
    (bundle / "model_card.json").write_text("{}")
    expected = str(bundle / "model.keras")
    for given in (bundle, bundle / "saved_model", bundle / "model_float32.tflite"):
        assert explain.export_keras_model(given) == expected


# ------------------------------------------------------------------------------------- convnets predict --cam


@pytest.fixture(scope="module")
def cam_bundle(tmp_path_factory):
    """An export (saved_model/, model.keras, model_card.json) of a random CIFAR ResNet-8 with its preprocessing, a
    copy without model.keras, and two 40x48 PNG images."""
    from keras_convnets import export

    root = tmp_path_factory.mktemp("cam")
    run = root / "run"
    run.mkdir()
    keras.utils.set_random_seed(0)
    keras_convnets.CifarResNet(8, input_shape=(SIZE, SIZE, 3), classes=3).save(run / "model.keras")
    Preprocessing.mean_rgb([110.0, 110.0, 110.0], 60.0).save(run / "preprocessing.json")
    (run / "labels.txt").write_text("red\ngreen\nblue\n")
    bundle = root / "bundle"
    export.export_bundle(run, bundle, formats=("saved_model", "keras"))
    without = root / "without_keras"
    shutil.copytree(bundle, without, ignore=shutil.ignore_patterns("model.keras"))
    rng = np.random.default_rng(5)
    images = []
    for name in ("a", "b"):
        images.append(root / f"{name}.png")
        Image.fromarray(rng.integers(0, 256, (40, 48, 3)).astype("uint8")).save(images[-1])
    return bundle, without, images


@pytest.mark.slow
def test_cli_predict_cam_writes_the_overlays(cam_bundle, tmp_path, capsys):
    from keras_convnets import export
    from keras_convnets.cli.main import main
    from keras_convnets.data.serving import read_image

    bundle, without, images = cam_bundle
    out = tmp_path / "cam.png"
    assert main(["predict", str(bundle), *map(str, images), "--top-k", "1", "--cam", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    written = [tmp_path / "cam_a.png", tmp_path / "cam_b.png"]
    assert sorted(os.listdir(tmp_path)) == ["cam_a.png", "cam_b.png"]
    for line, image, path in zip(lines[-2:], images, written):
        assert line.startswith(f"Grad-CAM of {image} (class ") and line.endswith(f", layer conv4_block1_out): {path}")
    # what the API gives for the same files: the export's Keras model on the images as the Predictor reads them,
    # laid over the decoded images at their own size (the export records a whole-image resize)
    predictor = export.Predictor(bundle)
    network = keras.saving.load_model(bundle / "model.keras", compile=False, safe_mode=True)
    batch = predictor.load_files(images)
    maps = explain.grad_cam(network, batch, class_index=np.argmax(predictor(batch), axis=-1))
    for image, heatmap, path in zip(images, maps, written):
        with Image.open(path) as png:
            assert (png.format, png.size) == ("PNG", (48, 40))
            np.testing.assert_array_equal(np.asarray(png), explain.overlay(read_image(image).numpy(), heatmap))
    # one image: the given name
    assert main(["predict", str(bundle), str(images[0]), "--cam", str(written[0])]) == 2  # never replaced
    assert "would replace the existing file" in capsys.readouterr().err
    assert main(["predict", str(bundle / "saved_model"), str(images[0]), "--cam", str(tmp_path / "one.png")]) == 0
    with Image.open(tmp_path / "one.png") as png, Image.open(written[0]) as first:
        np.testing.assert_array_equal(np.asarray(png), np.asarray(first))
    capsys.readouterr()
    assert main(["predict", str(without), str(images[0]), "--cam", str(tmp_path / "x.png")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("convnets predict: error: `--cam` needs the Keras model of an export") and "\n" == error[-1]
    assert len(error.splitlines()) == 1 and not (tmp_path / "x.png").exists()
    assert main(["predict", str(bundle), str(images[0]), "--cam", str(tmp_path / "x.jpg")]) == 2
    assert "`--cam` must be a `.png` file name" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------- real data


def garment_scenes(images: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """32x32 scenes of real garments: each Fashion-MNIST image (28x28) shrunk to 16x16 in one half (left or right,
    at random) at a random height, and in the other half a distractor: another garment's 16x16 pixels shuffled
    (the same brightness, no shape). Returns the scenes (N, 32, 32, 3) with raw pixels, the garment's square, the
    distractor's square and the garment's object pixels (inside its square, pixel > 0), each (N, 32, 32) bool."""
    rng = np.random.default_rng(seed)
    count = len(images)
    garments = np.round(tf.image.resize(images[..., :1].astype("float32"), (16, 16), antialias=True).numpy()[..., 0])
    others = garments[rng.permutation(count)].reshape(count, -1)
    shuffled = np.take_along_axis(others, rng.random(others.shape).argsort(axis=1), axis=1).reshape(count, 16, 16)
    scenes = np.zeros((count, SIZE, SIZE), "float32")
    garment_box, distractor_box = np.zeros((2, count, SIZE, SIZE), bool)
    sides, rows = rng.integers(0, 2, count), rng.integers(0, SIZE - 16 + 1, (count, 2))
    for i in range(count):
        left, other = 16 * sides[i], 16 - 16 * sides[i]
        scenes[i, rows[i, 0] : rows[i, 0] + 16, left : left + 16] = garments[i]
        garment_box[i, rows[i, 0] : rows[i, 0] + 16, left : left + 16] = True
        scenes[i, rows[i, 1] : rows[i, 1] + 16, other : other + 16] = shuffled[i]
        distractor_box[i, rows[i, 1] : rows[i, 1] + 16, other : other + 16] = True
    return np.repeat(scenes[..., None], 3, axis=-1), garment_box, distractor_box, garment_box & (scenes > 0)


def mass_shares(maps: np.ndarray, *regions: np.ndarray) -> list[np.ndarray]:
    """The fraction of each map's mass inside each region, per image."""
    total = maps.sum(axis=(1, 2))
    return [(maps * region).sum(axis=(1, 2)) / total for region in regions]


@pytest.mark.slow
def test_on_real_garments_the_map_lies_on_the_garment(tmp_path, monkeypatch):
    """A CIFAR ResNet-8 trained briefly on 4,000 real Fashion-MNIST garments, each beside a distractor of the same
    brightness: over 100 held-out scenes, the map's mass lies on the garment and its object pixels, not on the
    distractor. An untrained net's map (same architecture and images) splits between the two: the measure tells
    a trained net's localisation from an activation map's."""
    from keras_convnets import data
    from keras_convnets.data import idx, keras_datasets

    if not idx.is_idx_dir(keras_datasets.DEBIAN_FASHION_MNIST):
        if os.environ.get("CI"):
            pytest.fail("CI must install dataset-fashion-mnist (.ci/run)")
        pytest.skip("dataset-fashion-mnist is not installed: apt-get install -y dataset-fashion-mnist")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))  # the Debian files
    fashion = data.load_dataset("fashion_mnist", data_dir=str(tmp_path / "tfds"))
    train_images, train_labels = fashion.train_arrays
    pick = np.random.default_rng(0).permutation(len(train_images))[:4000]
    scenes, *_ = garment_scenes(train_images[pick], seed=1)
    test_images, test_labels = next(iter(fashion.test.take(500).batch(500).as_numpy_iterator()))
    test_scenes, garment, distractor, objects = garment_scenes(test_images, seed=2)

    keras.utils.set_random_seed(0)
    untrained = keras_convnets.CifarResNet(8, input_shape=(SIZE, SIZE, 3), classes=10)
    keras.utils.set_random_seed(0)
    model = keras_convnets.CifarResNet(8, input_shape=(SIZE, SIZE, 3), classes=10)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    model.fit(scenes / 255, train_labels[pick], epochs=3, batch_size=64, verbose=0)
    accuracy = np.mean(model.predict(test_scenes / 255, verbose=0).argmax(-1) == test_labels)
    assert accuracy > 0.6  # measured 0.71 (chance 0.1)

    held_out = test_scenes[:100] / 255
    on_garment, on_distractor, on_objects = mass_shares(
        explain.grad_cam(model, held_out), *(region[:100] for region in (garment, distractor, objects))
    )
    area = objects[:100].mean(axis=(1, 2))
    # measured (4,000 scenes, 3 epochs): 0.72 of the mass on the garment's square (a quarter of the scene), 0.07 on
    # the distractor's, 0.90 of the two, more on the garment in 99 scenes of 100; 0.53 on the object pixels, which
    # cover 0.16 of the scene
    assert on_garment.mean() > 0.55 and on_distractor.mean() < 0.2
    assert np.mean(on_garment / (on_garment + on_distractor)) > 0.8 and np.mean(on_garment > on_distractor) > 0.9
    assert on_objects.mean() > area.mean() + 0.2
    # the untrained net: 0.34 and 0.33 (0.51 of the two), 0.53 of the scenes with more on the garment
    garment_0, distractor_0 = mass_shares(explain.grad_cam(untrained, held_out), garment[:100], distractor[:100])
    assert 0.35 < np.mean(garment_0 / (garment_0 + distractor_0)) < 0.65


def test_cli_predict_cam_maps_the_printed_class(cam_bundle, tmp_path, monkeypatch, capsys):
    """The map is of the class the command prints (the SavedModel's or .tflite file's top-1, e.g. an int8 model's),
    not of the Keras model's own top class: here the predictor is made to disagree with it on every image."""
    from keras_convnets import export
    from keras_convnets.cli.main import main
    from keras_convnets.data.serving import read_image

    bundle, _, images = cam_bundle
    network = keras.saving.load_model(bundle / "model.keras", compile=False, safe_mode=True)
    batch = export.Predictor(bundle).load_files(images)
    own = np.argmax(keras.ops.convert_to_numpy(network(batch, training=False)), axis=-1)
    printed = (own + 1) % 3
    probabilities = np.full((len(images), 3), 0.1, "float32")
    probabilities[np.arange(len(images)), printed] = 0.8
    monkeypatch.setattr(export.Predictor, "__call__", lambda self, images: probabilities)
    out = tmp_path / "cam.png"
    assert main(["predict", str(bundle), *map(str, images), "--top-k", "1", "--cam", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = ["red", "green", "blue"]
    for image, index in zip(images, printed):
        assert lines[lines.index(str(image)) + 1] == f"  1. {names[index]}  0.8000"
    maps = explain.grad_cam(network, batch, class_index=printed)
    assert np.max(np.abs(maps - explain.grad_cam(network, batch, class_index=own))) > 0.05  # the class matters
    for line, image, heatmap, index in zip(lines[-2:], images, maps, printed):
        path = tmp_path / f"cam_{image.stem}.png"
        assert line.startswith(f"Grad-CAM of {image} (class {names[index]}, layer ")
        with Image.open(path) as png:
            np.testing.assert_array_equal(np.asarray(png), explain.overlay(read_image(image).numpy(), heatmap))
