"""What a training run leaves behind: resumable checkpoints, the history (CSV), a line per epoch, the curves.

`RunRecorder` is the one callback that keeps the run's state. At the end of every epoch it appends a row to the
history, prints a line (train/test loss and error, learning rate, time), and, when it has a directory, writes a
checkpoint: the model's and the optimizer's variables (`weights.weights.h5`) and the state (`state.json`: epoch,
history) into a temporary directory that is then renamed to `checkpoints/epoch-NNNN`. A rename is atomic, so a
run killed at any moment (SIGKILL included) leaves either the previous checkpoint or the new one, never half of
one. `latest_checkpoint` finds the newest complete one and `restore_checkpoint` loads it into a compiled model.

(Keras's `BackupAndRestore` is not used: it overwrites its weights file in place and writes the epoch number
after it, so a kill between the two resumes a trained epoch a second time.)
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import time
from typing import Callable

import keras
import numpy as np

from keras_convnets.utils.io import write_json_atomic, write_text_atomic  # noqa: F401 (re-exported)

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
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=HISTORY_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in history:
            writer.writerow({k: row.get(k, "") for k in HISTORY_FIELDS})
    os.replace(tmp, path)


def latest_checkpoint(directory: str) -> str | None:
    """The newest complete `epoch-NNNN` checkpoint under `directory`, or None."""
    if not directory or not os.path.isdir(directory):
        return None
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
    return max(found)[1] if found else None


def read_checkpoint_state(path: str) -> dict:
    with open(os.path.join(path, STATE_FILE), encoding="utf-8") as f:
        return json.load(f)


def restore_checkpoint(model: keras.Model, path: str) -> dict:
    """Load a checkpoint's model and optimizer variables into the compiled `model` (inside the strategy's scope
    it was built in) and return its state (`{"epoch": ..., "history": [...]}`)."""
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model.load_weights(os.path.join(path, WEIGHTS_FILE))
    return read_checkpoint_state(path)


def clean_partial_checkpoints(directory: str) -> None:
    """Remove the temporary directories of checkpoints that a killed run did not finish."""
    if os.path.isdir(directory):
        for name in os.listdir(directory):
            if name.startswith(".tmp-"):
                shutil.rmtree(os.path.join(directory, name), ignore_errors=True)


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
            self.print_fn(format_epoch_line(row, self.epochs))
        if self.checkpoint_dir:
            self.save_checkpoint(epoch + 1)
        if self.history_csv:
            write_history_csv(self.history_csv, self.history)

    def save_checkpoint(self, epoch: int) -> str:
        os.makedirs(self.checkpoint_dir, exist_ok=True)
        final = os.path.join(self.checkpoint_dir, f"epoch-{epoch:04d}")
        tmp = os.path.join(self.checkpoint_dir, f".tmp-epoch-{epoch:04d}-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        self.model.save_weights(os.path.join(tmp, WEIGHTS_FILE))
        write_json_atomic(os.path.join(tmp, STATE_FILE), {"epoch": epoch, "history": self.history})
        if os.path.exists(final):  # a rerun of an epoch already saved (should not happen): replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
        self._prune()
        if self.on_checkpoint is not None:
            self.on_checkpoint(final)
        return final

    def _prune(self) -> None:
        epochs = sorted(int(m.group(1)) for m in map(CHECKPOINT_PATTERN.match, os.listdir(self.checkpoint_dir)) if m)
        for old in epochs[: -self.keep]:
            shutil.rmtree(os.path.join(self.checkpoint_dir, f"epoch-{old:04d}"), ignore_errors=True)


def format_epoch_line(row: dict, epochs: int | None = None) -> str:
    total = f"/{epochs}" if epochs else ""
    parts = [f"epoch {row['epoch']}{total} (iteration {row['iterations']})"]
    if "loss" in row:
        train = f"train loss {row['loss']:.4f}"
        if "error" in row:
            train += f", error {100 * row['error']:.2f}%"
        parts.append(train)
    if "val_loss" in row:
        test = f"test loss {row['val_loss']:.4f}"
        if "val_error" in row:
            test += f", error {100 * row['val_error']:.2f}%"
        parts.append(test)
    parts.append(f"lr {row['learning_rate']:.4g}")
    parts.append(f"{row['seconds']:.1f} s")
    return " - ".join(parts)


def plot_curves(history: list[dict], path: str, *, title: str = "") -> None:
    """Training (thin, dashed) and test (bold) error against iterations, in the style of He et al. 2016,
    Figures 1 and 6. Written atomically as PNG."""
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
    ax.plot(x, test, "-", linewidth=2.5, color="tab:blue", label="test error")
    ax.set_xlabel(f"iter.{unit}")
    ax.set_ylabel("error (%)")
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = f"{path}.tmp-{os.getpid()}.png"
    fig.savefig(tmp, format="png")
    plt.close(fig)
    os.replace(tmp, path)
