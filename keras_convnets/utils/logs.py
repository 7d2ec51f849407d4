"""The start-up and INFO lines of native libraries (TensorFlow's C++ runtime, LiteRT's delegates), kept out of
stderr where TensorFlow's own log level filters INFO (`TF_CPP_MIN_LOG_LEVEL` of 1 or more; the command line sets
3 unless `--verbose`). They are written by C++ straight to file descriptor 2, where Python's logging cannot reach
them, so for the duration of a block the descriptor points at a temporary file; when the block ends, whatever
was written there is put back on stderr except the known INFO lines (`QUIET_LINES`). An error, a warning or a
crash report written in the block is therefore still shown (a crash that kills the process loses it: the file is
replayed by the process itself).

The redirection is one per process: blocks entered by several threads at once share it (a lock and a count), and
the descriptor is restored when the last one leaves."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from typing import Iterator

__all__ = ["QUIET_LINES", "native_info_filtered", "quiet_native_logs"]

QUIET_LINES = ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",)

_lock = threading.Lock()
_state = {"depth": 0, "saved": None, "capture": None, "drop_all": False}


def native_info_filtered() -> bool:
    """Whether `TF_CPP_MIN_LOG_LEVEL` asks for INFO lines to be left out (1, 2 or 3)."""
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0").strip()
    return level.isdigit() and int(level) >= 1


def _replay(capture, drop_all: bool) -> None:
    capture.seek(0)
    text = capture.read().decode("utf-8", "replace")
    capture.close()
    if drop_all:
        return
    kept = [line for line in text.splitlines(keepends=True) if line.rstrip("\r\n") not in QUIET_LINES]
    if kept:
        sys.stderr.write("".join(kept))
        sys.stderr.flush()


@contextlib.contextmanager
def quiet_native_logs(*, always: bool = False) -> Iterator[None]:
    """Within the block, native writes to file descriptor 2 are held back, and put back on stderr at its end
    without the lines of `QUIET_LINES`, when `native_info_filtered()`. `always=True` drops all of them, whatever
    the level (TensorFlow's import-time lines, which come before its log level applies). Python exceptions raised
    in the block are untouched."""
    if not (always or native_info_filtered()):
        yield
        return
    with _lock:
        if _state["depth"] == 0:
            sys.stderr.flush()
            _state["saved"] = os.dup(2)
            _state["capture"] = tempfile.TemporaryFile()
            _state["drop_all"] = always
            os.dup2(_state["capture"].fileno(), 2)
        else:
            _state["drop_all"] = _state["drop_all"] and always
        _state["depth"] += 1
    try:
        yield
    finally:
        with _lock:
            _state["depth"] -= 1
            if _state["depth"] == 0:
                sys.stderr.flush()
                os.dup2(_state["saved"], 2)
                os.close(_state["saved"])
                capture, drop_all = _state["capture"], _state["drop_all"]
                _state.update(saved=None, capture=None, drop_all=False)
                _replay(capture, drop_all)
