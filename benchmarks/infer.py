"""Inference speed of one model in each exported form: batch-1 latency and batch-32 throughput.

    python -m benchmarks.infer                      # ResNet-50 at 224
    python -m benchmarks.infer --model resnet20 --formats keras,tflite_dynamic
    python -m benchmarks.infer --formats keras,onnx_float32,onnx_int8
    python -m benchmarks.infer --smoke

Forms: the Keras model called in a `tf.function` (float32, and mixed bfloat16 built with that policy), the
SavedModel of `keras_convnets.export.export_saved_model` (its `serving_default` signature), and TFLite files
converted by `keras_convnets.export.tflite_converter` in each quantization mode (float32, float16 weights,
dynamic-range int8, full int8 calibrated on random images) run by the LiteRT interpreter, and ONNX files of
`keras_convnets.export.onnx` (float32, and static int8 QDQ calibrated on random images) run by ONNX Runtime
(`pip install "keras_convnets[onnx]"`), each runtime with as many threads as the machine has CPUs. The weights
are random (a speed test): the exports' accuracy is checked by
`keras_convnets.export`, not here. Preprocessing is not in the measured graphs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

from benchmarks import common

FORMATS = (
    "keras",
    "keras_bfloat16",
    "saved_model",
    "tflite_float32",
    "tflite_float16",
    "tflite_dynamic",
    "tflite_int8",
    "onnx_float32",
    "onnx_int8",
)
SIZES = {"resnet50": 224, "resnet20": 32, "googlenet": 224}
CLASSES = {"resnet50": 1000, "resnet20": 10, "googlenet": 1000}


def build(name: str, size: int, classes: int, policy: str = "float32"):
    import keras_convnets
    from benchmarks.train import dtype_policy

    with dtype_policy(policy):
        model = keras_convnets.get_model(name, input_shape=(size, size, 3), classes=classes)
    return keras_convnets.strip_aux(model)


def keras_runner(model, images):
    import tensorflow as tf

    function = tf.function(lambda x: model(x, training=False))
    batch = tf.constant(images)

    def run(steps: int):
        for _ in range(steps):
            out = function(batch)
        return out.numpy()

    return run


def saved_model_runner(path: str, images):
    import tensorflow as tf

    from keras_convnets.export import INPUT_NAME, SIGNATURE, SavedModel

    function = SavedModel(path).signatures[SIGNATURE]
    batch = tf.constant(images)

    def run(steps: int):
        for _ in range(steps):
            out = function(**{INPUT_NAME: batch})
        return out["probabilities"].numpy()

    return run


def tflite_runner(content: bytes, images):
    from keras_convnets.export import TFLiteModel

    model = TFLiteModel(content, num_threads=os.cpu_count())

    def run(steps: int):
        for _ in range(steps):
            out = model(images)
        return out["probabilities"]

    return run


def onnx_runner(content: bytes, images):
    from keras_convnets.export import OnnxModel

    model = OnnxModel(content, num_threads=os.cpu_count())

    def run(steps: int):
        for _ in range(steps):
            out = model(images, batch_size=len(images))
        return out["probabilities"]

    return run


def onnx_content(net, quantization: str | None, calibration, scratch: str) -> bytes:
    from keras_convnets.export import InferenceGraph
    from keras_convnets.export.onnx import convert_onnx, quantize_onnx_int8

    content = convert_onnx(InferenceGraph(net))
    return content if quantization is None else quantize_onnx_int8(content, calibration, scratch)


def tflite_content(saved_model_dir: str, quantization: str | None, calibration):
    import warnings

    from keras_convnets.export import tflite_converter

    converter = tflite_converter(
        saved_model_dir, quantization, calibration, "uint8" if quantization == "int8" else None
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return converter.convert()


def benchmark(
    model: str = "resnet50",
    formats=FORMATS,
    *,
    rounds: int = 3,
    smoke: bool = False,
    log=None,
    batch: int = 32,
    latency_calls: int = 10,
) -> str:
    import numpy as np

    load_before = common.load_average()
    for form in formats:
        if form not in FORMATS:
            raise ValueError(f"`formats` must be among {', '.join(FORMATS)}. Received: {form!r}")
    size = SIZES[model] if not smoke else 32
    classes = CLASSES[model] if not smoke else 10
    if smoke:
        batch, latency_calls, rounds = 2, 1, 1
    rng = np.random.default_rng(0)
    images = {n: (rng.random((n, size, size, 3)) * 255).astype("float32") for n in (1, batch)}
    net = build(model, size, classes)
    runners: dict[str, dict[int, object]] = {}
    notes = []
    with tempfile.TemporaryDirectory() as scratch:
        saved_model_dir = os.path.join(scratch, "saved_model")
        needs_export = any(f == "saved_model" or f.startswith("tflite") for f in formats)
        if any(f.startswith("onnx") for f in formats):
            from keras_convnets.export import require_onnx

            require_onnx()
        if needs_export:
            from keras_convnets.export import export_saved_model

            if log:
                log("exporting the SavedModel")
            export_saved_model(net, saved_model_dir)
        for form in formats:
            if log:
                log(f"preparing {form}")
            if form == "keras":
                runners[form] = {n: keras_runner(net, images[n]) for n in images}
            elif form == "keras_bfloat16":
                bf16 = build(model, size, classes, "mixed_bfloat16")
                bf16.set_weights(net.get_weights())
                runners[form] = {n: keras_runner(bf16, images[n]) for n in images}
            elif form == "saved_model":
                runners[form] = {n: saved_model_runner(saved_model_dir, images[n]) for n in images}
            elif form.startswith("onnx"):
                quantization = None if form == "onnx_float32" else "int8"
                calibration = (rng.random((4 if smoke else 16, size, size, 3)) * 255).astype("float32")
                content = onnx_content(net, quantization, calibration, scratch)
                runners[form] = {n: onnx_runner(content, images[n]) for n in images}
                runners[form]["bytes"] = len(content)
            else:
                quantization = form.split("_", 1)[1]
                quantization = None if quantization == "float32" else quantization
                calibration = (rng.random((4 if smoke else 16, size, size, 3)) * 255).astype("float32")
                content = tflite_content(saved_model_dir, quantization, calibration)
                runners[form] = {n: tflite_runner(content, images[n]) for n in images}
                runners[form]["bytes"] = len(content)
        configs = []
        for form in formats:
            configs.append(common.Config(f"{form} b1", runners[form][1], 1, steps=latency_calls))
            configs.append(common.Config(f"{form} b{batch}", runners[form][batch], batch, steps=1))
        timings = common.measure(configs, rounds=rounds, log=log)
    reference = timings[f"keras b{batch}"].median if "keras" in formats else None
    headers = ["form", "batch-1 latency ms", f"batch-{batch} img/s", "vs Keras float32 (batch)", "file MB"]
    rows = []
    for form in formats:
        latency = 1000.0 / timings[f"{form} b1"].median
        throughput = timings[f"{form} b{batch}"].median
        size_mb = runners[form].get("bytes")
        rows.append(
            [
                form,
                common.fmt(latency),
                common.fmt(throughput),
                common.fmt(throughput / reference if reference else None, 2),
                common.fmt(size_mb / 1e6 if size_mb else None),
            ]
        )
    header = common.report_header(f"Inference, {model} at {size}x{size}", rounds=rounds, load_before=load_before)
    return "\n".join([header, common.markdown_table(headers, rows), ""] + notes)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.infer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet50", choices=sorted(SIZES))
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated: " + ", ".join(FORMATS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="32x32 input, batch 2, one round: checks that it runs")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    for form in formats:
        if form not in FORMATS:
            parser.error(f"--formats must be among {', '.join(FORMATS)}. Received: {form!r}")
    log = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    print(benchmark(args.model, formats, rounds=args.rounds, smoke=args.smoke, log=log))
    return 0


if __name__ == "__main__":
    sys.exit(main())
