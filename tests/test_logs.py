"""`utils.logs.quiet_native_logs`: native writes to file descriptor 2 held back for a block and put back without
the known INFO lines; the descriptor restored on errors and with several threads at once."""

from __future__ import annotations

import os
import threading

import pytest

from keras_convnets.utils import logs

XNNPACK = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"


def native(text: str) -> None:
    os.write(2, text.encode())  # as C++ writes: below Python's sys.stderr


def test_the_known_info_line_is_dropped_and_the_rest_put_back(capfd, monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    with logs.quiet_native_logs():
        native(XNNPACK)
        native("ERROR: the delegate failed\n")
    native("after\n")
    assert capfd.readouterr().err == "ERROR: the delegate failed\nafter\n"


def test_nothing_is_held_back_where_info_lines_are_wanted(capfd, monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    with logs.quiet_native_logs():
        native(XNNPACK)
    assert capfd.readouterr().err == XNNPACK
    with logs.quiet_native_logs(always=True):  # TensorFlow's import: all of it, whatever the level
        native("I0000 oneDNN custom operations are on\n")
    assert capfd.readouterr().err == ""


def test_the_descriptor_is_restored_after_an_exception(capfd, monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    with pytest.raises(RuntimeError, match="boom"):
        with logs.quiet_native_logs():
            native("WARNING: before the error\n")
            raise RuntimeError("boom")
    native("restored\n")
    assert capfd.readouterr().err == "WARNING: before the error\nrestored\n"


def test_threads_entering_at_once_leave_stderr_as_it_was(capfd, monkeypatch):
    """Each thread saving and restoring the descriptor itself can restore another's redirection: stderr lost."""
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    inside, release = threading.Barrier(4), threading.Event()

    def work(i):
        with logs.quiet_native_logs():
            inside.wait()
            native(XNNPACK)
            native(f"thread {i}\n")
            release.wait(10)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    release.set()
    for thread in threads:
        thread.join()
    native("still here\n")
    err = capfd.readouterr().err
    assert sorted(err.splitlines()) == sorted([f"thread {i}" for i in range(4)] + ["still here"])
