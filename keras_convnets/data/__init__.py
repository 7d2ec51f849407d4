"""Image-classification data: where it comes from, and the tf.data pipelines that feed `model.fit`."""

from keras_convnets.data._impl import *  # noqa: F401,F403
from keras_convnets.data.idx import load_idx_dir, read_idx  # noqa: F401,E402
from keras_convnets.data.keras_datasets import load_builtin  # noqa: F401,E402
