"""Grad-CAM overlays of image files from an export (`convnets predict ... --cam OUT.png`).

Grad-CAM needs the Keras model: the export directory's `model.keras` (written by `convnets export` with the `keras`
format, beside `saved_model/`, the `.tflite` files and `model_card.json`). It takes raw pixels, as the SavedModel
does, so the images are read exactly as `convnets predict` reads them (`Predictor.load_files`).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import numpy as np

from keras_convnets.explain.maps import default_layer, grad_cam, overlay

__all__ = ["cam_paths", "export_keras_model", "top_classes", "write_cams"]

KERAS_FILE = "model.keras"


def cam_paths(output: str | os.PathLike, images: Sequence[str | os.PathLike]) -> list[str]:
    """Where the overlays of `images` go: `output` itself for one image; for several, `<stem>_<image stem>.png`
    beside `output` (`cam.png` and `a.jpg`, `b.png` -> `cam_a.png`, `cam_b.png`), an image stem met before getting
    the image's position, counted from 1 (`x/a.jpg`, `y/a.jpg` -> `cam_a.png`, `cam_a_2.png`). A path where a file
    already is, is refused: nothing is replaced."""
    output = os.fspath(output)
    if not output.lower().endswith(".png"):
        raise ValueError(f"`--cam` must be a `.png` file name. Received: --cam={output!r}")
    directory = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"The directory of `--cam` does not exist. Received: --cam={output!r}")
    paths = [output] if len(images) == 1 else _several(output, images)
    sources = {os.path.abspath(os.fspath(image)) for image in images}
    for path in paths:
        if os.path.abspath(path) in sources:
            raise ValueError(f"`--cam` would overwrite the image {path!r}. Received: --cam={output!r}")
        if os.path.lexists(path):
            raise FileExistsError(
                f"`--cam` would replace the existing file {path!r}: remove it or choose another name. "
                f"Received: --cam={output!r}"
            )
    return paths


def _several(output: str, images: Sequence[str | os.PathLike]) -> list[str]:
    stem = output[: -len(".png")]
    paths, used = [], set()
    for position, image in enumerate(images, 1):
        key = os.path.splitext(os.path.basename(os.fspath(image)))[0]
        while key in used:
            key = f"{key}_{position}"
        used.add(key)
        paths.append(f"{stem}_{key}.png")
    return paths


def top_classes(probabilities) -> np.ndarray:
    """Each row's top-1 class, as `Predictor.top_k` ranks them (the first of equal probabilities)."""
    return np.argsort(-np.asarray(probabilities), axis=-1, kind="stable")[:, 0]


def export_keras_model(model: str | os.PathLike) -> str:
    """The `model.keras` of the export that `model` (what `convnets predict` takes: an export directory, its
    `saved_model/` or one of its `.tflite` files) belongs to; a clear error where there is none."""
    path = os.path.abspath(os.fspath(model))
    if os.path.isdir(path):
        bundle = os.path.dirname(path) if os.path.isfile(os.path.join(path, "saved_model.pb")) else path
    else:
        bundle = os.path.dirname(path)
    keras_file = os.path.join(bundle, KERAS_FILE)
    if not (os.path.isfile(keras_file) and os.path.isfile(os.path.join(bundle, "model_card.json"))):
        raise ValueError(
            f"`--cam` needs the Keras model of an export ({KERAS_FILE} beside model_card.json, written by "
            f"`convnets export` with the keras format), and there is none in {bundle!r}. Received: model={path!r}"
        )
    return keras_file


def write_cams(
    predictor,
    images: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    class_index: Any = None,
    alpha: float = 0.4,
    colormap: str = "jet",
    say: Callable[[str], None] | None = None,
) -> list[str]:
    """Write the Grad-CAM overlay of each image file (from the export's Keras model, at `default_layer`), named by
    `cam_paths`; `say` gets one line per file. Returns the paths written.

    `class_index` is the class of each image's map (as `grad_cam` takes it); `None` is the top-1 class of
    `predictor` itself (the SavedModel or `.tflite` file that `convnets predict` prints, also where an int8 model's
    top class differs from the Keras model's). The file names and the Keras model are checked before anything runs.

    `predictor` is a `keras_convnets.export.Predictor` (or the path it takes): the images are read as it reads them
    (`Predictor.load_files`: training's decoding, then the export's evaluation transform). Where that transform
    is a whole-image resize (recipes `crop_flip` and `none`, or none recorded) the map is laid over the decoded
    image at its own size; where it is a central crop (`scale`, `inception`) over the crop the model sees, at the
    model's input size.
    """
    import keras

    from keras_convnets.data.serving import read_image
    from keras_convnets.export.predict import Predictor

    paths = cam_paths(output, images)
    if not isinstance(predictor, Predictor):
        predictor = Predictor(predictor)
    keras_file = export_keras_model(predictor.path)
    try:
        network = keras.saving.load_model(keras_file, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises ValueError, OSError, zipfile errors ... for a bad file
        raise ValueError(f"`model` could not be loaded as a Keras model. Received: {keras_file!r} ({error})") from error
    batch = predictor.load_files(images)
    if class_index is None:
        class_index = top_classes(predictor(batch))
    maps = grad_cam(network, batch, class_index=class_index)  # checks class_index
    classes = np.broadcast_to(np.asarray(class_index), (len(batch),))
    whole_image = predictor.augmentation in (None, "none", "crop_flip")
    labels = predictor.labels
    layer = default_layer(network)
    for image, seen, heatmap, index, path in zip(images, batch, maps, classes, paths):
        overlay(read_image(image).numpy() if whole_image else seen, heatmap, path, alpha=alpha, colormap=colormap)
        if say is not None:
            name = labels[index] if labels and index < len(labels) else str(index)
            say(f"Grad-CAM of {os.fspath(image)} (class {name}, layer {layer}): {path}")
    return paths
