"""Image-classification data: where it comes from, and the tf.data pipelines that feed `model.fit`."""

from keras_convnets.data._impl import *  # noqa: F401,F403
