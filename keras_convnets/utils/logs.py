"""The start-up and INFO lines of native libraries (TensorFlow's C++ runtime, LiteRT's delegates), kept out of
stderr where TensorFlow's own log level filters INFO (`TF_CPP_MIN_LOG_LEVEL` of 1 or more; the command line sets
3 unless `--verbose`). They are written by C++ straight to file descriptor 2, where Python's logging cannot reach
them, so the descriptor is pointed at the null device for the duration."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator

__all__ = ["native_info_filtered", "quiet_native_logs"]


def native_info_filtered() -> bool:
    """Whether `TF_CPP_MIN_LOG_LEVEL` asks for INFO lines to be left out (1, 2 or 3)."""
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0").strip()
    return level.isdigit() and int(level) >= 1


@contextlib.contextmanager
def quiet_native_logs(*, always: bool = False) -> Iterator[None]:
    """Within the block, file descriptor 2 goes to the null device when `always` or `native_info_filtered()`.
    Python exceptions raised in the block are untouched (their messages carry what went wrong)."""
    if not (always or native_info_filtered()):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
