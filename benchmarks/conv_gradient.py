"""The kernel gradient of a 1x1 convolution two ways, side by side in one run: TensorFlow's `Conv2DBackpropFilter`
(oneDNN's kernel where TensorFlow uses oneDNN) and one matmul of the flattened inputs and output gradient, as
`keras_convnets.models.layers.Conv2D` computes it (a strided convolution's inputs sliced at the pixels it reads).
Shapes are ResNet-50's 1x1 convolutions at batch 32; both are traced `tf.function`s on the same tensors,
interleaved over rounds.

    python -m benchmarks.conv_gradient                         # bfloat16 and float32, all CPUs
    python -m benchmarks.conv_gradient --precisions bfloat16 --rounds 7
    python -m benchmarks.conv_gradient --smoke                 # tiny shapes, one round: checks that it runs

"matmul / conv" above 1 means the matmul is faster; the largest relative difference of the two results (to the
largest gradient entry) is printed beside it.
"""

from __future__ import annotations

import argparse
import sys

from benchmarks import common

# (batch, input height, input width, channels in, channels out, stride): every distinct 1x1 convolution of ResNet-50
# at batch 32 (v1: the stride sits in the first 1x1 of a stage's first block and in its projection shortcut)
SHAPES = (
    (32, 56, 56, 64, 64, 1),
    (32, 56, 56, 64, 256, 1),
    (32, 56, 56, 256, 64, 1),
    (32, 28, 28, 128, 512, 1),
    (32, 28, 28, 512, 128, 1),
    (32, 14, 14, 256, 1024, 1),
    (32, 14, 14, 1024, 256, 1),
    (32, 7, 7, 512, 2048, 1),
    (32, 7, 7, 2048, 512, 1),
    (32, 56, 56, 256, 128, 2),
    (32, 56, 56, 256, 512, 2),
    (32, 28, 28, 512, 256, 2),
    (32, 28, 28, 512, 1024, 2),
    (32, 14, 14, 1024, 512, 2),
    (32, 14, 14, 1024, 2048, 2),
)
SMOKE_SHAPES = ((2, 8, 8, 32, 64, 1), (2, 10, 10, 48, 96, 2))
PRECISIONS = ("bfloat16", "float32")


def gradient_functions(shape, dtype: str):
    """`(conv, matmul, difference)`: the two kernel gradients as `run(steps)` callables, and their largest relative
    difference."""
    import tensorflow as tf

    batch, height, width, channels_in, channels_out, stride = shape
    out_height, out_width = -(-height // stride), -(-width // stride)
    x = tf.cast(tf.random.stateless_normal([batch, height, width, channels_in], seed=[1, 2]), dtype)
    dy = tf.cast(tf.random.stateless_normal([batch, out_height, out_width, channels_out], seed=[3, 4]), dtype)

    @tf.function
    def conv(x, dy):
        return tf.raw_ops.Conv2DBackpropFilter(
            input=x,
            filter_sizes=[1, 1, channels_in, channels_out],
            out_backprop=dy,
            strides=[1, stride, stride, 1],
            padding="VALID",
        )

    @tf.function
    def matmul(x, dy):
        x = x if stride == 1 else x[:, ::stride, ::stride, :]  # the pixels the kernel reads, as the layer slices them
        flat_x, flat_dy = tf.reshape(x, [-1, channels_in]), tf.reshape(dy, [-1, channels_out])
        return tf.reshape(tf.matmul(flat_x, flat_dy, transpose_a=True), [1, 1, channels_in, channels_out])

    a, b = (tf.cast(f(x, dy), tf.float32) for f in (conv, matmul))
    difference = float(tf.reduce_max(tf.abs(a - b)) / tf.reduce_max(tf.abs(a)))

    return common.steps_of(conv, x, dy), common.steps_of(matmul, x, dy), difference


def benchmark(*, precisions=PRECISIONS, rounds: int = 5, smoke: bool = False, log=None) -> str:
    if not precisions or any(precision not in PRECISIONS for precision in precisions):
        raise ValueError(f"`precisions` must be some of {', '.join(PRECISIONS)}. Received: precisions={precisions!r}")
    if rounds < 1:
        raise ValueError(f"`rounds` must be at least 1. Received: rounds={rounds}")
    shapes = SMOKE_SHAPES if smoke else SHAPES
    rounds = 1 if smoke else rounds
    load_before = common.load_average()
    configs, meta = [], []
    for precision in precisions:
        for shape in shapes:
            conv, matmul, difference = gradient_functions(shape, precision)
            label = "x".join(map(str, shape))
            batch, height, width, channels_in, channels_out, stride = shape
            macs = batch * -(-height // stride) * -(-width // stride) * channels_in * channels_out
            steps = 1 if smoke else max(3, round(3e9 / (2.0 * macs)))  # rounds of similar length: about 3 GFLOP
            configs += [
                common.Config(f"conv {precision} {label}", conv, items=2.0 * macs, steps=steps),
                common.Config(f"matmul {precision} {label}", matmul, items=2.0 * macs, steps=steps),
            ]
            meta.append((precision, shape, label, difference))
    timings = common.measure(configs, rounds=rounds, log=log)
    rows = []
    for precision, shape, label, difference in meta:
        conv, matmul = timings[f"conv {precision} {label}"], timings[f"matmul {precision} {label}"]
        spread = max(conv.spread, matmul.spread)
        rows.append(
            [
                "x".join(map(str, shape[:3])),
                f"{shape[3]} -> {shape[4]}",
                str(shape[5]),
                precision,
                common.fmt(conv.median / 1e9),
                common.fmt(matmul.median / 1e9),
                common.fmt(matmul.median / conv.median),
                f"{difference:.1e}",
                f"{spread:.0%}",
            ]
        )
    headers = [
        "input batch x h x w",
        "channels",
        "stride",
        "precision",
        "conv GFLOP/s",
        "matmul GFLOP/s",
        "matmul / conv",
        "largest difference",
        "spread",
    ]
    return (
        common.report_header(
            "1x1 kernel gradient: Conv2DBackpropFilter against a matmul", rounds=rounds, load_before=load_before
        )
        + "\n"
        + common.markdown_table(headers, rows)
        + "\n"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.conv_gradient", description=__doc__.split("\n\n")[0])
    parser.add_argument("--precisions", default=",".join(PRECISIONS), help="comma-separated: bfloat16, float32")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (median reported)")
    parser.add_argument("--threads", type=int, default=None, help="TensorFlow threads (default: all CPUs)")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes, one round: checks that it runs")
    args = parser.parse_args(argv)

    def report() -> str:
        common.set_threads(args.threads)
        return benchmark(
            precisions=tuple(p for p in args.precisions.split(",") if p),
            rounds=args.rounds,
            smoke=args.smoke,
            log=lambda line: print(line, file=sys.stderr, flush=True),
        )

    return common.print_report(report)


if __name__ == "__main__":
    sys.exit(main())
