"""Serving what was evaluated (keras_convnets.data.serving): `convnets predict` and int8 calibration decode files as
training decodes them and apply the evaluation transform the model card records; run.json records `data_dir`, which
`--resume` and `convnets export` read back.

Measured here: the exported SavedModel's (and float32 TFLite's) probabilities on a file differ from the Keras model's
on the evaluation pipeline's view of that file by at most 3e-7 (the same pixels go in); resizing the whole image
instead of taking the centre crop moves them by 0.19 to 0.34, a nearest-neighbour resize of Fashion-MNIST by 0.12.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_convnets import data, export
from keras_convnets.cli.main import main
from keras_convnets.data import serving
from keras_convnets.data.preprocessing import Preprocessing

pytestmark = pytest.mark.xdist_group("export")

SIZE = 56  # "scale" evaluates at shorter side round(56 * 256 / 224) = 64, centre 56x56
CLASSES = ("a", "b", "c", "d")


def write_png(path, image):
    tf.io.write_file(str(path), tf.io.encode_png(np.asarray(image)))


def framed_image(height: int, width: int, *, seed: int) -> np.ndarray:
    """A noisy uint8 RGB image with a red frame around a blue-green centre: the centre crops of "scale" and
    "inception" cut most of the frame away, a whole-image resize keeps it."""
    rng = np.random.default_rng(seed)
    image = rng.normal((40, 150, 170), 25, (height, width, 3))
    border = slice(0, height // 6), slice(None)
    image[border] = image[height - height // 6 :] = rng.normal((220, 30, 30), 25, (height // 6, width, 3))
    image[:, : width // 6] = image[:, width - width // 6 :] = rng.normal((220, 30, 30), 25, (height, width // 6, 3))
    return np.clip(np.round(image), 0, 255).astype("uint8")


def image_folder(root, images: dict[str, np.ndarray]) -> data.ImageData:
    """An image folder whose test split is `images` ({"class/name.ext": pixels}, written as JPEG or PNG by their
    extension) and whose train split holds one PNG per class."""
    for relative, image in images.items():
        path = root / "test" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        encoded = tf.io.encode_jpeg(image, quality=90) if relative.endswith(".jpg") else tf.io.encode_png(image)
        tf.io.write_file(str(path), encoded)
    for i, name in enumerate(CLASSES):
        (root / "train" / name).mkdir(parents=True, exist_ok=True)
        write_png(root / "train" / name / "0.png", framed_image(40, 48, seed=100 + i))
    return data.load_image_folder(root)


def pipeline_images(
    dataset: data.ImageData, augmentation: str, size: int, preprocessing=None, *, split: str = "test"
) -> np.ndarray:
    ds = data.eval_pipeline(
        dataset, batch_size=16, image_size=size, augmentation=augmentation, preprocessing=preprocessing, split=split
    )
    return np.concatenate([x for x, _ in ds.as_numpy_iterator()])


def tiny_model(size: int, classes: int, *, seed: int = 0) -> keras.Model:
    """A small convnet whose outputs move with the colours it sees (large random dense weights)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    initializer = keras.initializers.RandomNormal(stddev=2.0)
    outputs = keras.layers.Dense(classes, activation="softmax", kernel_initializer=initializer, name="predictions")(x)
    return keras.Model(inputs, outputs, name="tiny")


def write_run(root, model, preprocessing, *, labels, info) -> None:
    """A run directory as `convnets train` leaves it."""
    root.mkdir(parents=True)
    model.save(root / "model.keras")
    preprocessing.save(root / "preprocessing.json")
    (root / "labels.txt").write_text("".join(f"{label}\n" for label in labels))
    (root / "metrics.json").write_text(json.dumps({"model": model.name, "dataset": info.get("dataset")}))
    (root / "run.json").write_text(json.dumps(info))


# ---------------------------------------------------------------------------------- the evaluation transform


@pytest.mark.parametrize("augmentation", ["crop_flip", "none", "scale", "inception"])
def test_evaluation_transform_of_files_is_the_evaluation_pipelines(tmp_path, augmentation):
    images = {
        "a/landscape.jpg": framed_image(375, 500, seed=1),  # a 500x375 JPEG, as a photo
        "b/portrait.png": framed_image(500, 375, seed=2),
        "c/small.png": framed_image(30, 41, seed=3),  # smaller than the model's input: upsampled
        "d/square.png": framed_image(SIZE, SIZE, seed=4),  # already at the size
    }
    dataset = image_folder(tmp_path / "folder", images)
    expected = pipeline_images(dataset, augmentation, SIZE)
    paths = list(dataset.test_files[0])
    assert [os.path.relpath(p, tmp_path / "folder" / "test") for p in paths] == list(images)
    served = np.stack([export.load_image(p, (SIZE, SIZE, 3), augmentation=augmentation) for p in paths])
    assert served.shape == (4, SIZE, SIZE, 3) and served.dtype == np.float32
    np.testing.assert_array_equal(served, expected)  # the same pixels, bit for bit
    # a decoded array through evaluation_transform: the same transform (the pipeline's fused JPEG decode of "scale"
    # crops before resizing, equal up to float rounding: one level at most)
    arrays = np.stack(
        [serving.evaluation_transform(serving.read_image(p), augmentation=augmentation, size=SIZE) for p in paths]
    )
    assert np.abs(arrays.astype("float32") - expected).max() <= (1 if augmentation == "scale" else 0)
    whole = np.stack([export.load_image(p, (SIZE, SIZE, 3)) for p in paths])
    differs = np.abs(whole[:3] - expected[:3]).max(axis=(1, 2, 3))
    if augmentation in ("scale", "inception"):  # the centre crop is not the whole image resized
        assert differs.min() > 30
    else:
        assert differs.max() == 0


def test_evaluation_card_and_bad_arguments():
    assert serving.evaluation_card("scale", 224) == {
        "augmentation": "scale",
        "transform": "shorter side resized to 256, central 224x224 crop (He et al. 2016, Section 3.4), "
        "bilinear with antialiasing, rounded to uint8",
        "size": [224, 224],
        "antialias": True,
        "decoding": serving.DECODING,
    }
    inception = serving.evaluation_card("inception", 299)
    assert inception["antialias"] is False
    assert inception["transform"] == (
        "central 87.5% of the image resized to 299x299, bilinear without antialiasing (as TF-slim's "
        "inception_preprocessing), rounded to uint8"
    )
    assert serving.evaluation_card(None, (32, 48))["transform"].startswith("whole image resized to 32x48")
    image = np.zeros((10, 12, 3), "uint8")
    with pytest.raises(ValueError, match=r"`augmentation` must be one of 'crop_flip', .* or None. Received: "):
        serving.evaluation_transform(image, augmentation="random", size=8)
    with pytest.raises(ValueError, match=r"`size` must be square for the 'scale' .*Received: size=\(8, 6\)"):
        serving.evaluation_transform(image, augmentation="scale", size=(8, 6))
    with pytest.raises(ValueError, match=r"`size` must be a positive int or \(height, width\). Received: size=0"):
        serving.evaluation_transform(image, augmentation=None, size=0)
    with pytest.raises(TypeError, match="uint8 or float raw pixels. Received: dtype int32"):
        serving.evaluation_transform(image.astype("int32"), augmentation=None, size=8)
    with pytest.raises(ValueError, match=r"1 to 4 channels. Received: an image of shape \(10, 12, 5\)"):
        serving.as_rgb(np.zeros((10, 12, 5), "uint8"))
    with pytest.raises(ValueError, match=r"`size` must have 3 channels.*Received: size=\(8, 8, 1\)"):
        export.load_image("any.png", (8, 8, 1))
    # a float image and a (H, W) grayscale array go through as uint8 RGB
    gray = np.arange(120, dtype="float32").reshape(10, 12)
    out = serving.evaluation_transform(gray, augmentation="none", size=(10, 12)).numpy()
    assert out.dtype == np.uint8 and out.shape == (10, 12, 3)
    np.testing.assert_array_equal(out, np.repeat(gray.astype("uint8")[..., None], 3, -1))


def test_grayscale_rgba_palette_and_16_bit_files_are_converted_as_training_converts_them(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(5)
    rgba = rng.integers(0, 256, (SIZE, SIZE, 4), dtype=np.uint8)
    gray16 = rng.integers(0, 65536, (SIZE, SIZE, 1), dtype=np.uint16)
    palette = Image.fromarray(rgba[..., :3]).convert("P", palette=Image.ADAPTIVE, colors=16)
    folder = tmp_path / "folder"
    files = {  # the file -> its RGB form as training sees it
        "a/gray.png": (rgba[..., :1], np.repeat(rgba[..., :1], 3, -1)),
        "b/gray_alpha.png": (rgba[..., :2], np.repeat(rgba[..., :1], 3, -1)),  # LA: the alpha is dropped
        "c/rgba.png": (rgba, rgba[..., :3]),  # RGBA: the alpha is dropped, not composited
        "d/gray16.png": (gray16, np.repeat((gray16 >> 8).astype("uint8"), 3, -1)),  # 16-bit: the high byte
    }
    for relative, (pixels, _) in files.items():
        (folder / "test" / relative).parent.mkdir(parents=True, exist_ok=True)
        write_png(folder / "test" / relative, pixels)
    palette.save(folder / "test" / "a" / "palette.png")  # P: its colours
    files["a/palette.png"] = (None, np.asarray(palette.convert("RGB")))
    assert Image.open(folder / "test" / "a" / "palette.png").mode == "P"
    assert Image.open(folder / "test" / "d" / "gray16.png").mode == "I;16"
    for name in CLASSES:
        (folder / "train" / name).mkdir(parents=True)
        write_png(folder / "train" / name / "0.png", rgba[..., :3])
    dataset = data.load_image_folder(folder)
    training_view = dict(zip(dataset.test_files[0], pipeline_images(dataset, "none", SIZE)))
    resized_view = dict(zip(dataset.test_files[0], pipeline_images(dataset, "crop_flip", 24)))
    for relative, (_, rgb) in files.items():
        path = str(folder / "test" / relative)
        served = export.load_image(path, (SIZE, SIZE, 3), augmentation="none")
        np.testing.assert_array_equal(served, rgb.astype("float32"), err_msg=relative)
        np.testing.assert_array_equal(served, training_view[path], err_msg=relative)
        # at another size the resize follows: still the pipeline's pixels
        resized = export.load_image(path, (24, 24, 3), augmentation="crop_flip")
        np.testing.assert_array_equal(resized, resized_view[path], err_msg=relative)


# --------------------------------------------------------------------------------- predict on exported runs


@pytest.fixture(scope="module")
def centre_runs(tmp_path_factory):
    """An image folder of 500x375 JPEGs and, for "scale" and "inception", a run directory of a small convnet whose
    run.json names that recipe and the folder, and its export (SavedModel and float32 TFLite)."""
    root = tmp_path_factory.mktemp("centre")
    images = {f"{c}/{i}.jpg": framed_image(375, 500, seed=10 * i + k) for k, c in enumerate(CLASSES) for i in (1, 2)}
    dataset = image_folder(root / "folder", images)
    preprocessing = Preprocessing.mean_rgb([130.0, 110.0, 110.0], 60.0)
    runs = {}
    for augmentation in ("scale", "inception"):
        model = tiny_model(SIZE, len(CLASSES))
        info = {
            "model": "tiny",
            "dataset": "folder",
            "dataset_source": str(root / "folder"),
            "image_size": SIZE,
            "recipe": {"name": "imagenet", "augmentation": augmentation},
        }
        write_run(root / f"run_{augmentation}", model, preprocessing, labels=CLASSES, info=info)
        out = root / f"export_{augmentation}"
        card = export.export_bundle(root / f"run_{augmentation}", out, formats=("saved_model", "tflite"))
        runs[augmentation] = model, out, card
    return dataset, preprocessing, runs


@pytest.mark.parametrize("augmentation", ["scale", "inception"])
def test_predict_on_a_jpeg_gives_the_evaluation_pipelines_probabilities(centre_runs, augmentation, capsys):
    dataset, preprocessing, runs = centre_runs
    model, out, card = runs[augmentation]
    assert card["evaluation"] == serving.evaluation_card(augmentation, SIZE)
    assert json.loads((out / "model_card.json").read_text())["evaluation"]["augmentation"] == augmentation
    assert card["parity_images"] == {"source": "test split of folder", "count": 8}  # the run's own test images
    expected = model.predict(pipeline_images(dataset, augmentation, SIZE, preprocessing), verbose=0)
    paths = list(dataset.test_files[0])
    for target in (out, out / "model_float32.tflite"):
        predictor = export.Predictor(target)
        assert predictor.augmentation == augmentation and predictor.notes == []
        probabilities = predictor(predictor.load_files(paths))
        np.testing.assert_allclose(probabilities, expected, atol=1e-5)  # measured: 1.2e-7 SavedModel, 3.0e-7 TFLite
    # resizing the whole image (what predict did) is not what evaluation fed the model
    whole = export.Predictor(out)(np.stack([export.load_image(p, (SIZE, SIZE, 3)) for p in paths]))
    assert np.abs(whole - expected).max() > 1e-2  # measured: 0.34 (scale), 0.19 (inception)
    # the command line prints the same top-2, to 4 decimals
    assert main(["predict", str(out), *paths[:2], "--top-k", "2"]) == 0
    captured = capsys.readouterr()
    assert "note:" not in captured.err
    lines = captured.out.splitlines()
    for k, path in enumerate(paths[:2]):
        order = np.argsort(-expected[k], kind="stable")[:2]
        assert lines[3 * k] == path
        for rank, i in enumerate(order, 1):
            assert lines[3 * k + rank].split() == [f"{rank}.", CLASSES[i], f"{expected[k, i]:.4f}"]


def test_an_export_without_the_evaluation_entry_resizes_whole_images_with_a_note(centre_runs, tmp_path, capsys):
    dataset, _, runs = centre_runs
    _, out, _ = runs["scale"]
    old = tmp_path / "old_export"
    os.mkdir(old)
    card = json.loads((out / "model_card.json").read_text())
    del card["evaluation"]  # a card written before the entry existed
    (old / "model_card.json").write_text(json.dumps(card))
    (old / "labels.txt").write_text((out / "labels.txt").read_text())
    os.symlink(out / "saved_model", old / "saved_model")
    predictor = export.Predictor(old)
    assert predictor.augmentation is None
    (note,) = predictor.notes
    assert "records no evaluation transform" in note and "resized whole to 56x56" in note
    paths = list(dataset.test_files[0])[:2]
    np.testing.assert_array_equal(
        predictor.load_files(paths), np.stack([export.load_image(p, (SIZE, SIZE, 3)) for p in paths])
    )
    assert main(["predict", str(old), paths[0]]) == 0
    err = capsys.readouterr().err
    assert err.count("note: ") == 1 and "records no evaluation transform" in err
    assert export.Predictor(out / "saved_model").notes == []  # the card one level up is found


def test_an_inception_export_from_before_the_plain_bilinear_crop_says_so(centre_runs, tmp_path):
    _, out, _ = centre_runs[2]["inception"]
    old = tmp_path / "old_inception"
    os.mkdir(old)
    card = json.loads((out / "model_card.json").read_text())
    del card["evaluation"]["antialias"]  # cards written before it resized with antialiasing
    (old / "model_card.json").write_text(json.dumps(card))
    os.symlink(out / "saved_model", old / "saved_model")
    (note,) = export.Predictor(old).notes
    assert "resized with antialiasing" in note and "plain bilinear" in note
    assert export.Predictor(out).notes == []


def test_the_inception_evaluation_crop_is_resized_without_antialiasing():
    """As its training crops (and TF-slim's and the Model Garden's evaluation): plain bilinear. Shrinking a noisy
    image, the antialiased resize differs."""
    from keras_convnets.data.augment import eval_transform

    image = tf.constant(np.random.default_rng(3).integers(0, 256, (200, 160, 3)), tf.uint8)
    crop = tf.image.central_crop(image, 0.875)
    got = eval_transform(image, augmentation="inception", size=32).numpy()
    plain = tf.image.resize(tf.cast(crop, tf.float32), (32, 32), method="bilinear").numpy()
    smooth = tf.image.resize(tf.cast(crop, tf.float32), (32, 32), method="bilinear", antialias=True).numpy()
    np.testing.assert_array_equal(got, plain)
    assert np.abs(got - smooth).max() > 10


@pytest.mark.slow  # reads the 70,000 images twice (here and for the export's parity images) and trains: ~35 s
def test_a_fashion_mnist_png_gives_the_probabilities_of_the_evaluation_pipeline(tmp_path, capsys, monkeypatch):
    from keras_convnets.data import idx, keras_datasets

    if not idx.is_idx_dir(keras_datasets.DEBIAN_FASHION_MNIST):
        if os.environ.get("CI"):
            pytest.fail("CI must install dataset-fashion-mnist (.ci/run)")
        pytest.skip("dataset-fashion-mnist is not installed: apt-get install -y dataset-fashion-mnist")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))  # the Debian files, not the user's caches
    fashion = data.load_dataset("fashion_mnist", data_dir=str(tmp_path / "tfds"))
    size, count = 32, 8  # the cifar recipe resizes the 28x28 images to 32x32 (crop_flip: whole image resized)
    train_images, train_labels = fashion.train_arrays
    keras.utils.set_random_seed(1)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu", name="conv")(inputs)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="predictions")(x), name="tiny")
    preprocessing = Preprocessing.mean_rgb([72.9, 72.9, 72.9], 90.0)
    small = dataclasses.replace(
        fashion,
        train=tf.data.Dataset.from_tensor_slices((train_images[:2048], train_labels[:2048])),
        num_train=2048,
        train_arrays=(train_images[:2048], train_labels[:2048]),
    )
    x, y = data.materialize(small, image_size=size)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(preprocessing(x.astype("float32")), y, epochs=3, batch_size=64, verbose=0)  # ~80% on its images
    info = {
        "model": "tiny",
        "dataset": "fashion_mnist",
        "dataset_source": "fashion_mnist",
        "image_size": size,
        "recipe": {"name": "cifar", "augmentation": "crop_flip"},
    }
    write_run(tmp_path / "run", model, preprocessing, labels=fashion.labels, info=info)
    card = export.export_bundle(tmp_path / "run", tmp_path / "export", formats=("saved_model",))
    assert card["parity_images"] == {"source": "test split of fashion_mnist", "count": 100}
    assert card["evaluation"]["augmentation"] == "crop_flip"
    first = dataclasses.replace(fashion, test=fashion.test.take(count), num_test=count)
    expected = model.predict(pipeline_images(first, "crop_flip", size, preprocessing), verbose=0)
    assert np.mean(np.max(expected, -1)) > 0.5  # a trained, confident model: probabilities that move with pixels
    paths = []
    for i, (image, _) in enumerate(first.test.as_numpy_iterator()):
        paths.append(str(tmp_path / f"test_{i}.png"))
        write_png(paths[-1], image[..., :1])  # the real 28x28 grayscale image, as a 1-channel PNG
    predictor = export.Predictor(tmp_path / "export")
    probabilities = predictor(predictor.load_files(paths))
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)  # measured: 2.4e-7
    nearest = np.stack(
        [tf.image.resize(export.load_image(p, (28, 28, 3)), (size, size), method="nearest").numpy() for p in paths]
    )
    assert np.abs(predictor(nearest) - expected).max() > 1e-2  # another resize would be seen (measured: 0.12)
    assert main(["predict", str(tmp_path / "export"), paths[0], "--top-k", "1"]) == 0
    top = int(np.argmax(expected[0]))
    line = capsys.readouterr().out.splitlines()[1]  # "  1. Ankle boot  0.9876": a name may hold a space
    assert line.startswith(f"  1. {fashion.labels[top]} ") and line.split()[-1] == f"{expected[0, top]:.4f}"


# ------------------------------------------------------------------------------------ data_dir in run.json


def test_run_json_records_data_dir_and_resume_reads_it(tmp_path, monkeypatch):
    from keras_convnets.cli import train as train_cli
    from keras_convnets.trainer.config import resolve_config

    monkeypatch.chdir(tmp_path)
    config = resolve_config(
        "resnet20",
        "digits",
        epochs=1,
        batch_size=8,
        recipe=None,
        strategy="one_device",
        mixed_precision="float32",
        jit_compile=False,
        output_dir=None,
        export_dir=None,
        seed=0,
        deterministic=False,
        data_dir="datasets",
        sync_bn=False,
        steps_per_epoch=1,
        image_size=None,
        model_options=None,
        validation_split=0.0,
    )
    assert config.run_json()["data_dir"] == str(tmp_path / "datasets")  # absolute: --resume may run elsewhere
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text(json.dumps(config.run_json()))
    settings = train_cli.resume_settings(argparse.Namespace(resume=str(tmp_path / "run")))
    assert settings["data_dir"] == str(tmp_path / "datasets") and settings["dataset"] == "digits"


@pytest.mark.slow
def test_resume_and_export_find_a_tfds_dataset_in_the_recorded_data_dir(tmp_path, monkeypatch, capsys):
    """A tensorflow-datasets dataset prepared only in a `data_dir`: the run records it, `--resume` (without
    `--data-dir`) and `convnets export` read the dataset from there; elsewhere it cannot be prepared."""
    import tensorflow_datasets as tfds

    from keras_convnets import trainer
    from keras_convnets.export.run_images import run_calibration_images

    class ServingColours(tfds.core.GeneratorBasedBuilder):
        """16x16 images whose class is their brightest channel; preparing it needs the network (after the first)."""

        VERSION = tfds.core.Version("1.0.0")
        offline = False

        def _info(self):
            features = {
                "image": tfds.features.Image(shape=(16, 16, 3)),
                "label": tfds.features.ClassLabel(num_classes=3),
            }
            return tfds.core.DatasetInfo(
                builder=self, features=tfds.features.FeaturesDict(features), supervised_keys=("image", "label")
            )

        def _split_generators(self, dl_manager):
            if ServingColours.offline:
                raise ConnectionError("no network")
            return {"train": self._generate_examples(0, 48), "test": self._generate_examples(1, 24)}

        def _generate_examples(self, seed, count):
            rng = np.random.default_rng(seed)
            for i in range(count):
                label = int(rng.integers(0, 3))
                image = rng.integers(0, 100, (16, 16, 3)).astype("uint8")
                image[..., label] += 120
                yield i, {"image": image, "label": label}

    from tensorflow_datasets.core import constants

    # the default place (read once, at import, from TFDS_DATA_DIR or ~/tensorflow_datasets) holds nothing
    monkeypatch.setattr(constants, "DATA_DIR", str(tmp_path / "default_tfds"))
    data_dir = tmp_path / "tfds"
    ServingColours(data_dir=str(data_dir)).download_and_prepare()
    ServingColours.offline = True
    with pytest.raises(ValueError, match="could not download or prepare 'serving_colours'"):
        data.load_dataset("serving_colours")  # not in the default data_dir
    run = tmp_path / "run"
    trainer.train(
        "resnet20",
        "serving_colours",
        data_dir=str(data_dir),
        epochs=1,
        steps_per_epoch=2,
        batch_size=8,
        output_dir=str(run),
        mixed_precision="float32",
        print_fn=None,
    )
    info = json.loads((run / "run.json").read_text())
    assert info["data_dir"] == str(data_dir) and info["dataset"] == "serving_colours"
    assert info["recipe"]["augmentation"] == "crop_flip"
    # --resume without --data-dir: the dataset is read from the recorded data_dir, and the export at the end checks
    # the model on its test split there
    export_dir = tmp_path / "export"
    assert main(["train", "--resume", str(run), "--export-dir", str(export_dir), "--mixed-precision", "float32"]) == 0
    assert "Resuming from" in capsys.readouterr().out
    card = json.loads((export_dir / "model_card.json").read_text())
    assert card["parity_images"] == {"source": "test split of serving_colours", "count": 24}
    assert card["evaluation"] == serving.evaluation_card("crop_flip", 16)
    # int8 calibration images: a sample of the training split, as evaluation sees it, from the recorded data_dir
    images, description = run_calibration_images(info, {}, (16, 16, 3), count=40)
    assert description == {"source": "train split of serving_colours", "count": 40}
    train_view = pipeline_images(
        data.load_dataset("serving_colours", data_dir=str(data_dir)), "crop_flip", 16, split="train"
    )
    assert images.shape == (40, 16, 16, 3)
    assert {image.tobytes() for image in images} <= {image.tobytes() for image in train_view}
    assert main(["export", str(run), "--format", "keras", "--output", str(tmp_path / "again")]) == 0
    card = json.loads((tmp_path / "again" / "model_card.json").read_text())
    assert card["parity_images"] == {"source": "test split of serving_colours", "count": 24}
