"""The input pipeline alone against what the model consumes.

    python -m benchmarks.data                 # CIFAR recipe (crop_flip, 32px, batch 128) and the ImageNet recipe
    python -m benchmarks.data --smoke

Each row times `keras_convnets.data.train_pipeline` with the recipe's augmentation and preprocessing on synthetic
raw uint8 images held in memory (50,000 CIFAR-sized images; 256 ImageNet-like 500x375 images for "scale" and
"inception", already decoded: JPEG decoding is not measured), delivering batches to a consumer that does
nothing, and, in the same interleaved rounds, our
training step on the model of that recipe (`benchmarks.train`). "pipeline / model" above 1 means the pipeline
keeps up; "CPU share" is the fraction of the machine the pipeline needs to feed the model (model img/s divided
by pipeline img/s, the pipeline having the whole machine while it is timed).
"""

from __future__ import annotations

import argparse
import sys
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.data", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="cifar,imagenet,googlenet", help="comma-separated: " + ", ".join(CASES))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--precision", default="auto", help="the model's dtype policy (default: what training picks)")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    for case in cases:
        if case not in CASES:
            parser.error(f"--cases must be among {', '.join(CASES)}. Received: {case!r}")
    log = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    print(benchmark(cases, rounds=args.rounds, precision=args.precision, smoke=args.smoke, log=log))
    return 0


if __name__ == "__main__":
    sys.exit(main())
