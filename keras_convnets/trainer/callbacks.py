"""What a training run leaves behind: resumable checkpoints, the history (CSV), a line per epoch, the curves.

`RunRecorder` is the one callback that keeps the run's state. At the end of every epoch it appends a row to the
history, prints a line (train/test loss and error, learning rate, time), and, when it has a directory, writes a
checkpoint: the model's and the optimizer's variables (`weights.weights.h5`) and the state (`state.json`: epoch,
history) into a temporary directory that is then renamed to `checkpoints/epoch-NNNN`. A rename is atomic, so a
run killed at any moment (SIGKILL included) leaves either the previous checkpoint or the new one, never half of
one. `latest_checkpoint` finds the newest complete one and `restore_checkpoint` loads it into a compiled model.

Files and directories are fsynced before each rename (`keras_convnets.utils.io`), so a checkpoint that looks complete
after a power loss is complete. A checkpoint is still validated when it is read: `load_checkpoint` tries the newest
first and falls back, with a warning, to the newest one that loads.

The state of the callbacks that decide the schedule (`ResumableReduceLROnPlateau`: its best value, wait and cooldown
counters) is saved in `state.json`. The recorder must come after them in the callback list, so that the checkpoint
of epoch e holds the learning rate they set at its end.

With several replicas (MirroredStrategy, MultiWorkerMirroredStrategy), `AverageReplicaStatistics` averages the
non-trainable statistics (batch-norm moving means and variances) over the replicas once an epoch, when its training
steps are done (before its validation, else at its end), before the checkpoint: Keras 3 creates them with no
aggregation, so each replica updates its own copy from its own batches and the workers of a multi-worker run end
with different weights (tf.keras 2 read them as the mean of the replicas, `VariableAggregation.MEAN`). The
checkpoint, the final model and every worker then hold the same values.

(Keras's `BackupAndRestore` is not used: it overwrites its weights file in place and writes the epoch number
after it, so a kill between the two resumes a trained epoch a second time.)
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import time
import warnings
from typing import Callable

import keras
import numpy as np

from keras_convnets.utils.io import atomic_directory, atomic_write, write_json_atomic, write_text_atomic

__all__ = [
    "AverageReplicaStatistics",
    "CHECKPOINT_PATTERN",
    "HISTORY_FIELDS",
    "STATE_FILE",
    "WEIGHTS_FILE",
    "ResumableReduceLROnPlateau",
    "RunRecorder",
    "average_replica_statistics",
    "checkpoint_digest",
    "checkpoint_epoch",
    "clean_partial_checkpoints",
    "format_epoch_line",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "plot_curves",
    "read_checkpoint_state",
    "restore_checkpoint",
    "write_history_csv",
    "write_json_atomic",  # re-exported: keras_convnets.utils.io's
    "write_text_atomic",
]

CHECKPOINT_PATTERN = re.compile(r"^epoch-(\d{4,})$")
WEIGHTS_FILE = "weights.weights.h5"
STATE_FILE = "state.json"
HISTORY_FIELDS = (
    "epoch",
    "iterations",
    "loss",
    "accuracy",
    "error",
    "val_loss",
    "val_accuracy",
    "val_error",
    "learning_rate",
    "seconds",
)


def write_history_csv(path: str, history: list[dict]) -> None:
    """The per-epoch history as CSV, written atomically."""
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for row in history:
        writer.writerow({k: row.get(k, "") for k in HISTORY_FIELDS})
    write_text_atomic(path, buffer.getvalue())


def list_checkpoints(directory: str | None) -> list[str]:
    """The complete-looking `epoch-NNNN` checkpoints under `directory` (both files present), newest first."""
    if not directory or not os.path.isdir(directory):
        return []
    found = []
    for name in os.listdir(directory):
        match = CHECKPOINT_PATTERN.match(name)
        path = os.path.join(directory, name)
        if (
            match
            and os.path.isfile(os.path.join(path, WEIGHTS_FILE))
            and os.path.isfile(os.path.join(path, STATE_FILE))
        ):
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found, reverse=True)]


def checkpoint_digest(path: str) -> str:
    """The sha256 (hex) of a checkpoint's files (state, then weights): two copies of the same checkpoint give
    the same digest, whatever their dates. A file that cannot be read counts as empty."""
    digest = hashlib.sha256()
    for name in (STATE_FILE, WEIGHTS_FILE):
        digest.update(f"{name};".encode("ascii"))
        try:
            with open(os.path.join(path, name), "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
        except OSError:
            digest.update(b"unreadable")
    return digest.hexdigest()


def checkpoint_epoch(path: str) -> int:
    """The epoch of an `epoch-NNNN` checkpoint directory, from its name."""
    return int(CHECKPOINT_PATTERN.match(os.path.basename(os.path.normpath(path))).group(1))


def latest_checkpoint(directory: str | None) -> str | None:
    """The newest complete-looking `epoch-NNNN` checkpoint under `directory`, or None."""
    found = list_checkpoints(directory)
    return found[0] if found else None


def read_checkpoint_state(path: str) -> dict:
    with open(os.path.join(path, STATE_FILE), encoding="utf-8") as f:
        state = json.load(f)
    if not isinstance(state, dict) or not isinstance(state.get("epoch"), int) or "history" not in state:
        raise ValueError(f"{os.path.join(path, STATE_FILE)} is not a checkpoint state (epoch, history).")
    return state


def restore_checkpoint(model: keras.Model, path: str) -> dict:
    """Load a checkpoint's model and optimizer variables into the compiled `model` (inside the strategy's scope
    it was built in) and return its state (`{"epoch": ..., "history": [...], "callbacks": {...}}`)."""
    state = read_checkpoint_state(path)
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model.load_weights(os.path.join(path, WEIGHTS_FILE))
    return state


def _first_line(error: BaseException, limit: int = 300) -> str:
    """The first non-empty line of an error's message (Keras explains a mismatch over a dozen lines)."""
    line = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
    return line if len(line) <= limit else line[: limit - 3] + "..."


def load_checkpoint(model: keras.Model, directory: str | None) -> tuple[str, dict] | None:
    """Restore the newest checkpoint under `directory` that loads into `model`: `(path, state)`, or None when there
    is none. A checkpoint that does not load (a truncated weights file, a torn state) is skipped with a warning; when
    some exist and none loads, a `ValueError` names them."""
    candidates = list_checkpoints(directory)
    failures = []
    for path in candidates:
        try:
            state = restore_checkpoint(model, path)
        except Exception as error:  # h5py's OSError, a JSON error, a shape mismatch: all mean "does not load"
            failures.append(f"{path}: {type(error).__name__}: {_first_line(error)}")
            continue
        if failures:
            warnings.warn(
                "Skipped checkpoints that do not load (" + "; ".join(failures) + f"). Resuming from {path}.",
                stacklevel=2,
            )
        return path, state
    if failures:
        raise ValueError(
            "No checkpoint of the run loads (" + "; ".join(failures) + "). Delete the checkpoints/ directory to "
            "start the run again."
        )
    return None


def clean_partial_checkpoints(directory: str) -> None:
    """Remove the temporary directories of checkpoints that a killed run did not finish."""
    if os.path.isdir(directory):
        for name in os.listdir(directory):
            if name.startswith(".tmp-") or (name.startswith(".epoch-") and name.endswith((".partial", ".old"))):
                shutil.rmtree(os.path.join(directory, name), ignore_errors=True)


class ResumableReduceLROnPlateau(keras.callbacks.ReduceLROnPlateau):
    """Keras's `ReduceLROnPlateau` whose decision state (best value, wait and cooldown counters) can be saved
    with a checkpoint and restored on resume (`get_state`, `state=`). Keras resets it at the start of `fit`;
    this one then takes the restored state."""

    def __init__(self, *args, state: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._restored = dict(state) if state else None

    def get_state(self) -> dict:
        best = self.best
        return {
            "best": None if best is None else float(best),
            "wait": int(self.wait),
            "cooldown_counter": int(self.cooldown_counter),
        }

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self._restored is not None:
            self.best = self._restored.get("best")
            self.wait = int(self._restored.get("wait", 0))
            self.cooldown_counter = int(self._restored.get("cooldown_counter", 0))
            self._restored = None


def _statistics(model: keras.Model) -> list:
    """The moving statistics of the model's batch-norm layers (nested models included; with batch
    renormalization its moving standard deviation and renorm estimates too), each variable once. Nothing else:
    other non-trainable state (seed generators, constants) is not a replica's own estimate."""
    seen, found = set(), []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        # batch renormalization (`renorm=True`) keeps its own per-replica estimates, and infers with moving_stddev
        names = ("moving_mean", "moving_variance", "moving_stddev", "renorm_mean", "renorm_stddev")
        for variable in (getattr(layer, name, None) for name in names):
            if variable is not None and id(variable) not in seen:
                seen.add(id(variable))
                found.append(variable)
    return found


def average_replica_statistics(model: keras.Model, strategy, *, function=None):
    """Replace every replica's copy of the non-trainable statistics of `model` (built in `strategy`'s scope) by
    their mean over all replicas (all workers): one all-reduce of the statistics, flattened. Every replica must
    call it at the same point (a callback that all workers run). Returns the `tf.function` that does it, to be
    passed back as `function` (traced once); None with one replica or no statistics."""
    import tensorflow as tf

    variables = _statistics(model)
    if strategy.num_replicas_in_sync == 1 or not variables:
        return None
    if function is None:

        def replica_step():
            context = tf.distribute.get_replica_context()
            values = [tf.convert_to_tensor(v.value) for v in variables]  # this replica's own copies
            flat = tf.concat([tf.reshape(tf.cast(value, tf.float32), [-1]) for value in values], axis=0)
            mean = context.all_reduce(tf.distribute.ReduceOp.MEAN, flat)
            offset = 0
            for variable, value in zip(variables, values):
                size = int(np.prod(value.shape))
                part = tf.reshape(mean[offset : offset + size], value.shape)
                variable.assign(tf.cast(part, value.dtype))
                offset += size

        function = tf.function(lambda: strategy.run(replica_step))
    function()
    return function


class AverageReplicaStatistics(keras.callbacks.Callback):
    """The batch-norm moving statistics of all replicas replaced by their mean (`average_replica_statistics`) once
    an epoch, when its training steps are done: before the epoch's validation when there is one (`fit` runs it
    before `on_epoch_end`, and each replica would otherwise evaluate its share with its own statistics), else at
    the epoch's end. Every worker then holds the same model. Place it before `RunRecorder`, whose checkpoint must
    hold the averaged values."""

    def __init__(self, strategy):
        super().__init__()
        self.strategy = strategy
        self._function = None
        self._averaged = False

    def _average(self):
        self._function = average_replica_statistics(self.model, self.strategy, function=self._function)
        self._averaged = True

    def on_epoch_begin(self, epoch, logs=None):
        self._averaged = False

    def on_test_begin(self, logs=None):  # only inside `fit`: the callback is not given to `evaluate`
        if not self._averaged:
            self._average()

    def on_epoch_end(self, epoch, logs=None):
        if not self._averaged:
            self._average()


def _scalar(value) -> float:
    return float(np.asarray(keras.ops.convert_to_numpy(value)))


class RunRecorder(keras.callbacks.Callback):
    """History, epoch lines and checkpoints of a run (see the module docstring).

    Args:
        steps_per_epoch: iterations per epoch (for the `iterations` column).
        history: the rows of the epochs already done (when resuming).
        checkpoint_dir: where checkpoints go; None writes none.
        history_csv: where the CSV goes; None writes none.
        keep: how many checkpoints to keep.
        print_fn: where the epoch lines go (None: silent).
        epochs: the total, for the lines.
        on_checkpoint: called with the checkpoint path after each one is complete.
        stateful: callbacks whose `get_state()` is saved in each checkpoint's state.json under "callbacks", by
            name (they must come before the recorder in the callback list).
        validation_name: what `val_*` measures, for the epoch lines ("test" or "validation").
    """

    def __init__(
        self,
        *,
        steps_per_epoch: int,
        history: list[dict] | None = None,
        checkpoint_dir: str | None = None,
        history_csv: str | None = None,
        keep: int = 2,
        print_fn: Callable[[str], None] | None = print,
        epochs: int | None = None,
        on_checkpoint: Callable[[str], None] | None = None,
        stateful: dict[str, keras.callbacks.Callback] | None = None,
        validation_name: str = "test",
    ):
        super().__init__()
        self.steps_per_epoch = steps_per_epoch
        self.history = list(history or [])
        self.checkpoint_dir = checkpoint_dir
        self.history_csv = history_csv
        self.keep = max(1, keep)
        self.print_fn = print_fn
        self.epochs = epochs
        self.on_checkpoint = on_checkpoint
        self.stateful = dict(stateful or {})
        self.validation_name = validation_name
        self._started = 0.0
        self._learning_rate = float("nan")

    def _current_learning_rate(self) -> float:
        optimizer = self.model.optimizer
        if optimizer is None:
            return float("nan")
        inner = getattr(optimizer, "inner_optimizer", optimizer)
        return _scalar(inner.learning_rate)

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()
        self._learning_rate = self._current_learning_rate()

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        row = {"epoch": epoch + 1, "iterations": (epoch + 1) * self.steps_per_epoch}
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            if key in logs:
                row[key] = float(logs[key])
        if "accuracy" in row:
            row["error"] = 1.0 - row["accuracy"]
        if "val_accuracy" in row:
            row["val_error"] = 1.0 - row["val_accuracy"]
        row["learning_rate"] = self._learning_rate
        row["seconds"] = round(time.perf_counter() - self._started, 3)
        self.history = [r for r in self.history if r["epoch"] < row["epoch"]] + [row]
        if self.print_fn is not None:
            self.print_fn(format_epoch_line(row, self.epochs, validation_name=self.validation_name))
        if self.checkpoint_dir:
            self.save_checkpoint(epoch + 1)
        if self.history_csv:
            write_history_csv(self.history_csv, self.history)

    def save_checkpoint(self, epoch: int) -> str:
        os.makedirs(self.checkpoint_dir, exist_ok=True)
        final = os.path.join(self.checkpoint_dir, f"epoch-{epoch:04d}")
        state = {
            "epoch": epoch,
            "history": self.history,
            "callbacks": {name: callback.get_state() for name, callback in self.stateful.items()},
        }
        # a rerun of an epoch already saved (should not happen) replaces it
        with atomic_directory(final, replace=True) as tmp:
            self.model.save_weights(os.path.join(tmp, WEIGHTS_FILE))
            write_json_atomic(os.path.join(tmp, STATE_FILE), state)
        self._prune()
        if self.on_checkpoint is not None:
            self.on_checkpoint(final)
        return final

    def _prune(self) -> None:
        epochs = sorted(int(m.group(1)) for m in map(CHECKPOINT_PATTERN.match, os.listdir(self.checkpoint_dir)) if m)
        for old in epochs[: -self.keep]:
            shutil.rmtree(os.path.join(self.checkpoint_dir, f"epoch-{old:04d}"), ignore_errors=True)


def format_epoch_line(row: dict, epochs: int | None = None, *, validation_name: str = "test") -> str:
    total = f"/{epochs}" if epochs else ""
    parts = [f"epoch {row['epoch']}{total} (iteration {row['iterations']})"]
    if "loss" in row:
        train = f"train loss {row['loss']:.4f}"
        if "error" in row:
            train += f", error {100 * row['error']:.2f}%"
        parts.append(train)
    if "val_loss" in row:
        test = f"{validation_name} loss {row['val_loss']:.4f}"
        if "val_error" in row:
            test += f", error {100 * row['val_error']:.2f}%"
        parts.append(test)
    parts.append(f"lr {row['learning_rate']:.4g}")
    parts.append(f"{row['seconds']:.1f} s")
    return " - ".join(parts)


def plot_curves(history: list[dict], path: str, *, title: str = "", validation_name: str = "test") -> None:
    """Training (thin, dashed) and test (bold; or validation, per `validation_name`) error against iterations, in
    the style of He et al. 2016, Figures 1 and 6. Written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    iterations = [row["iterations"] for row in history]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    scale, unit = (1e4, " (1e4)") if iterations and max(iterations) >= 2e4 else (1.0, "")
    x = [i / scale for i in iterations]
    train = [100 * row["error"] if "error" in row else np.nan for row in history]
    test = [100 * row["val_error"] if "val_error" in row else np.nan for row in history]
    ax.plot(x, train, "--", linewidth=1.0, color="tab:blue", label="training error")
    ax.plot(x, test, "-", linewidth=2.5, color="tab:blue", label=f"{validation_name} error")
    ax.set_xlabel(f"iter.{unit}")
    ax.set_ylabel("error (%)")
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    with atomic_write(path, "wb") as f:
        f.write(buffer.getvalue())
