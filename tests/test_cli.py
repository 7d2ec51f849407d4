"""The `convnets` command line: parsing imports neither TensorFlow nor Keras, a run shows none of TensorFlow's
start-up lines, an error is one line (exit status 2 for bad input, 1 for the others), Ctrl-C one line naming the
epoch it stopped at (exit status 130). The package itself imports lazily."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf

from keras_convnets.cli import choices
from keras_convnets.cli import main as cli
from keras_convnets.cli import models as cli_models

NOISE = ("oneDNN", "cuda_", "absl", "cpu_feature_guard", "XNNPACK")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "CONVNETS_TRACEBACK")}
    env.update(PYTHONUNBUFFERED="1", PYTHONPATH=ROOT, **extra)
    return env


def _convnets(*argv, cwd, **extra) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "keras_convnets.cli.main", *argv],
        cwd=cwd,
        env=_env(**extra),
        capture_output=True,
        text=True,
        timeout=600,
    )


def _python(code: str, cwd) -> dict:
    """Run `code` in a fresh interpreter; it prints one JSON line last."""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


PARSE_ONLY = """
import json, sys
from keras_convnets.cli.main import main
codes = []
for argv in (["--help"], ["train", "--help"], ["tune", "--help"], ["export", "--help"], ["experiment", "--help"],
             ["train", "--epochs", "0"], ["train", "--recipe", "nope"], ["tune", "--export-formats", "coreml"],
             ["nope"]):
    try:
        main(argv)
    except SystemExit as exit:
        codes.append(exit.code)
print(json.dumps({"codes": codes, "loaded": [m for m in ("tensorflow", "keras") if m in sys.modules]}))
"""


def test_help_and_argument_errors_import_neither_tensorflow_nor_keras(tmp_path):
    result = _python(PARSE_ONLY, tmp_path)
    assert result == {"codes": [0, 0, 0, 0, 0, 2, 2, 2, 2], "loaded": []}


def test_the_package_imports_lazily_and_keeps_its_flat_module_paths(tmp_path):
    result = _python(
        """
import importlib, json, sys
import keras_convnets
light = [m for m in ("tensorflow", "keras") if m in sys.modules]
import keras_convnets.resnet as flat
import keras_convnets.lesion
new = importlib.import_module("keras_convnets.models.resnet")
print(json.dumps({
    "light": light,
    "same": flat is new and flat.__spec__.name == "keras_convnets.models.resnet",
    "lesion": keras_convnets.lesion.__module__,
    "flat_lesion": sys.modules["keras_convnets.lesion"].__name__,
    "resnet50": keras_convnets.ResNet50 is new.ResNet50,
    "all": sorted(keras_convnets.__all__) == sorted(n for n in dir(keras_convnets) if n in keras_convnets.__all__),
}))
""",
        tmp_path,
    )
    assert result == {
        "light": [],
        "same": True,
        "lesion": "keras_convnets.analysis.lesion",  # the function, as before
        "flat_lesion": "keras_convnets.analysis.lesion",
        "resnet50": True,
        "all": True,
    }


def test_importing_the_export_registers_the_classes_of_the_runs_model_files(tmp_path):
    result = _python(
        """
import json
from keras_convnets.export import load_run
import keras
names = ["keras_convnets>LocalResponseNormalization", "keras_convnets>AuxClassifierModel"]
print(json.dumps([keras.saving.get_registered_object(name) is not None for name in names]))
""",
        tmp_path,
    )
    assert result == [True, True]


def test_the_choices_parsed_without_tensorflow_are_the_modules_lists():
    from keras_convnets import export, tuning
    from keras_convnets.trainer import MIXED_PRECISION, distribute, recipes

    assert choices.RECIPES == tuple(recipes.list_recipes())
    assert choices.STRATEGIES == tuple(distribute.STRATEGIES)
    assert choices.MIXED_PRECISION == tuple(MIXED_PRECISION)
    assert choices.TUNERS == tuple(tuning.TUNERS)
    assert choices.GRANULARITIES == tuple(tuning.GRANULARITIES)
    assert choices.EXPORT_FORMATS == tuple(export.FORMATS)


@pytest.mark.parametrize(
    "error, status, line",
    [
        (ValueError("`x` must be 1. Received: x=2"), 2, "convnets models: error: `x` must be 1. Received: x=2"),
        (TypeError("bad type"), 2, "convnets models: error: bad type"),
        (FileExistsError("there"), 2, "convnets models: error: FileExistsError: there"),
        (
            PermissionError(13, "Permission denied"),
            1,
            "convnets models: error: PermissionError: [Errno 13] Permission denied",
        ),
        (
            OSError(28, "No space left on device"),
            1,
            "convnets models: error: OSError: [Errno 28] No space left on device",
        ),
        (
            OSError("Unable to synchronously open file (truncated file: eof = 96)"),
            1,
            "convnets models: error: OSError: Unable to synchronously open file (truncated file: eof = 96)",
        ),
        (
            tf.errors.ResourceExhaustedError(None, None, "OOM when allocating\n\tnode foo"),
            1,
            "convnets models: error: ResourceExhaustedError: OOM when allocating",
        ),
        (RuntimeError("busy\nsecond line"), 1, "convnets models: error: RuntimeError: busy second line"),
        (KeyboardInterrupt(), 130, "convnets models: interrupted."),
    ],
)
def test_an_error_is_one_line_with_its_exit_status(monkeypatch, capsys, error, status, line):
    def fail(args):
        raise error

    monkeypatch.delenv("CONVNETS_TRACEBACK", raising=False)
    monkeypatch.setattr(cli_models, "run", fail)
    assert cli.main(["models"]) == status
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [line]
    monkeypatch.setenv("CONVNETS_TRACEBACK", "1")
    assert cli.main(["models"]) == status
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and err.splitlines()[-1] == line


def test_a_bad_dataset_and_an_unwritable_run_directory_are_one_line_each(tmp_path):
    missing = _convnets("train", "--dataset", "./no_such_dir", "--output-dir", "a", cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.splitlines() == [
        "convnets train: error: `dataset` looks like a path but no such directory exists. "
        "Received: dataset='./no_such_dir'"
    ]
    (tmp_path / "a_file").write_text("")
    blocked = _convnets("train", "--epochs", "1", "--output-dir", "a_file/run", cwd=tmp_path)
    assert blocked.returncode == 1
    assert blocked.stderr.splitlines() == [
        "convnets train: error: NotADirectoryError: [Errno 20] Not a directory: 'a_file/run'"
    ]
    shown = _convnets("--verbose", "train", "--dataset", "./no_such_dir", cwd=tmp_path)
    assert shown.returncode == 2 and "Traceback (most recent call last)" in shown.stderr
    assert sorted(os.listdir(tmp_path)) == ["a_file"]


def test_a_run_shows_none_of_tensorflows_start_up_lines(tmp_path):
    done = _convnets(
        "train",
        "--epochs",
        "1",
        "--steps-per-epoch",
        "2",
        "--batch-size",
        "8",
        "--output-dir",
        "run",
        "--export-dir",
        "export",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    lines = (done.stdout + done.stderr).splitlines()
    assert [line for line in lines if any(word in line for word in NOISE)] == []
    assert lines[0].startswith("Training resnet20 on digits") and lines[1].startswith("epoch 1/1 (iteration 2)")
    # LiteRT's "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." of the export's parity check is left out
    assert len(lines) == 3 and lines[2].startswith("Test accuracy ")
    assert os.path.exists(tmp_path / "run" / "metrics.json")


def test_ctrl_c_names_the_epoch_it_stopped_at_and_exits_130(tmp_path):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "keras_convnets.cli.main",
            "train",
            "--epochs",
            "40",
            "--steps-per-epoch",
            "2",
            "--batch-size",
            "8",
            "--output-dir",
            "run",
            "--export-dir",
            "export",
        ],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in process.stdout:
            if line.startswith("epoch 1/40"):
                break
        deadline = time.monotonic() + 120
        while not (tmp_path / "run" / "checkpoints" / "epoch-0001").is_dir() and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130
    newest = max(os.listdir(tmp_path / "run" / "checkpoints"))
    epoch = int(newest.split("-")[1])
    assert 1 <= epoch < 40
    assert err.splitlines() == [
        f"convnets train: interrupted: stopped after epoch {epoch} of 40 "
        f"(checkpoint {os.path.join('run', 'checkpoints', newest)}); the same command resumes from there."
    ]
    assert not (tmp_path / "run" / ".lock").exists()  # the lock went with the process


def _image_folder(root, classes=("cat", "dog", "eel"), per_class=20):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in classes:
        os.makedirs(os.path.join(root, c))
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (20, 24, 3)).astype("uint8")).save(os.path.join(root, c, f"{i}.png"))


def test_training_on_an_image_folder_does_not_say_its_input_ran_out(tmp_path, capfd):
    """Keras warned "Your input ran out of data" at the end of the first evaluation of an image folder's test
    split (a dataset of unknown size), though training went on."""
    import warnings

    from keras_convnets.trainer import trainer

    _image_folder(tmp_path / "images")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = trainer.train(
            "resnet20",
            str(tmp_path / "images"),
            epochs=2,
            batch_size=8,
            image_size=16,
            mixed_precision="float32",
            output_dir=str(tmp_path / "run"),
            print_fn=print,
        )
    out, err = capfd.readouterr()
    said = [str(w.message) for w in caught] + (out + err).splitlines()
    assert [line for line in said if "ran out of data" in line or "did not fully read" in line] == []
    assert [row["epoch"] for row in result.history] == [1, 2]
    assert result.metrics["test_examples"] == 12 and result.metrics["train_examples"] == 48


def test_an_image_folders_evaluation_set_has_a_known_size(tmp_path):
    """The cause of that warning: the test split of a folder (unreadable files dropped) was a cached dataset of
    unknown size. It is now read into memory once: its size is known."""
    from keras_convnets import data

    _image_folder(tmp_path / "images")
    folder = data.load_dataset(str(tmp_path / "images"))
    assert folder.num_test == 12
    for augmentation in ("crop_flip", "scale"):
        ds = data.eval_pipeline(folder, batch_size=8, image_size=16, augmentation=augmentation)
        assert int(ds.cardinality()) == 2
        assert [int(x.shape[0]) for x, _ in ds] == [8, 4]


def test_train_options_reach_the_builder_and_a_resume_reads_them_back(tmp_path, monkeypatch):
    import json

    import keras_convnets.trainer

    seen = []

    class Result:
        metrics = {"test_accuracy": 1.0}

    def fake_train(model, dataset, **kwargs):
        seen.append((model, kwargs["model_options"], kwargs["output_dir"]))
        return Result()

    monkeypatch.setattr(keras_convnets.trainer, "train", fake_train)
    argv = ["train", "--model", "vgg11", "--option", "batch_norm=true", "--option", "dropout=0.25"]
    assert cli.main([*argv, "--output-dir", str(tmp_path / "run")]) == 0
    assert seen[-1] == ("vgg11", {"batch_norm": True, "dropout": 0.25}, str(tmp_path / "run"))
    (tmp_path / "run").mkdir()
    record = {"model": "googlenet", "dataset": "digits", "model_options": {"variant": "torchvision"}}
    (tmp_path / "run" / "run.json").write_text(json.dumps(record))
    assert cli.main(["train", "--resume", str(tmp_path / "run")]) == 0
    assert seen[-1] == ("googlenet", {"variant": "torchvision"}, str(tmp_path / "run"))


def test_a_train_option_that_is_not_key_value_is_one_line(tmp_path, capsys):
    assert cli.main(["train", "--option", "batch_norm", "--output-dir", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "convnets train: error: `--option` must be KEY=VALUE. Received: --option batch_norm"
    ]
    assert os.listdir(tmp_path) == []


def test_option_values_are_literals_or_text_and_json_writable():
    from keras_convnets.cli.profile import parse_options

    parsed = parse_options(["variant=torchvision", "widths=(64, 128)", "norm=None", "rate=0.5", "stride_in=3x3"])
    assert parsed == {"variant": "torchvision", "widths": (64, 128), "norm": None, "rate": 0.5, "stride_in": "3x3"}
    for bad in ("x={[1]: 2}", "x={1, 2}", "x=b'raw'", "x=1j", "x=float('nan')"):
        key, value = bad.split("=", 1)
        if value == "float('nan')":  # not a literal at all: the text
            assert parse_options([bad]) == {"x": value}
            continue
        with pytest.raises(ValueError, match=r"`--option x` must be a number, text, true/false/none, or a list or"):
            parse_options([bad])
    with pytest.raises(ValueError, match=r"`--set` must be KEY=VALUE. Received: --set =3"):
        parse_options(["=3"], flag="--set")
