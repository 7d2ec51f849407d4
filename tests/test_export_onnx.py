"""ONNX export (keras_convnets.export.onnx, `convnets export --format onnx`), run with ONNX Runtime.

The fast tests share one tiny CIFAR ResNet (option-A shortcuts) trained on colour images (tests/export_helpers.py),
so that int8 top-1 agreement is measured on confident predictions. Without tf2onnx, onnx and onnxruntime the
tests that convert are skipped; the missing-package errors are tested either way (simulated).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from export_helpers import CLASSES, colour_images, train

import keras_convnets
from keras_convnets import export
from keras_convnets.cli.main import main
from keras_convnets.data.preprocessing import Preprocessing
from keras_convnets.export import onnx as onnx_export

SIZE = 32
HAVE_ONNX = all(importlib.util.find_spec(name) for name in ("tf2onnx", "onnx", "onnxruntime"))
needs_onnx = pytest.mark.skipif(not HAVE_ONNX, reason='needs pip install "keras_convnets[onnx]"')
INSTALL_LINE = r'pip install "keras_convnets\[onnx\]"'

pytestmark = pytest.mark.xdist_group("export_onnx")


@pytest.fixture(scope="module")
def trained():
    """A CIFAR ResNet-8 (3 classes, 32x32, option A) trained on colour images, its preprocessing, held-out
    images with their labels and representative images (disjoint seeds)."""
    keras.utils.set_random_seed(0)
    preprocessing = Preprocessing.mean_rgb([110.0, 110.0, 110.0], 60.0)
    model = keras_convnets.CifarResNet(8, input_shape=(SIZE, SIZE, 3), classes=3)
    assert train(model, preprocessing, size=SIZE) >= 0.9
    held_out, labels = colour_images(50, SIZE, seed=11)
    representative, _ = colour_images(48, SIZE, seed=12)
    return model, preprocessing, held_out.astype("float32"), labels, representative.astype("float32")


@pytest.fixture(scope="module")
def onnx_file(trained, tmp_path_factory):
    if not HAVE_ONNX:
        pytest.skip('needs pip install "keras_convnets[onnx]"')
    model, preprocessing, held_out, _, _ = trained
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    parity = export.export_onnx(model, path, preprocessing=preprocessing, parity_data=held_out)
    return path, parity


@pytest.fixture(scope="module")
def run_dir(trained, tmp_path_factory):
    """A training run directory as `convnets train` leaves it (no dataset recorded: nothing to read)."""
    model, preprocessing, *_ = trained
    root = tmp_path_factory.mktemp("runs") / "resnet8_colours"
    root.mkdir()
    model.save(root / "model.keras")
    preprocessing.save(root / "preprocessing.json")
    (root / "labels.txt").write_text("".join(f"{c}\n" for c in CLASSES))
    (root / "metrics.json").write_text(json.dumps({"model": "resnet8", "test_accuracy": 0.97}))
    return root


def keras_probabilities(model, preprocessing, images):
    return model.predict(preprocessing(images), verbose=0)


def op_types(path) -> set[str]:
    import onnx

    return {node.op_type for node in onnx.load(str(path)).graph.node}


# ------------------------------------------------------------------------------------------- float32


@needs_onnx
def test_float32_onnx_matches_keras_with_named_outputs(trained, onnx_file):
    model, preprocessing, held_out, labels, _ = trained
    path, parity = onnx_file
    assert parity.artifact == "onnx_float32" and parity.images == 50 and parity.passed
    assert parity.max_abs_diff < 1e-5 and parity.top1_agreement == 1.0  # measured 1.2e-7
    assert os.listdir(path.parent) == ["model.onnx"]  # no staging leftovers
    runner = export.OnnxModel(path)
    assert runner.input_shape == (SIZE, SIZE, 3) and runner.output_names == ["logits", "probabilities"]
    (images,) = runner.session.get_inputs()
    assert images.name == "images" and images.type == "tensor(float)" and images.shape == ["batch", SIZE, SIZE, 3]
    # raw pixels in: the recipe's preprocessing is inside the graph
    expected = keras_probabilities(model, preprocessing, held_out)
    out = runner(held_out)
    np.testing.assert_allclose(out["probabilities"], expected, atol=1e-5)
    np.testing.assert_allclose(tf.nn.softmax(out["logits"]).numpy(), expected, atol=1e-5)
    assert np.mean(np.argmax(out["probabilities"], -1) == labels) >= 0.9
    # the logits are the pre-activation of the softmax `predictions` layer
    features = keras.Model(model.inputs, model.get_layer("avg_pool").output).predict(
        preprocessing(held_out[:4]), verbose=0
    )
    dense = model.get_layer("predictions")
    np.testing.assert_allclose(out["logits"][:4], features @ dense.kernel.numpy() + dense.bias.numpy(), atol=1e-4)
    # any batch size, and the bytes load as the file does
    np.testing.assert_allclose(runner(held_out, batch_size=7)["probabilities"], out["probabilities"], atol=1e-6)
    from_bytes = export.OnnxModel(path.read_bytes(), num_threads=1)(held_out[:3])["probabilities"]
    np.testing.assert_allclose(from_bytes, out["probabilities"][:3], atol=1e-6)
    assert "QuantizeLinear" not in op_types(path)


@needs_onnx
@pytest.mark.slow  # about 25 s to convert on 2 cores
def test_googlenet_exports_its_main_head_only(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras_convnets.get_model("googlenet", input_shape=(80, 80, 3), classes=5)  # aux heads need >= 79
    assert len(model.outputs) == 3  # predictions and the two auxiliary classifiers
    images = export.random_images((80, 80, 3), 4)
    preprocessing = Preprocessing.inception()  # raw pixels would saturate the random network's softmax
    parity = export.export_onnx(model, tmp_path / "googlenet.onnx", parity_data=images, preprocessing=preprocessing)
    assert parity.passed and parity.max_abs_diff < 1e-5  # measured 1.1e-6
    runner = export.OnnxModel(tmp_path / "googlenet.onnx")
    assert runner.output_names == ["logits", "probabilities"]  # no aux1_/aux2_ outputs
    out = runner(images)
    expected = keras_convnets.strip_aux(model).predict(preprocessing(images), verbose=0)
    assert expected.max() < 0.99  # not saturated: the comparison means something
    np.testing.assert_allclose(out["probabilities"], expected, atol=1e-5)
    logits = export.InferenceGraph(model, preprocessing=preprocessing).graph(images)["logits"].numpy()
    np.testing.assert_allclose(out["logits"], logits, atol=1e-4)  # measured 5.7e-6 on logits up to 5.7


@needs_onnx
def test_a_mixed_precision_model_is_exported_in_float32(tmp_path):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        keras.utils.set_random_seed(0)
        model = keras_convnets.CifarResNet(8, input_shape=(16, 16, 3), classes=4)
    finally:
        keras.config.set_dtype_policy(previous)
    copy = onnx_export.float32_model(model)
    assert copy is not model and {layer.compute_dtype for layer in copy.layers} == {"float32"}
    assert onnx_export.float32_model(copy) is copy  # a float32 model is exported as it is
    images = export.random_images((16, 16, 3), 6)
    parity = export.export_onnx(model, tmp_path / "mixed.onnx", parity_data=images)
    assert parity.max_abs_diff < 1e-5  # against the float32 Keras model of the same weights
    import onnx

    proto = onnx.load(str(tmp_path / "mixed.onnx"))
    assert {init.data_type for init in proto.graph.initializer} <= {onnx.TensorProto.FLOAT, onnx.TensorProto.INT64}
    out = export.OnnxModel(tmp_path / "mixed.onnx")(images)["probabilities"]
    np.testing.assert_allclose(out, copy.predict(images, verbose=0), atol=1e-5)
    # bfloat16 Keras differs from its float32 self by rounding only
    mixed = np.asarray(model.predict(images, verbose=0), "float32")
    assert np.max(np.abs(out - mixed)) < 0.05


# ---------------------------------------------------------------------------------------------- int8


@needs_onnx
def test_static_int8_onnx_meets_top1_agreement(trained, onnx_file, tmp_path):
    model, preprocessing, held_out, labels, representative = trained
    path = tmp_path / "model_int8.onnx"
    parity = export.export_onnx(
        model,
        path,
        quantization="int8",
        preprocessing=preprocessing,
        representative_data=representative,
        parity_data=held_out,
    )
    assert parity.artifact == "onnx_int8" and parity.metric == "top1_agreement" and parity.threshold == 0.98
    assert parity.images == 50 and parity.top1_agreement >= 0.98  # measured 1.0
    assert 0 < parity.max_abs_diff < 0.05  # quantized: not equal, close (measured 0.0058)
    assert os.listdir(tmp_path) == ["model_int8.onnx"]
    assert {"QuantizeLinear", "DequantizeLinear"} <= op_types(path)
    assert os.path.getsize(path) < 0.5 * os.path.getsize(onnx_file[0])  # int8 weights (measured 0.37x)
    runner = export.OnnxModel(path)
    assert runner.input_shape == (SIZE, SIZE, 3) and runner.output_names == ["logits", "probabilities"]
    assert np.mean(np.argmax(runner(held_out)["probabilities"], -1) == labels) >= 0.9


@needs_onnx
def test_int8_without_representative_images_writes_nothing(trained, tmp_path):
    model, preprocessing, *_ = trained
    with pytest.raises(ValueError, match=r"`quantization='int8'` needs `representative_data`"):
        export.export_onnx(model, tmp_path / "m.onnx", quantization="int8", preprocessing=preprocessing)
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------- parity, paths, arguments


@needs_onnx
def test_failed_parity_is_refused_and_writes_nothing(trained, tmp_path, monkeypatch):
    model, preprocessing, *_ = trained
    monkeypatch.setitem(export.parity.CRITERIA, "onnx_float32", ("max_abs_diff", 0.0))  # nothing can pass
    with pytest.raises(export.ParityError, match=r"onnx_float32: max abs difference .* on 8 images") as info:
        export.export_onnx(model, tmp_path / "refused.onnx", preprocessing=preprocessing)
    assert info.value.parity.artifact == "onnx_float32" and not info.value.parity.passed
    assert os.listdir(tmp_path) == []


@needs_onnx
def test_export_of_a_run_directory_puts_its_preprocessing_in_the_graph(trained, run_dir, onnx_file, tmp_path):
    model, preprocessing, held_out, *_ = trained
    target = tmp_path / "run.onnx"
    target.write_text("an older export")
    with pytest.raises(FileExistsError, match="overwrite"):
        export.export_onnx(run_dir, target)
    assert target.read_text() == "an older export"
    parity = export.export_onnx(run_dir, target, overwrite=True)
    assert parity.images == 8 and parity.passed  # the run records no dataset: 8 random images
    out = export.OnnxModel(target)(held_out)["probabilities"]
    np.testing.assert_allclose(out, keras_probabilities(model, preprocessing, held_out), atol=1e-5)
    assert sorted(os.listdir(tmp_path)) == ["run.onnx"]
    with pytest.raises(ValueError, match=r"`preprocessing` applies to a keras.Model only"):
        export.export_onnx(run_dir, tmp_path / "x.onnx", preprocessing=preprocessing)
    with pytest.raises(ValueError, match=r"is a directory, and this export writes a file"):
        export.export_onnx(model, tmp_path, overwrite=True, preprocessing=preprocessing)


def test_bad_arguments(trained, tmp_path):
    model, *_ = trained
    with pytest.raises(ValueError, match=r"`quantization` must be one of None, 'int8'. Received: quantization='int4'"):
        export.export_onnx(model, tmp_path / "m.onnx", quantization="int4")
    with pytest.raises(ValueError, match=r"Received: quantization='dynamic'"):
        export.export_onnx(model, tmp_path / "m.onnx", quantization="dynamic")
    with pytest.raises(ValueError, match=r"`opset` must be at least 13. Received: opset=12"):
        export.export_onnx(model, tmp_path / "m.onnx", opset=12)
    with pytest.raises(ValueError, match=r"`opset` must be at most 18. Received: opset=19"):
        export.export_onnx(model, tmp_path / "m.onnx", opset=19)
    with pytest.raises(TypeError, match=r"`opset` must be an integer. Received: opset='17'"):
        export.export_onnx(model, tmp_path / "m.onnx", opset="17")
    with pytest.raises(TypeError, match=r"`path` must be a path. Received: path=3"):
        export.export_onnx(model, 3)
    if HAVE_ONNX:
        with pytest.raises(TypeError, match=r"`model_or_run` must be a keras.Model, .* Received: model_or_run=42"):
            export.export_onnx(42, tmp_path / "m.onnx")
        with pytest.raises(ValueError, match=r"`onnx_quantizations` must be one of None, 'int8'"):
            export.export_bundle(model, tmp_path / "b", formats=("onnx",), onnx_quantizations=("float16",))
    assert os.listdir(tmp_path) == []


@needs_onnx
def test_files_that_are_not_our_onnx_models_are_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    with pytest.raises(ValueError, match=r"`model` must be an .onnx file. Received: model=.* \(no such file\)"):
        export.OnnxModel(tmp_path / "missing.onnx")
    (tmp_path / "notes.onnx").write_text("hello")
    with pytest.raises(ValueError, match=r"`model` could not be loaded by ONNX Runtime"):
        export.OnnxModel(tmp_path / "notes.onnx")
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "other",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, str(tmp_path / "other.onnx"))
    with pytest.raises(ValueError, match=r"must be an ONNX file exported by keras_convnets .* outputs \['y'\]"):
        export.OnnxModel(tmp_path / "other.onnx")
    with pytest.raises(ValueError, match=r"`num_threads` must be at least 1. Received: num_threads=0"):
        export.OnnxModel(tmp_path / "other.onnx", num_threads=0)
    with pytest.raises(TypeError, match=r"`model` must be the path of an .onnx file or its bytes"):
        export.OnnxModel(123)


# ----------------------------------------------------------------------------- missing packages


@pytest.mark.parametrize("missing", ["tf2onnx", "onnxruntime"])
def test_missing_packages_are_named_with_the_install_line(trained, run_dir, tmp_path, monkeypatch, capsys, missing):
    model, *_ = trained
    monkeypatch.setitem(sys.modules, missing, None)  # `import missing` raises ImportError
    message = rf"not installed: {missing}\. Install them with: {INSTALL_LINE}"
    with pytest.raises(ImportError, match=message):
        export.export_onnx(model, tmp_path / "m.onnx")
    with pytest.raises(ImportError, match=message):
        export.export_bundle(run_dir, tmp_path / "bundle", formats=("keras", "onnx"))
    if missing == "onnxruntime":
        with pytest.raises(ImportError, match=message):
            export.OnnxModel(b"")
    capsys.readouterr()
    assert main(["export", str(run_dir), "--format", "onnx", "--output", str(tmp_path / "cli")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("convnets export: error: ImportError: ONNX export needs tf2onnx, onnx, onnxruntime")
    assert 'pip install "keras_convnets[onnx]"' in err
    assert os.listdir(tmp_path) == []
    # the default bundle needs none of them
    assert export.DEFAULT_FORMATS == ("saved_model", "tflite", "keras")
    card = export.export_bundle(run_dir, tmp_path / "keras_only", formats=("keras",))
    assert sorted(card["parity"]) == ["keras"] and "onnxruntime" not in card["versions"]


# --------------------------------------------------------------------------------- bundle and CLI


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    images, _ = colour_images(48, 40, seed=21)
    for i, image in enumerate(images):
        tf.io.write_file(str(root / f"{i:03d}.png"), tf.io.encode_png(image))
    return root


@needs_onnx
def test_cli_bundle_writes_onnx_files_and_their_card_entries(run_dir, image_dir, tmp_path, capsys):
    import onnx
    import onnxruntime
    import tf2onnx

    out = tmp_path / "resnet8_colours"
    argv = ["export", str(run_dir), "--format", "keras,onnx", "--onnx-quantize", "float32,int8"]
    assert main([*argv, "--representative-dir", str(image_dir), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert sorted(os.listdir(out)) == ["labels.txt", "model.keras", "model.onnx", "model_card.json", "model_int8.onnx"]
    assert sorted(os.listdir(tmp_path)) == ["resnet8_colours"]
    card = json.loads((out / "model_card.json").read_text())
    parity = card["parity"]
    assert sorted(parity) == ["keras", "onnx_float32", "onnx_int8"]
    assert parity["onnx_float32"]["criterion"] == "max_abs_diff < 0.0001"
    assert parity["onnx_float32"]["max_abs_diff"] < 1e-5 and parity["onnx_float32"]["images"] == 48
    assert parity["onnx_int8"]["criterion"] == "top1_agreement >= 0.98"
    assert parity["onnx_int8"]["top1_agreement"] >= 0.98 and parity["onnx_int8"]["images"] == 12  # held out
    assert all(p["passed"] for p in parity.values())
    onnx_card = card["signatures"]["onnx"]
    assert {k: onnx_card[k] for k in ("opset", "images")} == {"opset": 17, "images": "float32 images"}
    assert onnx_card["parity_reference"].startswith("the Keras model")
    assert onnx_card["int8"] == {
        "format": "QDQ",
        "weights": "int8, per output channel",
        "activations": "uint8, min/max calibration",
        "calibration_images": 36,  # 48 representative images, a quarter held out for the agreement
        "exporting_cpu_has_vnni": onnx_export.cpu_has_vnni(),
    }
    assert card["versions"]["onnxruntime"] == onnxruntime.__version__
    assert card["versions"]["tf2onnx"] == tf2onnx.__version__ and card["versions"]["onnx"] == onnx.__version__
    for name in ("model.onnx", "model_int8.onnx"):
        assert card["files"][name] == os.path.getsize(out / name)
    assert "parity onnx_float32" in printed and "parity onnx_int8" in printed
    assert "QuantizeLinear" in op_types(out / "model_int8.onnx")

    # the export directory (no SavedModel, no TFLite) predicts through its float32 ONNX file
    predictor = export.Predictor(out)
    assert predictor.path == str(out / "model.onnx") and predictor.labels == list(CLASSES)
    images = predictor.load_files(sorted(str(p) for p in image_dir.iterdir())[:5])
    session = onnx_export.OnnxModel(out / "model.onnx")
    np.testing.assert_array_equal(predictor(images), session(images)["probabilities"])
    assert export.Predictor(out / "model_int8.onnx").path == str(out / "model_int8.onnx")
    empty = session(np.zeros((0, *session.input_shape), "float32"))
    assert {name: value.shape for name, value in empty.items()}["probabilities"] == (0, card["classes"])
    with pytest.raises(ValueError, match=r"`images` must be a batch of shape \(N, 32, 32, 3\)"):
        session(images[0])


def test_cli_format_all_and_bad_onnx_quantize(run_dir, tmp_path, monkeypatch, capsys):
    seen = {}

    def fake_bundle(run, output, **options):
        seen.update(options)
        raise ValueError("stop here")

    monkeypatch.setattr(onnx_export, "require_onnx", lambda packages=None: None)
    monkeypatch.setattr(export, "require_onnx", lambda packages=None: None)
    monkeypatch.setattr(export, "export_bundle", fake_bundle)
    assert main(["export", str(run_dir), "--format", "all", "--output", str(tmp_path / "all")]) == 2
    assert seen["formats"] == ["saved_model", "tflite", "keras", "onnx"] and seen["onnx_quantizations"] == [None]
    capsys.readouterr()
    assert main(["export", str(run_dir), "--format", "onnx", "--onnx-quantize", "dynamic"]) == 2
    err = capsys.readouterr().err
    assert "`--onnx-quantize` entries must be among float32, int8. Received: 'dynamic'" in err
    assert main(["export", str(run_dir), "--format", "onnx", "--onnx-quantize", "int8"]) == 2
    assert "`--onnx-quantize int8` needs representative images" in capsys.readouterr().err
    # a quantization of a format that is not written is refused, not ignored
    assert main(["export", str(run_dir), "--format", "saved_model", "--onnx-quantize", "int8"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "convnets export: error: `--onnx-quantize` chooses the onnx files, and `--format` writes none: add onnx "
        "to it. Received: --format saved_model --onnx-quantize int8"
    ]
    assert main(["export", str(run_dir), "--format", "onnx", "--quantize", "int8"]) == 2
    assert "`--quantize` chooses the tflite files" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


@needs_onnx
@pytest.mark.slow  # converts and quantizes a ResNet-20, then times it
def test_inference_benchmark_runs_the_onnx_forms():
    from benchmarks import common, infer

    report = infer.benchmark("resnet20", formats=("keras", "onnx_float32", "onnx_int8"), smoke=True)
    headers, rows = common.parse_markdown_table(report)
    assert headers == ["form", "batch-1 latency ms", "batch-2 img/s", "vs Keras float32 (batch)", "file MB"]
    assert [row[0] for row in rows] == ["keras", "onnx_float32", "onnx_int8"]
    sizes = [float(row[4]) for row in rows[1:]]
    assert 0 < sizes[1] < 0.5 * sizes[0]  # int8 weights: 0.36 MB against 1.09 MB measured
    assert all(float(row[2].replace(",", "")) > 0 for row in rows)


def test_the_bundle_refuses_quantizations_of_a_format_it_does_not_write(run_dir, tmp_path):
    with pytest.raises(ValueError, match=r"`quantizations` chooses the tflite files, and `formats` has no 'tflite'"):
        export.export_bundle(run_dir, tmp_path / "a", formats=("keras",), quantizations=["int8"])
    with pytest.raises(ValueError, match=r"`onnx_quantizations` chooses the onnx files, and `formats` has no 'onnx'"):
        export.export_bundle(run_dir, tmp_path / "b", formats=("keras",), onnx_quantizations=[None, "int8"])
    assert os.listdir(tmp_path) == []
