"""Runnable recipes and the `convnets` command line. Everything reusable lives in `keras_convnets`."""
