"""TFRecord shards in the layout of TF's ImageNet build scripts (`build_imagenet_data.py` of tensorflow/models'
Inception, `imagenet_to_gcs.py` of tensorflow/tpu) as a dataset: a directory of `train-00000-of-01024`, ... and
`validation-00000-of-00128`, ... files of `tf.train.Example`s with the keys
- `image/encoded`: the image file's bytes (JPEG there; PNG and the others decode too), `image/format`,
  `image/height`, `image/width`, `image/colorspace`, `image/channels`, `image/filename`;
- `image/class/label`: **1-based** in those scripts (1..1000, 0 unused), made 0-based here (`label_offset`);
- `image/class/synset` (`n01440764`) and `image/class/text`: the class names.

`load_tfrecord_dir` counts the training records from the files' record headers (no image is read) and reads the
labels and class names of the validation shards (which hold every class in the scripts' output). The pipelines
read the raw JPEG bytes (`ImageData.train_encoded`), each input pipeline only its share of the shards, and decode
only the crops they keep.
"""

from __future__ import annotations

import functools
import glob
import os
import re
import struct
from typing import Sequence

import numpy as np
import tensorflow as tf

from keras_convnets.data.dataset import AUTOTUNE, EncodedSplit, ImageData
from keras_convnets.data.decode import decode_image_bytes
from keras_convnets.utils.io import atomic_path, fsync_directory
from keras_convnets.utils.validation import check_int

__all__ = [
    "SPLITS",
    "count_records",
    "is_tfrecord_dir",
    "load_tfrecord_dir",
    "shard_paths",
    "write_tfrecord_shards",
]

SPLITS = ("train", "validation")
_SHARD = re.compile(r"^(?P<split>[a-z]+)-(?P<index>\d+)-of-(?P<count>\d+)$")
_FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
    "image/class/label": tf.io.FixedLenFeature([], tf.int64),
}
_NAME_FEATURES = {
    "image/class/label": tf.io.FixedLenFeature([], tf.int64),
    "image/class/synset": tf.io.FixedLenFeature([], tf.string, default_value=""),
    "image/class/text": tf.io.FixedLenFeature([], tf.string, default_value=""),
}


def shard_paths(directory: str | os.PathLike, split: str) -> list[str]:
    """The files `{split}-NNNNN-of-NNNNN` of `directory`, sorted."""
    directory = os.fspath(directory)
    paths = []
    for path in glob.glob(os.path.join(glob.escape(directory), f"{split}-*-of-*")):
        match = _SHARD.match(os.path.basename(path))
        if match and match["split"] == split and os.path.isfile(path):
            paths.append(path)
    return sorted(paths)


def is_tfrecord_dir(path: str | os.PathLike) -> bool:
    """Whether `path` is a directory holding `train-*-of-*` shards."""
    return os.path.isdir(path) and bool(shard_paths(path, "train"))


def count_records(path: str | os.PathLike) -> int:
    """The number of records of an uncompressed TFRecord file, from its record headers alone (each record is a
    little-endian uint64 length, a 4-byte CRC, the data and a 4-byte CRC): the images are skipped, not read."""
    path = os.fspath(path)
    size, offset, count = os.path.getsize(path), 0, 0
    with open(path, "rb") as f:
        while offset < size:
            header = f.read(12)
            if len(header) < 12:
                break
            (length,) = struct.unpack("<Q", header[:8])
            offset += 16 + length
            f.seek(offset)
            count += 1
    if offset != size:
        raise ValueError(
            f"{path!r} is not an uncompressed TFRecord file, or is cut short: its record {count} runs past its "
            f"end. Received: dataset={os.path.dirname(path)!r}"
        )
    return count


def _parse(serialized, label_offset: int):
    example = tf.io.parse_single_example(serialized, _FEATURES)
    return example["image/encoded"], tf.cast(example["image/class/label"] - label_offset, tf.int32)


def _numbered_records(
    files: Sequence[str],
    counts: Sequence[int],
    label_offset: int,
    shard: int,
    shards: int,
    *,
    interleave: bool = True,
    numbered: bool = True,
) -> tf.data.Dataset:
    """`(position, encoded bytes, label)` of shard `shard` of `shards`: every `shards`-th file from `shard` on (the
    worker reads only those), interleaved record by record (or one file after the other); with fewer files than
    shards, every `shards`-th record of all the files. A record's position in the split is the number of records
    of the files before its own plus its index in its file, whichever files a shard reads. `numbered=False`:
    `(encoded bytes, label)`, in the same order."""
    firsts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype("int64")
    mine = list(range(shard, len(files), shards)) if len(files) >= shards else list(range(len(files)))
    ds = tf.data.Dataset.from_tensor_slices(
        (tf.constant([files[i] for i in mine], tf.string), tf.constant(firsts[mine], tf.int64))
    )

    def records(path, first):
        def number(index, record):
            return first + index, record

        return tf.data.TFRecordDataset(path).enumerate().map(number) if numbered else tf.data.TFRecordDataset(path)

    def parsed(*numbered_record):
        return (*numbered_record[:-1], *_parse(numbered_record[-1], label_offset))

    cycle = min(len(mine), 16) if interleave else 1
    if cycle > 1:
        ds = ds.interleave(records, cycle_length=cycle, num_parallel_calls=AUTOTUNE, deterministic=True)
    else:
        ds = ds.flat_map(records)
    if len(files) < shards:
        ds = ds.shard(shards, shard)
    return ds.map(parsed, num_parallel_calls=AUTOTUNE, deterministic=True)


def _records(files: Sequence[str], counts: Sequence[int], label_offset: int, shard: int, shards: int):
    """`(encoded bytes, label)` of shard `shard` of `shards` (`_numbered_records` without the positions)."""
    return _numbered_records(files, counts, label_offset, shard, shards, numbered=False)


def _class_names(files: Sequence[str]) -> tuple[np.ndarray, dict[int, str], int]:
    """The labels (as written), a name for each label, and the record count of the shards `files`."""
    ds = tf.data.TFRecordDataset(list(files), num_parallel_reads=min(len(files), 16))
    ds = ds.map(lambda r: tf.io.parse_single_example(r, _NAME_FEATURES), num_parallel_calls=AUTOTUNE)
    labels, names = [], {}
    for batch in ds.batch(4096).as_numpy_iterator():
        written = batch["image/class/label"]
        labels.append(written)
        for label, synset, text in zip(written, batch["image/class/synset"], batch["image/class/text"]):
            if int(label) not in names and (synset or text):
                names[int(label)] = (synset or text).decode("utf-8", "replace")
    labels = np.concatenate(labels) if labels else np.zeros([0], "int64")
    return labels, names, len(labels)


def load_tfrecord_dir(directory: str | os.PathLike, *, label_offset: int | None = None) -> ImageData:
    """The `train-*` and `validation-*` shards of `directory` (the layout of TF's ImageNet build scripts) as an
    `ImageData` whose splits hold the encoded images too (`train_encoded`, `test_encoded`).

    `label_offset` is subtracted from `image/class/label`: 1 for the build scripts' 1-based labels; the default
    (None) takes 1 unless a validation label is 0 (0-based shards). The classes are those of the validation
    shards, named by their `image/class/synset` (else `image/class/text`, else the label)."""
    directory = os.fspath(directory)
    train_files, test_files = shard_paths(directory, "train"), shard_paths(directory, "validation")
    if not train_files:
        raise ValueError(f"`dataset` directory {directory!r} holds no `train-*-of-*` TFRecord shards.")
    if not test_files:
        raise ValueError(
            f"`dataset` directory {directory!r} has `train-*-of-*` TFRecord shards but no `validation-*-of-*` "
            "shards to evaluate on."
        )
    if label_offset is not None:
        check_int("label_offset", label_offset, minimum=0)
    written, names, num_test = _class_names(test_files)
    if num_test == 0:
        raise ValueError(f"The `validation-*` shards of {directory!r} hold no records.")
    offset = label_offset if label_offset is not None else (0 if written.min() == 0 else 1)
    if written.min() < offset:
        raise ValueError(
            f"`label_offset` must not exceed the smallest label of the validation shards ({written.min()}): the "
            f"labels would become negative. Received: label_offset={label_offset!r}"
        )
    num_classes = int(written.max()) - offset + 1
    labels = [names.get(k + offset, str(k)) for k in range(num_classes)]
    train_counts = [count_records(path) for path in train_files]
    num_train = sum(train_counts)

    def split(files, counts):
        encoded = EncodedSplit(
            count=sum(counts),
            read=functools.partial(_records, files, counts, offset),
            files=tuple(files),
            read_numbered=functools.partial(_numbered_records, files, counts, offset),
        )

        def decoded(position, x, y):
            return decode_image_bytes(x), y

        # the split's order: one file after the other, the order of the positions (`subset` cuts by them)
        ordered = _numbered_records(files, counts, offset, 0, 1, interleave=False)
        return ordered.map(decoded, num_parallel_calls=AUTOTUNE, deterministic=True), encoded

    train, train_encoded = split(train_files, train_counts)
    test, test_encoded = split(test_files, [count_records(path) for path in test_files])
    return ImageData(
        name=os.path.basename(os.path.normpath(directory)),
        train=train,
        test=test,
        num_train=num_train,
        num_test=num_test,
        labels=labels,
        notes=[
            f"TFRecord shards: {len(train_files)} train, {len(test_files)} validation; labels minus {offset}",
        ],
        train_encoded=train_encoded,
        test_encoded=test_encoded,
    )


def _image_format(encoded: bytes) -> str:
    for signature, name in ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG", "PNG"), (b"GIF8", "GIF"), (b"BM", "BMP")):
        if encoded.startswith(signature):
            return name
    raise ValueError(f"`examples` must hold JPEG, PNG, GIF or BMP bytes. Received bytes starting {encoded[:8]!r}")


def _example(encoded: bytes, label: int, name: str, filename: str) -> bytes:
    height, width, channels = (int(v) for v in tf.shape(decode_image_bytes(encoded)).numpy())
    del channels  # always decoded to 3
    features = {
        "image/encoded": [encoded],
        "image/format": [_image_format(encoded).encode()],
        "image/colorspace": [b"RGB"],
        "image/class/synset": [name.encode()],
        "image/class/text": [name.encode()],
        "image/filename": [filename.encode()],
    }
    ints = {"image/height": height, "image/width": width, "image/channels": 3, "image/class/label": label + 1}
    feature = {k: tf.train.Feature(bytes_list=tf.train.BytesList(value=v)) for k, v in features.items()}
    feature.update({k: tf.train.Feature(int64_list=tf.train.Int64List(value=[v])) for k, v in ints.items()})
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_tfrecord_shards(
    directory: str | os.PathLike,
    split: str,
    examples: Sequence[tuple[bytes, int]],
    *,
    class_names: Sequence[str],
    num_shards: int = 1,
) -> list[str]:
    """Write `examples` (encoded image bytes, 0-based label) as `num_shards` files `{split}-NNNNN-of-NNNNN` of
    `directory` in the layout of TF's ImageNet build scripts (labels written 1-based, `image/class/synset` and
    `image/class/text` from `class_names`), consecutive examples per shard. Each file appears complete or not at
    all; existing shards of `split` are never replaced. Returns the paths."""
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {', '.join(map(repr, SPLITS))}. Received: split={split!r}")
    check_int("num_shards", num_shards, minimum=1, maximum=max(1, len(examples)))
    directory = os.fspath(directory)
    if shard_paths(directory, split):
        raise ValueError(
            f"`directory` already holds `{split}-*-of-*` shards; write them into an empty directory. "
            f"Received: directory={directory!r}"
        )
    for _, label in examples:
        if not 0 <= label < len(class_names):
            raise ValueError(
                f"`examples` labels must be in [0, {len(class_names)}) (one per class name). Received: label={label!r}"
            )
    os.makedirs(directory, exist_ok=True)
    bounds = np.linspace(0, len(examples), num_shards + 1).round().astype(int)
    paths = []
    for index in range(num_shards):
        path = os.path.join(directory, f"{split}-{index:05d}-of-{num_shards:05d}")
        with atomic_path(path, sync_directory=False) as tmp, tf.io.TFRecordWriter(tmp) as writer:
            for position in range(bounds[index], bounds[index + 1]):
                encoded, label = examples[position]
                writer.write(_example(encoded, int(label), class_names[label], f"{split}_{position:08d}"))
        paths.append(path)
    fsync_directory(directory)
    return paths
