"""The benchmarks in smoke mode (one tiny step each, the table well-formed), the torch reference networks, and
the speed-motivated layers (fused batch norm, the pooled option-A shortcut) against Keras's own arithmetic.

Nothing here is timed: speed is judged from benchmarks/RESULTS.md.
"""

from __future__ import annotations

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from benchmarks import common
from keras_convnets.models import layers as convnet_layers
from keras_convnets.models.layers import Conv2D, Dense, FusedBatchNormalization, IdentityShortcut
from keras_convnets.utils.backend import cpu_flags, onednn_enabled

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# TensorFlow's oneDNN kernels for bfloat16 (it sends bfloat16 to Eigen on CPUs without AVX512F or AVX_NE_CONVERT);
# without them (Eigen) its bfloat16 sums are coarser: a truncating matmul was up to 0.73% off, the tests allow 2^-6
ONEDNN = onednn_enabled() and bool({"avx512f", "avx_ne_convert"} & cpu_flags())
UNITS = 64


def numeric(cell: str) -> float:
    return float(cell.replace(",", ""))


# ------------------------------------------------------------------------------------------ helpers


def test_markdown_table_round_trip():
    text = common.markdown_table(["a", "b"], [[1, "x"], ["2.5", "-"]])
    assert text.splitlines()[:2] == ["| a | b |", "|---|---|"]
    headers, rows = common.parse_markdown_table("intro\n\n" + text + "\n\nnotes")
    assert headers == ["a", "b"]
    assert rows == [["1", "x"], ["2.5", "-"]]
    with pytest.raises(ValueError, match="3 cells for 2 headers"):
        common.markdown_table(["a", "b"], [[1, 2, 3]])


def test_fmt():
    assert common.fmt(None) == "-"
    assert common.fmt(float("nan")) == "-"
    assert common.fmt(1234.56) == "1,235"
    assert common.fmt(0.12345, 2) == "0.12"
    assert common.fmt(12.345) == "12.3"


def test_measure_interleaves_and_rejects_zero_rounds():
    calls = []
    configs = [
        common.Config(name, lambda steps, n=name: calls.append((n, steps)), items=10, steps=2) for name in ("a", "b")
    ]
    timings = common.measure(configs, rounds=2)
    assert calls == [("a", 1), ("b", 1), ("a", 2), ("b", 2), ("a", 2), ("b", 2)]
    assert len(timings["a"].rates) == 2 and all(rate > 0 for rate in timings["a"].rates)
    with pytest.raises(ValueError, match="rounds"):
        common.measure(configs, rounds=0)


# ------------------------------------------------------------------------------- torch references


def test_torch_networks_match_keras_parameter_counts():
    torch_models = pytest.importorskip("benchmarks.torch_models")
    import keras_convnets

    keras_count = sum(int(np.prod(w.shape)) for w in keras_convnets.get_model("resnet20").trainable_weights)
    assert keras_count == torch_models.trainable_params(torch_models.resnet20()) == 269_722
    assert torch_models.trainable_params(torch_models.resnet50()) == 25_557_032
    # GoogLeNet with batch norm and both aux heads, as keras_convnets.GoogLeNet() builds it
    assert torch_models.trainable_params(torch_models.googlenet()) == 13_385_816
    assert torch_models.aux_grid(224) == 4


def test_torch_train_step_runs():
    torch_models = pytest.importorskip("benchmarks.torch_models")
    step = torch_models.TrainStep("googlenet", batch=2, size=79, classes=5, bfloat16=True)
    loss = step(1)
    assert np.isfinite(loss) and loss > 0


# ------------------------------------------------------------------------------------ smoke runs


@pytest.mark.xdist_group("benchmarks")
def test_train_benchmark_smoke():
    from benchmarks import train

    report = train.benchmark(models=("resnet20",), smoke=True)
    headers, rows = common.parse_markdown_table(report)
    assert headers[:6] == ["model", "batch", "precision", "ours img/s", "keras.applications img/s", "torch img/s"]
    assert [row[2] for row in rows] == ["float32", "bfloat16"]
    for row in rows:
        assert row[0] == "resnet20 (32px)" and row[1] == "4"
        assert numeric(row[3]) > 0
        assert row[4] == "-"  # keras.applications only for ResNet-50
        if common.optional_torch() is not None:
            assert numeric(row[5]) > 0 and numeric(row[7]) > 0
    assert "Training throughput" in report and "load average" in report


def test_keras_bias_gradient_variant_restores_the_float32_sum():
    """`--try keras_bias_gradient` is our step with TensorFlow's bfloat16 bias sum: inside it no layer takes the
    float32 sum, and the traced gradient holds TensorFlow's `BiasAddGrad`; after it, the float32 sum is back."""
    from benchmarks import train

    layer = Conv2D(3, 3, dtype="mixed_bfloat16")
    layer.build((None, 8, 8, 2))

    def bias_gradient_ops():
        step = tf.function(lambda x: tf.gradients(tf.reduce_sum(layer(x, training=True)), [layer.kernel, layer.bias]))
        return _op_types(step, tf.TensorSpec((1, 8, 8, 2)))

    assert convnet_layers._sums_bias_in_float32(layer, True) and "BiasAddGrad" not in bias_gradient_ops()
    with train._variant("keras_bias_gradient"):
        assert not convnet_layers._sums_bias_in_float32(layer, True) and "BiasAddGrad" in bias_gradient_ops()
    assert convnet_layers._sums_bias_in_float32(layer, True) and "BiasAddGrad" not in bias_gradient_ops()
    layer = Conv2D(3, 1, dtype="mixed_bfloat16")  # beside the 1x1 matmul kernel gradient, the bias too
    layer.matmul_weight_gradient = True
    layer.build((None, 8, 8, 2))
    assert "BiasAddGrad" not in bias_gradient_ops()
    with train._variant("keras_bias_gradient"):
        assert "BiasAddGrad" in bias_gradient_ops() and "MatMul" in bias_gradient_ops()
    assert "BiasAddGrad" not in bias_gradient_ops()


def test_training_flops_is_three_forward_passes():
    import keras_convnets
    from benchmarks import train

    model = keras_convnets.get_model("resnet20")
    assert train.training_flops(model) == 6 * 40_551_040  # 3 x forward MACs x 2 FLOPs


@pytest.mark.xdist_group("benchmarks")
def test_infer_benchmark_smoke():
    from benchmarks import infer

    report = infer.benchmark("resnet20", formats=("keras", "saved_model", "tflite_dynamic"), smoke=True)
    headers, rows = common.parse_markdown_table(report)
    assert headers == ["form", "batch-1 latency ms", "batch-2 img/s", "vs Keras float32 (batch)", "file MB"]
    assert [row[0] for row in rows] == ["keras", "saved_model", "tflite_dynamic"]
    assert all(numeric(row[1]) > 0 and numeric(row[2]) > 0 for row in rows)
    assert rows[0][3] == "1" and numeric(rows[2][4]) > 0


@pytest.mark.xdist_group("benchmarks")
def test_data_benchmark_smoke():
    from benchmarks import data

    report = data.benchmark(("cifar",), smoke=True, precision="float32")
    headers, rows = common.parse_markdown_table(report)
    assert headers[0] == "recipe" and len(rows) == 1
    assert rows[0][:2] == ["cifar", "crop_flip"]
    assert numeric(rows[0][4]) > 0 and numeric(rows[0][5]) > 0 and rows[0][7].endswith("%")


@pytest.mark.xdist_group("benchmarks")
def test_bias_gradient_benchmark(capsys):
    """Our layers' bias gradient of 1,024 ones is 1,024 (Keras's stalls at 256 with this TensorFlow, not asserted:
    that is TensorFlow's), and of normal gradients (mean 0 and mean 1) within one bfloat16 rounding (2^-8 of the
    largest entry)."""
    from benchmarks import bias_gradient

    headers, rows = common.parse_markdown_table(bias_gradient.benchmark((4, 1024)).split("\n\n", 2)[2])
    assert headers[:4] == ["layer", "entries summed", "ones: Keras", "ones: ours"]
    assert [row[:2] for row in rows] == [
        [name, size] for name in ("Conv2D 1x1", "Conv2D 3x3", "Dense") for size in ("4", "1,024")
    ]
    assert [row[3] for row in rows] == [row[1] for row in rows]
    assert all(float(row[column].rstrip("%")) / 100 < 2**-8 for row in rows for column in (5, 7))
    for bad in ("4,x", "0", "", str(2**21)):
        assert bias_gradient.main(["--sizes", bad]) == 2
        assert f"Received: --sizes={bad}\n" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"Received: sizes=\(True,\)"):
        bias_gradient.benchmark((True,))
    headers, rows = common.parse_markdown_table(bias_gradient.timing(smoke=True).split("\n\n", 2)[2])
    assert headers[1:4] == ["BiasAddGrad GB/s", "cast and sum GB/s", "matmul GB/s"] and len(rows) == 1
    assert all(numeric(cell) > 0 for cell in rows[0][1:4])
    cast_error, matmul_error = (float(cell.rstrip("%")) / 100 for cell in rows[0][7:9])
    assert cast_error < 2**-8 and matmul_error < (2**-8 if ONEDNN else 2**-6)  # Eigen's matmul truncates
    assert bias_gradient.main(["--timing", "--rounds", "0"]) == 2
    assert "Received: --rounds=0" in capsys.readouterr().err
    assert bias_gradient.main(["--smoke"]) == 2 and "applies to `--timing` only" in capsys.readouterr().err
    assert bias_gradient.main(["--timing", "--sizes=4"]) == 2 and "Received: --sizes=4" in capsys.readouterr().err


@pytest.mark.xdist_group("benchmarks")
def test_conv_gradient_benchmark_smoke(capsys):
    from benchmarks import conv_gradient

    report = conv_gradient.benchmark(smoke=True)
    headers, rows = common.parse_markdown_table(report.split("\n\n", 2)[2])
    assert headers[2:8] == [
        "stride",
        "precision",
        "conv GFLOP/s",
        "matmul GFLOP/s",
        "matmul / conv",
        "largest difference",
    ]
    assert [row[2:4] for row in rows] == [["1", "bfloat16"], ["2", "bfloat16"], ["1", "float32"], ["2", "float32"]]
    assert all(numeric(row[4]) > 0 and numeric(row[5]) > 0 for row in rows)
    assert all(float(row[7]) < 2**-7 for row in rows[:2])  # bfloat16: within a rounding of the result
    assert all(float(row[7]) < 1e-5 for row in rows[2:])  # float32: the same gradient, summed in another order
    assert conv_gradient.main(["--precisions", "float16", "--smoke"]) == 2
    assert "Received: precisions=('float16',)" in capsys.readouterr().err


@pytest.mark.xdist_group("benchmarks")
def test_isolated_benchmark_smoke(capsys):
    pytest.importorskip("torch")
    from benchmarks import isolated

    report = isolated.benchmark("resnet20", "float32", smoke=True)
    headers, rows = common.parse_markdown_table(report.split("\n\n", 2)[2])
    assert headers[:5] == ["model", "precision", "ours img/s", "torch img/s", "ours / torch"]
    assert rows[0][:2] == ["resnet20", "float32"] and numeric(rows[0][2]) > 0 and numeric(rows[0][3]) > 0
    assert isolated.main(["--model", "vgg99"]) == 2 and "Received: model='vgg99'" in capsys.readouterr().err
    assert isolated.main(["--model", "vgg16"]) == 2 and "PyTorch twin" in capsys.readouterr().err
    assert (
        isolated.main(["--rounds", "0"]) == 2 and "--rounds must be at least 1. Received: 0" in capsys.readouterr().err
    )


def test_benchmark_arguments_are_checked(capsys):
    from benchmarks import data, infer, train

    with pytest.raises(SystemExit):
        train.main(["--models", "vgg99"])
    with pytest.raises(ValueError, match="formats"):
        infer.benchmark("resnet20", formats=("onnx",), smoke=True)
    with pytest.raises(ValueError, match="cases"):
        data.benchmark(("mnist",), smoke=True)
    with pytest.raises(SystemExit):
        data.main(["--jpeg", "--images", "0"])
    assert "--images must be at least 4 (one per TFRecord shard). Received: 0" in capsys.readouterr().err


@pytest.mark.slow
def test_gpu_check_script_smoke():
    result = subprocess.run(
        ["bash", os.path.join(REPO, "benchmarks", "gpu_check.sh")],
        env={**os.environ, "GPU_CHECK_SMOKE": "1"},
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    machine, results = result.stdout.split("\n\n| model |", 1)
    headers, rows = common.parse_markdown_table(machine)
    assert headers[:3] == ["device", "GPUs", "driver"] and rows[0][0].startswith("no GPU")  # no GPU here
    headers, rows = common.parse_markdown_table("| model |" + results)
    assert headers[-3:] == ["train img/s", "XLA on / off", "note"]
    assert [(row[0], row[4], row[5], row[6], row[7]) for row in rows] == [
        ("resnet20", "MirroredStrategy", "2", "off", "1"),  # over 2 logical CPU devices
        ("resnet20", "MirroredStrategy", "2", "on", "1"),
        ("resnet20", "one device", "1", "off", "1"),
        ("resnet20", "one device", "1", "on", "1"),
        ("resnet20", "one device", "1", "off", "4"),
    ]
    assert all(numeric(row[8]) > 0 for i, row in enumerate(rows) if i != 1)
    # XLA cannot reach the second replica's variables on CPUs: the failure the trainer falls back from
    assert rows[1][8] == "-" and "XLA failure" in rows[1][10] and "Trying to access resource" in rows[1][10]
    assert numeric(rows[3][9]) > 0  # XLA on / off where XLA compiles


# ------------------------------------------------------------------------- layers made for speed


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("axis", [-1, 1])
def test_fused_batch_norm_matches_keras(policy, axis):
    shape = (6, 5, 4, 3) if axis == -1 else (6, 3, 5, 4)
    x = tf.constant((np.random.RandomState(0).randn(*shape) * 3 + 2).astype("float32"))
    weights = tf.reshape(tf.cast(tf.range(np.prod(shape)) % 11, "float32"), shape)
    results = []
    for cls in (keras.layers.BatchNormalization, FusedBatchNormalization):
        layer = cls(axis=axis, momentum=0.9, epsilon=1e-5, dtype=policy)
        layer.build(shape)
        layer.gamma.assign(np.linspace(0.5, 1.5, 3).astype("float32"))
        layer.beta.assign(np.linspace(-1, 1, 3).astype("float32"))
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            total = tf.reduce_sum(tf.cast(y, "float32") * weights)
        grads = tape.gradient(total, [x, layer.gamma, layer.beta])
        inference = layer(x, training=False)
        results.append(
            [tf.cast(v, "float32").numpy() for v in (y, *grads, layer.moving_mean, layer.moving_variance, inference)]
        )
    tolerance = 1e-5 if policy == "float32" else 2e-2
    for reference, fused in zip(*results):
        np.testing.assert_allclose(fused, reference, rtol=tolerance, atol=tolerance * np.abs(reference).max())


def test_fused_batch_norm_falls_back_where_the_kernel_cannot_run():
    layer = FusedBatchNormalization(axis=-1)
    x = tf.constant(np.random.RandomState(1).randn(4, 6).astype("float32"))  # 2-D: Keras's own code
    reference = keras.layers.BatchNormalization(axis=-1)
    np.testing.assert_allclose(layer(x, training=True), reference(x, training=True), atol=1e-6)
    assert layer._fused_format(tf.zeros((2, 3, 3, 4)), None) == "NHWC"
    assert layer._fused_format(tf.zeros((2, 3, 3, 4)), tf.ones((2, 3, 3))) is None
    layer.synchronized = True
    assert layer._fused_format(tf.zeros((2, 3, 3, 4)), None) is None


def test_resnet_with_fused_batch_norm_loads_in_safe_mode(tmp_path):
    import keras_convnets

    model = keras_convnets.get_model("resnet20", input_shape=(16, 16, 3), classes=3)
    assert isinstance(model.get_layer("conv1_bn"), FusedBatchNormalization)
    assert isinstance(model.get_layer("conv1_conv"), Conv2D)
    vgg = keras_convnets.get_model("vgg11", input_shape=(32, 32, 3), classes=3, fc_units=32)
    assert type(vgg.get_layer("block1_conv1")) is Conv2D and type(vgg.get_layer("fc2")) is Dense
    googlenet = keras_convnets.get_model("googlenet", input_shape=(224, 224, 3), classes=3, reduction_scale=0.25)
    assert type(googlenet.get_layer("aux1_fc1")) is Dense and type(googlenet.get_layer("aux2_fc1")) is Dense
    x = np.random.RandomState(2).rand(2, 16, 16, 3).astype("float32") * 255
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(x, np.array([0, 2]), epochs=1, verbose=0)  # moving statistics move off their initial values
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert type(loaded.get_layer("conv1_conv")) is Conv2D


def _conv_step(layer, x, weights):
    """The layer's output, input gradient and kernel and bias gradients in one training call, traced as `fit` does,
    and the op types of the traced graph."""

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            total = tf.reduce_sum(tf.cast(y, "float32") * weights)
        return (y, *tape.gradient(total, [x, layer.kernel, layer.bias]))

    return [tf.cast(t, "float64").numpy() for t in step(x)], _op_types(step, x)


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize(
    "strides, padding, size",
    [(1, "same", (7, 7)), (2, "same", (7, 5)), (2, "valid", (8, 8)), (3, "same", (10, 10)), ((2, 1), "same", (7, 5))],
)
def test_pointwise_matmul_weight_gradient_matches_the_convolution_gradient(monkeypatch, policy, strides, padding, size):
    monkeypatch.setattr(convnet_layers, "_sums_bias_by_matmul", lambda: False)  # one MatMul: the kernel's (bias below)
    rows, cols = (strides, strides) if isinstance(strides, int) else strides
    rng = np.random.RandomState(4)
    x = tf.constant(rng.randn(3, *size, 5).astype("float32"))
    kernel, bias = rng.randn(1, 1, 5, 6).astype("float32"), rng.randn(6).astype("float32")
    weights = tf.constant(rng.randn(3, -(-size[0] // rows), -(-size[1] // cols), 6).astype("float32"))
    results, graphs = {}, {}
    for mode in (False, True):
        monkeypatch.setattr(Conv2D, "matmul_weight_gradient", mode)
        layer = Conv2D(6, 1, strides=strides, padding=padding, dtype=policy)
        layer.build((None, *size, 5))
        layer.set_weights([kernel, bias])
        results[mode], graphs[mode] = _conv_step(layer, x, weights)
    assert graphs[False].count("Conv2DBackpropFilter") == 1 and "MatMul" not in graphs[False]
    assert "Conv2DBackpropFilter" not in graphs[True] and graphs[True].count("MatMul") == 1  # the matmul path ran
    (y0, dx0, dw0, db0), (y1, dx1, dw1, db1) = results[False], results[True]
    np.testing.assert_array_equal(y1, y0)  # the forward pass and the input gradient are TensorFlow's own
    np.testing.assert_array_equal(dx1, dx0)
    # float64 references from the values as the layer computes with them (bfloat16 under the mixed policy)
    low = policy == "mixed_bfloat16"
    rounded = (lambda a: tf.cast(tf.cast(a, "bfloat16"), "float64").numpy()) if low else (lambda a: np.float64(a))
    tolerance = 2**-8 if low else 1e-6  # one rounding of a bfloat16 result; float32 sums in another order
    dy = rounded(weights)  # the output gradient
    # the kernel gradient: the inputs at the strided pixels times the output gradient, over batch and pixels
    reference = np.einsum("nhwc,nhwo->co", rounded(x)[:, ::rows, ::cols, :], dy)[None, None]
    forced = 2**-6 if low and not ONEDNN else tolerance  # the matmul forced onto Eigen's, which truncates
    assert np.abs(dw1 - reference).max() <= forced * np.abs(reference).max()
    if ONEDNN or not low:  # TensorFlow's own bfloat16 kernel gradient on Eigen accumulates in bfloat16
        assert np.abs(dw0 - reference).max() <= tolerance * np.abs(reference).max()
    # the bias gradient, summed in float32 and rounded once
    bias_reference = dy.sum(axis=(0, 1, 2))
    assert np.abs(db1 - bias_reference).max() <= tolerance * np.abs(bias_reference).max()
    if not low:
        np.testing.assert_allclose(db1, db0, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("matmul", [False, True])
@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("kernel_size", [1, 3])
@pytest.mark.parametrize("bias_by_matmul", [False, True])
def test_bias_gradient_sums_in_float32(monkeypatch, policy, matmul, kernel_size, bias_by_matmul):
    """4,096 ones sum to 4,096, exact in bfloat16 (TensorFlow's `BiasAddGrad`, summing bfloat16 in bfloat16, stalls at
    256). On random inputs and output gradients, the output and the input gradient are Keras's layer's bit for bit (and
    the kernel gradient too, where no matmul computes it), and the bias gradient is within one bfloat16 rounding of
    the float64 sum. Both float32 sums: the cast and sum, and the bfloat16 matmul with a row of ones (a CPU with AMX;
    forced here, so on a CPU without oneDNN it runs Eigen's matmul, whose sum was up to 0.73% off)."""
    monkeypatch.setattr(Conv2D, "matmul_weight_gradient", matmul)
    monkeypatch.setattr(convnet_layers, "_sums_bias_by_matmul", lambda: bias_by_matmul)
    layer = Conv2D(3, kernel_size, padding="same", dtype=policy)
    layer.build((None, 64, 64, 2))
    reference = keras.layers.Conv2D(3, kernel_size, padding="same", dtype=policy)
    reference.build((None, 64, 64, 2))
    reference.set_weights(layer.get_weights())
    x = tf.ones((1, 64, 64, 2))
    (y, _, dw, db), graph = _conv_step(layer, x, tf.ones((1, 64, 64, 3)))
    np.testing.assert_array_equal(y, tf.cast(reference(x, training=True), "float64").numpy())
    low = policy == "mixed_bfloat16"
    kernel_matmuls = int(matmul and kernel_size == 1)
    assert graph.count("MatMul") == kernel_matmuls + int(bias_by_matmul and low)  # the ones matmul: bfloat16 only
    assert graph.count("BiasAddGrad") == int(not low and not kernel_matmuls)  # float32 without the matmul: Keras's
    np.testing.assert_array_equal(db, [4096.0] * 3)
    if kernel_size == 1 and (matmul or ONEDNN):  # TensorFlow's own kernel gradient on Eigen sums 4,096 ones to 1,024
        np.testing.assert_array_equal(dw, np.full((1, 1, 2, 3), 4096.0))
    x = tf.random.stateless_uniform((2, 16, 16, 2), seed=[5, 6], minval=-1.0, maxval=1.0)
    weights = tf.random.stateless_normal((2, 16, 16, 3), seed=[7, 8])
    (y, dx, dw, db), _ = _conv_step(layer, x, weights)
    (y_ref, dx_ref, dw_ref, _), _ = _conv_step(reference, x, weights)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(dx, dx_ref)
    if not (matmul and kernel_size == 1):
        np.testing.assert_array_equal(dw, dw_ref)
    dy = tf.cast(tf.cast(weights, reference.compute_dtype), "float64").numpy()
    exact = dy.sum(axis=(0, 1, 2))
    tolerance = (2**-6 if bias_by_matmul and not ONEDNN else 2**-8) if low else 1e-6  # Eigen's matmul truncates
    assert np.abs(db - exact).max() <= tolerance * np.abs(exact).max()
    assert convnet_layers._sums_bias_in_float32(layer, True) == (policy == "mixed_bfloat16")
    assert not convnet_layers._sums_bias_in_float32(layer, False)
    assert not convnet_layers._sums_bias_in_float32(layer, None)
    assert not convnet_layers._sums_bias_in_float32(layer, tf.constant(True))  # symbolic: Keras's path


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("shape", [(1024, 2), (4, 256, 2)])
@pytest.mark.parametrize("bias_by_matmul", [False, True])
def test_dense_bias_gradient_sums_in_float32(monkeypatch, policy, shape, bias_by_matmul):
    """A bias gradient over 1,024 rows of ones is 1,024, exact in bfloat16 (TensorFlow's bfloat16 `BiasAddGrad`,
    which Keras's `Dense` gets, stalls at 256), for 2-D and 3-D inputs, with either float32 sum. On random inputs and
    output gradients (and a ReLU), the output, the input gradient and the kernel gradient are Keras's layer's, bit
    for bit, and each of 64 channels' bias gradient is within one bfloat16 rounding of its own float64 sum (a
    truncating sum, off by up to twice that, fails it in about half the channels)."""
    monkeypatch.setattr(convnet_layers, "_sums_bias_by_matmul", lambda: bias_by_matmul)
    layer = Dense(UNITS, activation="relu", dtype=policy)
    reference = keras.layers.Dense(UNITS, activation="relu", dtype=policy)
    for each in (layer, reference):
        each.build((None, *shape[1:]))
        each.set_weights([np.abs(w) for w in layer.get_weights()])  # positive: ones reach every output past the ReLU

    @tf.function
    def step(dense, x, weights):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = dense(x, training=True)
            total = tf.reduce_sum(tf.cast(y, "float32") * weights)
        return [tf.cast(t, "float64") for t in (y, *tape.gradient(total, [x, dense.kernel, dense.bias]))]

    out_shape = (*shape[:-1], UNITS)
    *_, db = step(layer, tf.ones(shape), tf.ones(out_shape))
    np.testing.assert_array_equal(db, [1024.0] * UNITS)
    x = tf.random.stateless_uniform(shape, seed=[1, 2], minval=-1.0, maxval=1.0)
    weights = tf.random.stateless_normal(out_shape, seed=[3, 4])
    (y, dx, dw, _), (y_ref, dx_ref, dw_ref, _) = step(layer, x, weights), step(reference, x, weights)
    for ours, keras_own in ((y, y_ref), (dx, dx_ref), (dw, dw_ref)):
        np.testing.assert_array_equal(ours, keras_own)
    # the bias gradient alone (positive inputs: the ReLU passes every output), gradients with a mean of 1
    weights = tf.random.stateless_normal(out_shape, seed=[5, 6]) + 1
    *_, db = step(layer, tf.abs(x), weights)
    exact = tf.cast(tf.cast(weights, layer.compute_dtype), "float64").numpy().reshape(-1, UNITS).sum(axis=0)
    low = policy == "mixed_bfloat16"
    tolerance = (2**-6 if bias_by_matmul and not ONEDNN else 2**-8 * 1.01) if low else 1e-5  # Eigen's truncates
    assert (np.abs(db - exact) <= tolerance * np.abs(exact)).all()
    assert convnet_layers._sums_bias_in_float32(layer, True) == (policy == "mixed_bfloat16")
    assert not convnet_layers._sums_bias_in_float32(layer, False)
    unbiased = Dense(3, use_bias=False, dtype=policy)
    unbiased.build((None, 2))
    assert not convnet_layers._sums_bias_in_float32(unbiased, True)


def test_fit_sums_bias_gradients_in_float32_and_predict_does_not(monkeypatch):
    """`fit` calls the layers with training=True, so a mixed_bfloat16 model's biased Conv2D and Dense take the
    float32 bias sum there; building the model and `predict` keep Keras's path."""
    calls = []
    add_bias = convnet_layers._add_bias
    monkeypatch.setattr(convnet_layers, "_add_bias", lambda *args: calls.append(args[2]) or add_bias(*args))
    inputs = keras.Input((8, 8, 2))
    x = Conv2D(4, 3, data_format="channels_last", dtype="mixed_bfloat16")(inputs)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, Dense(3, dtype="mixed_bfloat16")(x))
    data = np.random.RandomState(0).rand(8, 8, 8, 2).astype("float32"), np.zeros((8, 3), "float32")
    model.predict(data[0], verbose=0)
    assert calls == []
    model.compile(optimizer="sgd", loss="mse")
    model.fit(*data, batch_size=4, epochs=1, verbose=0)
    assert calls and len(calls) % 2 == 0  # both layers, in each trace of the training step


def test_dense_quantizes_as_keras_dense(tmp_path):
    """Keras's `Dense.quantize` refuses subclasses by default: ours opts in, so `model.quantize("int8")` quantizes
    VGG's fc1 and fc2 (most of its weights), and the quantized model saves and loads in safe mode."""
    import keras_convnets

    model = keras_convnets.get_model("vgg11", input_shape=(32, 32, 3), classes=3, fc_units=32)
    x = np.random.RandomState(1).rand(2, 32, 32, 3).astype("float32") * 255
    model.quantize("int8")
    assert [model.get_layer(name).quantization_mode for name in ("fc1", "fc2", "predictions")] == ["int8"] * 3
    path = str(tmp_path / "q.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded.get_layer("fc1")) is Dense and loaded.get_layer("fc1").quantization_mode == "int8"
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))

    class Wider(Dense):  # a subclass that could add weights: refused, as Keras refuses subclasses of its Dense
        pass

    wider = Wider(3)
    wider.build((None, 4))
    with pytest.raises(NotImplementedError):
        wider.quantize("int8")
    wider.quantize("int8", type_check=False)
    assert wider.quantization_mode == "int8"


def test_pointwise_matmul_weight_gradient_is_chosen_only_where_it_was_measured_faster(monkeypatch):
    def uses(training=True, policy="mixed_bfloat16", **kwargs):
        layer = Conv2D(4, kwargs.pop("kernel_size", 1), dtype=policy, **kwargs)
        layer.build((None, 8, 8, 3) if kwargs.get("data_format") != "channels_first" else (None, 3, 8, 8))
        return layer._uses_matmul_gradient(training)

    monkeypatch.setattr(convnet_layers, "_matmul_weight_gradient_pays", lambda: True)  # a CPU with AMX, no GPU
    assert uses()
    assert not uses(policy="float32")  # measured at parity in float32
    assert not uses(training=False) and not uses(training=None)  # inference and export graphs stay Keras's
    assert not uses(kernel_size=3) and not uses(dilation_rate=2) and not uses(data_format="channels_first")
    assert not uses(strides=2)  # the slice at the strided pixels costs more than the matmul saves
    monkeypatch.setattr(convnet_layers, "_matmul_weight_gradient_pays", lambda: False)  # no AMX, or a GPU
    assert not uses()
    monkeypatch.setattr(Conv2D, "matmul_weight_gradient", True)
    assert uses() and uses(policy="float32") and uses(strides=2) and not uses(kernel_size=3)
    monkeypatch.setattr(Conv2D, "matmul_weight_gradient", False)
    monkeypatch.setattr(convnet_layers, "_matmul_weight_gradient_pays", lambda: True)
    assert not uses()
    layer = Conv2D(4, 1, dtype="mixed_bfloat16")
    layer.matmul_weight_gradient = "auto"  # one layer's own setting
    assert layer._uses_matmul_gradient(True)
    for wrong in ("true", 1, 0, None):
        layer.matmul_weight_gradient = wrong
        with pytest.raises(ValueError, match=f"'auto', True or False. Received: matmul_weight_gradient={wrong!r}"):
            layer._uses_matmul_gradient(True)


def test_the_matmul_weight_gradient_pays_on_amx_without_a_gpu(monkeypatch):
    pays = convnet_layers._matmul_weight_gradient_pays.__wrapped__  # uncached
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    monkeypatch.setattr(convnet_layers, "cpu_flags", lambda: {"avx512f", "avx512_bf16", "amx_bf16"})
    assert pays()
    monkeypatch.setattr(convnet_layers, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})  # AVX512-BF16, no AMX
    assert not pays()
    monkeypatch.setattr(convnet_layers, "cpu_flags", lambda: {"amx_bf16"})
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"] if kind == "GPU" else [])
    assert not pays()


def test_the_bias_is_summed_by_matmul_only_with_onednn(monkeypatch):
    """The ones matmul needs oneDNN's float32 accumulation: with Eigen's kernels (TF_ENABLE_ONEDNN_OPTS=0) the bias is
    cast and summed, while the 1x1 kernel-gradient matmul stays (Eigen's `Conv2DBackpropFilter` is worse)."""
    monkeypatch.setattr(convnet_layers, "_matmul_weight_gradient_pays", lambda: True)
    monkeypatch.setattr(convnet_layers, "onednn_enabled", lambda: True)
    assert convnet_layers._sums_bias_by_matmul()
    monkeypatch.setattr(convnet_layers, "onednn_enabled", lambda: False)
    assert not convnet_layers._sums_bias_by_matmul()
    monkeypatch.setattr(convnet_layers, "onednn_enabled", lambda: True)
    monkeypatch.setattr(convnet_layers, "_matmul_weight_gradient_pays", lambda: False)  # no AMX, or a GPU
    assert not convnet_layers._sums_bias_by_matmul()


@pytest.mark.parametrize("value, expected", [("0", False), ("1", True)])
def test_onednn_enabled_follows_tensorflows_switch(value, expected):
    code = "from keras_convnets.utils.backend import onednn_enabled; print(onednn_enabled())"
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": value, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == str(expected)


def _op_types(function, *args) -> list[str]:
    """The op types of `function` traced on `args`, nested functions (`tf.GradientTape`'s, `tf.custom_gradient`'s)
    included."""
    graph = function.get_concrete_function(*args).graph.as_graph_def()
    return [node.op for node in graph.node] + [node.op for f in graph.library.function for node in f.node_def]


def test_bottleneck_resnet_trains_the_same_with_the_matmul_weight_gradient(monkeypatch):
    import keras_convnets

    x = np.random.RandomState(5).rand(4, 16, 16, 3).astype("float32") * 255
    y = np.array([0, 1, 2, 1])
    after, graphs = {}, {}
    for mode in (False, True):
        monkeypatch.setattr(Conv2D, "matmul_weight_gradient", mode)
        keras.utils.set_random_seed(0)
        model = keras_convnets.CifarResNet(11, block="bottleneck", input_shape=(16, 16, 3), classes=3)
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="sparse_categorical_crossentropy")
        model.fit(x, y, batch_size=4, epochs=2, verbose=0, shuffle=False)  # two optimizer steps
        after[mode] = [w.numpy() for w in model.trainable_weights]

        def gradients(images, labels, model=model):
            with tf.GradientTape() as tape:
                loss = keras.losses.sparse_categorical_crossentropy(labels, model(images, training=True))
            return tape.gradient(loss, model.trainable_weights)

        inference = tf.function(lambda images, model=model: model(images, training=False))
        graphs[mode] = (_op_types(tf.function(gradients), x, y), _op_types(inference, tf.constant(x)))
    pointwise = [layer for layer in model.layers if isinstance(layer, Conv2D) and layer.kernel_size == (1, 1)]
    assert len(pointwise) == 9  # three bottlenecks of two 1x1 convolutions, and each stage's projection shortcut
    for before, now in zip(after[False], after[True]):
        np.testing.assert_allclose(now, before, rtol=1e-5, atol=1e-6)
    (train_conv, infer_conv), (train_matmul, infer_matmul) = graphs[False], graphs[True]
    convs = sum(isinstance(layer, Conv2D) for layer in model.layers)
    assert train_conv.count("Conv2DBackpropFilter") == convs
    assert train_matmul.count("Conv2DBackpropFilter") == convs - len(pointwise)
    assert train_matmul.count("MatMul") == train_conv.count("MatMul") + len(pointwise)
    assert infer_matmul == infer_conv and "IdentityN" not in infer_matmul  # inference graphs untouched


@pytest.mark.parametrize("size", [8, 7])
def test_identity_shortcut_pooling_equals_strided_slice(size):
    x = tf.constant(np.random.RandomState(3).randn(2, size, size, 4).astype("float32"))
    layer = IdentityShortcut(8, 2)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        total = tf.reduce_sum(y * tf.reshape(tf.range(tf.size(y), dtype="float32"), y.shape))
    expected = np.pad(x.numpy()[:, ::2, ::2, :], [(0, 0), (0, 0), (0, 0), (0, 4)])
    np.testing.assert_array_equal(y.numpy(), expected)
    grad = tape.gradient(total, x).numpy()
    assert np.count_nonzero(grad[:, 1::2]) == 0 and np.count_nonzero(grad[:, :, 1::2]) == 0
    assert y.shape == (2, -(-size // 2), -(-size // 2), 8)


def test_resize_benchmark_separates_the_smaller_decode_from_the_cheaper_resize():
    from benchmarks import common, resize

    headers, rows = common.parse_markdown_table(resize.benchmark(smoke=True))
    assert headers == [
        "inception crop",
        "img per CPU-second",
        "vs full, antialias",
        "max pixel diff vs full, antialias",
    ]
    assert [row[0] for row in rows] == list(resize.VARIANTS)
    diffs = {row[0]: float(row[3]) for row in rows}
    assert diffs["fused, antialias"] == 0 and diffs["full, antialias"] == 0  # the same box, the same pixels
    assert diffs["fused, bilinear"] > 1  # no antialiasing: other pixels where the crop is shrunk
    assert rows[2][2] == "1.00x" and all(float(row[1].replace(",", "")) > 0 for row in rows)
