"""The small classic benchmarks by name, from wherever this machine already has them: `load_builtin(name)` for
"fashion_mnist", "mnist", "cifar10" and "cifar100".

Sources, in this order:
1. tensorflow-datasets, when the dataset is prepared in `data_dir` (its default `~/tensorflow_datasets` when None);
2. the files that `keras.datasets.<name>.load_data()` keeps in `$KERAS_HOME/datasets/` (default
   `~/.keras/datasets/`): `fashion-mnist/` (four IDX `.gz` files), `mnist.npz`, `cifar-10-batches-py/` and
   `cifar-100-python/` (the python pickle batches, also found under keras 3's `*-target/` extraction folders).
   They are read here, never through keras's loader, so nothing is ever downloaded from this step;
3. for Fashion-MNIST, Debian's package `dataset-fashion-mnist` (`/usr/share/datasets/fashion-mnist/`);
4. tensorflow-datasets' own download and preparation (the behaviour of `load_tfds`), which needs network; when it
   fails, the error names every place looked at and the ways to get the dataset.

Grayscale is repeated to 3 channels at the source (Fashion-MNIST and MNIST): every registered model takes 3 channels,
so each trains on them and the exported model takes 3 channels too; `notes` says so. Images keep their size (28x28
for the MNIST family, 32x32 for CIFAR); the pipelines resize them to the recipe's `image_size`.
"""

from __future__ import annotations

import dataclasses
import os
import pickle

import numpy as np

from keras_convnets.data import idx
from keras_convnets.data.dataset import ImageData
from keras_convnets.data.tfds import load_tfds
from keras_convnets.utils.validation import check_choice

__all__ = ["BUILTIN_DATASETS", "DEBIAN_FASHION_MNIST", "keras_cache_dir", "load_builtin"]

BUILTIN_DATASETS = ("fashion_mnist", "mnist", "cifar10", "cifar100")
DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist package
GRAYSCALE_NOTE = "grayscale is repeated to 3 channels"
FASHION_MNIST_LABELS = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
CIFAR10_LABELS = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
HORIZONTAL_FLIP = {"fashion_mnist": True, "mnist": False, "cifar10": True, "cifar100": True}
# the only globals a CIFAR pickle needs: numpy arrays (numpy < 2 and >= 2 spellings), and `_codecs.encode`, with
# which Python 3 writes the bytes inside an array at protocol 2 (the published batches, from Python 2, do without)
_PICKLE_GLOBALS = frozenset(
    {
        ("_codecs", "encode"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    }
)


def keras_cache_dir() -> str:
    """Where `keras.datasets.*.load_data()` keeps its files: `$KERAS_HOME/datasets`, else `~/.keras/datasets`."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "datasets")


def _cache_candidates(name: str) -> list[str]:
    """The paths of `name` in the Keras cache, as keras 2 and keras 3 leave them."""
    base = keras_cache_dir()
    if name == "fashion_mnist":
        return [os.path.join(base, "fashion-mnist")]
    if name == "mnist":
        return [os.path.join(base, "mnist.npz")]
    folder = "cifar-10-batches-py" if name == "cifar10" else "cifar-100-python"
    return [os.path.join(base, folder), os.path.join(base, f"{folder}-target", folder)]


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load `{module}.{name}` from a dataset pickle")


def _unpickle(path: str) -> dict[str, object]:
    try:
        with open(path, "rb") as f:
            content = _ArraysOnly(f, encoding="bytes").load()
    except Exception as error:  # truncated, corrupt or hostile pickles all end here
        raise ValueError(f"CIFAR batch {path!r} cannot be read ({type(error).__name__}: {error})") from None
    if not isinstance(content, dict):
        raise ValueError(f"CIFAR batch {path!r} must hold a dict. Received: {type(content).__name__}")
    return {k.decode("utf8") if isinstance(k, bytes) else k: v for k, v in content.items()}


def _cifar_batch(path: str, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    if "data" not in batch or label_key not in batch:
        raise ValueError(f"CIFAR batch {path!r} must hold 'data' and {label_key!r}. Received keys: {sorted(batch)}")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch[label_key]).reshape(-1)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise ValueError(
            f"CIFAR batch {path!r} must hold uint8 'data' of shape (N, 3072) and N labels. Received: "
            f"data {data.dtype} {data.shape}, {len(labels)} labels"
        )
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels.astype("int32")


def _label_names(meta_path: str, key: str, default: list[str]) -> list[str]:
    if not os.path.isfile(meta_path):
        return default
    names = _unpickle(meta_path).get(key)
    if not names or len(names) != len(default):
        return default
    return [n.decode("utf8") if isinstance(n, bytes) else str(n) for n in names]


def _read_cifar(folder: str, name: str):
    """`((x_train, y_train), (x_test, y_test), labels)` of a CIFAR pickle folder, or None when files are missing."""
    if name == "cifar10":
        train_files = [os.path.join(folder, f"data_batch_{i}") for i in range(1, 6)]
        test_file, meta, label_key, names_key = "test_batch", "batches.meta", "labels", "label_names"
        default = list(CIFAR10_LABELS)
    else:
        train_files = [os.path.join(folder, "train")]
        test_file, meta, label_key, names_key = "test", "meta", "fine_labels", "fine_label_names"
        default = [str(i) for i in range(100)]
    test_file = os.path.join(folder, test_file)
    if not all(os.path.isfile(f) for f in train_files + [test_file]):
        return None
    parts = [_cifar_batch(f, label_key) for f in train_files]
    train = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    return train, _cifar_batch(test_file, label_key), _label_names(os.path.join(folder, meta), names_key, default)


def _read_mnist_npz(path: str):
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except Exception as error:  # a missing key, a corrupt zip or an object array
        raise ValueError(f"The Keras MNIST file {path!r} cannot be read ({type(error).__name__}: {error})") from None
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8 or x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(
                f"The Keras MNIST file {path!r} must hold uint8 x_{split} (N, 28, 28) and N labels y_{split}. "
                f"Received: x_{split} {x.dtype} {x.shape}, y_{split} {y.shape}"
            )
    return (arrays["x_train"], arrays["y_train"].astype("int32")), (arrays["x_test"], arrays["y_test"].astype("int32"))


def _read_keras_cache(name: str):
    """`(train, test, labels, path)` from the Keras cache, or None when it does not hold `name`."""
    for path in _cache_candidates(name):
        if name == "fashion_mnist" and idx.is_idx_dir(path):
            train, test = idx.read_idx_dir(path)
            return train, test, list(FASHION_MNIST_LABELS), path
        if name == "mnist" and os.path.isfile(path):
            train, test = _read_mnist_npz(path)
            return train, test, [str(i) for i in range(10)], path
        if name in ("cifar10", "cifar100") and os.path.isdir(path):
            found = _read_cifar(path, name)
            if found is not None:
                return (*found, path)
    return None


def _from_arrays(name: str, train, test, labels: list[str], source: str) -> ImageData:
    import tensorflow as tf

    (x_train, y_train), (x_test, y_test) = train, test
    for split, y in (("train", y_train), ("test", y_test)):
        if len(y) and (y.min() < 0 or y.max() >= len(labels)):
            raise ValueError(
                f"The {split} labels of {name!r} from {source!r} must lie in [0, {len(labels)}). Received: "
                f"min={y.min()}, max={y.max()}"
            )
    grayscale = x_train.ndim == 3 or x_train.shape[-1] == 1
    x_train, x_test = idx.to_rgb(x_train), idx.to_rgb(x_test)
    notes = [f"read from {source}"] + ([GRAYSCALE_NOTE] if grayscale else [])
    return ImageData(
        name=name,
        train=tf.data.Dataset.from_tensor_slices((x_train, y_train)),
        test=tf.data.Dataset.from_tensor_slices((x_test, y_test)),
        num_train=len(x_train),
        num_test=len(x_test),
        labels=list(labels),
        image_size=int(x_train.shape[1]),
        horizontal_flip=HORIZONTAL_FLIP[name],
        notes=notes,
        train_arrays=(x_train, y_train),
    )


def _tfds_prepared(name: str, data_dir: str | None) -> bool:
    """Whether tensorflow-datasets has `name` prepared; its warnings while looking (e.g. "Variant folder ... has
    no dataset_info.json" for a folder that an interrupted preparation left) are not shown: the answer is no."""
    import logging

    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.ERROR)
    try:
        import tensorflow_datasets as tfds

        return bool(tfds.builder(name, data_dir=data_dir).is_prepared())
    except Exception:  # tensorflow-datasets missing or broken: the other sources still work
        return False
    finally:
        absl.setLevel(level)


def _from_tfds(name: str, data_dir: str | None) -> ImageData:
    data = load_tfds(name, data_dir=data_dir)
    notes = list(data.notes) + ["read from tensorflow-datasets"]
    if name in ("fashion_mnist", "mnist"):
        notes.append(GRAYSCALE_NOTE)
    return dataclasses.replace(data, horizontal_flip=HORIZONTAL_FLIP[name], notes=notes)


def _not_found(name: str, data_dir: str | None, download_error: Exception) -> ValueError:
    looked = [f"tensorflow-datasets prepared in {data_dir or 'its default data_dir'}"]
    looked += [f"the Keras cache {path}" for path in _cache_candidates(name)]
    module = name  # keras.datasets.fashion_mnist, .mnist, .cifar10, .cifar100
    ways = [
        f"`tfds.builder({name!r}, data_dir=DATA_DIR).download_and_prepare()` where there is network, then "
        "`data_dir=DATA_DIR` / `--data-dir DATA_DIR`",
        f"`keras.datasets.{module}.load_data()` once where there is network (it fills {keras_cache_dir()})",
    ]
    if name == "fashion_mnist":
        looked.append(f"Debian's dataset-fashion-mnist at {DEBIAN_FASHION_MNIST}")
        ways.append("`apt-get install -y dataset-fashion-mnist` (Debian, no network needed beyond the archive)")
    return ValueError(
        f"Dataset {name!r} is not on this machine. Looked for: {'; '.join(looked)}. Ways to get it: "
        f"{'; or '.join(ways)}. The download attempt said: {download_error}"
    )


def load_builtin(name: str, *, data_dir: str | os.PathLike | None = None) -> ImageData:
    """Fashion-MNIST, MNIST, CIFAR-10 or CIFAR-100 from the first source that has it (see the module docstring):
    unbatched uint8 (H, W, 3) images and int32 labels, the arrays in memory when read from files."""
    check_choice("dataset", name, BUILTIN_DATASETS)
    data_dir = None if data_dir is None else os.fspath(data_dir)
    if _tfds_prepared(name, data_dir):
        return _from_tfds(name, data_dir)
    cached = _read_keras_cache(name)
    if cached is not None:
        train, test, labels, path = cached
        return _from_arrays(name, train, test, labels, path)
    if name == "fashion_mnist" and idx.is_idx_dir(DEBIAN_FASHION_MNIST):
        train, test = idx.read_idx_dir(DEBIAN_FASHION_MNIST)
        return _from_arrays(name, train, test, list(FASHION_MNIST_LABELS), DEBIAN_FASHION_MNIST)
    try:
        return _from_tfds(name, data_dir)  # downloads and prepares where there is network
    except ValueError as error:
        raise _not_found(name, data_dir, error) from None
