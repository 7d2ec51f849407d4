"""The input pipeline alone against what the model consumes; with `--jpeg`, the ImageNet pipelines from JPEG files.

    python -m benchmarks.data                 # CIFAR recipe (crop_flip, 32px, batch 128) and the ImageNet recipe
    python -m benchmarks.data --smoke
    python -m benchmarks.data --jpeg          # img/s per CPU core, decoding included (pinned to --cores 1)

Each row times `keras_convnets.data.train_pipeline` with the recipe's augmentation and preprocessing on synthetic
raw uint8 images held in memory (50,000 CIFAR-sized images; 256 ImageNet-like 500x375 images for "scale" and
"inception", already decoded: JPEG decoding is not measured), delivering batches to a consumer that does
nothing, and, in the same interleaved rounds, our
training step on the model of that recipe (`benchmarks.train`). "pipeline / model" above 1 means the pipeline
keeps up; "CPU share" is the fraction of the machine the pipeline needs to feed the model (model img/s divided
by pipeline img/s, the pipeline having the whole machine while it is timed).

`--jpeg` writes a synthetic set of ImageNet-like JPEGs (500x375, quality 90, about 95 KB: smooth regions, edges
and texture) as an image folder and as TFRecord shards in the layout of TF's ImageNet build scripts, pins the
process to `--cores` CPUs (as `taskset`) and times the "scale" and "inception" training and evaluation
pipelines reading them, decoding included, in steady state (`measure_steady`): the pipeline as it was before the
fused decode (`before_pipeline`, an image folder), `decode="full"` (the whole image decoded, then cropped) and
`decode="fused"` (only the crop decoded), interleaved in one run. "img/s per CPU-second" is the robust rate on a
shared machine; "cores for 3,000 img/s" is what feeding ResNet-50 training on a current GPU would take.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass

from benchmarks import common


@dataclass(frozen=True)
class Case:
    augmentation: str
    model: str
    size: int  # training image side
    source_shape: tuple[int, int]  # raw images (height, width)
    count: int  # raw images in the synthetic set
    batch: int
    preprocessing: str


CASES = {
    "cifar": Case("crop_flip", "resnet20", 32, (32, 32), 50_000, 128, "mean_image"),
    "imagenet": Case("scale", "resnet50", 224, (375, 500), 256, 32, "mean_rgb"),
    "googlenet": Case("inception", "googlenet", 224, (375, 500), 256, 32, "mean_rgb"),
}
SMOKE_CASES = {
    "cifar": Case("crop_flip", "resnet20", 32, (32, 32), 64, 8, "mean_image"),
    "imagenet": Case("scale", "resnet50", 32, (40, 48), 16, 4, "mean_rgb"),
    "googlenet": Case("inception", "googlenet", 79, (90, 100), 16, 4, "mean_rgb"),
}


def synthetic_data(case: Case):
    """An `ImageData` of random uint8 images of `case.source_shape` (10 classes)."""
    import numpy as np
    import tensorflow as tf

    from keras_convnets.data import ImageData

    rng = np.random.default_rng(0)
    h, w = case.source_shape
    images = rng.integers(0, 256, (case.count, h, w, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, case.count).astype("int32")
    same_size = case.source_shape == (case.size, case.size)
    return ImageData(
        name=f"synthetic-{case.augmentation}",
        train=tf.data.Dataset.from_tensor_slices((images, labels)),
        test=tf.data.Dataset.from_tensor_slices((images[:8], labels[:8])),
        num_train=case.count,
        num_test=8,
        labels=[str(i) for i in range(10)],
        image_size=h if h == w else None,
        train_arrays=(images, labels) if same_size else None,
    )


def pipeline_runner(case: Case, batches: int):
    """`run(steps)`: `steps` times, start a fresh iterator of the recipe's training pipeline and pull `batches`
    batches from it. A fresh iterator has nothing prefetched while the other configurations ran, so this is the
    sustained rate (start-up included: a lower bound)."""
    from keras_convnets.data import compute_preprocessing, train_pipeline

    data = synthetic_data(case)
    preprocessing = compute_preprocessing(
        case.preprocessing, data, image_size=case.size, augmentation=case.augmentation, max_examples=64
    )
    steps_per_epoch = max(1, case.count // case.batch)
    ds = train_pipeline(
        data,
        batch_size=case.batch,
        image_size=case.size,
        augmentation=case.augmentation,
        preprocessing=preprocessing,
        epochs=10_000,
        steps_per_epoch=steps_per_epoch,
    )

    def run(steps: int):
        for _ in range(steps):
            iterator = iter(ds)
            for _ in range(batches):
                images, _ = next(iterator)
            del iterator
        return images.shape

    return run


def benchmark(
    cases=("cifar", "imagenet", "googlenet"), *, rounds: int = 3, precision: str = "auto", smoke: bool = False, log=None
) -> str:
    from benchmarks import train
    from keras_convnets import trainer

    load_before = common.load_average()
    precision = trainer.resolve_mixed_precision(precision)
    table = SMOKE_CASES if smoke else CASES
    configs, rows_spec = [], []
    for key in cases:
        if key not in table:
            raise ValueError(f"`cases` must be among {', '.join(table)}. Received: {key!r}")
        case = table[key]
        batches = 1 if smoke else (40 if case.size <= 64 else 12)
        configs.append(common.Config(f"pipeline {key}", pipeline_runner(case, batches), case.batch * batches, warmup=1))
        workload = train.Workload(case.model, case.size, case.batch, 10)
        _, step = train.ours(workload, precision)
        configs.append(common.Config(f"model {key}", step, case.batch, steps=1 if (smoke or case.size > 64) else 3))
        rows_spec.append((key, case))
    timings = common.measure(configs, rounds=1 if smoke else rounds, log=log)
    headers = [
        "recipe",
        "augmentation",
        "image",
        "batch",
        "pipeline img/s",
        "model training img/s",
        "pipeline / model",
        "CPU share of the pipeline",
    ]
    rows = []
    for key, case in rows_spec:
        fed = timings[f"pipeline {key}"].median
        eaten = timings[f"model {key}"].median
        rows.append(
            [
                key,
                case.augmentation,
                f"{case.source_shape[1]}x{case.source_shape[0]} -> {case.size}",
                case.batch,
                common.fmt(fed),
                common.fmt(eaten),
                common.fmt(fed / eaten, 3),
                f"{100 * eaten / fed:.1f}%",
            ]
        )
    header = common.report_header(
        f"Input pipeline vs training ({precision})", rounds=1 if smoke else rounds, load_before=load_before
    )
    return "\n".join([header, common.markdown_table(headers, rows), ""])


# --- From JPEG files: decoding included ------------------------------------------------------------------------

JPEG_SHAPE = (375, 500)  # (height, width): a typical ImageNet photo
JPEG_QUALITY = 90
FEED_RATE = 3000  # img/s: ResNet-50 training on a current GPU
DECODES = {"full": {"decode": "full"}, "fused": {"decode": "fused"}}  # decode-then-crop, and decode only the crop
SOURCES = ("folder", "tfrecord")


def synthetic_photo(rng, shape=JPEG_SHAPE):
    """A uint8 RGB image with the structure of a photo (smooth regions, edges, texture): about 100 KB as a
    500x375 JPEG at quality 90, the size of an average ImageNet training JPEG; noise would be much larger."""
    import numpy as np
    import tensorflow as tf

    h, w = shape
    image = np.zeros((h, w, 3), "float32")
    for cells, spread in ((8, 110.0), (32, 40.0)):
        low = rng.normal(0, spread, (1, max(2, cells * h // w), cells, 3)).astype("float32")
        image += tf.image.resize(low, (h, w), method="bicubic")[0].numpy()
    image += 128 + rng.normal(0, 20, (h, w, 3)).astype("float32")
    return np.clip(image, 0, 255).astype("uint8")


def write_jpeg_set(root, count: int, *, test_count: int = 32, classes: int = 10, shards: int = 4, seed: int = 0):
    """`count` training and `test_count` validation JPEGs of `JPEG_SHAPE` at `JPEG_QUALITY` under `root`, as an
    image folder (`folder/train/<class>/`, `folder/validation/<class>/`) and the same bytes as TFRecord shards in
    the layout of TF's ImageNet build scripts (`tfrecord/train-0000N-of-0000M`, `shards` of them, one validation
    shard). Returns {"folder": path, "tfrecord": path, "bytes": mean file size}."""
    import numpy as np
    import tensorflow as tf

    from keras_convnets.data import write_tfrecord_shards

    rng = np.random.default_rng(seed)
    root = os.fspath(root)
    folder, records = os.path.join(root, "folder"), os.path.join(root, "tfrecord")
    names = [f"class{label:02d}" for label in range(classes)]
    sizes = []
    for split, n, n_shards in (("train", count, shards), ("validation", test_count, 1)):
        examples = []
        for i in range(n):
            label = i % classes
            directory = os.path.join(folder, split, names[label])
            os.makedirs(directory, exist_ok=True)
            encoded = tf.io.encode_jpeg(synthetic_photo(rng), quality=JPEG_QUALITY).numpy()
            sizes.append(len(encoded))
            with open(os.path.join(directory, f"{i:05d}.jpg"), "wb") as f:
                f.write(encoded)
            examples.append((encoded, label))
        write_tfrecord_shards(records, split, examples, class_names=names, num_shards=n_shards)
    return {"folder": folder, "tfrecord": records, "bytes": float(np.mean(sizes))}


MEAN_RGB = (123.68, 116.78, 103.94)


def _before_resize_square(image, size: int):
    import tensorflow as tf

    # before the fused decode every square resize was antialiased, the "inception" crops' included
    return tf.image.resize(tf.cast(image, tf.float32), (size, size), method="bilinear", antialias=True)


def before_eval_transform(image, *, augmentation: str, size: int):
    """`augment.eval_transform` as it was before the fused decode (its own copy, so that later changes to the
    package's arithmetic do not move the baseline): the "inception" centre crop resized with antialiasing."""
    import tensorflow as tf

    from keras_convnets.data.augment import eval_transform

    if augmentation == "inception":
        return _before_resize_square(tf.image.central_crop(image, 0.875), size)
    return eval_transform(image, augmentation=augmentation, size=size)  # "scale": unchanged since


def before_train_transform(image, seed, *, augmentation: str, size: int):
    """`augment._train_transform` (flip on) as it was before the fused decode: the "inception" random crop resized
    with antialiasing; the "scale" path is the package's, unchanged since."""
    import tensorflow as tf

    from keras_convnets.data.augment import _inception_box, _train_transform

    if augmentation != "inception":
        return _train_transform(image, seed, augmentation=augmentation, size=size, flip=True)
    seeds = tf.random.experimental.stateless_split(seed, 3)
    begin, extent = _inception_box(tf.shape(image), seeds[0])
    image = _before_resize_square(tf.slice(image, begin, extent), size)
    return tf.image.stateless_random_flip_left_right(image, seeds[2])


def before_pipeline(data, *, pipeline: str, augmentation: str, batch: int, size: int, seed: int = 0):
    """The training (or evaluation) pipeline of an image folder as it was before the fused decode, op for op:
    every file decoded whole (`decode_image`), then the decode-then-crop transform (`before_train_transform`,
    `before_eval_transform`) in a second map, batched, and the mean-RGB preprocessing applied to whole batches
    ((x - mean) / std, the mean a (3,) vector), then a cast and the prefetch."""
    import tensorflow as tf

    from keras_convnets.data.augment import _to_uint8
    from keras_convnets.data.dataset import decode_image, files_dataset
    from keras_convnets.data.pipelines import _epoch_seed, _permuted

    autotune, mean, std = tf.data.AUTOTUNE, tf.constant(MEAN_RGB, tf.float32), tf.constant(1.0, tf.float32)

    def preprocess(x, y):
        return (tf.cast(x, tf.float32) - mean) / std, y

    def finish(ds, *, cast: bool):
        if cast:  # the training pipeline's last map (its images already preprocessed floats)
            ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), y), num_parallel_calls=autotune, deterministic=True)
        options = tf.data.Options()
        options.deterministic = True
        return ds.with_options(options).prefetch(autotune)

    if pipeline == "eval":
        ds = files_dataset(*data.test_files).map(
            lambda x, y: (_to_uint8(before_eval_transform(x, augmentation=augmentation, size=size)), y),
            num_parallel_calls=autotune,
        )
        ds = ds.batch(batch).map(preprocess, num_parallel_calls=autotune, deterministic=True)
        return finish(ds, cast=False).repeat()
    paths, labels = data.train_files
    steps = data.num_train // batch
    payload = tf.data.Dataset.from_tensors((tf.constant(paths.astype(str)), tf.constant(labels, tf.int32)))

    def epoch_dataset(epoch, paths_labels):
        files, classes = paths_labels
        ds = _permuted(len(paths), seed, epoch).map(
            lambda i: decode_image(tf.gather(files, i), tf.gather(classes, i)),
            num_parallel_calls=autotune,
            deterministic=True,
        )
        epoch_seed = _epoch_seed(seed, epoch)
        ds = (
            ds.ignore_errors()
            .enumerate()
            .map(
                lambda i, xy: (
                    before_train_transform(
                        xy[0],
                        tf.random.experimental.stateless_fold_in(epoch_seed, i),
                        augmentation=augmentation,
                        size=size,
                    ),
                    xy[1],
                ),
                num_parallel_calls=autotune,
                deterministic=True,
            )
        )
        ds = ds.batch(batch, drop_remainder=True).take(steps)
        return ds.enumerate().map(lambda b, xy: preprocess(*xy), num_parallel_calls=autotune, deterministic=True)

    epochs = tf.data.Dataset.zip((tf.data.Dataset.range(10_000), payload.repeat()))
    return finish(epochs.flat_map(epoch_dataset), cast=True)


def jpeg_dataset(data, *, pipeline: str, augmentation: str, batch: int, size: int, decode: dict):
    """The endless training (or evaluation) pipeline of `data`, mean-RGB preprocessing included."""
    from keras_convnets.data import Preprocessing, eval_pipeline, train_pipeline

    preprocessing = Preprocessing.mean_rgb(MEAN_RGB)
    if pipeline == "train":
        return train_pipeline(
            data,
            batch_size=batch,
            image_size=size,
            augmentation=augmentation,
            preprocessing=preprocessing,
            epochs=10_000,
            steps_per_epoch=max(1, data.num_train // batch),
            **decode,
        )
    return eval_pipeline(
        data,
        batch_size=batch,
        image_size=size,
        augmentation=augmentation,
        preprocessing=preprocessing,
        cache=False,
        **decode,
    ).repeat()


def measure_steady(datasets: dict, *, warm: int, timed: int, rounds: int, log=None) -> dict:
    """name -> `common.Timing` of `(dataset, batch size)`s, interleaved over `rounds` rounds: each round starts a
    fresh iterator of each dataset, pulls `warm` batches untimed (start-up, autotuning, the buffers filled), then
    times `timed` batches in wall and CPU time, and deletes the iterator, so that no other pipeline's threads run
    during a measurement. The buffers are full at both ends of the window: the rate is the steady one."""
    timings = {name: common.Timing(name) for name in datasets}
    for index in range(rounds):
        for name, (ds, batch) in datasets.items():
            iterator = iter(ds)
            for _ in range(warm):
                next(iterator)
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(timed):
                next(iterator)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            del iterator
            timings[name].rates.append(batch * timed / wall)
            timings[name].cpu_rates.append(batch * timed / max(cpu, 1e-9))
        if log:
            log(f"round {index + 1}/{rounds}: " + ", ".join(f"{t.name} {t.rates[-1]:.4g}" for t in timings.values()))
    return timings


def jpeg_benchmark(
    *,
    count: int = 256,
    rounds: int = 3,
    augmentations=("scale", "inception"),
    smoke: bool = False,
    log=None,
) -> str:
    """img/s per CPU core of the training and evaluation pipelines reading the synthetic JPEG set, decoding
    included, for every decode path in `DECODES` and source in `SOURCES`; the cores are the process's CPU
    affinity (`--cores`)."""
    import tempfile

    from keras_convnets.data import load_dataset

    load_before = common.load_average()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    size, batch = (64, 8) if smoke else (224, 32)
    count = 16 if smoke else count
    with tempfile.TemporaryDirectory() as root:
        written = write_jpeg_set(root, count, test_count=8 if smoke else 64, shards=2 if smoke else 4)
        sources = {source: load_dataset(written[source]) for source in SOURCES}
        datasets, rows_spec = {}, []
        for augmentation in augmentations:
            for pipeline in ("train", "eval"):
                for source, data in sources.items():
                    decodes = {"before": None, **DECODES} if source == "folder" else DECODES
                    for decode_name, decode in decodes.items():
                        name = f"{pipeline} {augmentation} {source} {decode_name}"
                        kwargs = dict(pipeline=pipeline, augmentation=augmentation, batch=batch, size=size)
                        if decode is None:
                            ds = before_pipeline(data, **kwargs)
                        else:
                            ds = jpeg_dataset(data, decode=decode, **kwargs)
                        datasets[name] = (ds, batch)
                        rows_spec.append((name, pipeline, augmentation, source, decode_name))
        if log:
            log(f"{len(datasets)} pipelines, {rounds} rounds")
        timed = 2 if smoke else max(4, 2 * count // batch)
        timings = measure_steady(datasets, warm=1 if smoke else 3, timed=timed, rounds=1 if smoke else rounds, log=log)
    headers = [
        "pipeline",
        "augmentation",
        "source",
        "decode",
        "img/s per core (wall)",
        "img/s per CPU-second",
        "vs before (CPU-seconds)",
        "vs full decode (CPU-seconds)",
        f"cores for {FEED_RATE:,} img/s",
    ]
    rows = []

    def per_cpu_second(name):
        return statistics.median(timings[name].cpu_rates) if name in timings else None

    for name, pipeline, augmentation, source, decode_name in rows_spec:
        rate = per_cpu_second(name)
        before = per_cpu_second(f"{pipeline} {augmentation} folder before")
        full = per_cpu_second(f"{pipeline} {augmentation} {source} full")
        rows.append(
            [
                pipeline,
                augmentation,
                source,
                decode_name,
                common.fmt(timings[name].median / cores),
                common.fmt(rate),
                common.fmt(rate / before, 3) if before and source == "folder" else "-",
                common.fmt(rate / full, 3),
                common.fmt(FEED_RATE / rate),
            ]
        )
    header = common.report_header(
        f"Input pipelines from JPEG files ({cores} core{'s' if cores > 1 else ''})",
        rounds=1 if smoke else rounds,
        load_before=load_before,
    )
    jpeg_h, jpeg_w = JPEG_SHAPE
    note = (
        f"{count} synthetic {jpeg_w}x{jpeg_h} JPEGs at quality {JPEG_QUALITY} (mean {written['bytes'] / 1000:.0f} KB), "
        f"decoded to {size}x{size}, batch {batch}; {timed} batches timed per pipeline and round, after "
        f'{1 if smoke else 3} untimed. Decode "before": the pipeline before the fused decode (`before_pipeline`); '
        '"full": `decode="full"`, the whole image decoded, then cropped; "fused": only the crop decoded.'
    )
    return "\n".join([header, note, "", common.markdown_table(headers, rows), ""])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.data", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="cifar,imagenet,googlenet", help="comma-separated: " + ", ".join(CASES))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--precision", default="auto", help="the model's dtype policy (default: what training picks)")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--jpeg", action="store_true", help="the pipelines alone, from JPEG files")
    parser.add_argument("--cores", type=int, default=1, help="with --jpeg: CPU cores the process may use (default 1)")
    parser.add_argument("--images", type=int, default=256, help="with --jpeg: training JPEGs in the synthetic set")
    args = parser.parse_args(argv)
    log = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    if args.jpeg:
        available = sorted(os.sched_getaffinity(0))
        if not 1 <= args.cores <= len(available):
            parser.error(f"--cores must be between 1 and {len(available)}. Received: {args.cores}")
        if args.images < 4:
            parser.error(f"--images must be at least 4 (one per TFRecord shard). Received: {args.images}")
        os.sched_setaffinity(0, available[: args.cores])  # as `taskset`: TensorFlow sizes its thread pools from it
        print(jpeg_benchmark(count=args.images, rounds=args.rounds, smoke=args.smoke, log=log))
        return 0
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    for case in cases:
        if case not in CASES:
            parser.error(f"--cases must be among {', '.join(CASES)}. Received: {case!r}")
    print(benchmark(cases, rounds=args.rounds, precision=args.precision, smoke=args.smoke, log=log))
    return 0


if __name__ == "__main__":
    sys.exit(main())
