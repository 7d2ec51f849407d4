"""Training throughput on the GPUs of this machine, within a time budget (what `benchmarks/gpu_check.sh` runs).

    python -m benchmarks.gpu_check                  # on a GPU machine: ResNet-50, GoogLeNet (mirrored), ResNet-20
    python -m benchmarks.gpu_check --smoke          # anywhere: tiny ResNet-20 cases, mirrored over 2 logical CPUs

Our models and our training step (`benchmarks.train.ours`: the recipe's optimizer, loss and metrics, compiled as
`keras_convnets.train` compiles them), under the precision the trainer picks (`resolve_mixed_precision("auto")`:
mixed_float16 on GPUs of compute capability 7 or more), one fixed batch on the device, warm-up (tracing, XLA
compilation, autotuning) excluded, medians of interleaved rounds. The cases, most important first:

- ResNet-50 at 224, batch 256, XLA off and on (the issue's goal: 3,000 img/s or more on one H200);
- GoogLeNet with both auxiliary heads at 224, batch 128 per replica, MirroredStrategy over all visible GPUs, XLA
  off and on: with mixed_float16 this is keras-team/keras#21366's configuration (LossScaleOptimizer, jit_compile,
  MirroredStrategy), for which the trainer falls back to XLA off (`building.fall_back_from_xla`);
- ResNet-50 with XLA and 8 steps per execution (`steps_per_execution` was never measured on a GPU here);
- ResNet-20 at 32, batch 512, XLA off and on.

A case that fails is reported in its row (the line of its error that says what failed) and the others go on.
Cases are prepared while less than 60% of `--budget` has passed (the first always), then rounds run while the
budget lasts (at least one); when the budget runs out in the middle of a case (SIGALRM), what was measured is
reported. Prints the machine's table (device, driver, CUDA/cuDNN, versions) and the results table in markdown on
stdout; progress on stderr. Exits 1 only when nothing could be measured.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

from benchmarks import common

GRACE_S = 25.0  # seconds for one round once the budget ran out while preparing (the shell script allows 40)
GOAL_RESNET50 = 3000.0  # img/s, ResNet-50 training with mixed precision on one H200 (issue 17)
HEADERS = [
    "model",
    "input",
    "global batch",
    "precision",
    "strategy",
    "replicas",
    "XLA",
    "steps/exec",
    "train img/s",
    "XLA on / off",
    "note",
]


class OutOfTime(BaseException):
    """The budget ran out (SIGALRM): not an `Exception`, so that no case reports it as its failure."""


# Python ignores an exception raised while it runs a gc callback or a `__del__` ("Exception ignored in ..."), and
# the alarm can land there (JAX installs a gc callback): so the alarm repeats until the budget's code catches it.
ALARM_REPEAT_S = 1.0


def out_of_time(signum, frame):
    raise OutOfTime


def arm_alarm(seconds: float) -> None:
    """SIGALRM (`out_of_time`, once installed) after `seconds`, then every `ALARM_REPEAT_S` until `disarm_alarm`."""
    signal.setitimer(signal.ITIMER_REAL, seconds, ALARM_REPEAT_S)


def disarm_alarm() -> None:
    signal.setitimer(signal.ITIMER_REAL, 0)


@dataclass
class Case:
    model: str
    size: int
    batch: int  # per replica
    classes: int
    jit: bool
    mirrored: bool = False
    steps_per_execution: int = 1

    @property
    def label(self) -> str:
        where = " mirrored" if self.mirrored else ""
        return f"{self.model}{where} XLA {'on' if self.jit else 'off'} spe {self.steps_per_execution}"


def cases(smoke: bool) -> list[Case]:
    if smoke:  # the mirrored case first: on CPUs its XLA row is the failure the trainer falls back from; ResNet-20
        # stands in for GoogLeNet there, whose step takes minutes to trace on two busy cores
        return [
            Case("resnet20", 16, 2, 10, False, mirrored=True),
            Case("resnet20", 16, 2, 10, True, mirrored=True),
            Case("resnet20", 16, 4, 10, False),
            Case("resnet20", 16, 4, 10, True),
            Case("resnet20", 16, 4, 10, False, steps_per_execution=4),
        ]
    return [
        Case("resnet50", 224, 256, 1000, False),
        Case("resnet50", 224, 256, 1000, True),
        Case("googlenet", 224, 128, 1000, False, mirrored=True),
        Case("googlenet", 224, 128, 1000, True, mirrored=True),
        Case("resnet50", 224, 256, 1000, True, steps_per_execution=8),
        Case("resnet20", 32, 512, 10, False),
        Case("resnet20", 32, 512, 10, True),
    ]


def environment(smoke: bool) -> tuple[list[str], list[list[str]]]:
    """The machine's table: device, count, driver, memory, CUDA and cuDNN of the TensorFlow build, versions."""
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    build = tf.sysconfig.get_build_info()
    smi = []
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        pass
    smi = [[part.strip() for part in line.split(",")] for line in smi if line.count(",") == 2]
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        name = details.get("device_name", gpus[0].name)
        capability = ".".join(map(str, details.get("compute_capability") or ()))
        device = f"{name} (compute capability {capability})" if capability else name
    else:
        cpus = len(tf.config.list_logical_devices("CPU"))
        device = f"no GPU: {common.cpu_name()}, {cpus} logical CPU device(s)" + (" (smoke)" if smoke else "")
    headers = ["device", "GPUs", "driver", "GPU memory", "CUDA", "cuDNN", "tensorflow", "keras", "Python"]
    row = [
        device,
        str(len(gpus)),
        smi[0][1] if smi else "-",
        smi[0][2] if smi else "-",
        str(build.get("cuda_version") or "-"),
        str(build.get("cudnn_version") or "-"),
        tf.__version__,
        keras.__version__,
        platform.python_version(),
    ]
    return headers, [row]


def _reason(error: BaseException) -> str:
    from keras_convnets.trainer.building import is_xla_failure, xla_failure_reason

    reason = xla_failure_reason(error, limit=160).replace("|", "/")
    return f"XLA failure (the trainer falls back to XLA off): {reason}" if is_xla_failure(error) else reason


def run(
    *, smoke: bool = False, budget: float = 420.0, log=None, started: float | None = None
) -> tuple[str, bool, bool]:
    """The report (markdown), whether anything was measured and whether the budget interrupted a case or a round.
    `budget` counts from `started` (default: now)."""
    started = time.perf_counter() if started is None else started
    log = log or (lambda line: None)
    import tensorflow as tf

    from benchmarks import train
    from keras_convnets.trainer import distribute, resolve_mixed_precision

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus and len(tf.config.list_logical_devices("CPU")) < 2:
        log("one CPU device: the mirrored cases run on one replica")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    precision = resolve_mixed_precision("auto")  # the trainer's own choice
    mirrored = distribute.get_strategy("mirrored")  # all GPUs, or all logical CPU devices
    env_headers, env_rows = environment(smoke)
    steps, max_rounds = (1, 1) if smoke else (10, 3)

    prepared, rows = [], []

    previous = signal.signal(signal.SIGALRM, out_of_time)
    arm_alarm(max(1.0, budget - (time.perf_counter() - started)))
    rates: dict[str, list[float]] = {}
    stopped = interrupted = None
    try:
        for case in cases(smoke):
            strategy = mirrored if case.mirrored else None
            replicas = strategy.num_replicas_in_sync if strategy else 1
            batch = case.batch * replicas
            row = [
                case.model + (" + aux heads" if case.model == "googlenet" else ""),
                f"{case.size}px",
                batch,
                precision,
                distribute.strategy_name(strategy) if strategy else "one device",
                replicas,
                "on" if case.jit else "off",
                case.steps_per_execution,
                "-",
                "-",
                "",
            ]
            rows.append(row)
            if stopped or (len(rows) > 1 and time.perf_counter() - started > 0.6 * budget):  # the first one always
                row[-1] = stopped or "skipped: time budget"
                continue
            workload = train.Workload(case.model, case.size, batch, case.classes)
            try:
                begun = time.perf_counter()
                _, runner = train.ours(
                    workload,
                    precision,
                    jit_compile=case.jit,
                    steps_per_execution=case.steps_per_execution,
                    strategy=strategy,
                )
                runner(1)  # the first steps after tracing: XLA compilation, autotuning
                log(f"{case.label}: ready in {time.perf_counter() - begun:.0f} s")
            except OutOfTime:
                disarm_alarm()  # until the grace round below arms it again
                stopped = interrupted = "skipped: time budget"
                row[-1] = "stopped: time budget (while preparing)"
                continue
            except Exception as error:  # report and go on: one failing case must not hide the others
                row[-1] = f"failed: {_reason(error)}"
                log(f"{case.label}: {row[-1]}")
                continue
            config = common.Config(case.label, runner, batch * case.steps_per_execution, steps=steps)
            prepared.append((case, row, config))
        configs = [config for _, _, config in prepared]
        rates = {config.name: [] for config in configs}
        if stopped:  # the budget is spent: one round, within the 40 s the shell script leaves after it
            max_rounds = 1
            arm_alarm(GRACE_S)
        for config in configs:
            config.run(config.warmup)
        for index in range(max_rounds):
            begun = time.perf_counter()
            times = {}
            for config in configs:
                wall = time.perf_counter()
                config.run(config.steps)
                times[config.name] = config.items * config.steps / (time.perf_counter() - wall)
            for name, rate in times.items():  # whole rounds only: every configuration under the same conditions
                rates[name].append(rate)
            took = time.perf_counter() - begun
            log(f"round {index + 1}: " + ", ".join(f"{name} {values[-1]:.4g}" for name, values in rates.items()))
            if time.perf_counter() - started + took > budget:
                break
    except OutOfTime:
        interrupted = True
        log("time budget reached: reporting the rounds completed")
    finally:
        disarm_alarm()
        signal.signal(signal.SIGALRM, previous)
    tables = [common.markdown_table(env_headers, env_rows), "", common.markdown_table(HEADERS, rows)]
    if not any(rates.values()):
        return "\n".join(["Nothing could be measured.", "", *tables]), False, bool(interrupted)
    medians = {name: statistics.median(values) for name, values in rates.items() if values}
    for case, row, config in prepared:
        row[8] = common.fmt(medians.get(config.name))
        if case.jit:
            partner = Case(case.model, case.size, case.batch, case.classes, False, case.mirrored, 1).label
            if case.steps_per_execution == 1 and partner in medians:
                row[9] = common.fmt(medians[config.name] / medians[partner], 2)
    rounds = max(len(values) for values in rates.values())
    tables[-1] = common.markdown_table(HEADERS, rows)  # with the rates
    lines = [
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; medians of {rounds} interleaved rounds of "
        f"{steps} calls after warm-up; budget {budget:.0f} s, took {time.perf_counter() - started:.0f} s.",
        "",
        *tables,
    ]
    resnet50 = [medians[c.label] for c, _, _ in prepared if c.model == "resnet50" and c.label in medians]
    if gpus and resnet50:
        met = "met" if max(resnet50) >= GOAL_RESNET50 else "not met"
        best = max(resnet50)
        lines += ["", f"ResNet-50 goal ({GOAL_RESNET50:,.0f} img/s, {precision}): best {best:,.0f} img/s, {met}."]
    return "\n".join(lines), True, bool(interrupted)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one round: checks that it runs anywhere")
    parser.add_argument(
        "--budget", type=float, default=420.0, help="seconds for the whole check (default 420: under 8 minutes)"
    )
    started = time.perf_counter()
    args = parser.parse_args(argv)
    if not args.budget > 0:
        parser.error(f"--budget must be a positive number of seconds. Received: {args.budget}")
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):  # the mirrored cases over 2 logical CPU devices
        from keras_convnets.trainer import distribute

        try:
            distribute.configure_cpu_devices(2)
        except ValueError:
            pass
    report, measured, interrupted = run(
        smoke=args.smoke,
        budget=args.budget,
        log=lambda line: print(line, file=sys.stderr, flush=True),
        started=started,
    )
    print(report, flush=True)
    sys.stderr.flush()
    if interrupted:  # TensorFlow may hang at exit after an interrupted trace: leave at once, the report is out
        os._exit(0 if measured else 1)
    return 0 if measured else 1


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
