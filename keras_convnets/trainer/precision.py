"""The numeric choices of a run: the mixed-precision policy and XLA, each with an `"auto"` that looks at the machine."""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from keras_convnets.utils.validation import check_choice

__all__ = ["JIT_COMPILE", "MIXED_PRECISION", "cpu_flags", "resolve_jit_compile", "resolve_mixed_precision"]

MIXED_PRECISION = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
JIT_COMPILE = ("auto", True, False)


def cpu_flags() -> set[str]:
    """The flags of the CPU as /proc/cpuinfo lists them (empty where it cannot be read)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


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
    """`"auto"` -> XLA on GPUs only (on CPUs it is slower, and fails under MirroredStrategy)."""
    if choice not in JIT_COMPILE:
        raise ValueError(f"`jit_compile` must be 'auto', True or False. Received: jit_compile={choice!r}")
    if choice == "auto":
        return bool(tf.config.list_physical_devices("GPU"))
    return bool(choice)
