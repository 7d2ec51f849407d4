"""Data sources without network: IDX files, the Keras dataset cache, Debian's Fashion-MNIST, tensorflow-datasets'
real preparation path up to the network, and the order in which `load_builtin` tries them."""

from __future__ import annotations

import configparser
import gzip
import os
import pickle
import socket

import numpy as np
import pytest

from keras_convnets import data
from keras_convnets.data import idx, keras_datasets

DEBIAN = keras_datasets.DEBIAN_FASHION_MNIST
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IDX_CODES = {np.dtype("uint8"): 0x08, np.dtype("int16"): 0x0B, np.dtype("int32"): 0x0C, np.dtype("float32"): 0x0D}


def idx_bytes(array) -> bytes:
    array = np.asarray(array)
    header = bytes([0, 0, IDX_CODES[array.dtype], array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path, array, *, gz: bool = False) -> str:
    raw = idx_bytes(array)
    path = os.fspath(path) + (".gz" if gz else "")
    with open(path, "wb") as f:
        f.write(gzip.compress(raw) if gz else raw)
    return path


def mnist_arrays(n_train: int = 20, n_test: int = 10, shape=(28, 28), seed: int = 0):
    rng = np.random.default_rng(seed)
    x_train = rng.integers(0, 256, (n_train, *shape), dtype=np.uint8)
    x_test = rng.integers(0, 256, (n_test, *shape), dtype=np.uint8)
    y_train = (np.arange(n_train) % 10).astype("uint8")
    y_test = (np.arange(n_test)[::-1] % 10).astype("uint8")
    return (x_train, y_train), (x_test, y_test)


def write_idx_dir(folder, arrays, *, gz=(True, True, True, True)) -> str:
    os.makedirs(folder, exist_ok=True)
    (x_train, y_train), (x_test, y_test) = arrays
    stems = idx.IDX_FILES
    for (key, array), z in zip(
        [("train_images", x_train), ("train_labels", y_train), ("test_images", x_test), ("test_labels", y_test)], gz
    ):
        write_idx(os.path.join(folder, stems[key]), array, gz=z)
    return os.fspath(folder)


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """An empty Keras cache, no Debian package, an empty tensorflow-datasets directory and no network (one try)."""
    from tensorflow_datasets.core.download import downloader

    def refuse(*args, **kwargs):
        raise ConnectionRefusedError(111, "network refused by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(downloader, "MAX_RETRIES", 0)  # urllib3 would otherwise back off 10 times per file
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setattr(keras_datasets, "DEBIAN_FASHION_MNIST", str(tmp_path / "no_debian"))
    return str(tmp_path / "tfds")


# ----------------------------------------------------------------------------------------------- IDX


def test_read_idx_raw_and_gz_with_multibyte_types(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    wide = np.array([[-70000, 1], [2, 300000]], dtype=np.int32)
    floats = np.array([0.5, -1.25, 3e6], dtype=np.float32)
    np.testing.assert_array_equal(idx.read_idx(write_idx(tmp_path / "a", images)), images)
    np.testing.assert_array_equal(idx.read_idx(write_idx(tmp_path / "b", images, gz=True)), images)
    got = idx.read_idx(write_idx(tmp_path / "c", wide, gz=True))
    assert got.dtype == np.int32 and got.dtype.isnative
    np.testing.assert_array_equal(got, wide)
    np.testing.assert_array_equal(idx.read_idx(write_idx(tmp_path / "d", floats)), floats)


def test_read_idx_rejects_corrupt_and_truncated_files(tmp_path):
    raw = idx_bytes(np.zeros((4, 5, 6), np.uint8))
    cases = {
        "bad_magic": (b"\x01\x00" + raw[2:], "corrupt header: magic number 0x01000803"),
        "bad_type": (raw[:2] + b"\x07" + raw[3:], "corrupt header"),
        "no_dims": (raw[:3] + b"\x00", "corrupt header"),
        "tiny": (raw[:3], "truncated: 3 bytes, shorter than the 4-byte magic"),
        "cut_header": (raw[:10], "truncated: 10 bytes, shorter than its 16-byte header"),
        "cut_body": (raw[:-7], r"truncated: its header declares shape \(4, 5, 6\) of uint8 \(120 bytes .* holds 113"),
        "trailing": (raw + b"\x00\x00", "corrupt: 2 bytes follow the 120 bytes of data"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=message):
            idx.read_idx(tmp_path / name)
    (tmp_path / "cut.gz").write_bytes(gzip.compress(raw)[:-12])
    with pytest.raises(ValueError, match="corrupt or truncated gzip file"):
        idx.read_idx(tmp_path / "cut.gz")
    (tmp_path / "cut_in_gz.gz").write_bytes(gzip.compress(raw[:-1]))  # valid gzip of a truncated file
    with pytest.raises(ValueError, match="truncated: its header declares"):
        idx.read_idx(tmp_path / "cut_in_gz.gz")


def test_load_idx_dir_repeats_grayscale_and_load_dataset_dispatches_to_it(tmp_path):
    arrays = mnist_arrays(n_train=12, n_test=6, shape=(7, 5))
    folder = write_idx_dir(tmp_path / "kmnist", arrays, gz=(True, False, False, True))
    for d in (data.load_idx_dir(folder), data.load_dataset(folder)):
        assert (d.name, d.num_train, d.num_test, d.num_classes, d.image_size) == ("kmnist", 12, 6, 10, None)
        assert d.horizontal_flip is False and d.notes == ["grayscale is repeated to 3 channels"]
        images, labels = d.train_arrays
        assert images.shape == (12, 7, 5, 3) and images.dtype == np.uint8 and labels.dtype == np.int32
        for c in range(3):
            np.testing.assert_array_equal(images[..., c], arrays[0][0])
        np.testing.assert_array_equal(labels, arrays[0][1])
        x, y = next(iter(d.test.as_numpy_iterator()))
        np.testing.assert_array_equal(x[..., 1], arrays[1][0][0])
        assert y == arrays[1][1][0] and x.dtype == np.uint8
    named = data.load_idx_dir(folder, name="k", labels="abcdefghij", horizontal_flip=True)
    assert named.name == "k" and named.labels[:3] == ["a", "b", "c"] and named.horizontal_flip is True
    with pytest.raises(ValueError, match="reach class 9 but `labels` names 3 classes"):
        data.load_idx_dir(folder, labels=["a", "b", "c"])
    batch = next(iter(data.eval_pipeline(named, batch_size=4, image_size=32, augmentation="none")))
    assert tuple(batch[0].shape) == (4, 32, 32, 3)


def test_load_idx_dir_rejects_inconsistent_files(tmp_path):
    (x_train, y_train), test = mnist_arrays(n_train=10)
    folder = write_idx_dir(tmp_path / "bad", ((x_train, y_train[:9]), test))
    with pytest.raises(ValueError, match="holds 10 images but .*train-labels-idx1-ubyte.gz.* 9 labels"):
        data.load_idx_dir(folder)
    os.remove(os.path.join(folder, "t10k-labels-idx1-ubyte.gz"))
    with pytest.raises(ValueError, match=r"`path` must be a directory holding the IDX files .*t10k-labels"):
        data.load_idx_dir(folder)
    folder = write_idx_dir(tmp_path / "wide", ((x_train.astype(np.int16), y_train), test))
    with pytest.raises(ValueError, match="must hold uint8 pixels. Received: dtype=int16"):
        data.load_idx_dir(folder)


# ----------------------------------------------------------------------------------------------- Keras cache


def cifar_pickle(path, images_nhwc, labels, label_key="labels", **extra) -> None:
    content = {b"data": images_nhwc.transpose(0, 3, 1, 2).reshape(len(images_nhwc), -1), label_key.encode(): labels}
    content.update({k.encode(): v for k, v in extra.items()})
    with open(path, "wb") as f:
        pickle.dump(content, f, protocol=2)  # the protocol of the published batches


def test_keras_cache_dir_honours_keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    assert keras_datasets.keras_cache_dir() == os.path.join(str(tmp_path / "kh"), "datasets")
    monkeypatch.delenv("KERAS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert keras_datasets.keras_cache_dir() == os.path.join(str(tmp_path), ".keras", "datasets")


def test_fashion_mnist_and_mnist_from_the_keras_cache(tmp_path, monkeypatch, offline):
    cache = tmp_path / "keras_home" / "datasets"
    fashion = mnist_arrays(n_train=30, n_test=10, seed=1)
    write_idx_dir(cache / "fashion-mnist", fashion)
    (x_train, y_train), (x_test, y_test) = mnist_arrays(n_train=16, n_test=8, seed=2)
    np.savez(cache / "mnist.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)

    d = data.load_dataset("fashion_mnist", data_dir=offline)
    assert (d.num_train, d.num_test, d.image_size, d.horizontal_flip) == (30, 10, 28, True)
    assert d.labels == list(keras_datasets.FASHION_MNIST_LABELS) and d.labels[0] == "T-shirt/top"
    assert d.notes == [f"read from {cache / 'fashion-mnist'}", "grayscale is repeated to 3 channels"]
    np.testing.assert_array_equal(d.train_arrays[0][..., 2], fashion[0][0])

    m = data.load_dataset("mnist", data_dir=offline)
    assert (m.num_train, m.num_test, m.num_classes, m.horizontal_flip) == (16, 8, 10, False)
    assert m.train_arrays[0].shape == (16, 28, 28, 3) and m.labels == [str(i) for i in range(10)]
    np.testing.assert_array_equal(m.train_arrays[1], y_train.astype("int32"))
    x, y = next(iter(m.test.as_numpy_iterator()))
    np.testing.assert_array_equal(x[..., 0], x_test[0])
    assert y == y_test[0]

    np.savez(cache / "mnist.npz", x_train=x_train, y_train=y_train[:3], x_test=x_test, y_test=y_test)
    with pytest.raises(ValueError, match="must hold uint8 x_train .* Received: x_train uint8 \\(16, 28, 28\\), y_tr"):
        data.load_dataset("mnist", data_dir=offline)


@pytest.mark.parametrize("layout", ["keras2", "keras3"])
def test_cifar10_and_cifar100_from_the_keras_cache(tmp_path, offline, layout):
    cache = tmp_path / "keras_home" / "datasets"
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, 12)]
    c10 = (
        cache / "cifar-10-batches-py"
        if layout == "keras2"
        else cache / "cifar-10-batches-py-target" / "cifar-10-batches-py"
    )
    c100 = cache / "cifar-100-python" if layout == "keras2" else cache / "cifar-100-python-target" / "cifar-100-python"
    os.makedirs(c10)
    os.makedirs(c100)
    for i in range(5):
        cifar_pickle(c10 / f"data_batch_{i + 1}", images[2 * i : 2 * i + 2], labels[2 * i : 2 * i + 2])
    cifar_pickle(c10 / "test_batch", images[10:], labels[10:])
    with open(c10 / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"class{i}".encode() for i in range(10)]}, f, protocol=2)

    d = data.load_dataset("cifar10", data_dir=offline)
    assert (d.num_train, d.num_test, d.image_size, d.horizontal_flip) == (10, 2, 32, True)
    assert d.labels == [f"class{i}" for i in range(10)] and d.notes == [f"read from {c10}"]
    np.testing.assert_array_equal(d.train_arrays[0], images[:10])
    np.testing.assert_array_equal(d.train_arrays[1], np.array(labels[:10], np.int32))
    x, y = next(iter(d.test.as_numpy_iterator()))
    np.testing.assert_array_equal(x, images[10])
    assert y == labels[10]

    fine = [int(v) for v in rng.integers(0, 100, 12)]
    cifar_pickle(c100 / "train", images[:9], fine[:9], label_key="fine_labels", coarse_labels=[0] * 9)
    cifar_pickle(c100 / "test", images[9:], fine[9:], label_key="fine_labels", coarse_labels=[0] * 3)
    d = data.load_dataset("cifar100", data_dir=offline)
    assert (d.num_train, d.num_test, d.num_classes) == (9, 3, 100) and d.labels[99] == "99"
    np.testing.assert_array_equal(d.train_arrays[1], np.array(fine[:9], np.int32))

    with open(c100 / "test", "wb") as f:
        pickle.dump({b"data": os.getcwd, b"fine_labels": []}, f, protocol=2)  # a global that is not numpy's
    with pytest.raises(ValueError, match="cannot be read .*refusing to load `posix.getcwd`"):
        data.load_dataset("cifar100", data_dir=offline)


# ----------------------------------------------------------------------------------------------- order


def test_tfds_prepared_comes_before_the_keras_cache(tmp_path, monkeypatch, offline):
    import tensorflow_datasets as tfds

    write_idx_dir(tmp_path / "keras_home" / "datasets" / "fashion-mnist", mnist_arrays(n_train=30))
    monkeypatch.setattr(tfds.core.DatasetBuilder, "is_prepared", lambda self: True)
    with tfds.testing.mock_data(num_examples=6):
        d = data.load_dataset("fashion_mnist", data_dir=offline)
        assert (d.num_train, d.num_test, d.train_arrays, d.horizontal_flip) == (6, 6, None, True)
        assert d.notes == ["read from tensorflow-datasets", "grayscale is repeated to 3 channels"]
        assert d.labels[-1] == "Ankle boot"
        x, y = next(iter(d.train))
        assert tuple(x.shape) == (28, 28, 3) and x.dtype.name == "uint8" and y.dtype.name == "int32"
        assert data.load_dataset("mnist", data_dir=offline).horizontal_flip is False


def _prepare_tfds(name: str, data_dir: str, n_train: int, n_test: int) -> None:
    """A real prepared tensorflow-datasets `name` in `data_dir`: the registered builder's version and features,
    random examples, written by tensorflow-datasets itself (TFRecord shards and dataset_info.json)."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=data_dir)
    features = builder.info.features
    rng = np.random.RandomState(0)

    def examples(n):
        columns = {}
        for key, feature in features.items():
            if isinstance(feature, tfds.features.Image):
                columns[key] = rng.randint(0, 256, (n, *feature.shape)).astype("uint8")
            elif isinstance(feature, tfds.features.ClassLabel):
                columns[key] = rng.randint(0, feature.num_classes, n).astype("int64")
            else:  # cifar's `id` text
                columns[key] = np.array([f"{key}_{i}".encode() for i in range(n)])
        return tf.data.Dataset.from_tensor_slices(columns)

    tfds.dataset_builders.store_as_tfds_dataset(
        name=name,
        version=str(builder.version),
        data_dir=data_dir,
        split_datasets={"train": examples(n_train), "test": examples(n_test)},
        features=features,
        description="written by the tests",
    )


@pytest.mark.parametrize(
    "name, shape, classes, flip",
    [("fashion_mnist", (28, 28), 10, True), ("mnist", (28, 28), 10, False), ("cifar10", (32, 32), 10, True)]
    + [("cifar100", (32, 32), 100, True)],
)
def test_a_real_prepared_tfds_dataset_is_found_before_the_keras_cache(tmp_path, offline, name, shape, classes, flip):
    """No patching of tensorflow-datasets: a dataset it prepared in `data_dir` is detected and read, and wins over
    a Keras cache that holds the same dataset in other sizes."""
    if name in ("fashion_mnist", "mnist"):
        write_idx_dir(tmp_path / "keras_home" / "datasets" / name.replace("_", "-"), mnist_arrays(n_train=30))
    assert not keras_datasets._tfds_prepared(name, offline)
    _prepare_tfds(name, offline, n_train=12, n_test=5)
    assert keras_datasets._tfds_prepared(name, offline)
    d = data.load_dataset(name, data_dir=offline)
    assert (d.num_train, d.num_test, d.num_classes, d.horizontal_flip) == (12, 5, classes, flip)
    assert d.notes[0] == "read from tensorflow-datasets"
    assert ("grayscale is repeated to 3 channels" in d.notes) == (shape == (28, 28))
    x, y = next(iter(d.train))
    assert tuple(x.shape) == (*shape, 3) and x.dtype.name == "uint8" and y.dtype.name == "int32"
    if shape == (28, 28):  # the one channel repeated: the three are equal
        np.testing.assert_array_equal(x.numpy()[..., 0], x.numpy()[..., 2])


def test_keras_cache_comes_before_debian_and_debian_before_download(tmp_path, monkeypatch, offline):
    debian = write_idx_dir(tmp_path / "debian", mnist_arrays(n_train=40, n_test=20, seed=4))
    monkeypatch.setattr(keras_datasets, "DEBIAN_FASHION_MNIST", debian)
    d = data.load_dataset("fashion_mnist", data_dir=offline)
    assert (d.num_train, d.num_test) == (40, 20) and d.notes[0] == f"read from {debian}"
    write_idx_dir(tmp_path / "keras_home" / "datasets" / "fashion-mnist", mnist_arrays(n_train=30, seed=5))
    d = data.load_dataset("fashion_mnist", data_dir=offline)
    assert (d.num_train, d.num_test) == (30, 10)


def test_nothing_found_names_every_way_to_get_it(offline):
    with pytest.raises(ValueError) as error:
        data.load_dataset("fashion_mnist", data_dir=offline)
    message = str(error.value)
    assert message.startswith("Dataset 'fashion_mnist' is not on this machine. Looked for: tensorflow-datasets")
    for part in (
        f"prepared in {offline}",
        "the Keras cache ",
        "Debian's dataset-fashion-mnist at ",
        "download_and_prepare()` where there is network",
        "`keras.datasets.fashion_mnist.load_data()` once where there is network",
        "`apt-get install -y dataset-fashion-mnist`",
        "could not download or prepare 'fashion_mnist' (ConnectionError",
    ):
        assert part in message
    with pytest.raises(ValueError, match="keras.datasets.cifar10.load_data") as error:
        data.load_dataset("cifar10", data_dir=offline)
    assert "apt-get" not in str(error.value)
    with pytest.raises(ValueError, match="`dataset` must be one of 'fashion_mnist', 'mnist', 'cifar10', 'cifar100'"):
        data.load_builtin("svhn")


# ----------------------------------------------------------------------------------------------- tensorflow-datasets


def test_install_requires_declares_importlib_resources():
    config = configparser.ConfigParser()
    config.read(os.path.join(REPO, "setup.cfg"))
    requirements = [r.strip() for r in config["options"]["install_requires"].splitlines() if r.strip()]
    assert "importlib_resources>=6.0" in requirements
    import importlib_resources  # noqa: F401  (tensorflow_datasets.core.dataset_builder imports it)


def test_real_tfds_preparation_reaches_the_network(offline):
    """`tfds.builder("mnist").download_and_prepare()` for real (no mock), up to the refused connection."""
    with pytest.raises(ValueError) as error:
        data.load_tfds("mnist", data_dir=offline)
    message = str(error.value)
    assert message.startswith("tensorflow-datasets could not download or prepare 'mnist' (ConnectionError: ")
    assert "ModuleNotFoundError" not in message and "importlib_resources" not in message
    assert os.path.isdir(os.path.join(offline, "downloads"))  # the download manager ran


# ----------------------------------------------------------------------------------------------- real data


def test_debian_fashion_mnist(tmp_path, monkeypatch):
    if not idx.is_idx_dir(DEBIAN):
        if os.environ.get("CI"):
            pytest.fail(f"CI must install dataset-fashion-mnist (.ci/run), but {DEBIAN} lacks its IDX files")
        pytest.skip("dataset-fashion-mnist is not installed: apt-get install -y dataset-fashion-mnist")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))  # the Debian files, not a Keras cache
    d = data.load_dataset("fashion_mnist", data_dir=str(tmp_path / "tfds"))
    assert (d.num_train, d.num_test, d.num_classes, d.image_size) == (60_000, 10_000, 10, 28)
    assert d.notes == [f"read from {DEBIAN}", "grayscale is repeated to 3 channels"]
    images, labels = d.train_arrays
    assert images.shape == (60_000, 28, 28, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(labels), [6_000] * 10)
    np.testing.assert_array_equal(images[..., 0], images[..., 2])
    x, y = next(iter(d.test.batch(10_000).as_numpy_iterator()))
    assert x.shape == (10_000, 28, 28, 3) and x.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(y), [1_000] * 10)


def test_looking_for_a_tfds_dataset_in_a_half_made_folder_says_nothing(tmp_path, caplog):
    """A folder an interrupted preparation left made tensorflow-datasets warn "Variant folder ... has no
    dataset_info.json" in every run's output; the answer (not prepared) is all that is wanted."""
    import logging

    (tmp_path / "fashion_mnist" / "3.0.1").mkdir(parents=True)
    before = logging.getLogger("absl").level
    with caplog.at_level(logging.WARNING):
        assert keras_datasets._tfds_prepared("fashion_mnist", str(tmp_path)) is False
    assert [record.getMessage() for record in caplog.records] == []
    assert logging.getLogger("absl").level == before  # put back
