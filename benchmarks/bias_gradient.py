"""How exactly a bias gradient is summed in mixed_bfloat16 training: Keras's own `Conv2D` and `Dense` against the
package's (`keras_convnets.models.layers`), on the same weights, inputs and output gradients.

    python -m benchmarks.bias_gradient                    # 32, 256, 1,024 and 4,096 summed entries per channel
    python -m benchmarks.bias_gradient --sizes 64,8192

A bias gradient sums the output gradient over every entry of a channel (the batch, and every pixel for a
convolution). "ones" is that sum for an output gradient of ones, which should be the number of entries exactly (every
partial sum up to 2^24 is exact in float32; bfloat16's 8-bit mantissa stops counting at 256). "normal error" is the
largest distance from the float64 sum of the same bfloat16 normal gradients, relative to the largest entry of that sum.
"""

from __future__ import annotations

import argparse
import sys

from benchmarks import common

SIZES = (32, 256, 1024, 4096)
CHANNELS = 3


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
    if not sizes or any(not isinstance(size, int) or size < 1 for size in sizes):
        raise ValueError(f"`sizes` must be positive integers. Received: sizes={sizes}")
    rows = []
    for name, keras_class, our_class, input_shape, kwargs in _layers():
        for size in sizes:
            shape = input_shape(size)
            x = tf.random.stateless_normal(shape, seed=[1, 2])
            results = []
            for cls in (keras_class, our_class):
                layer = cls(CHANNELS, dtype="mixed_bfloat16", **kwargs)
                layer.build(shape)
                out_shape = (*shape[:-1], CHANNELS)
                normal = tf.cast(tf.random.stateless_normal(out_shape, seed=[3, 4]), "bfloat16")
                exact = tf.cast(normal, "float64").numpy().reshape(-1, CHANNELS).sum(axis=0)
                ones = bias_gradient(layer, x, tf.ones(out_shape))
                error = np.abs(bias_gradient(layer, x, normal) - exact).max() / np.abs(exact).max()
                results.append((ones.min(), error))
            (keras_ones, keras_error), (our_ones, our_error) = results
            rows.append(
                [name, f"{size:,}", f"{keras_ones:,.0f}", f"{our_ones:,.0f}", f"{keras_error:.2%}", f"{our_error:.2%}"]
            )
    headers = ["layer", "entries summed", "ones: Keras", "ones: ours", "normal error: Keras", "normal error: ours"]
    return f"### Bias gradients in mixed_bfloat16\n\n{common.machine_line()}.\n\n" + common.markdown_table(
        headers, rows
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bias_gradient", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="comma-separated entries summed per channel")
    args = parser.parse_args(argv)

    def report() -> str:
        try:
            sizes = tuple(int(size) for size in args.sizes.split(",") if size)
        except ValueError:
            raise ValueError(f"`--sizes` must be comma-separated integers. Received: --sizes={args.sizes}") from None
        return benchmark(sizes)

    return common.print_report(report)


if __name__ == "__main__":
    sys.exit(main())
