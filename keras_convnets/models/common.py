"""Pieces shared by every builder: argument checks, the input, the head and weight loading.

Every check runs before the first layer is built, and every failure is a `ValueError` or
`TypeError` in Keras's wording: the argument in backticks, what is allowed, what was received.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from typing import Any, Callable, Iterator, Sequence

import keras
from keras import layers

from keras_convnets.models.aux import AuxClassifierModel
from keras_convnets.models.layers import Conv2D, FusedBatchNormalization
from keras_convnets.utils.validation import check_choice, check_fraction, check_int  # noqa: F401 (re-exported)

__all__ = [
    "HEAD_DTYPE",
    "POOLING_OPTIONS",
    "Builder",
    "build_model",
    "channel_axis",
    "check_choice",
    "check_fraction",
    "check_head_arguments",
    "check_int",
    "check_weights_argument",
    "classifier_head",
    "conv_bn",
    "finish_model",
    "load_weights",
    "model_input",
    "recursion_limit",
    "resolve_input_shape",
    "spatial_dims",
]

POOLING_OPTIONS = (None, "avg", "max")
# The last layer of every head (its Dense and activation) computes in float32 under any global dtype policy, as
# Keras's mixed-precision guide prescribes: a softmax in bfloat16/float16 clips confident probabilities, and the
# loss of a confident mistake then has no gradient (logits [50, 0, 0], label 1: loss 16.12 and gradient 0.0 in
# mixed_bfloat16, against 50.0 and 1.41 in float32). Models' outputs are float32 under any policy.
HEAD_DTYPE = "float32"


def channel_axis() -> int:
    """The axis of channels in image tensors, from `keras.config.image_data_format()`."""
    return -1 if keras.config.image_data_format() == "channels_last" else 1


def spatial_dims(shape: Sequence[int | None]) -> tuple[int | None, int | None]:
    """Height and width of an image shape without batch dimension, in either data format."""
    if keras.config.image_data_format() == "channels_last":
        return shape[0], shape[1]
    return shape[1], shape[2]


def check_head_arguments(
    *,
    include_top: Any,
    weights: Any,
    pooling: Any,
    classes: Any,
    classifier_activation: Any,
    imagenet: bool = False,
) -> None:
    """The keras.applications arguments common to every builder.

    `imagenet` says whether `weights="imagenet"` is available for the model being built.
    """
    if not isinstance(include_top, bool):
        raise TypeError(f"`include_top` must be True or False. Received: include_top={include_top!r}")
    check_weights_argument(weights, imagenet=imagenet)
    check_choice("pooling", pooling, POOLING_OPTIONS)
    check_int("classes", classes, minimum=1)
    if weights == "imagenet" and include_top and classes != 1000:
        raise ValueError(
            'If using `weights="imagenet"` with `include_top=True`, `classes` should be 1000. '
            f"Received: classes={classes}"
        )
    if classifier_activation is not None:
        try:
            keras.activations.get(classifier_activation)
        except (ValueError, TypeError) as error:
            raise ValueError(
                "`classifier_activation` must be None, the name of a Keras activation or a callable. "
                f"Received: classifier_activation={classifier_activation!r}"
            ) from error


def check_weights_argument(weights: Any, *, imagenet: bool = False) -> None:
    if weights is None:
        return
    if isinstance(weights, str) and weights == "imagenet":
        if imagenet:
            return
        raise ValueError(
            "`weights='imagenet'` is not available for this model: ImageNet weights exist for ResNet50, "
            "ResNet101, ResNet152 and InceptionV3 (keras.applications); torchvision checkpoints load with "
            "`keras_convnets.weights.from_torchvision`. Received: weights='imagenet'"
        )
    if not isinstance(weights, (str, os.PathLike)):
        raise TypeError(
            "`weights` must be None or the path of a weights file (`.weights.h5` or `.keras`). "
            f"Received: weights={weights!r}"
        )
    if not os.path.isfile(weights):
        raise ValueError(
            "`weights` must be None or the path of an existing weights file. "
            f"Received: weights={os.fspath(weights)!r}, which does not exist"
        )


def resolve_input_shape(
    input_shape: Any,
    input_tensor: Any,
    *,
    default_size: int,
    min_size: int,
    include_top: bool,
    head_needs_size: bool,
) -> tuple[int | None, int | None, int]:
    """The input shape (without batch) a builder will use, checked against the net's limits.

    `default_size` is used when nothing is given and the top is included; without the top the
    spatial size stays undefined, as in keras.applications. `min_size` is the smallest height and
    width the net can take. `head_needs_size` says whether the classifier needs a defined size.
    """
    if input_shape is None and input_tensor is not None:
        if not keras.backend.is_keras_tensor(input_tensor):
            raise TypeError(
                "`input_tensor` must be a Keras tensor (the output of `keras.Input` or of a layer). "
                f"Received: input_tensor={input_tensor!r}"
            )
        input_shape = tuple(input_tensor.shape[1:])
    if input_shape is None:
        size = default_size if include_top else None
        input_shape = (size, size, 3) if keras.config.image_data_format() == "channels_last" else (3, size, size)
    try:
        input_shape = tuple(None if d is None else int(d) for d in input_shape)
    except (TypeError, ValueError) as error:
        raise TypeError(
            "`input_shape` must be a tuple of 3 integers (height, width, channels). "
            f"Received: input_shape={input_shape!r}"
        ) from error
    if len(input_shape) != 3:
        raise ValueError(
            f"`input_shape` must have 3 dimensions (height, width, channels). Received: input_shape={input_shape!r}"
        )
    height, width = spatial_dims(input_shape)
    depth = input_shape[channel_axis()]
    if depth is None or depth < 1:
        raise ValueError(
            f"`input_shape` must have a defined, positive number of channels. Received: input_shape={input_shape!r}"
        )
    for side in (height, width):
        if side is not None and side < min_size:
            raise ValueError(
                f"`input_shape` is too small for this network: height and width must be at least "
                f"{min_size}x{min_size}. Received: input_shape={input_shape!r}"
            )
    if include_top and head_needs_size and (height is None or width is None):
        raise ValueError(
            "With `include_top=True` this network's classifier needs a defined spatial size: pass "
            f"`input_shape` with height and width. Received: input_shape={input_shape!r}"
        )
    return input_shape


def model_input(input_shape: tuple, input_tensor: Any, name: str = "input") -> tuple[Any, Any]:
    """`(image_tensor, model_inputs)`: a new `keras.Input`, or the given tensor and its source inputs."""
    if input_tensor is None:
        image = keras.Input(shape=input_shape, name=name)
        return image, image
    sources = keras.utils.get_source_inputs(input_tensor)
    return input_tensor, sources[0] if len(sources) == 1 else sources


def classifier_head(
    x,
    *,
    include_top: bool,
    pooling: str | None,
    classes: int,
    classifier_activation: Any,
    kernel_regularizer: Any = None,
    dropout: float = 0.0,
    name: str = "predictions",
):
    """Global average pooling and the dense classifier, or the pooled (or raw) features."""
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout:
            x = layers.Dropout(dropout, name="dropout")(x)
        return layers.Dense(
            classes,
            activation=classifier_activation,
            kernel_regularizer=kernel_regularizer,
            dtype=HEAD_DTYPE,
            name=name,
        )(x)
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x


def load_weights(model: keras.Model, weights: str | os.PathLike | None) -> keras.Model:
    """Load a weights file (`.weights.h5` or `.keras`) into `model`, strictly.

    A file whose variables do not match the architecture in number or shape raises a `ValueError`
    naming the model and the file.
    """
    if weights is None:
        return model
    path = os.fspath(weights)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(path)
        except Exception as error:  # Keras raises ValueError, KeyError or OSError depending on the mismatch
            raise ValueError(
                f"`weights` file {path!r} does not match the architecture of model {model.name!r}: {error}"
            ) from error
    skipped = [str(w.message) for w in caught if "Skipping" in str(w.message) or "could not be" in str(w.message)]
    if skipped:
        raise ValueError(
            f"`weights` file {path!r} does not match the architecture of model {model.name!r}: "
            f"{len(skipped)} groups of variables did not load, e.g. {skipped[0]}"
        )
    return model


@contextlib.contextmanager
def recursion_limit(limit: int) -> Iterator[None]:
    """Raise Python's recursion limit for building very deep graphs, then restore it."""
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(max(previous, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)


def conv_bn(
    x,
    filters: int,
    kernel_size: int | tuple[int, int],
    *,
    strides: int = 1,
    name: str,
    bn_momentum: float,
    bn_epsilon: float,
    kernel_regularizer: Any = None,
    activation: bool = True,
    gamma_initializer: str = "ones",
    symmetric_padding: bool = True,
):
    """Conv (no bias) -> BN -> ReLU, named `{name}_conv`, `{name}_bn`, `{name}_relu`.

    Strided convolutions larger than 1x1 pad explicitly (`{name}_pad`, then 'valid') so that the
    padding is symmetric as in the papers' reference code and torchvision, not TensorFlow's 'same'.
    """
    kernel = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
    padding = "same"
    if strides > 1 and symmetric_padding and max(kernel) > 1:
        x = layers.ZeroPadding2D(((kernel[0] // 2,) * 2, (kernel[1] // 2,) * 2), name=f"{name}_pad")(x)
        padding = "valid"
    x = Conv2D(
        filters,
        kernel,
        strides=strides,
        padding=padding,
        use_bias=False,
        kernel_initializer="he_normal",
        kernel_regularizer=kernel_regularizer,
        name=f"{name}_conv",
    )(x)
    x = FusedBatchNormalization(
        axis=channel_axis(),
        momentum=bn_momentum,
        epsilon=bn_epsilon,
        gamma_initializer=gamma_initializer,
        name=f"{name}_bn",
    )(x)
    if activation:
        x = layers.ReLU(name=f"{name}_relu")(x)
    return x


def build_model(inputs, outputs, name: str, weights: Any, depth_hint: int = 0) -> keras.Model:
    """Wrap the graph into a functional model (raising the recursion limit for very deep nets)
    and load the weights file if one was given."""
    with recursion_limit(max(10_000, 20 * depth_hint)):
        model = keras.Model(inputs, outputs, name=name)
    return load_weights(model, weights)


Builder = Callable[..., keras.Model]


def finish_model(
    inputs,
    x,
    aux_outputs: dict | None,
    *,
    name: str,
    weights: Any,
    include_top: bool,
    pooling: str | None,
    classes: int,
    classifier_activation: Any,
    dropout: float,
    aux_loss_weight: float,
) -> keras.Model:
    """The end of an Inception builder: the classifier head on `x`, then a plain model (`aux_outputs=None`) or an
    `AuxClassifierModel` with the main output "predictions" and the auxiliary heads' outputs, weights loaded."""
    x = classifier_head(
        x,
        include_top=include_top,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        dropout=dropout,
    )
    if aux_outputs is None:
        return build_model(inputs, x, name, weights)
    model = AuxClassifierModel(inputs, {"predictions": x, **aux_outputs}, name=name, aux_loss_weight=aux_loss_weight)
    return load_weights(model, weights)
