"""The run directory: `run.json` (the configuration) and the files a run needs before it trains, the check that a
directory holds the same run before it is resumed, and the choice of the checkpoint to resume from.

    .lock               held (`fcntl.flock`) by the process training in the directory, with its pid; removed at exit
    run.json            written first, so that a directory with anything else in it is a training run
    preprocessing.json  measured once; a resumed run reads it back
    labels.txt
    checkpoints/        epoch-NNNN/ (see keras_convnets.trainer.callbacks)
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from typing import Iterator

import keras

from keras_convnets.data.preprocessing import Preprocessing
from keras_convnets.trainer import callbacks as run_callbacks
from keras_convnets.utils.io import write_json_atomic, write_text_atomic

__all__ = [
    "IDENTITY",
    "IDENTITY_DEFAULTS",
    "LOCK_FILE",
    "RUN_FILE",
    "RunDirectoryBusyError",
    "check_run_dir",
    "lock_run_dir",
    "read_preprocessing",
    "read_run_json",
    "resume_from_checkpoint",
    "write_run_files",
]

RUN_FILE = "run.json"
LOCK_FILE = ".lock"
# run.json entries that must match for a directory to be resumed
IDENTITY = (
    "model",
    "dataset",
    "num_classes",
    "image_size",
    "recipe",
    "batch_size",
    "epochs",
    "steps_per_epoch",
    "seed",
    "model_options",
    "validation_split",
)
# what an entry added after a run was started means in that run's run.json (that run had none of it)
IDENTITY_DEFAULTS = {"validation_split": 0.0}


def read_run_json(output_dir: str) -> dict | None:
    """The `run.json` of `output_dir`, or None where there is none. A file that is not a JSON object (damaged
    by hand or by a disk) is a `ValueError` that names it."""
    path = os.path.join(output_dir, RUN_FILE)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        config, problem = None, f"is not valid JSON ({error})"
    else:
        problem = None if isinstance(config, dict) else f"holds a {type(config).__name__}, not a JSON object"
    if problem is not None:
        raise ValueError(
            f"{path} {problem}: the run's configuration is damaged. Restore it, or use another --output-dir to "
            "start a new run. Nothing was written."
        )
    return config


def check_run_dir(output_dir: str, config: dict) -> dict | None:
    """The `run.json` already in `output_dir`, after checking it describes the same run as `config`; None when
    the directory holds no run. A different run is a `ValueError` and nothing is written."""
    previous = read_run_json(output_dir)
    if previous is None:
        if os.path.isdir(output_dir) and set(os.listdir(output_dir)) - {LOCK_FILE}:
            raise ValueError(
                f"`output_dir` {output_dir!r} is not empty and holds no run.json: it is not a training run. "
                "Choose another directory. Nothing was written."
            )
        return None
    current = json.loads(json.dumps(config))  # tuples become lists, as in the file
    differences = []
    for key in IDENTITY:
        there, now = previous.get(key, IDENTITY_DEFAULTS.get(key)), current.get(key)
        if there == now:
            continue
        if isinstance(there, dict) and isinstance(now, dict):  # a recipe: only the fields that differ
            differences += [
                f"{key}.{field}: {there.get(field)!r} there, {now.get(field)!r} now"
                for field in sorted(set(there) | set(now))
                if there.get(field) != now.get(field)
            ]
        else:
            differences.append(f"{key}: {there!r} there, {now!r} now")
    if differences:
        raise ValueError(
            f"`output_dir` {output_dir!r} holds a run with another configuration ({'; '.join(differences)}). "
            "Use another --output-dir (or delete that one) to start a new run. Nothing was written."
        )
    return previous


class RunDirectoryBusyError(RuntimeError):
    """Another process trains in the run directory (it holds the directory's lock)."""


def _lock_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return f"pid {text}" if text.isdigit() else "a process whose pid is not written yet"


@contextlib.contextmanager
def lock_run_dir(output_dir: str) -> Iterator[str]:
    """Hold an exclusive lock on the run directory `output_dir` (created if need be) for the whole run:
    `fcntl.flock` on its `.lock` file, which holds this process's pid. A directory locked by another process
    (a second `train` on a running run) is a `RunDirectoryBusyError` naming that process's pid, and nothing is
    written. On exit the lock file is removed and, if this call created the directory and nothing else was
    written in it (a start that failed), the directory too; the lock is released by closing the file, also when
    the process dies."""
    created = not os.path.isdir(output_dir)
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, LOCK_FILE)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = _lock_holder(fd)
            os.close(fd)
            if error.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                raise
            raise RunDirectoryBusyError(
                f"`output_dir` {output_dir!r} is in use: another training process ({holder}) holds its lock "
                f"({path}). Wait for it to finish, stop it, or use another --output-dir. Nothing was written."
            ) from None
        try:  # a previous holder may have removed the file between our open and our lock: lock the file there now
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield path
    finally:
        try:
            os.unlink(path)  # while locked: a process that opened it meanwhile sees another file and retries
            if created and not os.listdir(output_dir):
                os.rmdir(output_dir)
        except OSError:
            pass
        finally:
            os.close(fd)


def read_preprocessing(output_dir: str | None) -> Preprocessing | None:
    """The preprocessing a previous start of the run measured, or None. A damaged file is a `ValueError` that
    names it (a resumed run must normalise as its checkpoints were trained: it is not measured again silently)."""
    path = os.path.join(output_dir, "preprocessing.json") if output_dir else None
    if not path or not os.path.exists(path):
        return None
    try:
        return Preprocessing.load(path)
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as error:
        raise ValueError(
            f"{path} cannot be read ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}): "
            "the preprocessing the run was trained with is damaged. Restore it, or delete it to measure it again "
            "from the training set. Nothing was written."
        ) from None


def write_run_files(output_dir: str, config: dict, preprocessing: Preprocessing, labels: list[str]) -> str:
    """Write `run.json` first, then `preprocessing.json` (once), `labels.txt` and the `checkpoints/` directory;
    remove what a killed checkpoint left half-written. Returns the checkpoint directory."""
    os.makedirs(output_dir, exist_ok=True)
    write_json_atomic(os.path.join(output_dir, RUN_FILE), config)
    preprocessing_path = os.path.join(output_dir, "preprocessing.json")
    if not os.path.exists(preprocessing_path):
        preprocessing.save(preprocessing_path)
    write_text_atomic(os.path.join(output_dir, "labels.txt"), "".join(f"{label}\n" for label in labels))
    checkpoint_dir = os.path.join(output_dir, "checkpoints")
    os.makedirs(checkpoint_dir, exist_ok=True)
    run_callbacks.clean_partial_checkpoints(checkpoint_dir)
    return checkpoint_dir


def resume_from_checkpoint(model: keras.Model, checkpoint_dir: str | None) -> tuple[str, dict] | None:
    """Load the newest checkpoint that loads into the compiled `model`: `(path, state)`, or None to start at
    epoch 0 (see `callbacks.load_checkpoint`)."""
    return run_callbacks.load_checkpoint(model, checkpoint_dir)
