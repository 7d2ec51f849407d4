"""Where the images come from (`load_dataset(name)`):
- `"digits"`: scikit-learn's handwritten digits, embedded (no network): 1,797 images of 8x8 in 0..16, rescaled to
  raw pixels 0..255, resized to 32x32 and repeated to 3 channels; a fixed 80/20 split (1,438 / 359).
- a directory with one sub-folder of images per class (optionally `train/` and `test/` or `validation/` sub-folders
  each holding those); files that are not JPEG, PNG, GIF or BMP (by their signature and a header that Pillow
  reads) are skipped and counted in a warning, and so are images of more than `MAX_IMAGE_PIXELS` pixels (a
  decompression bomb: a 20000x20000 PNG of 400 KB decodes into 1.2 GB, at every read).
- any image-classification dataset of tensorflow-datasets by name (`cifar10`, `imagenette`, `imagenet2012`, ...),
  read from `data_dir`.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import tensorflow as tf

from keras_convnets.data.dataset import ImageData, files_dataset
from keras_convnets.data.idx import is_idx_dir, load_idx_dir
from keras_convnets.data.keras_datasets import BUILTIN_DATASETS, load_builtin
from keras_convnets.data.tfds import load_tfds
from keras_convnets.data.tfrecord import is_tfrecord_dir, load_tfrecord_dir

__all__ = [
    "EMBEDDED",
    "IMAGE_SIGNATURES",
    "MAX_IMAGE_PIXELS",
    "load_dataset",
    "load_digits",
    "load_image_folder",
    "load_tfds",
]

EMBEDDED = ("digits",)
IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")
MAX_IMAGE_PIXELS = 89_478_485  # Pillow's `Image.MAX_IMAGE_PIXELS`, its decompression-bomb threshold
AUTOTUNE = tf.data.AUTOTUNE


def load_dataset(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    test_fraction: float = 0.2,
) -> ImageData:
    """`"digits"`, `"fashion_mnist"`, `"mnist"`, `"cifar10"`, `"cifar100"` (`load_builtin`), a directory of IDX
    files (`load_idx_dir`), of TFRecord shards (`load_tfrecord_dir`) or of class folders, or a tensorflow-datasets
    name."""
    if not isinstance(name, (str, os.PathLike)) or not os.fspath(name):
        raise TypeError(f"`dataset` must be a dataset name or a directory. Received: dataset={name!r}")
    name = os.fspath(name)
    if name == "digits":
        return load_digits()
    if is_idx_dir(name):
        return load_idx_dir(name)
    if is_tfrecord_dir(name):
        return load_tfrecord_dir(name)
    if os.path.isdir(name):
        return load_image_folder(name, test_fraction=test_fraction)
    if os.sep in name or name.startswith("."):
        raise ValueError(f"`dataset` looks like a path but no such directory exists. Received: dataset={name!r}")
    if name in BUILTIN_DATASETS:
        return load_builtin(name, data_dir=data_dir)
    return load_tfds(name, data_dir=data_dir)


def load_digits(image_size: int = 32) -> ImageData:
    """scikit-learn's digits as raw 0..255 RGB images of `image_size` pixels, split 80/20 with a fixed permutation."""
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype("float32")[..., None]  # (1797, 8, 8, 1)
    images = tf.image.resize(images, (image_size, image_size), method="bilinear").numpy()
    images = np.repeat(np.clip(np.round(images), 0, 255).astype("uint8"), 3, axis=-1)
    labels = digits.target.astype("int32")
    order = np.random.RandomState(0).permutation(len(images))
    n_test = int(round(0.2 * len(images)))
    test, train = order[:n_test], order[n_test:]
    return ImageData(
        name="digits",
        train=tf.data.Dataset.from_tensor_slices((images[train], labels[train])),
        test=tf.data.Dataset.from_tensor_slices((images[test], labels[test])),
        num_train=len(train),
        num_test=len(test),
        labels=[str(i) for i in range(10)],
        image_size=image_size,
        horizontal_flip=False,
        suggested_epochs=15,
        suggested_batch_size=64,
        train_arrays=(images[train], labels[train]),
    )


def _is_image(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return False
    return any(head.startswith(signature) for signature in IMAGE_SIGNATURES)


def _pixels(path: str) -> int | None:
    """Width x height from the image's header (Pillow reads only the header), or None when Pillow cannot
    identify it (a damaged file behind a valid signature)."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as image:
                width, height = image.size
        except Image.DecompressionBombError:
            return MAX_IMAGE_PIXELS + 1
        except Exception:  # UnidentifiedImageError, OSError, SyntaxError ...: not an image it can read
            return None
    return width * height


def _scan_classes(root: str, too_large: list[str] | None = None) -> tuple[dict[str, list[str]], int]:
    """`{class: [image paths]}` of the class folders under `root`, and the number of skipped files; the images
    of more than `MAX_IMAGE_PIXELS` pixels are skipped and appended to `too_large`."""
    classes, skipped = {}, 0
    too_large = [] if too_large is None else too_large
    for entry in sorted(os.listdir(root)):
        folder = os.path.join(root, entry)
        if not os.path.isdir(folder) or entry.startswith("."):
            continue
        paths = []
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames.sort()
            for filename in sorted(filenames):
                if filename.startswith("."):
                    continue
                path = os.path.join(dirpath, filename)
                pixels = _pixels(path) if _is_image(path) else None
                if pixels is None:
                    skipped += 1
                elif pixels > MAX_IMAGE_PIXELS:
                    too_large.append(path)
                else:
                    paths.append(path)
        if paths:
            classes[entry] = paths
    return classes, skipped


def _files(items: list[tuple[str, int]]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([p for p, _ in items], dtype=object), np.array([label for _, label in items], dtype="int32")


def load_image_folder(root: str | os.PathLike, *, test_fraction: float = 0.2) -> ImageData:
    """Images in one sub-folder per class. With `train/` and `test/` (or `validation/`) sub-folders, those are the
    splits; otherwise `test_fraction` of each class (at least one image when a class has two) is held out with a
    fixed permutation."""
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise ValueError(f"`dataset` must be an existing directory of class folders. Received: dataset={root!r}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"`test_fraction` must be in (0, 1). Received: test_fraction={test_fraction!r}")
    test_name = next((n for n in ("test", "validation", "val") if os.path.isdir(os.path.join(root, n))), None)
    too_large: list[str] = []
    if os.path.isdir(os.path.join(root, "train")) and test_name:
        train_classes, skipped_train = _scan_classes(os.path.join(root, "train"), too_large)
        test_classes, skipped_test = _scan_classes(os.path.join(root, test_name), too_large)
        skipped = skipped_train + skipped_test
        names = sorted(train_classes)
        index = {c: i for i, c in enumerate(names)}
        unknown = sorted(set(test_classes) - set(index))
        if unknown:
            raise ValueError(f"The {test_name}/ folder of {root!r} has classes that train/ lacks: {unknown}")
        train_items = [(p, index[c]) for c in names for p in train_classes[c]]
        test_items = [(p, index[c]) for c in sorted(test_classes) for p in test_classes[c]]
    else:
        classes, skipped = _scan_classes(root, too_large)
        names = sorted(classes)
        train_items, test_items = [], []
        rng = np.random.RandomState(0)
        for label, c in enumerate(names):
            paths = classes[c]
            order = rng.permutation(len(paths))
            n_test = int(round(test_fraction * len(paths))) if len(paths) > 1 else 0
            n_test = max(n_test, 1) if len(paths) > 1 else 0
            test_items += [(paths[i], label) for i in sorted(order[:n_test])]
            train_items += [(paths[i], label) for i in sorted(order[n_test:])]
    if skipped:
        warnings.warn(
            f"Skipped {skipped} files that are not images (JPEG, PNG, GIF or BMP) under {root!r}.", stacklevel=2
        )
    if too_large:
        shown = ", ".join(os.path.relpath(path, root) for path in too_large[:5])
        shown += ", ..." if len(too_large) > 5 else ""
        warnings.warn(
            f"Skipped {len(too_large)} images of more than {MAX_IMAGE_PIXELS:,} pixels under {root!r} (a "
            f"decompression bomb, or an image too large to decode at every read): {shown}.",
            stacklevel=2,
        )
    if not train_items:
        raise ValueError(
            f"`dataset` directory {root!r} holds no images (after skipping {skipped} files that are not images). "
            "Expected one sub-folder of images per class."
        )
    if len(names) < 2:
        raise ValueError(
            f"`dataset` directory must hold at least 2 class folders with images; found {len(names)} "
            f"({', '.join(names) or 'none'}). Received: dataset={root!r}"
        )
    if not test_items:
        raise ValueError(f"`dataset` directory {root!r} has too few images to hold out a test split.")
    train_files, test_files = _files(train_items), _files(test_items)
    return ImageData(
        name=os.path.basename(os.path.normpath(root)),
        train=files_dataset(*train_files),
        test=files_dataset(*test_files),
        num_train=len(train_items),
        num_test=len(test_items),
        labels=names,
        notes=([f"skipped {skipped} files that are not images"] if skipped else [])
        + ([f"skipped {len(too_large)} images of more than {MAX_IMAGE_PIXELS:,} pixels"] if too_large else []),
        train_files=train_files,
        test_files=test_files,
    )
