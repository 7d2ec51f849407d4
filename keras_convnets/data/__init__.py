"""Image-classification data: where it comes from (`sources`, `tfrecord`, `tfds`), the splits (`dataset`), the
augmentations (`augment`), the fused decode and crop of encoded images (`decode`) and the tf.data pipelines that
feed `model.fit` (`pipelines`)."""

from keras_convnets.data.augment import AUGMENTATIONS, crop_flip_batch, eval_transform
from keras_convnets.data.dataset import (  # noqa: F401 (AUTOTUNE: 0.1)
    AUTOTUNE,
    EncodedSplit,
    ImageData,
    holdout_validation,
    subset,
)
from keras_convnets.data.decode import DECODES
from keras_convnets.data.idx import load_idx_dir, read_idx
from keras_convnets.data.keras_datasets import load_builtin
from keras_convnets.data.pipelines import (
    IN_GRAPH_LIMIT,
    compute_preprocessing,
    distributed_train_pipeline,
    eval_pipeline,
    fits_in_memory,
    materialize,
    spread_sample,
    steps_per_epoch_for,
    train_pipeline,
)
from keras_convnets.data.preprocessing import Preprocessing
from keras_convnets.data.sources import (
    EMBEDDED,
    IMAGE_SIGNATURES,
    load_dataset,
    load_digits,
    load_image_folder,
    load_tfds,
)
from keras_convnets.data.tfrecord import load_tfrecord_dir, write_tfrecord_shards

__all__ = [
    "AUGMENTATIONS",
    "DECODES",
    "EMBEDDED",
    "EncodedSplit",
    "IMAGE_SIGNATURES",
    "IN_GRAPH_LIMIT",
    "ImageData",
    "Preprocessing",
    "compute_preprocessing",
    "crop_flip_batch",
    "distributed_train_pipeline",
    "eval_pipeline",
    "eval_transform",
    "fits_in_memory",
    "holdout_validation",
    "load_builtin",
    "load_dataset",
    "load_digits",
    "load_idx_dir",
    "load_image_folder",
    "load_tfds",
    "load_tfrecord_dir",
    "materialize",
    "read_idx",
    "spread_sample",
    "steps_per_epoch_for",
    "subset",
    "train_pipeline",
    "write_tfrecord_shards",
]
