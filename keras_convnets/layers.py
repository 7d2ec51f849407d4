"""Custom layers. Each is registered serializable, so models load with `safe_mode=True`."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_convnets")
class IdentityShortcut(keras.layers.Layer):
    """The parameter-free shortcut of option A (He et al. 2016, Section 3.3).

    Subsamples by `strides` (keeps every `strides`-th row and column, as a strided 1x1 projection
    would) and appends zero channels up to `filters`. With `strides=1` and as many channels as
    the input it is the identity.
    """

    def __init__(self, filters: int, strides: int = 1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(filters, bool) or not isinstance(filters, int) or filters < 1:
            raise ValueError(f"`filters` must be a positive integer. Received: filters={filters!r}")
        if isinstance(strides, bool) or not isinstance(strides, int) or strides < 1:
            raise ValueError(f"`strides` must be a positive integer. Received: strides={strides!r}")
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

    def call(self, inputs):
        s = self.strides
        if self.channels_last:
            x = inputs[:, ::s, ::s, :] if s > 1 else inputs
            missing = self.filters - ops.shape(x)[-1]
            return ops.pad(x, [[0, 0], [0, 0], [0, 0], [0, missing]]) if self._static_missing(x) else x
        x = inputs[:, :, ::s, ::s] if s > 1 else inputs
        return ops.pad(x, [[0, 0], [0, self.filters - ops.shape(x)[1]], [0, 0], [0, 0]]) if self._static_missing(x) else x

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
        if isinstance(size, bool) or not isinstance(size, int) or size < 1 or size % 2 == 0:
            raise ValueError(f"`size` must be a positive odd integer. Received: size={size!r}")
        for argument, value in (("alpha", alpha), ("beta", beta), ("k", k)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"`{argument}` must be a non-negative number. Received: {argument}={value!r}")
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
