"""Export to SavedModel and TFLite, checked against Keras, and prediction from the exported files."""

from keras_convnets.export._impl import *  # noqa: F401,F403
