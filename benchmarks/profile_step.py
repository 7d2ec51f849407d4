"""Where the time of a training step goes, op by op: TensorFlow's profiler over a few calls of our training step
(`benchmarks.train.ours`: the model and compile of `keras_convnets.train`, one fixed batch), its trace read back
into a table of op types with their exclusive time (an op's time less that of the ops it runs inside it) and share.

    python -m benchmarks.profile_step                                  # ResNet-20 b128 and ResNet-50 b32, bf16
    python -m benchmarks.profile_step --models resnet20 --precisions float32,mixed_bfloat16 --steps 5 --top 25
    python -m benchmarks.profile_step --smoke                          # tiny: checks that it runs (the tests)

Shares are of the summed exclusive op time over all threads (TensorFlow's compute threads and the oneDNN/Eigen
pools); "category" groups op types: convolution (forward and both gradients), batch norm, matmul, element-wise,
casts, optimizer update, reductions, layout (transposes, pads, slices, concats), and the rest. The trace's own
overhead inflates small ops a little; the shares are for ranking, the wall time per step for nothing.
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import sys
import tempfile
from dataclasses import dataclass

from benchmarks import common

# op type (TensorFlow's, after the oneDNN rewrites: _Mkl*, _FusedConv2D ...) -> category, by substring, first match
CATEGORIES = (
    ("Conv2DBackpropFilter", "convolution (weight gradient)"),
    ("Conv2DBackpropInput", "convolution (input gradient)"),
    ("Conv2D", "convolution"),
    ("DepthwiseConv", "convolution"),
    ("FusedBatchNorm", "batch norm"),
    ("BatchMatMul", "matmul"),
    ("MatMul", "matmul"),
    ("Cast", "cast"),
    ("ResourceApply", "optimizer update"),
    ("AssignVariable", "variable read/write"),
    ("ReadVariable", "variable read/write"),
    ("AssignAdd", "variable read/write"),
    ("AssignSub", "variable read/write"),
    ("Transpose", "layout"),
    ("Pad", "layout"),
    ("Slice", "layout"),
    ("Concat", "layout"),
    ("Reshape", "layout"),
    ("Tile", "layout"),
    ("Gather", "layout"),
    ("MaxPool", "pooling"),
    ("AvgPool", "pooling"),
    ("Sum", "reduction"),
    ("Mean", "reduction"),
    ("Max", "reduction"),
    ("ArgMax", "reduction"),
    ("L2Loss", "reduction"),
    ("Softmax", "loss"),
    ("CrossEntropy", "loss"),
    ("Relu", "element-wise"),
    ("AddN", "element-wise"),
    ("AddV2", "element-wise"),
    ("BiasAdd", "element-wise"),
    ("Mul", "element-wise"),
    ("Sub", "element-wise"),
    ("Add", "element-wise"),
    ("Div", "element-wise"),
    ("Square", "element-wise"),
    ("Sqrt", "element-wise"),
    ("Rsqrt", "element-wise"),
    ("Neg", "element-wise"),
    ("Select", "element-wise"),
    ("Equal", "element-wise"),
    ("Less", "element-wise"),
    ("Greater", "element-wise"),
    ("IsFinite", "element-wise"),
)


def category(op_type: str) -> str:
    for key, name in CATEGORIES:
        if key in op_type:
            return name
    return "other"


@dataclass
class OpRow:
    op_type: str
    seconds: float  # exclusive time, summed over the threads and the profiled steps
    count: int

    @property
    def category(self) -> str:
        return category(self.op_type)


# events that are not TensorFlow ops (the executor's, the thread pools', tf.data's, the runtime's)
_NOT_OPS = ("ThreadpoolListener", "ExecutorState", "Iterator::", "MemoryAllocation", "MemoryDeallocation")


def op_times(xspace_path: str) -> list[OpRow]:
    """The op types of a trace (an `.xplane.pb` file of `tf.profiler`), with their exclusive time and count, most
    expensive first. An op event is one named "name:type" (not "Scope::Function") on a thread other than the
    caller's; on each thread, an event's time less that of the events inside it (a function call op contains its
    ops) is its exclusive time."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(xspace_path, "rb") as f:
        space.ParseFromString(f.read())
    totals: dict[str, float] = collections.defaultdict(float)
    counts: dict[str, int] = collections.Counter()
    for plane in space.planes:
        if not plane.name.startswith("/host:"):
            continue
        for line in plane.lines:
            if line.name == "python":  # the caller's thread: it waits for the step (and runs eager ops)
                continue
            events = []
            for event in line.events:
                meta = plane.event_metadata[event.metadata_id]
                if ":" not in meta.name or "::" in meta.name or meta.name.startswith(_NOT_OPS):
                    continue
                op_type = meta.display_name or meta.name.rsplit(":", 1)[1]
                events.append((event.offset_ps, event.offset_ps + event.duration_ps, op_type))
            events.sort(key=lambda e: (e[0], -e[1]))
            stack: list[list] = []  # [end, op_type, child time]
            for begin, end, op_type in events:
                while stack and stack[-1][0] <= begin:
                    _close(stack, totals)
                if stack:
                    stack[-1][2] += end - begin
                stack.append([end, op_type, 0, end - begin])
                counts[op_type] += 1
            while stack:
                _close(stack, totals)
    return sorted((OpRow(t, totals[t] / 1e12, counts[t]) for t in totals), key=lambda row: -row.seconds)


def _close(stack: list[list], totals: dict[str, float]) -> None:
    _, op_type, children, duration = stack.pop()
    totals[op_type] += max(0, duration - children)


def profile_training(model: str, precision: str, *, steps: int, smoke: bool = False, logdir: str | None = None):
    """Profile `steps` calls of our training step of `model` (a `benchmarks.train.WORKLOADS` key) under
    `precision`; returns (op rows, step calls profiled, images per step)."""
    import tensorflow as tf

    from benchmarks import train

    workload = (train.SMOKE_WORKLOADS if smoke else train.WORKLOADS)[model]
    _, run = train.ours(workload, precision)
    run(2)  # warm-up: oneDNN primitives, autotuning
    logdir = logdir or tempfile.mkdtemp(prefix="profile_step-")
    tf.profiler.experimental.start(logdir)
    try:
        run(steps)
    finally:
        tf.profiler.experimental.stop()
    paths = sorted(glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb")), key=os.path.getmtime)
    if not paths:
        raise RuntimeError(f"The profiler wrote no trace under {logdir}.")
    return op_times(paths[-1]), steps, workload.batch


def report(model: str, precision: str, rows: list[OpRow], steps: int, batch: int, top: int = 20) -> str:
    total = sum(row.seconds for row in rows) or 1.0
    by_category: dict[str, float] = collections.defaultdict(float)
    for row in rows:
        by_category[row.category] += row.seconds
    lines = [
        f"#### {model} b{batch}, {precision}: {1000 * total / steps:.0f} ms of op time per step (all threads)",
        "",
        common.markdown_table(
            ["category", "share", "ms per step"],
            [
                [name, f"{100 * seconds / total:.1f}%", common.fmt(1000 * seconds / steps)]
                for name, seconds in sorted(by_category.items(), key=lambda item: -item[1])
            ],
        ),
        "",
        common.markdown_table(
            ["op type", "category", "share", "ms per step", "calls per step"],
            [
                [
                    row.op_type,
                    row.category,
                    f"{100 * row.seconds / total:.1f}%",
                    common.fmt(1000 * row.seconds / steps),
                    common.fmt(row.count / steps),
                ]
                for row in rows[:top]
            ],
        ),
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_step", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="resnet20,resnet50", help="comma-separated: resnet20, resnet50, googlenet")
    parser.add_argument("--precisions", default="mixed_bfloat16", help="comma-separated: float32, mixed_bfloat16")
    parser.add_argument("--steps", type=int, default=3, help="training steps profiled (after 2 of warm-up)")
    parser.add_argument("--top", type=int, default=20, help="op types listed")
    parser.add_argument("--threads", type=int, default=None, help="threads for TensorFlow (default: all CPUs)")
    parser.add_argument("--smoke", action="store_true", help="tiny inputs, one step: checks that it runs")
    args = parser.parse_args(argv)
    from benchmarks import train

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    for model in models:
        if model not in train.WORKLOADS:
            parser.error(f"--models must be among {', '.join(train.WORKLOADS)}. Received: {model!r}")
    for precision in precisions:
        if precision not in train.PRECISIONS:
            parser.error(f"--precisions must be among {', '.join(train.PRECISIONS)}. Received: {precision!r}")
    if args.steps < 1 or args.top < 1:
        parser.error(f"--steps and --top must be positive. Received: --steps {args.steps} --top {args.top}")
    common.set_threads(args.threads)
    load_before = common.load_average()
    parts = []
    for model in models:
        for precision in precisions:
            rows, steps, batch = profile_training(
                model, precision, steps=1 if args.smoke else args.steps, smoke=args.smoke
            )
            parts.append(report(model, precision, rows, steps, batch, top=args.top))
    header = common.report_header("Training step, op by op (TensorFlow profiler)", rounds=1, load_before=load_before)
    print("\n\n".join([header, *parts]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
