"""Timing helpers shared by the benchmarks.

The machine these run on is small and often shared, so every benchmark follows the same discipline:

- each configuration is built and warmed up (graph tracing, oneDNN primitive creation) before any timing;
- configurations are *interleaved*: round 1 times every configuration once, then round 2, and so on, so that a
  burst of foreign load hits all of them alike, and the median over rounds is reported;
- ratios between configurations are taken from the same run, and a matmul peak is measured in the same rounds,
  so that "fraction of peak" compares two numbers taken under the same conditions.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

# Must happen before TensorFlow is imported by anyone.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@dataclass
class Config:
    """One thing to time. `run(steps)` performs `steps` units of work and returns only once they are done;
    each unit processes `items` items (images, or FLOPs for a matmul)."""

    name: str
    run: Callable[[int], object]
    items: float
    steps: int = 1
    warmup: int = 1


@dataclass
class Timing:
    name: str
    rates: list[float] = field(default_factory=list)  # items per second, one per round
    cpu_rates: list[float] = field(default_factory=list)  # items per CPU-second of this process, one per round

    @property
    def median(self) -> float:
        return statistics.median(self.rates) if self.rates else float("nan")

    @property
    def spread(self) -> float:
        """(max - min) / median over the rounds: how noisy this configuration's measurement was."""
        if len(self.rates) < 2 or not self.median:
            return 0.0
        return (max(self.rates) - min(self.rates)) / self.median


def measure(
    configs: Sequence[Config], *, rounds: int = 3, log: Callable[[str], None] | None = None
) -> dict[str, Timing]:
    """Warm every configuration up, then time them interleaved for `rounds` rounds. Returns name -> Timing."""
    if rounds < 1:
        raise ValueError(f"`rounds` must be at least 1. Received: rounds={rounds}")
    for config in configs:
        if log:
            log(f"warming up {config.name}")
        if config.warmup:
            config.run(config.warmup)
    timings = {config.name: Timing(config.name) for config in configs}
    for index in range(rounds):
        for config in configs:
            cpu, wall = time.process_time(), time.perf_counter()
            config.run(config.steps)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            timings[config.name].rates.append(config.items * config.steps / wall)
            timings[config.name].cpu_rates.append(config.items * config.steps / max(cpu, 1e-9))
        if log:
            log(f"round {index + 1}/{rounds}: " + ", ".join(f"{t.name} {t.rates[-1]:.4g}" for t in timings.values()))
    return timings


def steps_of(function: Callable, *args) -> Callable[[int], None]:
    """`run(steps)` for a `Config`: `steps` calls of `function(*args)`, each result read back (`.numpy()`), so that
    a call has finished before the next starts and the timer stops."""

    def run(steps: int):
        for _ in range(steps):
            function(*args).numpy()

    return run


def matmul_config(dtype: str = "float32", size: int = 1024, repeats: int = 8) -> Config:
    """A TensorFlow matmul of two `size` x `size` matrices, `repeats` times per step; items are FLOPs, so the
    measured rate is FLOP/s. bfloat16 runs oneDNN's AVX512-BF16 kernels where the CPU has them."""
    import tensorflow as tf

    a = tf.cast(tf.random.stateless_normal([size, size], seed=[1, 2]), dtype)
    # scaled so that a chain of products keeps its magnitude
    b = tf.cast(tf.random.stateless_normal([size, size], seed=[3, 4]) / size**0.5, dtype)

    @tf.function
    def chain(a, b):
        # a dependent chain: no two products are the same, so graph optimizations cannot merge or skip any
        for _ in range(repeats):
            a = tf.matmul(a, b)
        return tf.reduce_sum(tf.cast(a[:8], tf.float32))

    return Config(f"matmul {dtype}", steps_of(chain, a, b), items=2.0 * size**3 * repeats, steps=2, warmup=2)


def load_average() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_line() -> str:
    """One line describing the machine and the software, for the head of a results table."""
    import keras
    import tensorflow as tf

    from keras_convnets.trainer import cpu_flags

    flags = cpu_flags()
    isa = [f for f in ("avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    parts = [
        f"{cpu_name()}, {os.cpu_count()} logical CPUs ({', '.join(isa) or 'no AVX-512'})",
        f"Python {sys.version.split()[0]}, tensorflow {tf.__version__}, keras {keras.__version__}",
    ]
    torch = optional_torch()
    parts.append(f"torch {torch.__version__}" if torch else "torch not installed")
    parts.append(f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'default')}")
    return "; ".join(parts)


def optional_torch():
    """The torch module, or None when it is not installed (the PyTorch columns are then skipped)."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def set_threads(threads: int | None) -> None:
    """Use `threads` threads in TensorFlow (intra- and inter-op) and in torch; None keeps their defaults
    (all CPUs). Must run before TensorFlow executes its first op. One thread per framework gives robust
    CPU-time ratios on a machine shared with other work, where barrier-synchronised thread teams (OpenMP in
    torch) stall whenever one of their threads is descheduled."""
    if threads is None:
        return
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    torch = optional_torch()
    if torch is not None:
        torch.set_num_threads(threads)


def set_torch_threads(torch, threads: int | None = None) -> None:
    torch.set_num_threads(threads or os.cpu_count() or 1)


def print_report(make_report: Callable[[], str]) -> int:
    """A command's ending: print what `make_report()` returns (exit status 0), or its ValueError as one `error:`
    line on stderr (exit status 2), not a traceback."""
    try:
        report = make_report()
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report)
    return 0


def fmt(value: float | None, digits: int = 3) -> str:
    """A number for a table: `digits` significant digits, '-' for a missing value."""
    if value is None or value != value:  # None or NaN
        return "-"
    if value == 0:
        return "0"
    if abs(value) >= 10 ** (digits - 1):
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; every row must have as many cells as there are headers."""
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"A table row has {len(row)} cells for {len(headers)} headers. Received: row={row!r}")
    lines = ["| " + " | ".join(str(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def parse_markdown_table(text: str) -> tuple[list[str], list[list[str]]]:
    """The headers and rows of the first markdown table in `text` (used by the tests)."""
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("|")]
    if len(lines) < 2:
        raise ValueError("No markdown table found.")

    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip("|").split("|")]

    headers = cells(lines[0])
    rows = []
    for line in lines[2:]:
        if line.startswith("|---") or line.startswith("| ---"):
            break
        row = cells(line)
        if len(row) != len(headers):
            break
        rows.append(row)
    return headers, rows


def report_header(title: str, *, rounds: int, load_before: str) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return (
        f"### {title}\n\n{stamp}. {machine_line()}.\n"
        f"Medians of {rounds} interleaved rounds after warm-up; load average before {load_before}, "
        f"after {load_average()}.\n"
    )
