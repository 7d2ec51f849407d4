"""The numeric and speed choices of a run: the mixed-precision policy, XLA and `steps_per_execution`, each with an
`"auto"` that looks at the machine."""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from keras_convnets.utils.backend import cpu_flags
from keras_convnets.utils.validation import check_choice, check_int

__all__ = [
    "JIT_COMPILE",
    "MIXED_PRECISION",
    "cpu_flags",
    "resolve_jit_compile",
    "resolve_mixed_precision",
    "resolve_steps_per_execution",
]

MIXED_PRECISION = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
JIT_COMPILE = ("auto", True, False)


def resolve_mixed_precision(choice: str = "auto") -> str:
    """`"auto"` -> "mixed_float16" on GPUs of compute capability 7 or more, "mixed_bfloat16" on CPUs with
    AVX512-BF16 or AMX, else "float32". Other values are returned as they are."""
    check_choice("mixed_precision", choice, MIXED_PRECISION)
    if choice != "auto":
        return choice
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0))
        return "mixed_float16" if capability and capability[0] >= 7 else "float32"
    flags = cpu_flags()
    return "mixed_bfloat16" if {"avx512_bf16", "amx_bf16"} & flags else "float32"


def resolve_jit_compile(choice: Any = "auto") -> bool:
    """`"auto"` -> XLA on GPUs only: on CPUs it was measured slower (0.5-0.66x in training), and it fails under
    MirroredStrategy over several CPU devices. On GPUs it is what Keras recommends; it was not measured here. Where
    the first compiled step fails, the trainer goes on without it (`building.fall_back_from_xla`); under
    MultiWorkerMirroredStrategy, where it cannot, `resolve_config` leaves "auto" off."""
    if not (isinstance(choice, bool) or (isinstance(choice, str) and choice == "auto")):  # not 1, 0 or 1.0
        raise ValueError(f"`jit_compile` must be 'auto', True or False. Received: jit_compile={choice!r}")
    if choice == "auto":
        return bool(tf.config.list_physical_devices("GPU"))
    return bool(choice)


def resolve_steps_per_execution(choice: Any = "auto", steps_per_epoch: int | None = None) -> int:
    """Training steps per call of the compiled train function. `"auto"` -> 1, Keras's default: on this CPU larger
    values were measured no faster (benchmarks/RESULTS.md), and on GPUs they were not measured. An integer must be
    positive and divide `steps_per_epoch` (when given): Keras runs whole executions, so the last one of an epoch
    would otherwise train on batches of the next epoch."""
    if choice == "auto" and isinstance(choice, str):
        return 1
    check_int("steps_per_execution", choice, minimum=1, requirement="must be 'auto' or a positive integer")
    if steps_per_epoch is not None and steps_per_epoch % choice:
        divisors = [n for n in range(1, steps_per_epoch + 1) if steps_per_epoch % n == 0]
        shown = ", ".join(map(str, divisors[:12])) + (", ..." if len(divisors) > 12 else "")
        raise ValueError(
            f"`steps_per_execution` must divide `steps_per_epoch` ({steps_per_epoch}), so that every epoch ends "
            f"with an execution: one of {shown}. Received: steps_per_execution={choice}"
        )
    return int(choice)
