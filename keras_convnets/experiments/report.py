"""The shared report writer of the experiments: one markdown report with tables and PNG figures, and the raw
numbers as JSON and CSV, all in one output directory. Every file is written atomically (`keras_convnets.utils.io`):
a reader sees the previous version or the new one, never a part.

Figures are drawn with matplotlib's Agg canvas directly (no pyplot, no global backend change), so reports are
written the same way on a headless server and inside a notebook.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime
import io
import json
import logging
import math
import os
import platform
import sys
from typing import Any, Iterable, Sequence

from keras_convnets.utils.io import atomic_write, write_text_atomic

__all__ = [
    "Report",
    "format_number",
    "machine_description",
    "new_figure",
    "quiet_retracing",
    "sampling_error",
    "utc_now",
]


def machine_description() -> str:
    """The machine the numbers come from: CPU cores usable by this process, accelerators, library versions."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 0
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    accel = f"{len(gpus)} GPU" if gpus else "no GPU"
    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return (
        f"{cores} CPU cores ({cpu}), {accel}; {platform.system()} {platform.release()}, Python "
        f"{platform.python_version()}, TensorFlow {tf.__version__}, Keras {keras.__version__}"
    )


@contextlib.contextmanager
def quiet_retracing():
    """Silence TensorFlow's retracing warning: the experiments build one small `tf.function` per model on
    purpose, which that warning mistakes for a loop re-creating one function."""
    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def new_figure(width: float = 8.0, height: float = 3.4, ncols: int = 1):
    """A matplotlib figure on an Agg canvas and its axes (a list of `ncols`)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    axes = [figure.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return figure, axes


def plot_error_curves(left, right, curves, *style, **options) -> None:
    """One run's training error on `left` and test error on `right`, in percent against iterations; `style` and
    `options` go to matplotlib's `plot` (the run's name is the label unless given)."""
    options.setdefault("label", curves.name)
    left.plot(curves.iterations, [100 * e for e in curves.train_error], *style, **options)
    right.plot(curves.iterations, [100 * e for e in curves.test_error], *style, **options)


def label_error_axes(left, right, *, of: str = "", legend_fontsize: int = 8) -> None:
    """Titles, axis labels and grids of a training-error / test-error pair of axes, the legend on the right."""
    left.set_title(f"training error{of}", fontsize=10)
    right.set_title(f"test error{of}", fontsize=10)
    for axis in (left, right):
        axis.set_xlabel("iterations")
        axis.set_ylabel("error (%)")
        axis.grid(alpha=0.3)
    right.legend(fontsize=legend_fontsize)


def sampling_error(p: float, n: int) -> float:
    """The standard error of an error rate `p` measured on `n` images: sqrt(p (1 - p) / n) (nan for n = 0)."""
    return (p * (1 - p) / n) ** 0.5 if n else float("nan")


def _plain(value: Any) -> Any:
    """JSON-ready copy of `value` (dataclasses, tuples, numpy scalars and arrays, non-finite floats as None)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return _plain(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def format_number(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


class Report:
    """Collects a report's parts, then `write()` puts `report.md` (and the files already saved) in `output_dir`.

    `report.table(headers, rows)`, `report.figure(fig, "curves.png", caption)`, `report.json("results.json", data)`,
    `report.csv("errors.csv", rows)`, `report.text(markdown)`, `report.heading(text)`.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        title: str,
        *,
        command: str | None = None,
        wall_seconds: float | None = None,
    ):
        if not isinstance(output_dir, (str, os.PathLike)) or not os.fspath(output_dir):
            raise TypeError(f"`output_dir` must be a directory path. Received: output_dir={output_dir!r}")
        self.output_dir = os.fspath(output_dir)
        if os.path.exists(self.output_dir) and not os.path.isdir(self.output_dir):
            raise ValueError(f"`output_dir` exists and is not a directory. Received: output_dir={self.output_dir!r}")
        os.makedirs(self.output_dir, exist_ok=True)
        self.title = title
        self.command = command or " ".join(["python"] + [os.path.basename(sys.argv[0])] + sys.argv[1:])
        self.started = utc_now()
        self.wall_seconds = wall_seconds
        self.parts: list[str] = []
        self.files: list[str] = []

    def _path(self, filename: str) -> str:
        return os.path.join(self.output_dir, filename)

    def heading(self, text: str, level: int = 2) -> None:
        self.parts.append(f"{'#' * level} {text}")

    def text(self, markdown: str) -> None:
        self.parts.append(markdown.strip())

    def bullets(self, items: Iterable[str]) -> None:
        self.parts.append("\n".join(f"- {item}" for item in items))

    def table(self, headers: Sequence[str], rows: Iterable[Sequence[Any]], *, digits: int = 4) -> None:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        for row in rows:
            lines.append("| " + " | ".join(format_number(c, digits) for c in row) + " |")
        self.parts.append("\n".join(lines))

    def figure(self, figure, filename: str, caption: str, *, dpi: int = 80) -> str:
        """Save `figure` as a small PNG and show it in the report."""
        figure.tight_layout()
        with atomic_write(self._path(filename), "wb") as handle:
            figure.savefig(handle, format="png", dpi=dpi)
        self.files.append(filename)
        self.parts.append(f"![{caption}]({filename})\n\n*{caption}*")
        return self._path(filename)

    def json(self, filename: str, data: Any) -> str:
        write_text_atomic(self._path(filename), json.dumps(_plain(data), indent=2, sort_keys=False) + "\n")
        self.files.append(filename)
        return self._path(filename)

    def csv(self, filename: str, rows: Sequence[dict]) -> str:
        rows = [_plain(r) for r in rows]
        fields: list[str] = []
        for row in rows:
            fields += [k for k in row if k not in fields]
        buffer = io.StringIO(newline="")
        writer = csv.DictWriter(buffer, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
        with atomic_write(self._path(filename), "wb") as handle:  # bytes: the csv module's line ends, untranslated
            handle.write(buffer.getvalue().encode("utf-8"))
        self.files.append(filename)
        return self._path(filename)

    def write(self) -> str:
        """Write `report.md` and return its path."""
        header = [
            f"# {self.title}",
            "",
            f"- Command: `{self.command}`",
            f"- Date: {self.started}",
            f"- Machine: {machine_description()}",
        ]
        if self.wall_seconds is not None:
            header.append(f"- Wall time of the whole experiment: {self.wall_seconds:.0f} s")
        data_files = [f for f in self.files if not f.endswith(".png")]
        if data_files:
            header.append("- Raw numbers: " + ", ".join(f"[{f}]({f})" for f in data_files))
        text = "\n".join(header) + "\n\n" + "\n\n".join(self.parts) + "\n"
        path = self._path("report.md")
        write_text_atomic(path, text)
        return path
