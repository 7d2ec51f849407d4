"""Searches over bottleneck widths with keras-tuner, within a budget of MACs and parameters."""

from keras_convnets.tuning._impl import *  # noqa: F401,F403
