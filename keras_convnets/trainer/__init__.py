"""Training: the trainer (`train`, in phases over a frozen `TrainConfig`), the papers' recipes, schedules, losses,
callbacks and distribution strategies.

    config.py     resolve the arguments into a `TrainConfig`
    precision.py  mixed precision and XLA choices
    run_dir.py    run.json, the same-run check, the checkpoint to resume from
    building.py   build, compile, restore; the float32 copy
    trainer.py    `train` and its fit and finish phases, `export_model`
"""

from keras_convnets.trainer import callbacks, distribute, losses, recipes, schedules
from keras_convnets.trainer.building import float32_copy as _float32_copy
from keras_convnets.trainer.building import prepare_for_multi_worker as _prepare_for_multi_worker
from keras_convnets.trainer.building import synchronize_batch_norm as _synchronize_batch_norm
from keras_convnets.trainer.config import RECIPE_IMAGE_SIZE, TrainConfig, resolve_config
from keras_convnets.trainer.config import model_name as _model_name
from keras_convnets.trainer.precision import (
    JIT_COMPILE,
    MIXED_PRECISION,
    cpu_flags,
    resolve_jit_compile,
    resolve_mixed_precision,
)
from keras_convnets.trainer.run_dir import IDENTITY, check_run_dir
from keras_convnets.trainer.trainer import TrainResult, export_model, train

__all__ = [
    "IDENTITY",
    "JIT_COMPILE",
    "MIXED_PRECISION",
    "RECIPE_IMAGE_SIZE",
    "TrainConfig",
    "TrainResult",
    "callbacks",
    "check_run_dir",
    "cpu_flags",
    "distribute",
    "export_model",
    "losses",
    "recipes",
    "resolve_config",
    "resolve_jit_compile",
    "resolve_mixed_precision",
    "schedules",
    "train",
]
