"""The builders on the Keras backend of this process, for tests/test_backends.py.

    KERAS_BACKEND=jax python tests/backend_child.py DIR [--skip NAME ...]

DIR holds `cases.json` (name -> [registered model, builder arguments]), and for each case `NAME.weights.h5` and the
images `NAME.npy`, written by the TensorFlow backend. The child

1. imports `keras_convnets.models` and notes whether that imported TensorFlow;
2. builds each case, loads its weights file with `keras_convnets.models.common.load_weights` (strict), predicts its
   images and saves the outputs to `DIR/BACKEND/NAME.npz` (one array per head);
3. builds every other registered model small (`small_kwargs`, but for `--skip`) and predicts two images;
4. calls train, export and tuning search, then `convnets train/export/tune/experiment`; records their errors;

and prints one JSON line, `RESULT {...}`: the backend, `tensorflow_imported`, `built` (name -> the output shape of
each head, whether all are finite, the CPU seconds of building and predicting), `refusals` (what -> message), `cli`
(command -> [exit status, stderr]) and `scratch_exists` (whether a refused call wrote its directory).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CLASSES = 7
IMAGENET_NETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "plainnet18", "plainnet34")


def small_kwargs(name: str) -> dict:
    """The arguments of tests/test_models.py's table: a small input and 7 classes, each model's structure kept."""
    if name.startswith("vgg"):
        return {"input_shape": (32, 32, 3), "classes": CLASSES, "fc_units": 32}
    if name in IMAGENET_NETS:
        return {"input_shape": (32, 32, 3), "classes": CLASSES}
    if name == "googlenet":  # the smallest input its aux heads accept
        return {"input_shape": (79, 79, 3), "classes": CLASSES}
    if name == "inception_v3":  # its aux head needs 299x299
        return {"input_shape": (75, 75, 3), "classes": CLASSES, "aux_logits": False}
    if name == "resnet1202":  # finite outputs at initialisation need zero-initialised residual branches
        return {"input_shape": (16, 16, 3), "classes": CLASSES, "zero_init_residual": True}
    return {"input_shape": (16, 16, 3), "classes": CLASSES}


def as_arrays(outputs) -> dict:
    import numpy as np

    if isinstance(outputs, dict):
        return {key: np.asarray(value) for key, value in outputs.items()}
    return {"predictions": np.asarray(outputs)}


def first_error(call) -> str | None:
    try:
        call()
    except Exception as error:  # the refusal under test is a ValueError; anything else is reported as it is
        return f"{type(error).__name__}: {error}"
    return None


def cli(argv: list[str]) -> list:
    from keras_convnets.cli.main import main

    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        status = main(argv)
    return [status, stderr.getvalue()]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("directory")
    parser.add_argument("--skip", nargs="*", default=[])
    args = parser.parse_args()

    import keras_convnets.models as models

    tensorflow_imported = "tensorflow" in sys.modules
    import keras
    import numpy as np

    backend = keras.backend.backend()
    with open(os.path.join(args.directory, "cases.json")) as file:
        cases = json.load(file)
    out = os.path.join(args.directory, backend)
    os.makedirs(out, exist_ok=True)
    built = {}

    def record(name: str, model, images, started: float) -> dict:
        if name == "resnet1202":  # called in inference mode: `predict` compiles it first (over 15 minutes in XLA)
            arrays = as_arrays(keras.tree.map_structure(keras.ops.convert_to_numpy, model(images, training=False)))
        else:
            arrays = as_arrays(model.predict(images, verbose=0))
        built[name] = {
            "outputs": {key: list(value.shape) for key, value in arrays.items()},
            "finite": bool(all(np.isfinite(value).all() for value in arrays.values())),
            "cpu_seconds": round(time.process_time() - started, 1),
        }
        keras.backend.clear_session()
        return arrays

    for case, (name, kwargs) in cases.items():
        started = time.process_time()
        model = models.get_model(name, **kwargs)
        models.common.load_weights(model, os.path.join(args.directory, f"{case}.weights.h5"))
        arrays = record(case, model, np.load(os.path.join(args.directory, f"{case}.npy")), started)
        np.savez(os.path.join(out, f"{case}.npz"), **arrays)
    done = {name for name, _ in cases.values()}
    for name in models.list_models():
        if name in done or name in args.skip:
            continue
        started = time.process_time()
        model = models.get_model(name, **small_kwargs(name))
        images = np.random.default_rng(0).normal(size=(2, *model.inputs[0].shape[1:])).astype("float32")
        with models.common.recursion_limit(20_000):  # ResNet-1202's graph is deep
            record(name, model, images, started)

    import keras_convnets
    from keras_convnets import export, tuning

    scratch = os.path.join(args.directory, f"{backend}-scratch")
    model = models.get_model("resnet20", input_shape=(16, 16, 3), classes=CLASSES)
    refusals = {
        "train": first_error(lambda: keras_convnets.train("resnet20", "digits", epochs=1, output_dir=scratch)),
        "export_saved_model": first_error(lambda: export.export_saved_model(model, os.path.join(scratch, "sm"))),
        "export_tflite": first_error(lambda: export.export_tflite(model, os.path.join(scratch, "m.tflite"))),
        "export_onnx": first_error(lambda: export.export_onnx(model, os.path.join(scratch, "m.onnx"))),
        "export_bundle": first_error(lambda: export.export_bundle(scratch, os.path.join(scratch, "bundle"))),
        "search": first_error(
            lambda: tuning.search(tuning.ResNetHyperModel(50), directory=os.path.join(scratch, "tuning"))
        ),
    }
    commands = {
        "train": cli(["train", "--epochs", "1", "--output-dir", os.path.join(scratch, "run")]),
        "export": cli(["export", scratch, "--output", os.path.join(scratch, "export")]),
        "tune": cli(["tune", "--output-dir", os.path.join(scratch, "tune")]),
        "experiment": cli(["experiment", "degradation", "--quick", "--output-dir", os.path.join(scratch, "exp")]),
    }
    result = {
        "backend": backend,
        "tensorflow_imported": tensorflow_imported,
        "built": built,
        "refusals": refusals,
        "cli": commands,
        "scratch_exists": os.path.exists(scratch),
    }
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
