"""Export a training run (or a `.keras` file) to SavedModel, TFLite and `.keras` (and ONNX on request), each
checked against the Keras model, with labels and a model card, under saved_models/<name>/."""

from __future__ import annotations

import argparse
import os

__all__ = ["configure", "run"]

QUANTIZE_CHOICES = ("float32", "float16", "dynamic", "int8")
ONNX_QUANTIZE_CHOICES = ("float32", "int8")
DEFAULT_FORMAT = "saved_model,tflite,keras"


def _csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source", metavar="RUN_DIR_OR_MODEL", help="a run directory (with model.keras) or a .keras file"
    )
    parser.add_argument(
        "--format",
        default=DEFAULT_FORMAT,
        help=f"comma-separated: saved_model, tflite, keras, onnx, or all (default: {DEFAULT_FORMAT}; onnx needs "
        'pip install "keras_convnets[onnx]")',
    )
    parser.add_argument(
        "--quantize",
        default=None,
        help="comma-separated TFLite variants, one file each: float32, float16, dynamic, int8 (default: float32)",
    )
    parser.add_argument(
        "--int8-io",
        default="uint8",
        choices=("uint8", "int8", "float32"),
        help="input/output type of the int8 file (default: uint8)",
    )
    parser.add_argument(
        "--onnx-quantize",
        default=None,
        help="comma-separated ONNX variants, one file each: float32 (model.onnx), int8 (model_int8.onnx, static, "
        "float32 input and outputs) (default: float32)",
    )
    parser.add_argument("--output", default=None, help="destination directory (default: saved_models/<name>)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing destination")
    parser.add_argument(
        "--representative-dir",
        default=None,
        help="images to calibrate int8 (a quarter held out to check agreement), read through the run's "
        "evaluation transform; default: a sample of the run's training split, if its dataset is on disk",
    )
    parser.add_argument("--representative-count", type=int, default=200, help="images to read (default: 200)")


def run(args: argparse.Namespace) -> int:
    from keras_convnets import export
    from keras_convnets.export.run_images import run_augmentation, run_calibration_images
    from keras_convnets.utils.backend import require_tensorflow_backend

    require_tensorflow_backend("export")
    formats = list(export.FORMATS) if args.format.strip() == "all" else _csv(args.format)
    for value in formats:
        if value not in export.FORMATS:
            raise ValueError(f"`--format` entries must be among {', '.join(export.FORMATS)}. Received: {value!r}")
    chosen = (("--quantize", args.quantize, "tflite"), ("--onnx-quantize", args.onnx_quantize, "onnx"))
    for option, value, needs in chosen:
        if value is not None and needs not in formats:
            raise ValueError(
                f"`{option}` chooses the {needs} files, and `--format` writes none: add {needs} to it. "
                f"Received: --format {','.join(formats)} {option} {value}"
            )
    quantize = _csv(args.quantize or "float32")
    for value in quantize:
        if value not in QUANTIZE_CHOICES:
            raise ValueError(f"`--quantize` entries must be among {', '.join(QUANTIZE_CHOICES)}. Received: {value!r}")
    onnx_quantize = _csv(args.onnx_quantize or "float32")
    for value in onnx_quantize:
        if value not in ONNX_QUANTIZE_CHOICES:
            raise ValueError(
                f"`--onnx-quantize` entries must be among {', '.join(ONNX_QUANTIZE_CHOICES)}. Received: {value!r}"
            )
    if "onnx" in formats:
        export.require_onnx()  # before any work: one line naming the install command
    if args.representative_count < 2:
        raise ValueError(f"`--representative-count` must be at least 2. Received: {args.representative_count}")
    run_info = export.load_run(args.source)
    output = args.output or os.path.join("saved_models", run_info.name)
    export.check_destination(os.path.abspath(output), args.overwrite)
    shape = export.check_input_size(run_info.model)
    representative = None
    augmentation = run_augmentation(run_info.info)  # calibrate on images as evaluation saw them
    if args.representative_dir:
        representative = export.directory_images(
            args.representative_dir, shape, count=args.representative_count, augmentation=augmentation
        )
    elif ("int8" in quantize and "tflite" in formats) or ("int8" in onnx_quantize and "onnx" in formats):
        representative, found = run_calibration_images(
            run_info.info, run_info.metrics, shape, count=args.representative_count
        )
        if representative is None:
            option = "--quantize int8" if "int8" in quantize and "tflite" in formats else "--onnx-quantize int8"
            raise ValueError(
                f"`{option}` needs representative images: pass `--representative-dir DIR` ({found['reason']})."
            )
    card = export.export_bundle(
        run_info,
        output,
        formats=formats,
        quantizations=[None if q == "float32" else q for q in quantize],
        onnx_quantizations=[None if q == "float32" else q for q in onnx_quantize],
        representative_data=representative,
        int8_io=None if args.int8_io == "float32" else args.int8_io,
        overwrite=args.overwrite,
    )
    architecture = card["architecture"]  # a builder and its options where run.json records them, else a name
    if isinstance(architecture, dict):
        architecture = architecture.get("builder") or card["source"]
    print(f"exported {architecture} to {output}")
    for name, size in card["files"].items():
        print(f"  {name:<24} {size:>12,} bytes")
    for name, parity in card["parity"].items():
        print(
            f"  parity {name:<16} max|dp| {parity['max_abs_diff']:.3g}  top-1 agreement "
            f"{parity['top1_agreement']:.2%} on {parity['images']} images ({parity['criterion']})"
        )
    return 0
