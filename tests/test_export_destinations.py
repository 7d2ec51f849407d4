"""What an export may replace (`overwrite`), and the images an export of a training run is checked on.

`overwrite` replaces only a previous export (a directory with the format's marker, or the file the format
writes); a destination that is, or contains, the run or the working directory, or any other non-empty
directory, is refused and left as it was. An export of a run is checked on 100 images of its test split.
"""

from __future__ import annotations

import json
import os

import keras
import numpy as np
import pytest

import keras_convnets
from keras_convnets import export
from keras_convnets.cli.main import main
from keras_convnets.data import load_digits, materialize
from keras_convnets.data.preprocessing import Preprocessing

pytestmark = pytest.mark.xdist_group("export")


def tree(root):
    """Every file under `root` with its content: what must survive a refused export."""
    out = {}
    for directory, _, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A run directory as `convnets train` leaves it for an (untrained) CIFAR ResNet-8 on digits, with a
    checkpoint that a careless export would delete."""
    keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("runs") / "resnet8_digits"
    root.mkdir()
    model = keras_convnets.CifarResNet(8, input_shape=(32, 32, 3), classes=10)
    model.save(root / "model.keras")
    Preprocessing.mean_rgb([30.0, 30.0, 30.0], 60.0).save(root / "preprocessing.json")
    (root / "labels.txt").write_text("".join(f"{i}\n" for i in range(10)))
    (root / "metrics.json").write_text(json.dumps({"model": "resnet8", "dataset": "digits"}))
    info = {"model": "resnet8", "dataset": "digits", "dataset_source": "digits", "image_size": 32}
    info["recipe"] = {"augmentation": "crop_flip"}
    (root / "run.json").write_text(json.dumps(info))
    (root / "checkpoints" / "epoch_0003").mkdir(parents=True)
    (root / "checkpoints" / "epoch_0003" / "weights.weights.h5").write_bytes(b"weights of epoch 3")
    return root


def test_export_into_the_run_directory_is_refused_and_its_checkpoints_survive(digits_run, tmp_path):
    before = tree(digits_run)
    with pytest.raises(ValueError, match=r"is the source of the export .*Received: destination="):
        export.export_bundle(digits_run, digits_run, formats=("keras",), overwrite=True)
    with pytest.raises(ValueError, match=r"contains the source of the export"):
        export.export_bundle(digits_run, digits_run.parent, formats=("keras",), overwrite=True)
    assert tree(digits_run) == before
    assert not [name for name in os.listdir(digits_run.parent) if ".partial-" in name]


def test_train_export_into_its_run_directory_is_refused_by_the_export(digits_run):
    """`train(..., export_dir=output_dir)` exports a `Run` without a path: the export refuses the run
    directory because it is not a previous export, and deletes nothing."""
    from keras_convnets.trainer.trainer import export_model

    run = export.load_run(digits_run)
    before = tree(digits_run)
    with pytest.raises(ValueError, match=r"is a directory of 6 entries that is not a previous export"):
        export_model(
            run.model, str(digits_run), labels=run.labels, preprocessing=run.preprocessing, metrics=run.metrics
        )
    assert tree(digits_run) == before


def test_cli_export_to_the_working_directory_is_refused(digits_run, tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("mine")
    monkeypatch.chdir(work)
    assert main(["export", str(digits_run), "--format", "keras", "--output", ".", "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "is the working directory" in err and "Traceback" not in err
    assert os.getcwd() == str(work) and tree(work) == {"notes.txt": b"mine"}
    assert sorted(os.listdir(tmp_path)) == ["work"]
    # the parent of the working directory contains it: refused as well
    assert main(["export", str(digits_run), "--format", "keras", "--output", "..", "--overwrite"]) == 2
    assert "contains the working directory" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["work"] and tree(work) == {"notes.txt": b"mine"}


def test_overwrite_replaces_a_previous_export_and_nothing_else(digits_run, tmp_path):
    target = tmp_path / "bundle"
    export.export_bundle(digits_run, target, formats=("keras",), parity_data=np.zeros((2, 32, 32, 3)))
    (target / "stale.txt").write_text("from the previous export")
    card = export.export_bundle(
        digits_run, target, formats=("keras",), parity_data=np.zeros((2, 32, 32, 3)), overwrite=True
    )
    assert sorted(os.listdir(target)) == ["labels.txt", "model.keras", "model_card.json"]
    assert card["files"] == {name: os.path.getsize(target / name) for name in ("labels.txt", "model.keras")}
    # a directory that is not an export: refused, its files intact
    other = tmp_path / "photos"
    other.mkdir()
    (other / "a.jpg").write_bytes(b"jpeg")
    (other / "sub").mkdir()
    (other / "sub" / "b.jpg").write_bytes(b"jpeg too")
    with pytest.raises(ValueError, match=r"'.*photos' is not replaced: it is a directory of 2 entries that is not"):
        export.export_bundle(digits_run, other, formats=("keras",), overwrite=True)
    assert tree(other) == {"a.jpg": b"jpeg", os.path.join("sub", "b.jpg"): b"jpeg too"}
    # a regular file where a directory goes: refused
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file, and this export writes a directory"):
        export.export_bundle(digits_run, tmp_path / "file", formats=("keras",), overwrite=True)
    # an empty directory is replaced
    (tmp_path / "empty").mkdir()
    export.export_bundle(
        digits_run, tmp_path / "empty", formats=("keras",), parity_data=np.zeros((1, 32, 32, 3)), overwrite=True
    )
    assert "model_card.json" in os.listdir(tmp_path / "empty")
    assert sorted(os.listdir(tmp_path)) == ["bundle", "empty", "file", "photos"]


def test_saved_model_and_tflite_replace_only_their_own_kind(tmp_path):
    model = keras_convnets.CifarResNet(8, input_shape=(16, 16, 3), classes=3)
    saved = tmp_path / "sm"
    export.export_saved_model(model, saved)
    export.export_saved_model(model, saved, overwrite=True)  # a previous SavedModel
    assert "saved_model.pb" in os.listdir(saved)
    tflite = tmp_path / "model.tflite"
    tflite.write_bytes(b"an older file")
    export.export_tflite(model, tflite, overwrite=True)  # a regular file where the format writes one
    assert export.TFLiteModel(tflite).input_shape == (16, 16, 3)
    with pytest.raises(ValueError, match="is the source of the export"):
        export.export_tflite(saved, saved, overwrite=True)
    with pytest.raises(ValueError, match="is a directory, and this export writes a file"):
        export.export_tflite(model, saved, overwrite=True)
    assert "saved_model.pb" in os.listdir(saved)
    with pytest.raises(ValueError, match="not a previous export .no saved_model.pb."):
        export.export_saved_model(model, tmp_path, overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["model.tflite", "sm"]


def test_check_destination_rules(tmp_path, monkeypatch):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "model.keras").write_bytes(b"k")
    export.check_destination(tmp_path / "free", False)
    with pytest.raises(FileExistsError, match="overwrite"):
        export.check_destination(tmp_path / "run", False)
    with pytest.raises(ValueError, match="is the source"):
        export.check_destination(tmp_path / "run", True, sources=[tmp_path / "run" / ".." / "run"])
    with pytest.raises(ValueError, match="contains the source"):
        export.check_destination(tmp_path / "run", True, sources=[tmp_path / "run" / "model.keras"])
    os.symlink(tmp_path / "run", tmp_path / "alias")
    with pytest.raises(ValueError, match="is the source"):  # through a link to it
        export.check_destination(tmp_path / "run", True, sources=[tmp_path / "alias"])
    monkeypatch.chdir(tmp_path / "run")
    with pytest.raises(ValueError, match="is the working directory"):
        export.check_destination(tmp_path / "run", True)
    with pytest.raises(ValueError, match="`kind` must be one of 'directory', 'file'. Received: kind='dir'"):
        export.check_destination(tmp_path / "x", True, kind="dir")


# ------------------------------------------------------------------------------------- parity images


def test_an_export_of_a_digits_run_is_checked_on_its_test_split(digits_run, tmp_path, monkeypatch):
    from keras_convnets.export import bundle

    seen = []
    measure = bundle.measure_parity
    monkeypatch.setattr(bundle, "measure_parity", lambda *a: seen.append(a) or measure(*a))
    card = export.export_bundle(digits_run, tmp_path / "out", formats=("saved_model", "keras"))
    assert card["parity_images"] == {"source": "test split of digits", "count": 100}
    assert card["parity"]["saved_model"]["images"] == 100 and card["parity"]["keras"]["images"] == 100
    saved = json.loads((tmp_path / "out" / "model_card.json").read_text())
    assert saved["parity_images"] == {"source": "test split of digits", "count": 100}
    # the images are the first 100 of the test split as evaluation sees them: raw pixels at 32x32
    test_images, _ = materialize(load_digits(), image_size=32, split="test")
    images, description = export.run_parity_images(json.loads((digits_run / "run.json").read_text()), {}, (32, 32, 3))
    assert description == {"source": "test split of digits", "count": 100}
    np.testing.assert_array_equal(images, test_images[:100].astype("float32"))
    assert len(np.unique(images.reshape(100, -1), axis=0)) == 100  # not one image repeated, not noise
    assert set(np.unique(images)) <= set(range(256))


def test_parity_images_leave_out_the_calibration_images_and_fall_back_to_noise(digits_run, tmp_path):
    info = json.loads((digits_run / "run.json").read_text())
    test_images, _ = materialize(load_digits(), image_size=32, split="test")
    calibration = test_images[:30].astype("float32")
    images, description = export.run_parity_images(info, {}, (32, 32, 3), exclude=calibration)
    assert description["count"] == 100
    np.testing.assert_array_equal(images, test_images[30:130].astype("float32"))
    # at 24x24 with the inception recipe: the central 87.5%, resized
    info_inception = {**info, "recipe": {"augmentation": "inception"}}
    images, _ = export.run_parity_images(info_inception, {}, (24, 24, 3), count=5)
    assert images.shape == (5, 24, 24, 3)
    # a dataset that is not on this machine: uniform noise, and the card says why
    run = export.load_run(digits_run)
    run.info = {**info, "dataset": "no_such_dataset", "dataset_source": "no_such_dataset"}
    card = export.export_bundle(run, tmp_path / "noise", formats=("keras",))
    assert card["parity_images"]["source"] == "uniform noise" and card["parity_images"]["count"] == 8
    assert "'no_such_dataset' could not be read here" in card["parity_images"]["reason"]
    assert card["parity"]["keras"]["images"] == 8
    # images given: used as they are
    card = export.export_bundle(run, tmp_path / "given", formats=("keras",), parity_data=test_images[:7])
    assert card["parity_images"] == {"source": "parity_data", "count": 7}
    assert card["parity"]["keras"]["images"] == 7
