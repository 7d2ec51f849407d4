"""The images an export of a training run is checked on (the run's own test split, as evaluation saw it) and the
images its int8 file is calibrated on (the run's training split, through the same evaluation transform).

`run_parity_images` reads the dataset that run.json records (`dataset_source`, else `dataset`, with its
`data_dir`) through `keras_convnets.data.load_dataset`, takes the first images of its test split through the
evaluation transform of the run's recipe (`eval_pipeline`: raw uint8 pixels at the model's input size, the
centre crop of the `scale` and `inception` recipes) and returns them with a description for the model card. When
the dataset cannot be read on this machine it returns None and says why; the export then falls back to the
images it was given, or to uniform noise. `run_calibration_images` reads a sample of the training split the same
way. Nothing is downloaded for a tensorflow-datasets name that is not prepared on this machine.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Sequence

import numpy as np

__all__ = ["RUN_PARITY_IMAGES", "run_augmentation", "run_calibration_images", "run_parity_images"]

RUN_PARITY_IMAGES = 100  # test images an export of a run is checked on (top-1 agreement needs this many)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def _load(name: str, data_dir: str | None):
    from keras_convnets.data import load_dataset
    from keras_convnets.data.keras_datasets import BUILTIN_DATASETS, _tfds_prepared

    looks_like_a_path = os.sep in name or name.startswith(".")
    if name != "digits" and not looks_like_a_path and not os.path.isdir(name) and name not in BUILTIN_DATASETS:
        if not _tfds_prepared(name, data_dir):
            raise ValueError(f"tensorflow-datasets has not prepared {name!r} here, and an export downloads nothing")
    return load_dataset(name, data_dir=data_dir)


def run_augmentation(info: dict) -> str | None:
    """The augmentation of the run's recipe (run.json's `recipe.augmentation`): its evaluation transform is what
    the model was evaluated on. None where run.json records no recipe."""
    recipe = info.get("recipe") if isinstance(info, dict) else None
    augmentation = recipe.get("augmentation") if isinstance(recipe, dict) else None
    return augmentation if isinstance(augmentation, str) else None


def _dataset_name(info: dict, metrics: dict) -> str | None:
    name = info.get("dataset_source") or info.get("dataset") or metrics.get("dataset")
    return os.fspath(name) if name else None


def run_calibration_images(
    info: dict, metrics: dict, shape: Sequence[int], *, count: int = 200, seed: int = 0
) -> tuple[np.ndarray | None, dict[str, Any]]:
    """`(images, description)`: up to `count` raw-pixel float32 images (N, *shape) of the run's training split
    through the evaluation transform of its recipe (`eval_pipeline`), a random sample (`data.subset`, `seed`) where
    the split is a file list or arrays, else its first images; `{"source": "train split of NAME", "count": N}`.
    `(None, {"reason": ...})` when the run's dataset cannot be read here. The calibration images of int8."""
    from keras_convnets.data import eval_pipeline, subset
    from keras_convnets.data.dataset import train_arrays_of, train_files_of

    info = info if isinstance(info, dict) else {}
    metrics = metrics if isinstance(metrics, dict) else {}
    name = _dataset_name(info, metrics)
    if not name:
        return None, {"reason": "the run records no dataset"}
    height, width, channels = shape
    if height != width or channels != 3:
        return None, {"reason": f"the model's input {tuple(shape)} is not a square RGB image, as evaluation's is"}
    try:  # loading raises ValueError, OSError, tfds and TensorFlow errors: any of them means "not here"
        data = _load(name, info.get("data_dir"))
        if train_files_of(data) is not None or train_arrays_of(data) is not None:
            data = subset(data, max_train=count, seed=seed)
        elif data.num_train > count:
            data = dataclasses.replace(data, train=data.train.take(count), num_train=count)
        augmentation = run_augmentation(info) or "none"
        ds = eval_pipeline(
            data, batch_size=64, image_size=height, augmentation=augmentation, split="train", cache=False
        )
        batches = [np.asarray(x, "float32") for x, _ in ds.as_numpy_iterator()]
    except Exception as error:
        return None, {"reason": f"the training split of {name!r} could not be read here ({_first_line(error)})"}
    images = np.concatenate(batches)[:count] if batches else np.zeros((0, *shape), "float32")
    if len(images) == 0 or tuple(images.shape[1:]) != tuple(shape):
        reason = f"the training split of {data.name!r} gave no images of the model's size {tuple(shape)}"
        return None, {"reason": reason}
    return images, {"source": f"train split of {data.name}", "count": int(len(images))}


def run_parity_images(
    info: dict,
    metrics: dict,
    shape: Sequence[int],
    *,
    count: int = RUN_PARITY_IMAGES,
    exclude: np.ndarray | None = None,
) -> tuple[np.ndarray | None, dict[str, Any]]:
    """`(images, description)`: up to `count` raw-pixel float32 images (N, *shape) of the run's test split, none
    of them equal to an image of `exclude` (the calibration images), and `{"source": "test split of NAME",
    "count": N}`; or `(None, {"reason": ...})` when the run's dataset cannot be read here."""
    from keras_convnets.data import eval_pipeline

    info = info if isinstance(info, dict) else {}
    metrics = metrics if isinstance(metrics, dict) else {}
    name = _dataset_name(info, metrics)
    if not name:
        return None, {"reason": "the run records no dataset"}
    height, width, channels = shape
    if height != width or channels != 3:
        return None, {"reason": f"the model's input {tuple(shape)} is not a square RGB image, as evaluation's is"}
    augmentation = run_augmentation(info) or "none"
    excluded = set() if exclude is None else {np.asarray(image, "float32").tobytes() for image in exclude}
    try:  # loading raises ValueError, OSError, tfds and TensorFlow errors: any of them means "not here"
        data = _load(name, info.get("data_dir"))
        wanted = min(data.num_test, count + len(excluded))
        data = dataclasses.replace(data, test=data.test.take(wanted), num_test=wanted)
        ds = eval_pipeline(data, batch_size=64, image_size=height, augmentation=augmentation, cache=False)
        batches = [np.asarray(x, "float32") for x, _ in ds.as_numpy_iterator()]
    except Exception as error:
        return None, {"reason": f"the test split of {name!r} could not be read here ({_first_line(error)})"}
    images = np.concatenate(batches) if batches else np.zeros((0, *shape), "float32")
    if excluded:
        images = images[[image.tobytes() not in excluded for image in images]] if len(images) else images
    images = images[:count]
    if len(images) == 0 or tuple(images.shape[1:]) != tuple(shape):
        return None, {"reason": f"the test split of {data.name!r} gave no images of the model's size {tuple(shape)}"}
    return images, {"source": f"test split of {data.name}", "count": int(len(images))}
