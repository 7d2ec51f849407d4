"""One process per run directory: the chief holds the directory's `.lock` (`fcntl.flock`) for the whole run, and a
second `train` on it is refused with the holder's pid before anything is written."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys

import keras
import pytest

import keras_convnets
from keras_convnets.trainer import run_dir, trainer
from tests.conftest import tiny_digits


def resnet8(**kwargs):
    return keras_convnets.CifarResNet(8, **kwargs)


def _hold(path) -> int:
    """Lock `path/.lock` as another training process would: an open file description of its own, our pid in it."""
    os.makedirs(path, exist_ok=True)
    fd = os.open(os.path.join(path, run_dir.LOCK_FILE), os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, b"4242\n")
    return fd


def _listing(path) -> dict:
    return {name: os.path.getsize(os.path.join(path, name)) for name in sorted(os.listdir(path))}


def test_a_second_train_on_a_locked_run_directory_is_refused_with_the_holders_pid(tmp_path):
    run = tmp_path / "run"
    fd = _hold(run)
    try:
        before = _listing(run)
        with pytest.raises(run_dir.RunDirectoryBusyError, match=r"another training process \(pid 4242\)"):
            trainer.train(resnet8, tiny_digits(), epochs=1, batch_size=16, output_dir=str(run), print_fn=None)
        assert _listing(run) == before == {".lock": 5}  # nothing written, the holder's lock file untouched
        assert os.pread(fd, 16, 0) == b"4242\n"
    finally:
        os.close(fd)


def test_the_lock_is_held_during_the_run_and_released_at_its_end(tmp_path):
    run = str(tmp_path / "run")
    seen = []

    class Probe(keras.callbacks.Callback):  # tries the lock from the outside while training
        def on_epoch_end(self, epoch, logs=None):
            with open(os.path.join(run, run_dir.LOCK_FILE)) as f:
                seen.append(f.read().strip())
                with pytest.raises(BlockingIOError):
                    fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    trainer.train(
        resnet8,
        tiny_digits(),
        epochs=1,
        batch_size=16,
        output_dir=run,
        callbacks=[Probe()],
        print_fn=None,
    )
    assert seen == [str(os.getpid())]
    assert not os.path.exists(os.path.join(run, run_dir.LOCK_FILE))  # removed at the end
    assert os.path.exists(os.path.join(run, "metrics.json"))
    with run_dir.lock_run_dir(run):  # free again
        pass


def test_a_lock_held_by_another_process_names_its_pid_and_is_released_when_it_dies(tmp_path):
    run = str(tmp_path / "run")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from keras_convnets.trainer import run_dir\n"
            "with run_dir.lock_run_dir(sys.argv[1]):\n    print('locked', flush=True); sys.stdin.read()",
            run,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(run_dir.RunDirectoryBusyError, match=rf"\(pid {holder.pid}\)"):
            with run_dir.lock_run_dir(run):
                pass
    finally:
        holder.kill()
        holder.wait()
    with run_dir.lock_run_dir(run) as path:  # a killed holder's lock is released with its process
        assert open(path).read() == f"{os.getpid()}\n"


def test_a_failed_start_leaves_no_lock_and_no_directory(tmp_path):
    with run_dir.lock_run_dir(str(tmp_path / "new")):
        assert os.listdir(tmp_path / "new") == [".lock"]
    assert not (tmp_path / "new").exists()
    (tmp_path / "old").mkdir()
    with run_dir.lock_run_dir(str(tmp_path / "old")):
        pass
    assert os.listdir(tmp_path / "old") == []  # a directory that was there stays
    assert run_dir.check_run_dir(str(tmp_path / "old"), {}) is None
