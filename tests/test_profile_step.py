"""benchmarks/profile_step.py (the op table read back from a TensorFlow profiler trace) and the variants of our
training step that benchmarks/train.py times side by side (`--try`)."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from benchmarks import common, profile_step, train
from keras_convnets import trainer


def write_trace(path, threads: dict[str, list[tuple[str, str, int, int]]]) -> str:
    """An .xplane.pb with one host plane: per thread, events (name, display name, start ps, duration ps)."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    plane = space.planes.add(name="/host:CPU")
    ids: dict[tuple[str, str], int] = {}
    for thread, events in threads.items():
        line = plane.lines.add(name=thread)
        for name, display, start, duration in events:
            key = (name, display)
            if key not in ids:
                ids[key] = len(ids) + 1
                plane.event_metadata[ids[key]].id = ids[key]
                plane.event_metadata[ids[key]].name = name
                plane.event_metadata[ids[key]].display_name = display
            line.events.add(metadata_id=ids[key], offset_ps=start, duration_ps=duration)
    with open(path, "wb") as f:
        f.write(space.SerializeToString())
    return str(path)


def test_op_times_are_exclusive_and_skip_what_is_not_an_op(tmp_path):
    path = write_trace(
        tmp_path / "t.xplane.pb",
        {
            "tf_Compute/1": [
                ("call:StatefulPartitionedCall", "StatefulPartitionedCall", 0, 100),  # contains the next two
                ("conv/Conv2D:_MklNativeConv2D", "_MklNativeConv2D", 10, 50),
                ("relu:Relu", "Relu", 70, 20),
                ("ExecutorState::Process", "", 0, 500),  # the executor's, not an op
                ("conv_1/Conv2D:_MklNativeConv2D", "_MklNativeConv2D", 200, 30),
            ],
            "tf_Compute/2": [("grad/ReluGrad:ReluGrad", "ReluGrad", 5, 40)],
            "python": [("__inference_step:__inference_step", "__inference_step", 0, 1000)],  # the caller waiting
        },
    )
    rows = {row.op_type: (row.seconds * 1e12, row.count, row.category) for row in profile_step.op_times(path)}
    assert rows == {
        "_MklNativeConv2D": (80, 2, "convolution"),
        "ReluGrad": (40, 1, "element-wise"),
        "StatefulPartitionedCall": (30, 1, "other"),  # 100 less the 50 + 20 inside it
        "Relu": (20, 1, "element-wise"),
    }
    report = profile_step.report("net", "float32", profile_step.op_times(path), steps=2, batch=4, top=2)
    headers, categories = common.parse_markdown_table(report)
    assert headers == ["category", "share", "ms per step"]
    assert categories[0] == ["convolution", f"{100 * 80 / 170:.1f}%", common.fmt(80e-9 / 2)]


@pytest.mark.parametrize(
    "op_type, category",
    [
        ("_MklNativeConv2DBackpropFilter", "convolution (weight gradient)"),
        ("_MklNativeConv2DBackpropInput", "convolution (input gradient)"),
        ("_MklNativeFusedBatchNormGradV3", "batch norm"),
        ("_MklNativeFusedMatMul", "matmul"),
        ("AssignAddVariableOp", "variable read/write"),
        ("SparseSoftmaxCrossEntropyWithLogits", "loss"),
        ("Bitcast", "other"),
    ],
)
def test_categories(op_type, category):
    assert profile_step.category(op_type) == category


def test_profile_smoke():
    rows, steps, batch = profile_step.profile_training("resnet20", "mixed_bfloat16", steps=1, smoke=True)
    names = {row.op_type for row in rows}
    # oneDNN's kernels where TensorFlow enables it (CPUs with AVX512-VNNI/BF16 or AMX), Eigen's elsewhere
    onednn = {"_MklNativeConv2D", "_MklNativeConv2DBackpropFilter", "_MklNativeConv2DBackpropInput"}
    eigen = {"Conv2D", "Conv2DBackpropFilter", "Conv2DBackpropInput"}
    assert onednn <= names or eigen <= names, sorted(names)
    categories = {row.op_type: row.category for row in rows}
    gradients = [op for op in names if "Conv2DBackpropFilter" in op]
    assert gradients and all(categories[op] == "convolution (weight gradient)" for op in gradients)
    assert steps == 1 and batch == 4 and all(row.seconds >= 0 for row in rows)


def test_fused_sgd_variant_makes_the_same_update():
    """The variant's one kernel per variable and Keras's element-wise update give the same weights after 3 steps
    (measured: bit for bit on this CPU; the tolerance leaves room for a kernel that contracts to FMAs)."""
    import keras

    workload = train.Workload("resnet20", 16, 4, 10)
    models = []
    for variant in (None, "fused_sgd"):
        keras.utils.set_random_seed(0)
        model, run = train.ours(workload, "float32", variant=variant)  # one step while tracing
        run(2)
        models.append(model)
    keras_sgd, fused = models
    assert int(keras_sgd.optimizer.iterations.numpy()) == int(fused.optimizer.iterations.numpy()) == 3
    moved = max(float(np.max(np.abs(w.numpy()))) for w in fused.optimizer.variables if "momentum" in w.path)
    assert moved > 1e-4  # the momentum buffers were written by the fused kernel
    for a, b in zip(keras_sgd.weights, fused.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.path)


def test_conv_weight_gradient_variant_traces_the_convolution_gradient(monkeypatch):
    """The variant is our step with TensorFlow's `Conv2DBackpropFilter` for every 1x1 kernel, where ours (forced
    here, as "auto" does in bfloat16 on a CPU with AMX) computes it as a matmul: no 1x1 convolution of the variant
    is traced through the matmul gradient; the switch is back in place afterwards."""
    from keras_convnets.models import layers

    monkeypatch.setattr(layers.Conv2D, "matmul_weight_gradient", True)
    traced = []
    pointwise = layers._pointwise_conv
    monkeypatch.setattr(layers, "_pointwise_conv", lambda *args: traced.append(args[0].shape) or pointwise(*args))
    counts = {}
    for variant in (None, "conv_weight_gradient"):
        del traced[:]
        train.ours(train.Workload("resnet50", 32, 2, 10), "float32", variant=variant)
        counts[variant] = len(traced)
    assert layers.Conv2D.matmul_weight_gradient is True
    assert counts[None] and counts[None] % 36 == 0  # ResNet-50's 1x1 convolutions: 16 bottlenecks' two, 4 projections
    assert counts["conv_weight_gradient"] == 0


def test_variants_table_smoke():
    report = train.benchmark(
        models=("resnet20",), precisions=("float32",), smoke=True, use_torch=False, variants=("fused_sgd", "xla")
    )
    tables = [part for part in report.split("\n\n") if part.startswith("| model")]
    headers, rows = common.parse_markdown_table(tables[1])
    assert headers[:5] == ["model", "precision", "variant", "img/s", "variant / ours"]
    assert rows[0][:3] == ["resnet20 (32px)", "float32", "fused_sgd"]
    assert float(rows[0][3].replace(",", "")) > 0 and float(rows[0][4]) > 0 and rows[0][6] == "-"  # no torch
    assert rows[1][2] == "xla" and float(rows[1][3].replace(",", "")) > 0


def test_the_xla_variant_compiles_the_same_step_with_xla():
    model, _ = train.ours(train.SMOKE_WORKLOADS["resnet20"], "float32", variant="xla")
    assert model.jit_compile is True
    model, _ = train.ours(train.SMOKE_WORKLOADS["resnet20"], "float32")
    assert model.jit_compile is trainer.resolve_jit_compile("auto")  # ours: off on a CPU, on on a GPU


def test_unknown_variants_are_refused():
    allowed = "channels_first, conv_weight_gradient, fused_sgd, keras_bias_gradient, xla"
    with pytest.raises(ValueError, match=f"`variant` must be one of {allowed}"):
        train.benchmark(models=("resnet20",), smoke=True, use_torch=False, variants=("nchw",))


def test_the_channels_first_variant_runs_where_nchw_trains_and_says_why_not_elsewhere():
    run = functools.partial(
        train.benchmark,
        models=("resnet20",),
        precisions=("float32",),
        smoke=True,
        use_torch=False,
        variants=("channels_first",),
    )
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        assert train.channels_first_trains()  # cuDNN trains NCHW
    if train.channels_first_trains():
        tables = [part for part in run().split("\n\n") if part.startswith("| model")]
        _, rows = common.parse_markdown_table(tables[1])
        assert rows[0][2] == "channels_first" and float(rows[0][3].replace(",", "")) > 0
    else:  # TensorFlow's CPU kernels without oneDNN (CPUs without AVX512-VNNI/BF16 or AMX) train NHWC only
        with pytest.raises(ValueError, match="supports NHWC alone. Received: variant='channels_first'"):
            run()
