"""TFRecord shards in the layout of TF's ImageNet build scripts as a dataset (`load_tfrecord_dir`), the encoded
images of tensorflow-datasets (`tfds.decode.SkipDecoding()`), and input pipelines that read only their own files
(under `tf.distribute` too)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from keras_convnets import data
from keras_convnets.data import tfrecord
from keras_convnets.data.decode import decode_image_bytes

NAMES = [f"n{k:08d}" for k in range(24)]


def jpeg(seed: int, shape=(48, 64)) -> bytes:
    rng = np.random.default_rng(seed)
    low = rng.normal(0, 100, (1, 3, 4, 3)).astype("float32")
    image = tf.image.resize(low, shape, method="bicubic")[0].numpy() + 128 + rng.normal(0, 15, shape + (3,))
    return tf.io.encode_jpeg(np.clip(image, 0, 255).astype("uint8"), quality=90).numpy()


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """24 training examples, one per class (label = example number), in 4 shards; 8 validation examples (classes
    16-23) in 1 shard."""
    root = tmp_path_factory.mktemp("imagenet_shards")
    train = [(jpeg(i, (48, 64) if i % 2 else (64, 48)), i) for i in range(24)]
    tfrecord.write_tfrecord_shards(root, "train", train, class_names=NAMES, num_shards=4)
    validation = [(jpeg(100 + i), 16 + i) for i in range(8)]
    tfrecord.write_tfrecord_shards(root, "validation", validation, class_names=NAMES)
    return str(root)


def test_shards_load_as_a_dataset(shards):
    assert sorted(os.listdir(shards)) == [f"train-0000{i}-of-00004" for i in range(4)] + ["validation-00000-of-00001"]
    d = data.load_dataset(shards)
    assert (d.num_train, d.num_test, d.num_classes) == (24, 8, 24)
    assert d.labels[16:] == NAMES[16:]  # named by their synsets where the validation shards have them
    assert d.labels[:3] == ["0", "1", "2"]
    assert d.notes == ["TFRecord shards: 4 train, 1 validation; labels minus 1"]
    assert [os.path.basename(f) for f in d.train_encoded.files] == sorted(os.listdir(shards))[:4]
    images = {int(y): x.numpy() for x, y in d.train}
    assert list(images) == list(range(24))  # written 1-based, read 0-based, one shard after the other
    assert images[0].shape == (64, 48, 3) and images[1].shape == (48, 64, 3) and images[0].dtype == np.uint8
    np.testing.assert_array_equal(images[5], tf.io.decode_jpeg(jpeg(5, (48, 64)), channels=3).numpy())
    raw = tf.io.parse_single_example(
        next(iter(tf.data.TFRecordDataset(d.train_encoded.files[0]))),
        {k: tf.io.FixedLenFeature([], t) for k, t in [("image/class/label", tf.int64), ("image/format", tf.string)]},
    )
    assert int(raw["image/class/label"]) == 1 and raw["image/format"].numpy() == b"JPEG"


def test_record_counts_come_from_the_headers(shards, tmp_path):
    assert [tfrecord.count_records(f) for f in tfrecord.shard_paths(shards, "train")] == [6, 6, 6, 6]
    with open(tfrecord.shard_paths(shards, "train")[0], "rb") as f:
        cut = f.read()[:-7]
    (tmp_path / "train-00000-of-00001").write_bytes(cut)
    with pytest.raises(
        ValueError, match="is not an uncompressed TFRecord file, or is cut short: its record 6 runs past"
    ):
        tfrecord.count_records(tmp_path / "train-00000-of-00001")


def test_zero_based_labels_and_the_offset(tmp_path):
    examples = [(jpeg(i), i % 3) for i in range(6)]
    with tf.io.TFRecordWriter(str(tmp_path / "validation-00000-of-00001")) as writer:
        for encoded, label in examples:  # written 0-based, not by the build scripts
            feature = {
                "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
                "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    (tmp_path / "train-00000-of-00001").write_bytes((tmp_path / "validation-00000-of-00001").read_bytes())
    d = data.load_tfrecord_dir(tmp_path)
    assert d.labels == ["0", "1", "2"] and d.notes[0].endswith("labels minus 0")
    assert [int(y) for _, y in d.test] == [0, 1, 2, 0, 1, 2]
    with pytest.raises(ValueError, match=r"`label_offset` must not exceed the smallest label .* \(0\)"):
        data.load_tfrecord_dir(tmp_path, label_offset=1)


def test_errors_name_what_is_wrong(shards, tmp_path):
    (tmp_path / "train-00000-of-00001").write_bytes(open(tfrecord.shard_paths(shards, "train")[0], "rb").read())
    with pytest.raises(ValueError, match="no `validation-\\*-of-\\*` shards"):
        data.load_dataset(str(tmp_path))
    with pytest.raises(ValueError, match="already holds `train-\\*-of-\\*` shards"):
        data.write_tfrecord_shards(tmp_path, "train", [(jpeg(0), 0)], class_names=["a"])
    with pytest.raises(ValueError, match=r"`split` must be one of 'train', 'validation'. Received: split='test'"):
        data.write_tfrecord_shards(tmp_path, "test", [(jpeg(0), 0)], class_names=["a"])
    with pytest.raises(ValueError, match=r"labels must be in \[0, 1\)"):
        data.write_tfrecord_shards(tmp_path / "new", "validation", [(jpeg(0), 1)], class_names=["a"])
    with pytest.raises(ValueError, match="`num_shards` must be"):
        data.write_tfrecord_shards(tmp_path / "new", "validation", [(jpeg(0), 0)], class_names=["a"], num_shards=2)
    assert not os.path.exists(tmp_path / "new") or not os.listdir(tmp_path / "new")


def test_distributed_pipeline_needs_a_strategy(shards):
    d = data.load_dataset(shards)
    with pytest.raises(TypeError, match="`strategy` must be a tf.distribute.Strategy .* Received: strategy=None"):
        data.distributed_train_pipeline(None, d, batch_size=8, image_size=16)
    default = tf.distribute.get_strategy()  # one replica: the plain pipeline
    x, _ = next(iter(data.distributed_train_pipeline(default, d, batch_size=6, image_size=16)))
    assert x.shape == (6, 16, 16, 3)


@pytest.mark.parametrize("augmentation", ["scale", "inception"])
def test_tfrecord_pipelines_fused_equal_full(shards, augmentation):
    """The shards' stream, shuffled from the seed, through the fused and the decode-then-crop pipelines: the same
    batches to float rounding; evaluation within one level; "crop_flip" (decoded once, cached) runs too."""
    d = data.load_dataset(shards)
    kwargs = dict(batch_size=6, image_size=32, augmentation=augmentation, seed=2, epochs=2)
    fused = list(data.train_pipeline(d, decode="fused", **kwargs).as_numpy_iterator())
    full = list(data.train_pipeline(d, decode="full", **kwargs).as_numpy_iterator())
    assert len(fused) == len(full) == 8
    for (xf, yf), (xo, yo) in zip(fused, full):
        np.testing.assert_array_equal(yf, yo)
        np.testing.assert_allclose(xf, xo, atol=0.01, rtol=0)
    assert sorted(np.concatenate([y for _, y in fused[:4]])) == list(range(24))  # epoch 0: each example once
    kwargs = dict(batch_size=8, image_size=32, augmentation=augmentation, cache=False)
    (xf, yf), (xo, yo) = (
        next(data.eval_pipeline(d, decode=m, **kwargs).as_numpy_iterator()) for m in ("fused", "full")
    )
    np.testing.assert_array_equal(yf, range(16, 24))
    assert np.abs(xf - xo).max() <= 1
    x, _ = next(iter(data.train_pipeline(d, batch_size=6, image_size=16)))
    assert x.shape == (6, 16, 16, 3)


def test_two_workers_read_only_their_own_shards(shards, tmp_path):
    """Input pipeline 0 of 2 reads shards 0 and 2, pipeline 1 shards 1 and 3: disjoint examples, all 24 together;
    with shards 1 and 3 gone, pipeline 0 still reads its epoch (it never opens them) and pipeline 1 fails."""
    for name in os.listdir(shards):
        (tmp_path / name).write_bytes(open(os.path.join(shards, name), "rb").read())
    d = data.load_dataset(str(tmp_path))

    def labels_of(pipeline):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline, num_replicas_in_sync=2)
        ds = data.train_pipeline(d, batch_size=8, image_size=24, augmentation="inception", input_context=context)
        return [int(v) for _, y in ds for v in y]  # 3 steps of 4 examples

    first, second = labels_of(0), labels_of(1)
    assert sorted(first) == list(range(0, 6)) + list(range(12, 18))
    assert sorted(second) == list(range(6, 12)) + list(range(18, 24))
    # a validation split held out of them keeps that: each pipeline reads its shards' kept examples
    held = data.holdout_validation(d, 8, seed=3)
    assert (held.train_encoded.count, held.validation_encoded.count) == (16, 8)
    kept = sorted(int(y) for _, y in held.train)
    validation = sorted(int(y) for _, y in held.validation)
    assert sorted(kept + validation) == list(range(24))
    for pipeline, shards_of in ((0, (0, 2)), (1, (1, 3))):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline, num_replicas_in_sync=2)
        ds = held.train_encoded.read(pipeline, 2)
        assert sorted(int(y) for _, y in ds) == [k for k in kept if k // 6 in shards_of]
        ds = data.train_pipeline(held, batch_size=4, image_size=24, augmentation="scale", input_context=context)
        assert {int(v) for _, y in ds for v in y} <= {k for k in kept if k // 6 in shards_of}
    x, y = next(iter(data.eval_pipeline(held, batch_size=8, image_size=24, augmentation="scale", split="validation")))
    assert sorted(y.numpy()) == validation and x.shape == (8, 24, 24, 3)
    os.unlink(tmp_path / "train-00001-of-00004")
    os.unlink(tmp_path / "train-00003-of-00004")
    assert sorted(labels_of(0)) == sorted(first)
    assert sorted(int(y) for _, y in held.train_encoded.read(0, 2)) == [k for k in kept if k // 6 in (0, 2)]
    with pytest.raises(tf.errors.NotFoundError):
        labels_of(1)


def test_tfds_encoded_images_feed_the_fused_decode(tmp_path, monkeypatch):
    """tensorflow-datasets' imagenet2012 under `tfds.testing.mock_data` (which serves the decoders' encoded path):
    the `SkipDecoding` splits hold JPEG bytes that the fused pipelines decode; the fused evaluation equals the
    decode-then-crop one on the decoded split."""
    import tensorflow_datasets as tfds

    monkeypatch.setattr(tfds.core.DatasetBuilder, "is_prepared", lambda self: True)
    with tfds.testing.mock_data(num_examples=8, policy=tfds.testing.MockPolicy.USE_CODE):
        d = data.load_tfds("imagenet2012", data_dir=str(tmp_path))
        assert d.train_encoded.count == d.num_train == 8 and d.num_classes == 1000
        encoded, label = next(iter(d.train_encoded.read(0, 1)))
        assert encoded.dtype == tf.string and encoded.numpy()[:3] == b"\xff\xd8\xff" and label.dtype == tf.int32
        x, y = next(iter(data.train_pipeline(d, batch_size=4, image_size=32, augmentation="inception")))
        assert x.shape == (4, 32, 32, 3) and y.shape == (4,)
        # the mock draws other images for the decoded split: decode the same bytes for the decode-then-crop path
        same = d.test_encoded.read(0, 1).map(lambda x, y: (decode_image_bytes(x), y))
        kwargs = dict(batch_size=8, image_size=32, augmentation="inception", cache=False)
        fused = next(iter(data.eval_pipeline(d, decode="fused", **kwargs)))[0].numpy()
        full = next(iter(data.eval_pipeline(dataclasses.replace(d, test=same), decode="full", **kwargs)))[0].numpy()
        assert fused.shape == (8, 32, 32, 3)
        np.testing.assert_array_equal(fused, full)


def _tiny_jpegs_builder():
    """A tensorflow-datasets builder of 24 tiny JPEG images (label = example number) and 8 test ones, prepared here
    without a network (defined once: tensorflow-datasets registers builder classes by name)."""
    import tensorflow_datasets as tfds

    class KerasConvnetsTinyJpegs(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            features = {
                "image": tfds.features.Image(encoding_format="jpeg"),
                "label": tfds.features.ClassLabel(num_classes=24),
            }
            return tfds.core.DatasetInfo(
                builder=self, features=tfds.features.FeaturesDict(features), supervised_keys=("image", "label")
            )

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(range(24)), "test": self._generate_examples(range(16, 24))}

        def _generate_examples(self, labels):
            for label in labels:
                yield label, {"image": np.full((20, 30, 3), 10 * label, np.uint8), "label": label}

    return KerasConvnetsTinyJpegs


@pytest.fixture(scope="module")
def tiny_tfds(tmp_path_factory):
    import tensorflow_datasets as tfds

    root = str(tmp_path_factory.mktemp("tfds"))
    builder = _tiny_jpegs_builder()(data_dir=root)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(num_shards=4))
    assert builder.info.splits["train"].num_shards == 4
    return root


def test_tfds_input_pipelines_read_their_share_of_the_files(tiny_tfds):
    """`tfds.ReadConfig(input_context=...)`: 2 pipelines take 2 of the 4 files each (12 examples); 8 pipelines, more
    than the files, take every 8th example of all (tensorflow-datasets cannot give each a file)."""
    d = data.load_tfds("keras_convnets_tiny_jpegs", data_dir=tiny_tfds)
    assert (d.num_train, d.num_test, d.train_encoded.count) == (24, 8, 24)
    for shards, size in ((1, 24), (2, 12), (8, 3)):
        parts = [[int(y) for x, y in d.train_encoded.read(shard, shards)] for shard in range(shards)]
        assert [len(part) for part in parts] == [size] * shards
        assert sorted(sum(parts, [])) == list(range(24))
    # a sample of it: tensorflow-datasets cannot number the examples of one pipeline's files, so the sample is
    # read whole and each pipeline keeps every other example
    sample = data.subset(d, max_train=10, seed=1)
    chosen = [int(y) for _, y in sample.train]
    parts = [[int(y) for _, y in sample.train_encoded.read(shard, 2)] for shard in range(2)]
    assert len(chosen) == 10 and [len(part) for part in parts] == [5, 5] and sorted(sum(parts, [])) == sorted(chosen)
    x, y = next(iter(d.train_encoded.read(0, 1)))
    assert x.numpy()[:3] == b"\xff\xd8\xff"
    x, y = next(iter(data.eval_pipeline(d, batch_size=8, image_size=16, augmentation="scale")))
    np.testing.assert_array_equal(sorted(y.numpy()), range(16, 24))
    assert np.abs(x.numpy() - 10.0 * y.numpy()[:, None, None, None]).max() <= 3  # flat JPEGs of value 10 x label


MIRRORED_CHILD = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    from keras_convnets.trainer.distribute import configure_cpu_devices
    configure_cpu_devices(2)
    import keras
    from keras_convnets import data
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    d = data.load_dataset(sys.argv[1])
    ds = data.distributed_train_pipeline(
        strategy, d, batch_size=8, image_size=24, augmentation="inception", epochs=2
    )
    steps = []
    for x, y in ds:
        xs, ys = strategy.experimental_local_results(x), strategy.experimental_local_results(y)
        steps.append({"labels": [[int(v) for v in t] for t in ys], "devices": [t.device for t in xs],
                      "shapes": [list(t.shape) for t in xs]})
    with strategy.scope():
        layers = keras.layers
        model = keras.Sequential([keras.Input((24, 24, 3)), layers.Conv2D(4, 3), layers.GlobalAveragePooling2D(),
                                  layers.Dense(24)])
        model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(ds, epochs=2, steps_per_epoch=3, verbose=0)
    print("RESULT " + json.dumps({"type": type(ds).__name__, "steps": steps, "loss": history.history["loss"]}))
    """
)


@pytest.mark.slow
def test_mirrored_replicas_get_distinct_examples_on_their_devices(shards):
    """MirroredStrategy over 2 logical CPUs: the training pipeline is a distributed dataset whose replicas get
    distinct examples (each example once an epoch: 3 steps x 2 replicas x 4), on their own device; fit takes it."""
    done = subprocess.run([sys.executable, "-c", MIRRORED_CHILD, shards], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads([line for line in done.stdout.splitlines() if line.startswith("RESULT ")][-1][7:])
    assert report["type"] == "DistributedDatasetsFromFunction"
    assert len(report["steps"]) == 6
    for epoch in (report["steps"][:3], report["steps"][3:]):
        labels = [label for step in epoch for replica in step["labels"] for label in replica]
        assert sorted(labels) == list(range(24))
    for step in report["steps"]:
        assert step["shapes"] == [[4, 24, 24, 3], [4, 24, 24, 3]]
        assert step["devices"][0].endswith("CPU:0") and step["devices"][1].endswith("CPU:1")
    assert len(report["loss"]) == 2 and all(np.isfinite(report["loss"]))
