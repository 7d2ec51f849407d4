"""Custom layers. Each is registered serializable, so models load with `safe_mode=True`."""

from __future__ import annotations

import functools

import keras
from keras import ops

from keras_convnets.utils.backend import cpu_flags, onednn_enabled
from keras_convnets.utils.validation import check_int, check_number

__all__ = [
    "Conv2D",
    "Dense",
    "FusedBatchNormalization",
    "IdentityShortcut",
    "LocalResponseNormalization",
]


@keras.saving.register_keras_serializable(package="keras_convnets")
class IdentityShortcut(keras.layers.Layer):
    """The parameter-free shortcut of option A (He et al. 2016, Section 3.3).

    Subsamples by `strides` (keeps every `strides`-th row and column, as a strided 1x1 projection
    would) and appends zero channels up to `filters`. With `strides=1` and as many channels as
    the input it is the identity.
    """

    def __init__(self, filters: int, strides: int = 1, **kwargs):
        super().__init__(**kwargs)
        check_int("filters", filters, minimum=1, requirement="must be a positive integer")
        check_int("strides", strides, minimum=1, requirement="must be a positive integer")
        self.filters = filters
        self.strides = strides
        self.channels_last = keras.config.image_data_format() == "channels_last"

    def _channels(self, input_shape) -> int:
        return input_shape[-1] if self.channels_last else input_shape[1]

    def build(self, input_shape):
        channels = self._channels(input_shape)
        if channels is not None and channels > self.filters:
            raise ValueError(
                f"`IdentityShortcut` cannot reduce channels: input has {channels}, `filters` is {self.filters}."
            )
        self.built = True

    def _subsample(self, inputs):
        # A 1x1 average pool of stride s keeps every s-th row and column exactly, as `inputs[:, ::s, ::s]`
        # does, but runs (with its gradient) several times faster than a strided slice on TensorFlow's CPU.
        if self.strides == 1:
            return inputs
        data_format = "channels_last" if self.channels_last else "channels_first"
        return ops.average_pool(inputs, 1, strides=self.strides, padding="valid", data_format=data_format)

    def call(self, inputs):
        x = self._subsample(inputs)
        if self.channels_last:
            missing = self.filters - ops.shape(x)[-1]
            return ops.pad(x, [[0, 0], [0, 0], [0, 0], [0, missing]]) if self._static_missing(x) else x
        return (
            ops.pad(x, [[0, 0], [0, self.filters - ops.shape(x)[1]], [0, 0], [0, 0]]) if self._static_missing(x) else x
        )

    def _static_missing(self, x) -> bool:
        channels = x.shape[-1] if self.channels_last else x.shape[1]
        return channels != self.filters

    def compute_output_shape(self, input_shape):
        def sub(d):
            return None if d is None else -(-d // self.strides)

        if self.channels_last:
            return (input_shape[0], sub(input_shape[1]), sub(input_shape[2]), self.filters)
        return (input_shape[0], self.filters, sub(input_shape[2]), sub(input_shape[3]))

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "strides": self.strides})
        return config


@keras.saving.register_keras_serializable(package="keras_convnets")
class LocalResponseNormalization(keras.layers.Layer):
    """Local response normalization across channels (Krizhevsky et al. 2012), as GoogLeNet uses it.

    `y = x / (k + alpha / size * sum(x_j ** 2)) ** beta`, the sum running over the `size` channels
    centred on each channel (zero beyond the edges). The `alpha / size` is Caffe's and PyTorch's
    `nn.LocalResponseNorm` convention, which the GoogLeNet release (Caffe `bvlc_googlenet`, `local_size: 5`,
    `alpha: 0.0001`, `beta: 0.75`) uses. `tf.nn.local_response_normalization` does not divide: it equals
    this layer with `depth_radius=size // 2`, `bias=k`, `alpha=alpha / size`, `beta=beta`.
    """

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        check_int("size", size, minimum=1, requirement="must be a positive odd integer")
        if size % 2 == 0:
            raise ValueError(f"`size` must be a positive odd integer. Received: size={size!r}")
        for argument, value in (("alpha", alpha), ("beta", beta), ("k", k)):
            check_number(argument, value, minimum=0, requirement="must be a non-negative number")
        self.size = size
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.k = float(k)
        self.axis = -1 if keras.config.image_data_format() == "channels_last" else 1

    def build(self, input_shape):
        if input_shape[self.axis] is None:
            raise ValueError(
                f"`LocalResponseNormalization` needs a defined number of channels. Received: input_shape={input_shape}"
            )
        self.built = True

    def call(self, inputs):
        radius = self.size // 2
        channels = inputs.shape[self.axis]
        if self.axis == 1:
            inputs_last = ops.moveaxis(inputs, 1, -1)
        else:
            inputs_last = inputs
        squares = ops.pad(ops.square(inputs_last), [[0, 0]] * (len(inputs.shape) - 1) + [[radius, radius]])
        total = squares[..., 0:channels]
        for offset in range(1, self.size):
            total = total + squares[..., offset : offset + channels]
        outputs = inputs_last / ops.power(self.k + (self.alpha / self.size) * total, self.beta)
        return ops.moveaxis(outputs, -1, 1) if self.axis == 1 else outputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"size": self.size, "alpha": self.alpha, "beta": self.beta, "k": self.k})
        return config


@keras.saving.register_keras_serializable(package="keras_convnets")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` computed by TensorFlow's fused kernel (`FusedBatchNormV3`).

    Keras 3 normalizes with a chain of element-wise ops (cast to float32, moments, scale, shift, cast
    back), and their gradients, about 40% of a ResNet-20 training step on a CPU. The fused kernel (oneDNN on
    x86) does one pass forward and one backward on float32, float16 or bfloat16 images, and lets TensorFlow's
    graph optimizer fold the ReLU that follows into it. Same weights, same arguments, same results: the batch
    statistics and the moving-average updates are Keras's (the moving variance uses the biased batch
    variance). Anything the fused kernel cannot do (another backend, inputs that are not 4-D with the channels
    first or last, masks, `renorm`, `synchronized`, no `center`/`scale`, float64) runs Keras's own code.
    """

    def _fused_format(self, inputs, mask) -> str | None:
        if keras.backend.backend() != "tensorflow" or mask is not None or self.renorm or self.synchronized:
            return None
        if not (self.center and self.scale) or len(inputs.shape) != 4:
            return None
        if keras.backend.standardize_dtype(inputs.dtype) not in ("float32", "float16", "bfloat16"):
            return None
        axis = self.axis % 4
        return {3: "NHWC", 1: "NCHW"}.get(axis)

    def call(self, inputs, training=None, mask=None):
        data_format = self._fused_format(inputs, mask)
        if data_format is None:
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        gamma = ops.cast(self.gamma, "float32")
        beta = ops.cast(self.beta, "float32")
        if training and self.trainable:
            empty = tf.zeros([0], tf.float32)
            outputs, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
                x=inputs,
                scale=gamma,
                offset=beta,
                mean=empty,
                variance=empty,
                epsilon=self.epsilon,
                data_format=data_format,
                is_training=True,
            )
            # The kernel returns the unbiased (n / (n - 1)) batch variance; Keras averages the biased one.
            shape = tf.shape(inputs)
            count = tf.cast(tf.size(inputs) // shape[3 if data_format == "NHWC" else 1], tf.float32)
            variance = variance * tf.maximum(count - 1.0, 0.0) / tf.maximum(count, 1.0)
            momentum = self.momentum
            self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
            self.moving_variance.assign(self.moving_variance * momentum + variance * (1.0 - momentum))
        else:
            outputs, *_ = tf.raw_ops.FusedBatchNormV3(
                x=inputs,
                scale=gamma,
                offset=beta,
                mean=ops.cast(self.moving_mean, "float32"),
                variance=ops.cast(self.moving_variance, "float32"),
                epsilon=self.epsilon,
                data_format=data_format,
                is_training=False,
            )
        return ops.cast(outputs, self.compute_dtype)


@functools.cache
def _matmul_weight_gradient_pays() -> bool:
    """Where the 1x1 weight gradient as a matmul was measured faster (at stride 1, in bfloat16): a CPU with AMX and no
    GPU. (With TensorFlow's oneDNN kernels off, `TF_ENABLE_ONEDNN_OPTS=0`, Eigen's bfloat16 `Conv2DBackpropFilter` was
    still far slower and coarser than Eigen's matmul, so the matmul stays.)"""
    import tensorflow as tf

    return "amx_bf16" in cpu_flags() and not tf.config.list_physical_devices("GPU")


def _pointwise_conv(inputs, kernel, strides: tuple[int, int], conv):
    """`conv(inputs, kernel)` (a 1x1 convolution, channels last) whose kernel gradient is one matmul of the
    (subsampled) inputs and the output gradient flattened over batch and pixels: the same sum as TensorFlow's
    `Conv2DBackpropFilter`, in another order. The input gradient is TensorFlow's own (`Conv2DBackpropInput`)."""
    import tensorflow as tf

    rows, cols = strides
    channels_in, channels_out = kernel.shape[2], kernel.shape[3]

    @tf.custom_gradient
    def forward(x, w):
        def gradient(dy):
            dx = tf.raw_ops.Conv2DBackpropInput(
                input_sizes=tf.shape(x),
                filter=w,
                out_backprop=dy,
                strides=[1, rows, cols, 1],
                padding="VALID",  # a 1x1 kernel pads nothing under 'same' either
                data_format="NHWC",
            )
            kept = x if (rows, cols) == (1, 1) else x[:, ::rows, ::cols, :]  # the pixels the kernel reads
            dw = tf.matmul(tf.reshape(kept, [-1, channels_in]), tf.reshape(dy, [-1, channels_out]), transpose_a=True)
            return dx, tf.reshape(dw, tf.shape(w))

        return conv(x, w), gradient

    return forward(inputs, kernel)


def _sums_bias_by_matmul() -> bool:
    """Where a bfloat16 bias gradient is summed as a matmul with a row of ones: a CPU with AMX, oneDNN on and no
    GPU, where oneDNN's bfloat16 matmul (accumulating in float32, as oneDNN's bfloat16 kernels do) was measured 3-6x
    faster than a float32 cast and sum, and 1.8-3.6x faster than TensorFlow's own `BiasAddGrad`, on VGG-16's shapes
    (`python -m benchmarks.bias_gradient --timing`). Elsewhere the gradient is cast to float32 and summed: Eigen's
    bfloat16 matmul (oneDNN off) truncated its sums, up to 0.73% off, and was no faster than the cast and sum."""
    return _matmul_weight_gradient_pays() and onednn_enabled()


def _bias_gradient_sum(dy, axes, *, by_matmul: bool):
    """The bias gradient of `dy` summed over `axes` in float32 (float64 stays float64): a bfloat16 matmul with a row
    of ones where `by_matmul` (channels last; oneDNN accumulates it in float32), otherwise a cast and a sum."""
    import tensorflow as tf

    if by_matmul:
        rows = tf.reshape(dy, [-1, tf.shape(dy)[-1]])
        return tf.reshape(tf.matmul(tf.ones([1, tf.shape(rows)[0]], dy.dtype), rows), [-1])
    return tf.reduce_sum(tf.cast(dy, tf.float64 if dy.dtype == tf.float64 else tf.float32), axis=axes)


def _add_bias(outputs, bias, data_format: str):
    """`outputs + bias` (the bias along the channels axis: last, or second under "channels_first"), whose bias gradient
    sums the output gradient in float32 and rounds once (its input gradient is the output gradient, as for any
    addition). TensorFlow sums a bfloat16 bias gradient in bfloat16 (`BiasAddGrad`, which Keras's `Dense` gets too,
    through `tf.nn.bias_add`), which stalls: 4,096 ones sum to a few hundred (256 over 3 channels, 512 over 64), as
    Keras's own `Conv2D` and `Dense` give them in mixed_bfloat16. In bfloat16, channels last, on a CPU with AMX and
    oneDNN, the float32 sum is a bfloat16 matmul with a row of ones (`_sums_bias_by_matmul`); otherwise a cast to
    float32 (float64 stays float64) and a sum."""
    import tensorflow as tf

    rank = len(outputs.shape)
    if data_format == "channels_last":
        shape, axes = (1,) * (rank - 1) + (-1,), list(range(rank - 1))
    else:
        shape, axes = (1, -1) + (1,) * (rank - 2), [0, *range(2, rank)]
    low = keras.backend.standardize_dtype(outputs.dtype) == "bfloat16"
    by_matmul = low and data_format == "channels_last" and _sums_bias_by_matmul()

    @tf.custom_gradient
    def add(y, b):
        def gradient(dy):
            return dy, tf.cast(_bias_gradient_sum(dy, axes, by_matmul=by_matmul), b.dtype)

        return ops.add(y, ops.reshape(b, shape)), gradient

    return add(outputs, bias)


def _custom_gradient_allowed(layer, training) -> bool:
    """Whether `layer`'s call may take a custom training gradient: training (a Python bool, as Keras's `fit` and
    `train_step` pass it; a symbolic `training` keeps Keras's path), on TensorFlow, without LoRA or quantization."""
    return bool(
        training is True
        and keras.backend.backend() == "tensorflow"
        and not layer.lora_enabled
        and not getattr(layer, "quantization_mode", None)
    )


def _sums_bias_in_float32(layer, training) -> bool:
    """A biased layer's training call in bfloat16 on TensorFlow, where TensorFlow would sum the bias gradient in
    bfloat16 (4,096 ones sum to a few hundred). float16 (GPUs) was not measured and keeps Keras's path."""
    return (
        layer.use_bias
        and keras.backend.standardize_dtype(layer.compute_dtype) == "bfloat16"
        and _custom_gradient_allowed(layer, training)
    )


@keras.saving.register_keras_serializable(package="keras_convnets")
class Dense(keras.layers.Dense):
    """`keras.layers.Dense` whose bias gradient is summed in float32 in bfloat16 training (TensorFlow).

    Keras adds the bias with `tf.nn.bias_add`, whose gradient TensorFlow sums over the batch in bfloat16: the sum
    stalls at a few hundred (a batch of 1,024 ones gives 256, and 4,096 give 512 over 64 channels), and a batch of
    4,096 gradients with a mean of 1 was 51% off (`python -m benchmarks.bias_gradient`). This layer sums in float32
    and rounds once. Everything else (the forward pass, the kernel and input gradients, the weights, the config,
    quantization, inference and export) is Keras's.
    """

    def quantize(self, mode=None, type_check=True, config=None):
        # Keras's `Dense.quantize` refuses subclasses unless told not to check: this class adds no weights and its
        # quantized call is Keras's (`_custom_gradient_allowed` is False once quantized). Subclasses of it are refused
        # as Keras refuses them.
        if type_check and type(self) is not Dense:
            raise self._not_implemented_error(self.quantize)
        return super().quantize(mode, type_check=False, config=config)

    def call(self, inputs, training=None):
        if not _sums_bias_in_float32(self, training):
            return super().call(inputs, training=training)
        outputs = _add_bias(ops.matmul(inputs, self.kernel), ops.cast(self.bias, self.compute_dtype), "channels_last")
        return self.activation(outputs) if self.activation is not None else outputs


@keras.saving.register_keras_serializable(package="keras_convnets")
class Conv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` whose 1x1 kernels get their training gradient from one matmul where that is faster.

    A 1x1 convolution's kernel gradient is a matrix product: the inputs (at the strided pixels) flattened to rows,
    transposed, times the output gradient flattened the same way. In bfloat16 on a CPU with AMX, TensorFlow's oneDNN
    `Conv2DBackpropFilter` computed it 1.1-3.4x slower than its matmul on ResNet-50's stride-1 1x1 shapes (one
    Intel Xeon, TensorFlow 2.21 with oneDNN 3.7.3: `python -m benchmarks.conv_gradient`, benchmarks/RESULTS.md).
    Strided, with the slice of the inputs at the pixels read, the matmul was slower on the larger maps (0.24-0.70x
    at 56x56 and 28x28), so "auto" leaves every strided layer to TensorFlow. In float32 the matmul was no faster
    overall (0.66-1.24x at stride 1), and bfloat16 without AMX and GPUs were not measured: there, too, the layer
    is Keras's.
    Only the training gradient changes: the forward pass, the input gradient, the weights, the config and every
    inference or exported graph are `keras.layers.Conv2D`'s.

    In bfloat16 training (TensorFlow), a bias's gradient is summed in float32 and rounded once, whatever the kernel:
    TensorFlow's `BiasAddGrad`, which Keras's layer gets, sums it in bfloat16, which stalls (4,096 ones sum to a few
    hundred).

    `matmul_weight_gradient` (a class attribute, or set on one layer): "auto" (the matmul for stride 1, in bfloat16,
    on a CPU with AMX and no GPU), True (the matmul for every eligible layer, strided too: 1x1, channels last, no
    dilation, groups or LoRA, TensorFlow backend) or False (never).
    """

    matmul_weight_gradient = "auto"

    def _uses_matmul_gradient(self, training) -> bool:
        mode = self.matmul_weight_gradient
        if not (mode is True or mode is False or (isinstance(mode, str) and mode == "auto")):
            raise ValueError(
                f"`matmul_weight_gradient` must be 'auto', True or False. Received: matmul_weight_gradient={mode!r}"
            )
        if mode is False or not _custom_gradient_allowed(self, training):
            return False
        if tuple(self.kernel_size) != (1, 1) or tuple(self.dilation_rate) != (1, 1) or self.groups != 1:
            return False
        if self.data_format != "channels_last":
            return False
        if mode is True:
            return True
        if tuple(self.strides) != (1, 1) or keras.backend.standardize_dtype(self.compute_dtype) != "bfloat16":
            return False
        return _matmul_weight_gradient_pays()

    def call(self, inputs, training=None):
        matmul = self._uses_matmul_gradient(training)
        if not (matmul or _sums_bias_in_float32(self, training)):
            return super().call(inputs)
        if matmul:
            kernel = ops.cast(self.kernel, self.compute_dtype)
            outputs = _pointwise_conv(inputs, kernel, tuple(self.strides), self.convolution_op)
        else:
            outputs = self.convolution_op(inputs, self.kernel)
        if self.use_bias:  # the bias gradient summed in float32 (bfloat16, or beside the matmul)
            outputs = _add_bias(outputs, ops.cast(self.bias, self.compute_dtype), self.data_format)
        return self.activation(outputs) if self.activation is not None else outputs
