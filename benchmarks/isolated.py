"""Our training step and plain PyTorch's, each alone in its own process, the processes alternating: a check on the
interleaved tables of `benchmarks.train`, where both frameworks share one process (and its memory, and each other's
idle threads). Each child builds its step (`benchmarks.train.ours`, or `benchmarks.torch_models.TrainStep`),
warms it up, times `--rounds` rounds of `--steps` steps and prints its images/s; the parent runs the children
ours, torch, ours, torch, ... `--repeats` times each and prints the medians and their ratio.

    python -m benchmarks.isolated --model resnet50 --precision mixed_bfloat16
    python -m benchmarks.isolated --model resnet20 --repeats 3 --rounds 5
    python -m benchmarks.isolated --smoke          # tiny, one child each: checks that it runs
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from benchmarks import common

FRAMEWORKS = ("ours", "torch")


def child(framework: str, model: str, precision: str, *, rounds: int, steps: int, smoke: bool) -> list[float]:
    """Images/s of `rounds` rounds of `steps` training steps, after two steps of warm-up, in this process."""
    from benchmarks import train

    workload = (train.SMOKE_WORKLOADS if smoke else train.WORKLOADS)[model]
    if framework == "ours":
        _, run = train.ours(workload, precision)
    else:
        from benchmarks import torch_models

        common.set_torch_threads(common.optional_torch())
        run = torch_models.TrainStep(
            model,
            batch=workload.batch,
            size=workload.size,
            classes=workload.classes,
            bfloat16=precision == "mixed_bfloat16",
        )
    run(2)
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        run(steps)
        rates.append(workload.batch * steps / (time.perf_counter() - start))
    return rates


def benchmark(model: str, precision: str, *, repeats: int = 2, rounds: int = 3, steps: int = 2, smoke: bool = False):
    from benchmarks import train

    if precision not in train.PRECISIONS:
        raise ValueError(f"`precision` must be one of {', '.join(train.PRECISIONS)}. Received: precision={precision!r}")
    if common.optional_torch() is None:
        raise ValueError("`benchmarks.isolated` compares with PyTorch, which is not installed (pip install torch)")
    twins = [name for name in train.WORKLOADS if name in train.torch_models().MODELS]
    if model not in twins:
        raise ValueError(
            f"`model` must be one with a PyTorch twin to compare with: {', '.join(twins)}. Received: model={model!r}"
        )
    for name, value in (("repeats", repeats), ("rounds", rounds), ("steps", steps)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    repeats, rounds, steps = (1, 1, 1) if smoke else (repeats, rounds, steps)
    load_before = common.load_average()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # where `benchmarks` imports from
    rates: dict[str, list[float]] = {name: [] for name in FRAMEWORKS}
    for repeat in range(repeats):
        for framework in FRAMEWORKS if repeat % 2 == 0 else FRAMEWORKS[::-1]:  # ours first, then torch first, ...
            command = [sys.executable, "-m", "benchmarks.isolated", "--child", framework, "--model", model]
            command += ["--precision", precision, "--rounds", str(rounds), "--steps", str(steps)]
            command += ["--smoke"] if smoke else []
            try:
                out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=root, timeout=1800)
            except subprocess.CalledProcessError as error:
                tail = "\n".join(error.stderr.strip().splitlines()[-5:])
                raise ValueError(f"The {framework} child failed (exit status {error.returncode}):\n{tail}") from None
            except subprocess.TimeoutExpired:
                raise ValueError(f"The {framework} child ran past 1,800 s and was stopped") from None
            rates[framework] += json.loads(out.stdout.strip().splitlines()[-1])
    ours, torch = (statistics.median(rates[name]) for name in FRAMEWORKS)
    rows = [
        [
            model,
            precision,
            common.fmt(ours),
            common.fmt(torch),
            common.fmt(ours / torch),
            ", ".join(common.fmt(r) for r in rates["ours"]),
            ", ".join(common.fmt(r) for r in rates["torch"]),
        ]
    ]
    headers = [
        "model",
        "precision",
        "ours img/s",
        "torch img/s",
        "ours / torch",
        "ours, every round",
        "torch, every round",
    ]
    title = "Training throughput, each framework alone in alternating processes"
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    header = (
        f"### {title}\n\n{stamp}. {common.machine_line()}.\n"
        f"Medians of all rounds of {repeats} processes per framework, alternating (the first of each pair swapping), "
        f"each timing {rounds} rounds of {steps} steps after 2 of warm-up; load average before {load_before}, "
        f"after {common.load_average()}.\n"
    )
    return header + "\n" + common.markdown_table(headers, rows) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.isolated", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet50", help="resnet20, resnet50 or googlenet")
    parser.add_argument("--precision", default="mixed_bfloat16", help="float32 or mixed_bfloat16")
    parser.add_argument("--repeats", type=int, default=2, help="processes per framework")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per process")
    parser.add_argument("--steps", type=int, default=2, help="training steps per round")
    parser.add_argument("--smoke", action="store_true", help="tiny, one child each: checks that it runs")
    parser.add_argument("--child", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("repeats", "rounds", "steps"):
        if getattr(args, name) < 1:
            print(f"error: --{name} must be at least 1. Received: {getattr(args, name)}", file=sys.stderr)
            return 2
    if args.child:  # one framework's rates, as the parent reads them
        return common.print_report(
            lambda: json.dumps(
                child(args.child, args.model, args.precision, rounds=args.rounds, steps=args.steps, smoke=args.smoke)
            )
        )
    return common.print_report(
        lambda: benchmark(
            args.model, args.precision, repeats=args.repeats, rounds=args.rounds, steps=args.steps, smoke=args.smoke
        )
    )


if __name__ == "__main__":
    sys.exit(main())
