"""How exactly a bias gradient is summed in mixed_bfloat16 training: Keras's own `Conv2D` and `Dense` against the
package's (`keras_convnets.models.layers`), with the same weights, inputs and output gradients.

    python -m benchmarks.bias_gradient                    # 32, 256, 1,024 and 4,096 summed entries per channel
    python -m benchmarks.bias_gradient --sizes 64,8192
    python -m benchmarks.bias_gradient --timing           # the float32 sums' speed against BiasAddGrad, side by side

A bias gradient sums the output gradient over every entry of a channel (the batch, and every pixel for a
convolution). "ones" is that sum for an output gradient of ones (the smallest over the channels), which should be the
number of entries exactly (every partial sum up to 2^24 is exact in float32; bfloat16's 8-bit mantissa stops counting
at 256). "normal error" is the largest distance, over the channels, from the float64 sum of the same bfloat16
gradients, standard normal, relative to the largest entry of that sum; "normal + 1" is the same with a mean of 1.
"""

from __future__ import annotations

import argparse
import sys

from benchmarks import common

SIZES = (32, 256, 1024, 4096)
CHANNELS = 64
MAX_SIZE = 2**20  # 64 channels of 2^20 float32 entries: 256 MB per tensor


def _layers():
    """(name, Keras's layer class, ours, input shape for `size` summed entries, layer kwargs) per compared layer."""
    import keras

    from keras_convnets.models import layers

    def conv_input(size):  # size = batch x side x side, with the largest square map that divides it
        side = max(s for s in range(1, int(size**0.5) + 1) if size % (s * s) == 0)
        return (size // (side * side), side, side, 2)

    return (
        ("Conv2D 1x1", keras.layers.Conv2D, layers.Conv2D, conv_input, {"kernel_size": 1}),
        ("Conv2D 3x3", keras.layers.Conv2D, layers.Conv2D, conv_input, {"kernel_size": 3, "padding": "same"}),
        ("Dense", keras.layers.Dense, layers.Dense, lambda size: (size, 8), {}),
    )


def bias_gradient(layer, x, dy):
    """The bias gradient (float64 numpy) of `layer(x, training=True)` for the output gradient `dy`."""
    import tensorflow as tf

    with tf.GradientTape() as tape:  # eagerly: the same kernels as in a traced step, without a trace per layer
        y = layer(x, training=True)
    return tf.cast(tape.gradient(y, layer.bias, output_gradients=tf.cast(dy, y.dtype)), "float64").numpy()


def benchmark(sizes=SIZES) -> str:
    import numpy as np
    import tensorflow as tf

    sizes = tuple(sizes)
    if not sizes or any(type(size) is not int or not 1 <= size <= MAX_SIZE for size in sizes):
        raise ValueError(f"`sizes` must be integers from 1 to {MAX_SIZE:,}. Received: sizes={sizes}")
    rows = []
    for name, keras_class, our_class, input_shape, kwargs in _layers():
        for size in sizes:
            shape = input_shape(size)
            out_shape = (*shape[:-1], CHANNELS)
            x = tf.random.stateless_normal(shape, seed=[1, 2])
            normal = tf.cast(tf.random.stateless_normal(out_shape, seed=[3, 4]), "bfloat16")
            gradients = {"ones": tf.ones(out_shape), "normal": normal, "normal + 1": normal + 1}
            layers = [cls(CHANNELS, dtype="mixed_bfloat16", **kwargs) for cls in (keras_class, our_class)]
            for layer in layers:
                layer.build(shape)
                layer.set_weights(layers[0].get_weights())
            row = [name, f"{size:,}"]
            for label, dy in gradients.items():
                exact = tf.cast(dy, "float64").numpy().reshape(-1, CHANNELS).sum(axis=0)
                results = [bias_gradient(layer, x, dy) for layer in layers]
                if label == "ones":
                    row += [f"{result.min():,.0f}" for result in results]
                else:  # the largest distance from the float64 sum, relative to the largest entry of that sum
                    row += [f"{np.abs(result - exact).max() / np.abs(exact).max():.2%}" for result in results]
            rows.append(row)
    headers = ["layer", "entries summed", "ones: Keras", "ones: ours"]
    headers += [f"{label} error: {who}" for label in ("normal", "normal + 1") for who in ("Keras", "ours")]
    return (
        f"### Bias gradients in mixed_bfloat16\n\n{common.machine_line()}; {CHANNELS} channels.\n\n"
        + common.markdown_table(headers, rows)
    )


# the output of every distinct 3x3 convolution of VGG-16 at batch 8, channels last: where a bias gradient is summed
TIMING_SHAPES = ((8, 224, 224, 64), (8, 112, 112, 128), (8, 56, 56, 256), (8, 28, 28, 512), (8, 14, 14, 512))
SMOKE_TIMING_SHAPES = ((2, 8, 8, 16),)


def bias_sums(shape):
    """`{name: run(steps)}`: a bfloat16 bias gradient of `shape` summed three ways (TensorFlow's `BiasAddGrad`, as
    Keras's `Conv2D` gets it; a float32 cast and sum; a bfloat16 matmul with a row of ones, as the package's layers
    sum it on a CPU with AMX), and each one's largest distance from the float64 sum, relative to its largest entry."""
    import numpy as np
    import tensorflow as tf

    from keras_convnets.models.layers import _bias_gradient_sum

    dy = tf.cast(tf.random.stateless_normal(shape, seed=[1, 2]) + 1, tf.bfloat16)
    exact = tf.cast(dy, tf.float64).numpy().reshape(-1, shape[-1]).sum(axis=0)

    def package(by_matmul: bool):  # the layers' sum, rounded to the gradient's dtype as they round it
        return tf.function(lambda d: tf.cast(_bias_gradient_sum(d, [0, 1, 2], by_matmul=by_matmul), d.dtype))

    functions = {
        "BiasAddGrad": tf.function(lambda d: tf.raw_ops.BiasAddGrad(out_backprop=d)),
        "cast and sum": package(by_matmul=False),
        "matmul": package(by_matmul=True),
    }
    errors = {
        name: float(np.abs(tf.cast(f(dy), tf.float64).numpy() - exact).max() / np.abs(exact).max())
        for name, f in functions.items()
    }
    return {name: common.steps_of(f, dy) for name, f in functions.items()}, errors


def timing(*, rounds: int = 5, smoke: bool = False, log=None) -> str:
    """The three sums side by side, interleaved over `rounds` rounds, per shape: GB/s of bfloat16 gradient read, and
    the ratios to `BiasAddGrad`."""
    if type(rounds) is not int or rounds < 1:
        raise ValueError(f"`rounds` must be a positive integer. Received: rounds={rounds!r}")
    shapes = SMOKE_TIMING_SHAPES if smoke else TIMING_SHAPES
    rounds = 1 if smoke else rounds
    load_before = common.load_average()
    configs, meta = [], []
    for shape in shapes:
        runs, errors = bias_sums(shape)
        label = "x".join(map(str, shape))
        size = 2.0 * shape[0] * shape[1] * shape[2] * shape[3]  # bytes of bfloat16 gradient
        steps = 1 if smoke else max(3, round(2e9 / size))
        configs += [common.Config(f"{name} {label}", run, items=size, steps=steps) for name, run in runs.items()]
        meta.append((label, errors))
    timings = common.measure(configs, rounds=rounds, log=log)
    rows = []
    for label, errors in meta:
        rates = {name: timings[f"{name} {label}"] for name in errors}
        keras_rate = rates["BiasAddGrad"].median
        rows.append(
            [label]
            + [common.fmt(rate.median / 1e9) for rate in rates.values()]
            + [common.fmt(rates[name].median / keras_rate) for name in ("cast and sum", "matmul")]
            + [f"{errors[name]:.2%}" for name in errors]
            + [f"{max(rate.spread for rate in rates.values()):.0%}"]
        )
    headers = ["dy shape", "BiasAddGrad GB/s", "cast and sum GB/s", "matmul GB/s", "cast and sum / BiasAddGrad"]
    headers += ["matmul / BiasAddGrad", "BiasAddGrad error", "cast and sum error", "matmul error", "spread"]
    return (
        common.report_header("Bias gradient sums in bfloat16, side by side", rounds=rounds, load_before=load_before)
        + "\n"
        + common.markdown_table(headers, rows)
        + "\n\nGradients are standard normal plus 1; GB/s counts the bfloat16 gradient read once.\n"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bias_gradient", description=__doc__.split("\n\n")[0], allow_abbrev=False
    )
    parser.add_argument("--sizes", help="comma-separated entries summed per channel (default: 32,256,1024,4096)")
    parser.add_argument("--timing", action="store_true", help="time the three sums on VGG-16's shapes instead")
    parser.add_argument("--rounds", type=int, help="--timing: interleaved rounds, median reported (default: 5)")
    parser.add_argument("--smoke", action="store_true", help="--timing: one tiny shape, one round")
    args = parser.parse_args(argv)

    def report() -> str:
        if args.timing:
            if args.sizes is not None:
                raise ValueError(f"`--sizes` does not apply to `--timing`. Received: --sizes={args.sizes}")
            rounds = 5 if args.rounds is None else args.rounds
            if rounds < 1:
                raise ValueError(f"`--rounds` must be a positive integer. Received: --rounds={rounds}")
            return timing(rounds=rounds, smoke=args.smoke, log=lambda line: print(line, file=sys.stderr))
        for flag, given in (("--smoke", args.smoke), ("--rounds", args.rounds is not None)):
            if given:
                raise ValueError(f"`{flag}` applies to `--timing` only. Received: {flag} without --timing")
        text = ",".join(map(str, SIZES)) if args.sizes is None else args.sizes
        try:
            sizes = tuple(int(size) for size in text.split(",") if size.strip())
        except ValueError:
            sizes = None
        if not sizes or any(not 1 <= size <= MAX_SIZE for size in sizes):
            raise ValueError(
                f"`--sizes` must be comma-separated integers from 1 to {MAX_SIZE:,}. Received: --sizes={args.sizes}"
            )
        return benchmark(sizes)

    return common.print_report(report)


if __name__ == "__main__":
    sys.exit(main())
