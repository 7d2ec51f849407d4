"""The Keras backend check of the TensorFlow-only parts.

The builders (`keras_convnets.models`) and `.weights.h5` files work on every Keras backend (TensorFlow, JAX,
PyTorch). Training (`tf.distribute`, `tf.data`), export (SavedModel, TFLite, ONNX from a `tf.function`) and tuning
run TensorFlow graphs of the Keras model, so they need the TensorFlow backend, which `KERAS_BACKEND` chooses before
Keras is imported.
"""

from __future__ import annotations

__all__ = ["TENSORFLOW", "cpu_flags", "onednn_enabled", "require_tensorflow_backend"]

TENSORFLOW = "tensorflow"


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


def onednn_enabled() -> bool:
    """Whether TensorFlow runs its oneDNN CPU kernels in this process (its default depends on the CPU: on for x86
    CPUs with AVX512-VNNI, AVX512-BF16, AVX-VNNI or AMX; `TF_ENABLE_ONEDNN_OPTS` turns them on or off; TensorFlow
    reads it once per process). False where this TensorFlow cannot say (a private API: `IsMklEnabled`)."""
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return False


def require_tensorflow_backend(what: str) -> None:
    """Raise a `ValueError` naming `what` (e.g. "`train`") unless Keras runs on the TensorFlow backend."""
    import keras

    backend = keras.backend.backend()
    if backend != TENSORFLOW:
        raise ValueError(
            f"{what} needs the TensorFlow backend (KERAS_BACKEND=tensorflow): training, export and tuning run on "
            f"TensorFlow only (the models build and predict on every backend). Received: backend={backend!r}"
        )
