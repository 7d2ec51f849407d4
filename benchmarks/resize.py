"""What the "inception" training crop costs, by part: the same random boxes of the same JPEGs decoded and resized
three ways, interleaved in one run on one core, in images per CPU-second:

- "fused, bilinear": only the box decoded (`decode_and_crop_jpeg`), resized with plain bilinear interpolation,
  as the pipeline does (the Inception reference code's and the TF Model Garden's training resize);
- "fused, antialias": only the box decoded, resized with an antialiasing (triangle) filter;
- "full, antialias": the whole JPEG decoded, the box sliced, resized with antialiasing (the pipeline before the
  fused decode).

The first ratio against the last is the fused decode's gain as built; the middle row separates the two changes
(the smaller decode, the cheaper resize). It also prints the largest pixel difference between the resizes.

    python -m benchmarks.resize [--images 300] [--rounds 5] [--size 224] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys

VARIANTS = ("fused, bilinear", "fused, antialias", "full, antialias")


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def crop_functions(size: int) -> dict:
    """The three ways of making one training crop: `fn(jpeg_bytes, seed) -> float (size, size, 3)`."""
    import tensorflow as tf

    from keras_convnets.data import decode

    def fused(antialias: bool):  # the pipeline's fused crop with another resize
        def crop(contents, seed):
            seeds = tf.random.experimental.stateless_split(seed, 3)
            pixels, _ = decode._decode_cropped(contents, decode._inception_window(seeds[0]))
            pixels = tf.image.stateless_random_flip_left_right(pixels, seeds[2])
            return tf.image.resize(pixels, (size, size), method="bilinear", antialias=antialias)

        return crop

    def full(contents, seed):
        seeds = tf.random.experimental.stateless_split(seed, 3)
        image = decode.decode_image_bytes(contents)
        (top, left, height, width), _ = decode._inception_window(seeds[0])(tf.shape(image)[0], tf.shape(image)[1])
        box = tf.image.stateless_random_flip_left_right(image[top : top + height, left : left + width], seeds[2])
        return tf.image.resize(box, (size, size), method="bilinear", antialias=True)

    def pipeline(contents, seed):  # what the training pipeline runs: `decode.decode_train` itself
        return decode.decode_train(contents, seed, augmentation="inception", size=size, flip=True)

    return {name: tf.function(fn) for name, fn in zip(VARIANTS, (pipeline, fused(True), full))}


def benchmark(*, images: int = 300, rounds: int = 5, size: int = 224, smoke: bool = False) -> str:
    import numpy as np
    import tensorflow as tf

    from benchmarks import common
    from benchmarks.data import JPEG_QUALITY, synthetic_photo

    if smoke:
        images, rounds, size = 6, 1, 32
    load_before = common.load_average()
    rng = np.random.default_rng(0)
    blobs = [tf.constant(tf.io.encode_jpeg(synthetic_photo(rng), quality=JPEG_QUALITY).numpy()) for _ in range(images)]
    functions = crop_functions(size)
    seeds = [tf.constant([i, 7], tf.int64) for i in range(images)]
    largest = {name: 0.0 for name in VARIANTS}
    for blob, seed in zip(blobs[:20], seeds[:20]):  # also the warm-up (tracing)
        reference = functions["full, antialias"](blob, seed).numpy()
        for name in VARIANTS:
            largest[name] = max(largest[name], float(np.abs(functions[name](blob, seed).numpy() - reference).max()))
    spent = {name: 0.0 for name in VARIANTS}
    for round_ in range(rounds):
        for name in VARIANTS:  # interleaved: a change of load touches all three alike
            start = _cpu_seconds()
            for blob, seed in zip(blobs, seeds):
                functions[name](blob, seed + round_)
            spent[name] += _cpu_seconds() - start
    done = images * rounds
    base = done / spent["full, antialias"]
    rows = [
        [name, common.fmt(done / spent[name]), f"{done / spent[name] / base:.2f}x", common.fmt(largest[name])]
        for name in VARIANTS
    ]
    headers = ["inception crop", "img per CPU-second", "vs full, antialias", "max pixel diff vs full, antialias"]
    header = common.report_header(
        f"The inception training crop by part ({images} JPEGs of 500x375, quality {JPEG_QUALITY}, to {size}x{size})",
        rounds=rounds,
        load_before=load_before,
    ).replace("Medians of", "Totals over")
    return "\n".join([header, common.markdown_table(headers, rows), ""])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.resize", description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    for name in ("images", "rounds", "size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1. Received: {getattr(args, name)}")
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:1])  # one core, as `taskset`, before TensorFlow starts
    from benchmarks import common

    common.set_threads(1)
    print(benchmark(images=args.images, rounds=args.rounds, size=args.size, smoke=args.smoke))
    return 0


if __name__ == "__main__":
    sys.exit(main())
