"""Small helpers every room uses: argument validation, model-name normalisation, atomic file writes."""

from keras_convnets.utils.io import (
    atomic_directory,
    atomic_write,
    fsync_directory,
    fsync_tree,
    write_json_atomic,
    write_text_atomic,
)
from keras_convnets.utils.naming import canonical_model_name
from keras_convnets.utils.validation import check_choice, check_fraction, check_int, check_number

__all__ = [
    "atomic_directory",
    "atomic_write",
    "canonical_model_name",
    "check_choice",
    "check_fraction",
    "check_int",
    "check_number",
    "fsync_directory",
    "fsync_tree",
    "write_json_atomic",
    "write_text_atomic",
]
