"""Training: the trainer, the papers' recipes, schedules, losses, callbacks and distribution strategies."""

from keras_convnets.trainer.trainer import *  # noqa: F401,F403
