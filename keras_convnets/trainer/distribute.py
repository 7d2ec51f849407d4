"""Pick a `tf.distribute` strategy from a name, with errors that say what is missing.

- `"auto"`: `MirroredStrategy` over the GPUs when more than one is visible, `MultiWorkerMirroredStrategy` when
  `TF_CONFIG` names several workers, else one device (the GPU if there is one, else the CPU).
- `"one_device"`: `OneDeviceStrategy` on the first GPU, else the CPU.
- `"mirrored"`: `MirroredStrategy` over all GPUs; without GPUs, over all logical CPU devices.
- `"multi_worker"`: `MultiWorkerMirroredStrategy`, configured by the `TF_CONFIG` environment variable. Create it
  before anything else uses TensorFlow in the process.
- `"tpu"`: `TPUStrategy` on the TPU the cluster resolver finds.

The mirrored and multi-worker strategies are made once per process and configuration and then reused: two
`MirroredStrategy` objects in one process number their collective operations alike, and the second one's first
all-reduce meets the first one's (TensorFlow aborts every collective of the process with "Shape mismatch in the
collective instance"). `train` called twice with `strategy="mirrored"` therefore trains both times. A script that
makes its own `tf.distribute.MirroredStrategy` should pass that object to `train` (and to everything else in the
process), not a name as well: TensorFlow numbers the collectives of every new MirroredStrategy from the same start.

A multi-worker run resumes only where every worker restores the same checkpoint (`agree_on_resume`): the workers
exchange the epoch of the newest checkpoint each one sees with a digest of its files, then the epoch they restored
with a checksum of their weights (`weights_checksum`), and a difference (a run directory that is not on storage
they all share) stops every worker with one line before any of them trains.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import numpy as np
import tensorflow as tf

__all__ = [
    "STRATEGIES",
    "WorkersDisagreeError",
    "agree_on_resume",
    "check_global_batch",
    "configure_cpu_devices",
    "get_strategy",
    "is_chief",
    "strategy_name",
    "weights_checksum",
    "worker_count",
    "worker_id",
]

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")

_COLLECTIVE_STRATEGIES: dict[tuple, tf.distribute.Strategy] = {}  # one per configuration, for the process


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
        key = ("multi_worker", os.environ.get("TF_CONFIG", ""))
        if key not in _COLLECTIVE_STRATEGIES:
            _COLLECTIVE_STRATEGIES[key] = tf.distribute.MultiWorkerMirroredStrategy()
        return _COLLECTIVE_STRATEGIES[key]
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "one_device"
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        devices = tuple(d.name for d in gpus) or tuple(d.name for d in tf.config.list_logical_devices("CPU"))
        key = ("mirrored", devices)
        if key not in _COLLECTIVE_STRATEGIES:
            _COLLECTIVE_STRATEGIES[key] = tf.distribute.MirroredStrategy(devices=list(devices))
        return _COLLECTIVE_STRATEGIES[key]
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


# ----------------------------------------------------------------------------------------------- resume agreement


class WorkersDisagreeError(RuntimeError):
    """The workers of a multi-worker run would resume from different checkpoints (or hold different weights)."""


def worker_count(strategy: tf.distribute.Strategy) -> int:
    """The number of worker processes of a `MultiWorkerMirroredStrategy` (chief included); 1 for any other."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return 1
    cluster = resolver.cluster_spec().as_dict()
    return max(1, len(cluster.get("chief", [])) + len(cluster.get("worker", [])))


def worker_id(strategy: tf.distribute.Strategy) -> int:
    """This process's place in the cluster: 0 for the chief (or worker 0 without one), then the workers in order
    (TensorFlow's `multi_worker_util.id_in_cluster`); 0 outside a multi-worker run."""
    if worker_count(strategy) == 1:
        return 0
    resolver = strategy.cluster_resolver
    if resolver.task_type == "chief":
        return 0
    return int(resolver.task_id) + len(resolver.cluster_spec().as_dict().get("chief", []))


def _variables(model_or_variables: Any) -> list:
    """A model's weights (batch-norm statistics included) and its optimizer's variables, each once; or the given
    variables."""
    if hasattr(model_or_variables, "weights"):
        model = model_or_variables
        optimizer = getattr(model, "optimizer", None)
        candidates = [*model.weights, *(optimizer.variables if optimizer is not None else [])]
    else:
        candidates = list(model_or_variables)
    seen, variables = set(), []
    for variable in candidates:
        if id(variable) not in seen:
            seen.add(id(variable))
            variables.append(variable)
    return variables


def weights_checksum(model_or_variables: Any) -> str:
    """The sha256 (hex) of the values of a model's weights and optimizer variables (or of the given variables),
    in their order: the bytes of each value with its dtype and shape. Two processes that hold the same model with
    the same values give the same checksum; one changed bit changes it."""
    digest = hashlib.sha256()
    for variable in _variables(model_or_variables):
        value = np.ascontiguousarray(np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable))
        digest.update(f"{value.dtype.str}{value.shape};".encode("ascii"))
        digest.update(value.tobytes())
    return digest.hexdigest()


def _gather_rows(strategy: tf.distribute.Strategy, row: list[float]) -> np.ndarray:
    """Every worker's `row` (one per replica, in replica order), by an all-gather over the cluster. Every
    worker must call it at the same point."""
    local = tf.constant([row], tf.float32)
    values = strategy.experimental_distribute_values_from_function(lambda _: local)
    return np.asarray(strategy.gather(values, axis=0))


def _checksum_pieces(checksum: str) -> list[float]:
    """The first 64 bits of a hex checksum as four 16-bit integers: exact in float32, which every collective
    implementation carries."""
    head = int(checksum[:16], 16)
    return [float((head >> shift) & 0xFFFF) for shift in (48, 32, 16, 0)]


def _worker_name(index: int, has_chief: bool) -> str:
    if index == 0:
        return "the chief (worker 0)" if not has_chief else "the chief"
    return f"worker {index - 1}" if has_chief else f"worker {index}"


def agree_on_resume(
    strategy: tf.distribute.Strategy,
    *,
    epoch: int | None,
    checksum: str,
    run_directory: str | None,
    restored: bool = True,
    failure: BaseException | None = None,
) -> None:
    """Check that every worker of a multi-worker run resumes from the same point, before any of them trains.

    Each worker gives an epoch and a checksum, and the workers exchange them (one all-gather: every worker must
    call this at the same point, also one whose checkpoints failed to load, with its `failure`). Before
    restoring (`restored=False`): the epoch of the newest checkpoint it sees (0: none) and a checksum of that
    checkpoint's files; after (`restored=True`): the epoch it restored (None with `failure`) and
    `weights_checksum` of its model. When they all agree nothing happens. Otherwise every worker raises the same
    `WorkersDisagreeError` naming what each one sees (a worker whose own checkpoints failed raises its
    `failure`): without storage that all workers share, the chief would resume at epoch k and the others at 0,
    and the replicas would train different weights. A no-op outside a multi-worker run (or with one worker)."""
    workers = worker_count(strategy)
    if workers == 1:
        if failure is not None:
            raise failure
        return
    sent = [float(worker_id(strategy)), -1.0 if failure is not None else float(epoch or 0)]
    rows = {int(row[0]): [int(v) for v in row[1:]] for row in _gather_rows(strategy, sent + _checksum_pieces(checksum))}
    if failure is not None:
        raise failure
    if len({tuple(v) for v in rows.values()}) == 1 and len(rows) == workers:
        return
    has_chief = bool(strategy.cluster_resolver.cluster_spec().as_dict().get("chief"))
    where = f" (`output_dir` {run_directory!r} on this worker)" if run_directory else ""
    storage = (
        f"A multi-worker run needs its run directory{where} on storage that all workers share, so that they all "
        "restore the chief's checkpoint. Nothing was trained."
    )
    epochs = {index: found[0] for index, found in rows.items()}
    if len(set(epochs.values())) > 1:
        seen = []
        for index in sorted(rows):
            name, found = _worker_name(index, has_chief), epochs[index]
            if found < 0:
                seen.append(f"{name}'s checkpoints do not load")
            elif found == 0:
                seen.append(f"{name} {'restored' if restored else 'sees'} no checkpoint")
            else:
                seen.append(f"{name} {'restored' if restored else 'sees'} epoch {found}")
        verb = "resumed from" if restored else "would resume from"
        raise WorkersDisagreeError(f"The workers {verb} different checkpoints: {', '.join(seen)}. {storage}")
    reference = rows.get(0, next(iter(rows.values())))
    others = ", ".join(_worker_name(index, has_chief) for index in sorted(rows) if rows[index][1:] != reference[1:])
    if not restored:
        raise WorkersDisagreeError(
            f"The workers see different files for the checkpoint of epoch {reference[0]}: those of {others} differ "
            f"from the chief's (sha256 of the checkpoint's files). {storage}"
        )
    point = f"the checkpoint of epoch {reference[0]}" if reference[0] > 0 else "their start (no checkpoint)"
    raise WorkersDisagreeError(
        f"The workers hold different weights at {point}: those of {others} differ from the chief's (checksums of "
        f"the restored weights). {storage}"
    )
