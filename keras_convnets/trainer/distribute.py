"""Pick a `tf.distribute` strategy from a name, with errors that say what is missing.

- `"auto"`: `MirroredStrategy` over the GPUs when more than one is visible, `MultiWorkerMirroredStrategy` when
  `TF_CONFIG` names several workers, else one device (the GPU if there is one, else the CPU).
- `"one_device"`: `OneDeviceStrategy` on the first GPU, else the CPU.
- `"mirrored"`: `MirroredStrategy` over all GPUs; without GPUs, over all logical CPU devices.
- `"multi_worker"`: `MultiWorkerMirroredStrategy`, configured by the `TF_CONFIG` environment variable. Create it
  before anything else uses TensorFlow in the process.
- `"tpu"`: `TPUStrategy` on the TPU the cluster resolver finds.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

__all__ = [
    "STRATEGIES",
    "check_global_batch",
    "configure_cpu_devices",
    "get_strategy",
    "is_chief",
    "strategy_name",
]

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")


def _tf_config() -> dict:
    raw = os.environ.get("TF_CONFIG", "")
    if not raw:
        return {}
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"The `TF_CONFIG` environment variable is not valid JSON: {error}. Received: TF_CONFIG={raw!r}"
        ) from None
    if not isinstance(config, dict):
        raise ValueError(f"`TF_CONFIG` must be a JSON object with 'cluster' and 'task'. Received: TF_CONFIG={raw!r}")
    return config


def _num_workers(config: dict) -> int:
    cluster = config.get("cluster", {})
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def get_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """The strategy called `name` (one of `STRATEGIES`)."""
    if name not in STRATEGIES:
        raise ValueError(f"`strategy` must be one of {', '.join(map(repr, STRATEGIES))}. Received: strategy={name!r}")
    if name == "auto" and _num_workers(_tf_config()) > 1:
        name = "multi_worker"
    if name == "multi_worker":  # before anything lists devices: collectives are configured at startup
        config = _tf_config()
        if not config or "cluster" not in config or "task" not in config:
            raise ValueError(
                "`strategy='multi_worker'` reads the cluster from the `TF_CONFIG` environment variable, e.g. "
                '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}. '
                f"Received: TF_CONFIG={os.environ.get('TF_CONFIG', '')!r}"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "one_device"
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        if gpus:
            return tf.distribute.MirroredStrategy()
        cpus = [device.name for device in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=cpus)
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        raise ValueError(f"`strategy='tpu'` found no TPU to connect to: {error}. Received: strategy='tpu'") from None
    return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's files (always, except on the non-chief workers of a cluster)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type is None:
        return True
    return task_type == "chief" or (
        task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().as_dict()
    )


def strategy_name(strategy: tf.distribute.Strategy) -> str:
    """The public name of a strategy's class (`MultiWorkerMirroredStrategy`, not its internal alias)."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "MultiWorkerMirroredStrategy"
    return type(strategy).__name__


def check_global_batch(batch_size: int, strategy: tf.distribute.Strategy) -> None:
    """A global batch must give at least one example to every replica, and the same number to each (Keras
    splits it evenly: a remainder would be dropped, or make replicas see batches of different sizes)."""
    replicas = strategy.num_replicas_in_sync
    if batch_size < replicas:
        raise ValueError(
            f"`batch_size` is the global batch and must be at least the number of replicas ({replicas}, "
            f"under {strategy_name(strategy)}). Received: batch_size={batch_size}"
        )
    if batch_size % replicas:
        raise ValueError(
            f"`batch_size` is the global batch and must divide by the number of replicas ({replicas}, under "
            f"{strategy_name(strategy)}): use {batch_size - batch_size % replicas} or "
            f"{batch_size + replicas - batch_size % replicas}. Received: batch_size={batch_size}"
        )


def configure_cpu_devices(count: int) -> None:
    """Split the CPU into `count` logical devices (for MirroredStrategy on a machine without GPUs). Must run
    before TensorFlow initializes its devices."""
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError as error:
        raise ValueError(
            f"Logical CPU devices must be configured before TensorFlow initializes its devices ({error}). "
            f"Received: count={count}"
        ) from None
