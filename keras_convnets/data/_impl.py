"""Image-classification data: where it comes from, and the tf.data pipelines that feed `model.fit`.

Sources (`load_dataset(name)`):
- `"digits"`: scikit-learn's handwritten digits, embedded (no network): 1,797 images of 8x8 in 0..16, rescaled to
  raw pixels 0..255, resized to 32x32 and repeated to 3 channels; a fixed 80/20 split (1,437 / 360).
- a directory with one sub-folder of images per class (optionally `train/` and `test/` or `validation/` sub-folders
  each holding those); files that are not JPEG, PNG, GIF or BMP are skipped and counted in a warning.
- any image-classification dataset of tensorflow-datasets by name (`cifar10`, `imagenette`, `imagenet2012`, ...),
  read from `data_dir`.

Pipelines (`train_pipeline`, `eval_pipeline`) decode in parallel, cache in memory what fits, augment, apply the
recipe's `Preprocessing` and prefetch. Augmentations:
- `"crop_flip"` (He et al. 2016, Section 4.2): pad 4 pixels, random crop back to size, horizontal flip; vectorised
  on whole batches.
- `"scale"` (Section 3.4): shorter side resized at random in [256, 480] (scaled by size / 224), random crop, flip;
  evaluation resizes the shorter side to 256 and takes the central crop.
- `"inception"`: a random crop of 8%-100% of the area with aspect ratio in [3/4, 4/3], resized, flipped;
  evaluation takes the central 87.5%.

Training is reproducible and resumable: the order and the augmentation of epoch `e` depend only on `(seed, e)`,
so a run restarted at epoch `e` sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from keras_convnets.data.preprocessing import Preprocessing

AUGMENTATIONS = ("crop_flip", "scale", "inception", "none")
EMBEDDED = ("digits",)
IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")
AUTOTUNE = tf.data.AUTOTUNE
IN_GRAPH_LIMIT = 1 << 30  # a training set held as one tensor stays well under the 2 GB limit of a graph


@dataclass
class ImageData:
    """A dataset split in two: `train` and `test` yield unbatched `(image, label)` with raw uint8 pixels
    (H, W, 3) and int32 labels. `image_size` is the side of every image when they all share one, else None."""

    name: str
    train: tf.data.Dataset
    test: tf.data.Dataset
    num_train: int
    num_test: int
    labels: list[str]
    image_size: int | None = None
    horizontal_flip: bool = True  # False where a mirrored image changes meaning (digits)
    suggested_epochs: int | None = None  # a good short run (the embedded data)
    suggested_batch_size: int | None = None
    notes: list[str] = field(default_factory=list)
    train_arrays: tuple[np.ndarray, np.ndarray] | None = None  # (images, labels) when already in memory
    validation: tf.data.Dataset | None = None  # held out of the training set (`holdout_validation`)
    num_validation: int = 0

    @property
    def num_classes(self) -> int:
        return len(self.labels)


def _select(ds: tf.data.Dataset, count: int, indices: np.ndarray) -> tf.data.Dataset:
    """The elements of `ds` (of `count` elements) at the sorted `indices`, in their order."""
    keep = np.zeros(count, dtype=bool)
    keep[indices] = True
    mask = tf.constant(keep)
    return ds.enumerate().filter(lambda i, xy: mask[i]).map(lambda i, xy: xy)


def holdout_validation(data: ImageData, size: int | float, *, seed: int = 0) -> ImageData:
    """A copy of `data` whose `validation` split holds `size` training examples (a count, or a fraction in
    (0, 1) of the training set) drawn at random from `seed`, and whose `train` holds the others, in their order.
    The test split is untouched: model selection sees the validation split, the test split is reported once."""
    if isinstance(size, bool) or not isinstance(size, (int, float)):
        raise TypeError(f"`size` must be an integer count or a fraction in (0, 1). Received: size={size!r}")
    if isinstance(size, float):
        if not 0 < size < 1:
            raise ValueError(f"`size` must be an integer count or a fraction in (0, 1). Received: size={size!r}")
        count = max(1, int(round(size * data.num_train)))
    else:
        count = size
    if not 1 <= count < data.num_train:
        raise ValueError(
            f"`size` must leave at least one training example and hold out at least one: between 1 and "
            f"{data.num_train - 1} for the {data.num_train} training examples of {data.name!r}. Received: size={size!r}"
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"`seed` must be an integer. Received: seed={seed!r}")
    order = np.random.RandomState(int(seed) % (1 << 32)).permutation(data.num_train)
    held, kept = np.sort(order[:count]), np.sort(order[count:])
    if data.train_arrays is not None and len(data.train_arrays[0]) == data.num_train:
        images, labels = data.train_arrays
        train_arrays = (images[kept], labels[kept])
        train = tf.data.Dataset.from_tensor_slices(train_arrays)
        validation = tf.data.Dataset.from_tensor_slices((images[held], labels[held]))
    else:
        train_arrays = None
        train = _select(data.train, data.num_train, kept)
        validation = _select(data.train, data.num_train, held)
    return dataclasses.replace(
        data,
        train=train,
        num_train=len(kept),
        train_arrays=train_arrays,
        validation=validation,
        num_validation=count,
    )


# ----------------------------------------------------------------------------------------------- sources


def load_dataset(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    test_fraction: float = 0.2,
) -> ImageData:
    """`"digits"`, `"fashion_mnist"`, `"mnist"`, `"cifar10"`, `"cifar100"` (`load_builtin`), a directory of IDX
    files (`load_idx_dir`) or of class folders, or a tensorflow-datasets name."""
    from keras_convnets.data.idx import is_idx_dir, load_idx_dir
    from keras_convnets.data.keras_datasets import BUILTIN_DATASETS, load_builtin

    if not isinstance(name, (str, os.PathLike)) or not os.fspath(name):
        raise TypeError(f"`dataset` must be a dataset name or a directory. Received: dataset={name!r}")
    name = os.fspath(name)
    if name == "digits":
        return load_digits()
    if is_idx_dir(name):
        return load_idx_dir(name)
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


def _scan_classes(root: str) -> tuple[dict[str, list[str]], int]:
    """`{class: [image paths]}` of the class folders under `root`, and the number of skipped files."""
    classes, skipped = {}, 0
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
                if _is_image(path):
                    paths.append(path)
                else:
                    skipped += 1
        if paths:
            classes[entry] = paths
    return classes, skipped


def _decode(path, label):
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return tf.cast(image, tf.uint8), label


def _folder_dataset(items: list[tuple[str, int]]) -> tf.data.Dataset:
    paths = tf.constant([p for p, _ in items], tf.string)
    labels = tf.constant([label for _, label in items], tf.int32)
    ds = tf.data.Dataset.from_tensor_slices((paths, labels))
    return ds.map(_decode, num_parallel_calls=AUTOTUNE, deterministic=True).ignore_errors()


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
    if os.path.isdir(os.path.join(root, "train")) and test_name:
        train_classes, skipped_train = _scan_classes(os.path.join(root, "train"))
        test_classes, skipped_test = _scan_classes(os.path.join(root, test_name))
        skipped = skipped_train + skipped_test
        names = sorted(train_classes)
        index = {c: i for i, c in enumerate(names)}
        unknown = sorted(set(test_classes) - set(index))
        if unknown:
            raise ValueError(f"The {test_name}/ folder of {root!r} has classes that train/ lacks: {unknown}")
        train_items = [(p, index[c]) for c in names for p in train_classes[c]]
        test_items = [(p, index[c]) for c in sorted(test_classes) for p in test_classes[c]]
    else:
        classes, skipped = _scan_classes(root)
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
    return ImageData(
        name=os.path.basename(os.path.normpath(root)),
        train=_folder_dataset(train_items),
        test=_folder_dataset(test_items),
        num_train=len(train_items),
        num_test=len(test_items),
        labels=names,
        notes=[f"skipped {skipped} files that are not images"] if skipped else [],
    )


def load_tfds(name: str, *, data_dir: str | os.PathLike | None = None) -> ImageData:
    """An image-classification dataset of tensorflow-datasets: its "train" split, and "validation" or "test"
    (or the last 10% of "train" when it has neither)."""
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=None if data_dir is None else os.fspath(data_dir))
    except tfds.core.registered.DatasetNotFoundError:
        raise ValueError(
            f"Unknown dataset. Use 'digits' (embedded), a directory of class folders, or a tensorflow-datasets "
            f"image-classification name such as 'cifar10', 'cifar100', 'imagenette', 'imagenet2012' "
            f"(`tfds.list_builders()` lists them all). Received: dataset={name!r}"
        ) from None
    try:
        builder.download_and_prepare()
    except Exception as error:  # network, manual-download and preparation failures all end here
        raise ValueError(
            f"tensorflow-datasets could not download or prepare {name!r} ({type(error).__name__}: "
            f"{str(error)[:300]}). Prepare it where there is internet access (for imagenet2012, put the manual "
            f"files under DATA_DIR/downloads/manual) and pass its directory with `--data-dir` / `data_dir=`. "
            f"Received: dataset={name!r}, data_dir={data_dir!r}"
        ) from None
    info = builder.info
    if not info.supervised_keys or "label" not in info.features:
        raise ValueError(f"`dataset` must be an image-classification dataset with labels. Received: dataset={name!r}")
    split_names = list(info.splits.keys()) or ["train", "test"]  # no split metadata (e.g. under tfds mocking)
    if "train" not in split_names:
        raise ValueError(f"Dataset {name!r} has no 'train' split (it has {split_names}).")
    test_split = next((s for s in ("validation", "test") if s in split_names), None)
    train_split = "train"
    if test_split is None:
        train_split, test_split = "train[:90%]", "train[90%:]"

    def split(which):
        ds = builder.as_dataset(split=which, as_supervised=True, shuffle_files=False)
        count = int(ds.cardinality())
        if count < 0:
            count = info.splits[which].num_examples
        if count <= 0:
            raise ValueError(f"The {which!r} split of dataset {name!r} is empty.")
        ds = ds.map(lambda x, y: (tf.cast(x, tf.uint8), tf.cast(y, tf.int32)), num_parallel_calls=AUTOTUNE)
        return ds, count

    train, num_train = split(train_split)
    test, num_test = split(test_split)
    shape = info.features[info.supervised_keys[0]].shape
    size = shape[0] if shape and shape[0] is not None and shape[0] == shape[1] else None
    if shape and shape[-1] == 1:
        train = train.map(lambda x, y: (tf.image.grayscale_to_rgb(x), y))
        test = test.map(lambda x, y: (tf.image.grayscale_to_rgb(x), y))
    return ImageData(
        name=name,
        train=train,
        test=test,
        num_train=num_train,
        num_test=num_test,
        labels=list(info.features["label"].names),
        image_size=size,
    )


# ----------------------------------------------------------------------------------------------- transforms


def _resize_square(image, size: int):
    return tf.image.resize(tf.cast(image, tf.float32), (size, size), method="bilinear", antialias=True)


def _to_uint8(image):
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def _resize_shorter(image, side):
    shape = tf.shape(image)
    h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    scale = tf.cast(side, tf.float32) / tf.minimum(h, w)
    new = tf.cast(tf.round(tf.stack([h * scale, w * scale])), tf.int32)
    return tf.image.resize(tf.cast(image, tf.float32), new, method="bilinear", antialias=True)


def _central_crop(image, size: int):
    shape = tf.shape(image)
    top, left = (shape[0] - size) // 2, (shape[1] - size) // 2
    return image[top : top + size, left : left + size]


def eval_transform(image, *, augmentation: str, size: int):
    """One raw image -> the float (size, size, 3) image evaluation sees."""
    if augmentation == "scale":
        return _central_crop(_resize_shorter(image, round(size * 256 / 224)), size)
    if augmentation == "inception":
        return _resize_square(tf.image.central_crop(image, 0.875), size)
    return _resize_square(image, size)


def _train_transform(image, seed, *, augmentation: str, size: int, flip: bool):
    """One raw image -> an augmented float (size, size, 3) image ("scale" and "inception")."""
    seeds = tf.random.experimental.stateless_split(seed, 3)
    if augmentation == "scale":
        low, high = round(size * 256 / 224), round(size * 480 / 224)
        side = tf.random.stateless_uniform([], seeds[0], minval=low, maxval=high + 1, dtype=tf.int32)
        image = tf.image.stateless_random_crop(_resize_shorter(image, side), [size, size, 3], seed=seeds[1])
    else:
        begin, extent, _ = tf.image.stateless_sample_distorted_bounding_box(
            tf.shape(image),
            bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
            seed=seeds[0],
            min_object_covered=0.0,
            aspect_ratio_range=(3 / 4, 4 / 3),
            area_range=(0.08, 1.0),
            max_attempts=10,
            use_image_if_no_bounding_boxes=True,
        )
        image = _resize_square(tf.slice(image, begin, extent), size)
    if flip:
        image = tf.image.stateless_random_flip_left_right(image, seeds[2])
    return image


def crop_flip_batch(images, seed, *, pad: int = 4, flip: bool = True):
    """Pad a batch (B, H, W, C) by `pad` zero pixels, crop each image back to H x W at its own random offset and
    flip half of them, all vectorised. `seed` is a stateless seed (2 integers)."""
    images = tf.convert_to_tensor(images)
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)
    offsets = tf.random.stateless_uniform([batch, 2], seeds[0], minval=0, maxval=2 * pad + 1, dtype=tf.int32)
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    rows = offsets[:, :1] + tf.range(height)[None, :]
    cols = offsets[:, 1:] + tf.range(width)[None, :]
    out = tf.gather(padded, rows, axis=1, batch_dims=1)
    out = tf.gather(out, cols, axis=2, batch_dims=1)
    if flip:
        mirror = tf.random.stateless_uniform([batch], seeds[1]) < 0.5
        out = tf.where(mirror[:, None, None, None], tf.reverse(out, axis=[2]), out)
    return out


# ----------------------------------------------------------------------------------------------- pipelines


def _memory_limit() -> int:
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        physical = 8 << 30
    return min(4 << 30, physical // 4)


def fits_in_memory(num_examples: int, image_size: int) -> bool:
    """Whether `num_examples` uint8 images of `image_size`^2 x 3 fit the in-memory cache (a quarter of the RAM,
    at most 4 GiB)."""
    return num_examples * image_size * image_size * 3 <= _memory_limit()


def _check_augmentation(augmentation: str) -> None:
    if augmentation not in AUGMENTATIONS:
        raise ValueError(
            f"`augmentation` must be one of {', '.join(map(repr, AUGMENTATIONS))}. Received: augmentation={augmentation!r}"
        )


def _stored(
    ds: tf.data.Dataset, num_examples: int, *, augmentation: str, size: int, known_size: int | None, cache: bool
):
    """The raw images as they are kept between epochs: resized to `size` and cached in memory when the
    augmentation works on fixed-size images and they fit."""
    if augmentation in ("crop_flip", "none"):
        if known_size != size:
            ds = ds.map(lambda x, y: (_to_uint8(_resize_square(x, size)), y), num_parallel_calls=AUTOTUNE)
        if cache and fits_in_memory(num_examples, size):
            ds = ds.cache()
    elif cache and known_size is not None and fits_in_memory(num_examples, known_size):
        ds = ds.cache()
    return ds


def _finish(ds: tf.data.Dataset, preprocessing: Preprocessing | None) -> tf.data.Dataset:
    import keras

    channels_first = keras.config.image_data_format() == "channels_first"

    def finish(x, y):
        x = tf.cast(x, tf.float32)
        if preprocessing is not None:
            x = preprocessing(x)
        if channels_first:
            x = tf.transpose(x, [0, 3, 1, 2])
        return x, y

    ds = ds.map(finish, num_parallel_calls=AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(AUTOTUNE)


def steps_per_epoch_for(num_examples: int, batch_size: int) -> int:
    """Full batches per epoch; an error when the training set is smaller than one batch."""
    steps = num_examples // batch_size
    if steps < 1:
        raise ValueError(
            f"`batch_size` must not exceed the number of training examples ({num_examples}). "
            f"Received: batch_size={batch_size}"
        )
    return steps


def _split(data: ImageData, split: str) -> tuple[tf.data.Dataset, int]:
    if split not in ("train", "validation", "test"):
        raise ValueError(f"`split` must be one of 'train', 'validation', 'test'. Received: split={split!r}")
    if split == "validation" and data.validation is None:
        raise ValueError(
            f"Dataset {data.name!r} has no validation split: hold one out of the training set with "
            f"`holdout_validation(data, size)`. Received: split={split!r}"
        )
    return getattr(data, split), getattr(data, f"num_{split}")


def materialize(data: ImageData, *, image_size: int, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """The `split` as two arrays: uint8 images resized to `image_size` and int32 labels."""
    arrays = data.train_arrays
    if split == "train" and arrays is not None and len(arrays[0]) == data.num_train and data.image_size == image_size:
        return arrays
    source, count = _split(data, split)
    ds = _stored(source, count, augmentation="none", size=image_size, known_size=data.image_size, cache=False)
    images, labels = [], []
    for x, y in ds.batch(1024).as_numpy_iterator():
        images.append(x)
        labels.append(y)
    if not images:
        raise ValueError(f"The {split} split of {data.name!r} yielded no images.")
    return np.concatenate(images), np.concatenate(labels).astype("int32")


def train_pipeline(
    data: ImageData,
    *,
    batch_size: int,
    image_size: int,
    augmentation: str = "crop_flip",
    preprocessing: Preprocessing | None = None,
    seed: int = 0,
    epochs: int = 1,
    initial_epoch: int = 0,
    steps_per_epoch: int | None = None,
    horizontal_flip: bool | None = None,
    shuffle_buffer: int | None = None,
    cache: bool = True,
) -> tf.data.Dataset:
    """Batches of `(preprocessed float images, int32 labels)` for epochs `initial_epoch .. epochs - 1`, exactly
    `steps_per_epoch` full batches each (default: all full batches of the training set).

    When the training images fit in memory at `image_size` and the augmentation works on fixed-size images
    ("crop_flip", "none"), the set is held in memory and epoch `e` is a permutation and an augmentation drawn from
    `(seed, e)` only: a run resumed at epoch `e` sees the batches an uninterrupted run sees. Otherwise images stream
    through a shuffle buffer (`shuffle_buffer`, default 10,000) seeded with `(seed, initial_epoch)`.
    """
    _check_augmentation(augmentation)
    flip = data.horizontal_flip if horizontal_flip is None else horizontal_flip
    steps = steps_per_epoch or steps_per_epoch_for(data.num_train, batch_size)
    seed = int(seed)
    epoch_seeds = tf.data.Dataset.range(initial_epoch, max(epochs, initial_epoch))

    in_memory = data.num_train * image_size * image_size * 3 <= min(_memory_limit(), IN_GRAPH_LIMIT)
    if augmentation in ("crop_flip", "none") and cache and in_memory:
        images, labels = materialize(data, image_size=image_size)
        count = len(images)
        whole = tf.data.Dataset.from_tensors((images, labels))  # the training set as one element

        def epoch_dataset(epoch):
            order = tf.random.experimental.stateless_shuffle(
                tf.range(count, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), epoch])
            )
            indices = tf.data.Dataset.from_tensor_slices(order).repeat().batch(batch_size, drop_remainder=True)
            ds = tf.data.Dataset.zip((indices.take(steps), whole.repeat()))
            ds = ds.map(
                lambda i, xy: (tf.gather(xy[0], i), tf.gather(xy[1], i)),
                num_parallel_calls=AUTOTUNE,
                deterministic=True,
            )
            if augmentation == "crop_flip":
                ds = ds.enumerate().map(
                    lambda b, xy: (
                        crop_flip_batch(
                            xy[0], tf.stack([tf.constant(seed, tf.int64) * 1_000_003 + epoch, b]), flip=flip
                        ),
                        xy[1],
                    ),
                    num_parallel_calls=AUTOTUNE,
                    deterministic=True,
                )
            return ds

        return _finish(epoch_seeds.flat_map(epoch_dataset), preprocessing)

    base = _stored(
        data.train, data.num_train, augmentation=augmentation, size=image_size, known_size=data.image_size, cache=cache
    )
    buffer = shuffle_buffer or min(data.num_train, 10_000)
    stream = base.shuffle(buffer, seed=seed * 1_000_003 + initial_epoch + 1, reshuffle_each_iteration=True).repeat()
    first = initial_epoch * steps * batch_size
    stream = stream.enumerate(start=first)
    if augmentation in ("scale", "inception"):
        stream = stream.map(
            lambda i, xy: (
                _train_transform(
                    xy[0],
                    tf.stack([tf.constant(seed, tf.int64), i]),
                    augmentation=augmentation,
                    size=image_size,
                    flip=flip,
                ),
                xy[1],
            ),
            num_parallel_calls=AUTOTUNE,
            deterministic=True,
        )
    else:
        stream = stream.map(lambda i, xy: xy)
    total = max(0, epochs - initial_epoch) * steps
    ds = stream.batch(batch_size, drop_remainder=True).take(total)
    if augmentation == "crop_flip":
        ds = ds.enumerate(start=initial_epoch * steps).map(
            lambda b, xy: (crop_flip_batch(xy[0], tf.stack([tf.constant(seed, tf.int64), b]), flip=flip), xy[1]),
            num_parallel_calls=AUTOTUNE,
            deterministic=True,
        )
    return _finish(ds, preprocessing)


def eval_pipeline(
    data: ImageData,
    *,
    batch_size: int,
    image_size: int,
    augmentation: str = "crop_flip",
    preprocessing: Preprocessing | None = None,
    split: str = "test",
    cache: bool = True,
) -> tf.data.Dataset:
    """Batches of the `test` (or `validation`, or `train`) split as evaluation sees them (no augmentation), in a
    fixed order."""
    _check_augmentation(augmentation)
    source, count = _split(data, split)
    ds = _stored(source, count, augmentation=augmentation, size=image_size, known_size=data.image_size, cache=False)
    if augmentation in ("scale", "inception"):
        ds = ds.map(
            lambda x, y: (_to_uint8(eval_transform(x, augmentation=augmentation, size=image_size)), y),
            num_parallel_calls=AUTOTUNE,
        )
    if cache and fits_in_memory(count, image_size):
        ds = ds.cache()
    return _finish(ds.batch(batch_size), preprocessing)


def compute_preprocessing(
    mode: str,
    data: ImageData,
    *,
    image_size: int,
    augmentation: str = "crop_flip",
    max_examples: int = 10_000,
) -> Preprocessing:
    """The recipe's `Preprocessing` measured on (up to `max_examples` of) the training images as evaluation sees
    them: `"mean_image"` (per-pixel mean), `"mean_rgb"` (per-channel mean), `"inception"` or `"none"`."""
    if mode == "none":
        return Preprocessing.none()
    if mode == "inception":
        return Preprocessing.inception()
    if mode not in ("mean_image", "mean_rgb"):
        raise ValueError(
            f"`preprocessing` must be one of 'mean_image', 'mean_rgb', 'inception', 'none'. Received: preprocessing={mode!r}"
        )
    ds = _stored(
        data.train, data.num_train, augmentation=augmentation, size=image_size, known_size=data.image_size, cache=False
    )
    if augmentation in ("scale", "inception"):
        ds = ds.map(
            lambda x, y: (eval_transform(x, augmentation=augmentation, size=image_size), y), num_parallel_calls=AUTOTUNE
        )
    total, count = np.zeros((image_size, image_size, 3), "float64"), 0
    for images, _ in ds.take(max_examples).batch(512).as_numpy_iterator():
        total += images.astype("float64").sum(axis=0)
        count += len(images)
    if count == 0:
        raise ValueError(f"The training split of {data.name!r} yielded no images.")
    mean = (total / count).astype("float32")
    if mode == "mean_rgb":
        return Preprocessing.mean_rgb(mean.mean(axis=(0, 1)))
    return Preprocessing("mean_image", mean, np.float32(1.0))
