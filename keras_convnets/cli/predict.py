"""Top-k classes of images from an exported model: an export directory (saved_models/<name>), a SavedModel
directory, a .tflite or an .onnx file. Images are decoded as training decodes them (grayscale, RGBA, palette and
16-bit files become RGB) and go through the evaluation transform the model card records (the central crop of the
`scale` and `inception` recipes); without one, each image is resized whole, with a note on stderr."""

from __future__ import annotations

import argparse
import sys

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="saved_models/<name>, a SavedModel directory, a .tflite or an .onnx file")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="JPEG, PNG, GIF or BMP files")
    parser.add_argument("--top-k", type=int, default=5, help="classes to print per image (default: 5)")
    parser.add_argument(
        "--cam",
        metavar="OUT.png",
        help="also write the Grad-CAM heat map of the printed top-1 class over each image, from the export's "
        "model.keras: OUT.png for one image, OUT_<image name>.png for several (an existing file is never replaced)",
    )


def run(args: argparse.Namespace) -> int:
    from keras_convnets import export

    if args.top_k < 1:
        raise ValueError(f"`--top-k` must be at least 1. Received: {args.top_k}")
    if args.cam is not None:  # the file names before anything is loaded
        from keras_convnets import explain

        explain.cam_paths(args.cam, args.images)
    predictor = export.Predictor(args.model)
    if args.cam is not None:  # and the Keras model before anything is predicted
        explain.export_keras_model(predictor.path)
    for note in predictor.notes:
        print(f"note: {note}", file=sys.stderr)
    probabilities = predictor(predictor.load_files(args.images))
    results = predictor.top_k(probabilities, k=args.top_k)
    for path, top in zip(args.images, results):
        print(path)
        width = max(len(name) for name, _ in top)
        for rank, (name, probability) in enumerate(top, 1):
            print(f"  {rank}. {name:<{width}}  {probability:.4f}")
    if args.cam is not None:
        from keras_convnets.explain.cam_files import top_classes

        # The printed top-1 class of each image: the map explains what the command printed.
        explain.write_cams(predictor, args.images, args.cam, class_index=top_classes(probabilities), say=print)
    return 0
