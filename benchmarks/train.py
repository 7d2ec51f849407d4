"""Training throughput, side by side: our models with our training step, keras.applications, plain torch.nn.

    python -m benchmarks.train                      # ResNet-20, ResNet-50, GoogLeNet; float32 and mixed bfloat16
    python -m benchmarks.train --models resnet20 --rounds 5
    python -m benchmarks.train --smoke              # one tiny step of each configuration (what the tests run)
    python -m benchmarks.train --steps-per-execution 1,4,16,32   # `fit` with N steps per execution, side by side
    python -m benchmarks.train --models resnet20 --precisions float32 --try xla   # our step with XLA on, beside it

"Our training step" is what `keras_convnets.train` compiles: the registered model built under the dtype policy,
the model's recipe's optimizer (weight decay included) and loss, `metrics=["accuracy"]`, `jit_compile` as
`trainer.resolve_jit_compile("auto")` picks it. One fixed batch is fed from a repeated `tf.data` dataset, so the
input pipeline is not part of this measurement (see `benchmarks.data`). keras.applications' ResNet50 gets the
same compile. The PyTorch column is the same network in plain `torch.nn` (`benchmarks/torch_models.py`),
channels_last, SGD with momentum, bfloat16 through `torch.autocast`; torch is optional and its columns are
skipped when it is missing.

GFLOP/s counts a training step as 3 x the forward MACs (forward, gradient of the input, gradient of the
weights) x 2 FLOPs, with the MACs from `keras_convnets.analysis.profiler`. "% peak" divides by a matmul's rate measured
in the same rounds (float32 matmul for float32 rows, bfloat16 matmul for bfloat16 rows).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from dataclasses import dataclass

from benchmarks import common

PRECISIONS = ("float32", "mixed_bfloat16")


@dataclass(frozen=True)
class Workload:
    model: str  # registered name and key of benchmarks.torch_models.MODELS
    size: int
    batch: int
    classes: int
    applications: bool = False  # also time keras.applications.ResNet50


WORKLOADS = {
    "resnet20": Workload("resnet20", 32, 128, 10),
    "resnet50": Workload("resnet50", 224, 32, 1000, applications=True),
    "googlenet": Workload("googlenet", 224, 32, 1000),
    "vgg16": Workload("vgg16", 224, 8, 1000),  # no PyTorch twin: its columns are empty
}
# the trainer's batches for ResNet-20: the digits' suggestion (64) and the CIFAR recipe's (128, Fashion-MNIST)
STEPS_PER_EXECUTION_WORKLOADS = {
    "digits": Workload("resnet20", 32, 64, 10),
    "fashion": Workload("resnet20", 32, 128, 10),
}
SMOKE_WORKLOADS = {
    "resnet20": Workload("resnet20", 32, 4, 10),
    "resnet50": Workload("resnet50", 32, 2, 10, applications=True),
    "googlenet": Workload("googlenet", 79, 2, 10),
    "vgg16": Workload("vgg16", 32, 2, 10),
}


@contextlib.contextmanager
def dtype_policy(policy: str):
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def compile_like_trainer(model, name: str, *, batch: int, jit_compile="auto", steps_per_execution: int = 1):
    """Compile `model` as `keras_convnets.train` does for the registered model `name`."""
    from keras_convnets import trainer
    from keras_convnets.trainer import recipes

    recipe = recipes.default_recipe(name)
    learning_rate = recipes.learning_rate_schedule(
        recipe, batch_size=batch, steps_per_epoch=100, epochs=10, model_name=name
    )
    loss = recipes.make_loss(recipe)
    recipes.prepare_model(model, recipe)  # the recipe's L2 term in the loss (Inception v3)
    model.compile(
        optimizer=recipes.make_optimizer(recipe, learning_rate),
        loss=loss,
        metrics=["accuracy"],
        jit_compile=trainer.resolve_jit_compile(jit_compile),
        steps_per_execution=steps_per_execution,
    )
    return model


def fixed_batch(workload: Workload):
    """One batch of random images (0..255) and labels, the same for every configuration."""
    import numpy as np

    rng = np.random.default_rng(0)
    images = (rng.random((workload.batch, workload.size, workload.size, 3)) * 255).astype("float32")
    labels = rng.integers(0, workload.classes, workload.batch).astype("int32")
    return images, labels


def keras_step(model, workload: Workload, *, on_device: bool = True, strategy=None, channels_first: bool = False):
    """`run(calls)`: `calls` calls of the model's compiled train function on one fixed batch (each call runs
    `model.steps_per_execution` steps). Under a strategy of several replicas the batch is the global one, split
    over them by `experimental_distribute_dataset` as `fit` does."""
    import tensorflow as tf

    images, labels = fixed_batch(workload)
    if channels_first:
        images = images.transpose(0, 3, 1, 2).copy()
    ds = tf.data.Dataset.from_tensors((images, labels)).repeat()
    if strategy is not None:  # the optimizer's and metrics' variables, created before the step as `fit` does
        with strategy.scope():
            model._symbolic_build(data_batch=(images[:1], labels[:1]))
    if strategy is not None and strategy.num_replicas_in_sync > 1:
        iterator = iter(strategy.experimental_distribute_dataset(ds))
    elif on_device and tf.config.list_physical_devices("GPU"):  # keep the fixed batch on the GPU: no copy per step
        ds = ds.apply(tf.data.experimental.copy_to_device("/gpu:0"))
        with tf.device("/gpu:0"):
            iterator = iter(ds.prefetch(1))
    else:
        iterator = iter(ds)
    model.make_train_function()
    function = model.train_function

    def run(calls: int):
        for _ in range(calls):
            logs = function(iterator)
        return float(logs["loss"])

    return run


@contextlib.contextmanager
def before_speedups():
    """Build models as they were before the speed work of issue 9: Keras's own (unfused) batch norm and the
    option-A shortcut subsampling by strided slicing. For the "ours / before" column only."""
    import keras

    from keras_convnets.models import common as builders
    from keras_convnets.models.layers import IdentityShortcut

    def sliced(self, inputs):
        s = self.strides
        return inputs if s == 1 else (inputs[:, ::s, ::s, :] if self.channels_last else inputs[:, :, ::s, ::s])

    saved = builders.FusedBatchNormalization, IdentityShortcut._subsample
    builders.FusedBatchNormalization, IdentityShortcut._subsample = keras.layers.BatchNormalization, sliced
    try:
        yield
    finally:
        builders.FusedBatchNormalization, IdentityShortcut._subsample = saved


# changes tried against our step, side by side (`--try`): each is a context manager in effect while the model is
# built and its step traced; "xla" compiles the same step with `jit_compile=True`
VARIANTS = ("channels_first", "conv_weight_gradient", "fused_sgd", "keras_bias_gradient", "xla")


def channels_first_trains() -> bool:
    """Whether this TensorFlow can run an NCHW convolution and its gradients here (on a GPU if there is one). On a
    CPU that needs the oneDNN kernels, which TensorFlow enables by default only on CPUs with AVX512-VNNI/BF16 or
    AMX; the Eigen kernels used without them support NHWC alone (a ResNet step fails with
    "Conv2DCustomBackpropFilterOp only supports NHWC")."""
    import tensorflow as tf

    x = tf.ones((1, 2, 4, 4))
    w = tf.Variable(tf.ones((3, 3, 2, 2)))
    try:
        with tf.GradientTape() as tape:
            y = tf.nn.conv2d(x, w, strides=1, padding="SAME", data_format="NCHW")
        tape.gradient(y, w)
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError):
        return False
    return True


@contextlib.contextmanager
def channels_first():
    """Build in channels_first (NCHW); `keras_step` then feeds the batch transposed."""
    import keras

    previous = keras.config.image_data_format()
    keras.config.set_image_data_format("channels_first")
    try:
        yield
    finally:
        keras.config.set_image_data_format(previous)


@contextlib.contextmanager
def fused_sgd():
    """Keras's SGD with momentum updates each variable in element-wise ops (`m = m * momentum - lr * g; w += m`:
    Mul, Sub, AssignAdd); this traces one `ResourceApplyKerasMomentum` kernel per variable instead (same update)."""
    import tensorflow as tf
    from keras.src.optimizers import sgd

    keras_update = sgd.SGD.update_step

    def update_step(self, gradient, variable, learning_rate):
        if not self.momentum or self.nesterov:
            return keras_update(self, gradient, variable, learning_rate)
        momentum = self.momentums[self._get_variable_index(variable)]
        tf.raw_ops.ResourceApplyKerasMomentum(
            var=getattr(variable, "_value", variable).handle,
            accum=getattr(momentum, "_value", momentum).handle,
            lr=tf.cast(learning_rate, variable.dtype),
            grad=tf.cast(gradient, variable.dtype),
            momentum=tf.cast(self.momentum, variable.dtype),
            use_nesterov=False,
        )

    sgd.SGD.update_step = update_step
    try:
        yield
    finally:
        sgd.SGD.update_step = keras_update


@contextlib.contextmanager
def conv_weight_gradient():
    """Our 1x1 convolutions with TensorFlow's own kernel gradient (`Conv2DBackpropFilter`) everywhere, where "auto"
    computes it as a matmul (bfloat16 on a CPU with AMX): the step as it was before that change."""
    from keras_convnets.models.layers import Conv2D

    previous = Conv2D.matmul_weight_gradient
    Conv2D.matmul_weight_gradient = False
    try:
        yield
    finally:
        Conv2D.matmul_weight_gradient = previous


@contextlib.contextmanager
def keras_bias_gradient():
    """Our biased `Conv2D` and `Dense` layers with TensorFlow's own bias gradient (`BiasAddGrad`, as Keras's layers
    get it), summed in bfloat16, where bfloat16 training sums it in float32: the step before that
    change (VGG; GoogLeNet's aux fc1). Biased 1x1 convolutions beside the matmul kernel gradient get Keras's
    `BiasAdd` too."""
    import tensorflow as tf

    from keras_convnets.models import layers

    def keras_bias_add(outputs, bias, data_format):  # beside the 1x1 matmul gradient: Keras's `BiasAdd`
        return tf.nn.bias_add(outputs, bias, data_format="NHWC" if data_format == "channels_last" else "NCHW")

    previous = layers._sums_bias_in_float32, layers._add_bias
    layers._sums_bias_in_float32, layers._add_bias = (lambda layer, training: False), keras_bias_add
    try:
        yield
    finally:
        layers._sums_bias_in_float32, layers._add_bias = previous


def _variant(name: str | None):
    if name is None:
        return contextlib.nullcontext()
    if name not in VARIANTS:
        raise ValueError(f"`variant` must be one of {', '.join(VARIANTS)}. Received: variant={name!r}")
    if name == "channels_first" and not channels_first_trains():  # runs an op: after `common.set_threads`
        raise ValueError(
            "The `channels_first` variant needs a TensorFlow that trains NCHW convolutions here (oneDNN on a CPU, "
            "or a GPU); this one supports NHWC alone. Received: variant='channels_first'"
        )
    return {
        "channels_first": channels_first,
        "conv_weight_gradient": conv_weight_gradient,
        "fused_sgd": fused_sgd,
        "keras_bias_gradient": keras_bias_gradient,
        "xla": contextlib.nullcontext,
    }[name]()


def ours(
    workload: Workload,
    policy: str,
    *,
    jit_compile="auto",
    before: bool = False,
    steps_per_execution: int = 1,
    strategy=None,
    variant: str | None = None,
):
    """Our registered model, built and compiled as the trainer does (in `strategy`'s scope when given), and its
    `keras_step` runner, traced once (`variant`: one of `VARIANTS`, in effect while building and tracing)."""
    import keras

    import keras_convnets

    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    if variant == "xla":
        jit_compile = True
    with dtype_policy(policy), before_speedups() if before else contextlib.nullcontext(), _variant(variant), scope:
        first = keras.config.image_data_format() == "channels_first"
        shape = (3, workload.size, workload.size) if first else (workload.size, workload.size, 3)
        model = keras_convnets.get_model(workload.model, input_shape=shape, classes=workload.classes)
        compile_like_trainer(
            model,
            workload.model,
            batch=workload.batch,
            jit_compile=jit_compile,
            steps_per_execution=steps_per_execution,
        )
        run = keras_step(model, workload, strategy=strategy, channels_first=first)
        run(1)  # trace while the patched methods are in place
    return model, run


def fit_steps(workload: Workload, policy: str, steps_per_execution: int, *, chunk: int = 32):
    """`run(n)`: `n` calls of `model.fit(..., steps_per_epoch=chunk)` on one fixed batch, the model compiled as
    the trainer compiles it with `steps_per_execution`. Unlike `keras_step`, this counts what `fit` does around
    the step function (the epoch iterator, the callbacks of each batch), which `steps_per_execution` amortises."""
    import tensorflow as tf

    import keras_convnets

    if chunk % steps_per_execution:
        raise ValueError(
            f"`steps_per_execution` must divide `chunk` ({chunk}). Received: steps_per_execution={steps_per_execution}"
        )
    with dtype_policy(policy):
        model = keras_convnets.get_model(
            workload.model, input_shape=(workload.size, workload.size, 3), classes=workload.classes
        )
    compile_like_trainer(model, workload.model, batch=workload.batch, steps_per_execution=steps_per_execution)
    ds = tf.data.Dataset.from_tensors(fixed_batch(workload)).repeat()

    def run(steps: int):
        for _ in range(steps):
            history = model.fit(ds, epochs=1, steps_per_epoch=chunk, verbose=0)
        return history.history["loss"][-1]

    return run


def steps_per_execution_benchmark(
    values=(1, 4, 16, 32),
    workloads: dict[str, Workload] | None = None,
    precisions=PRECISIONS,
    *,
    rounds: int = 3,
    chunk: int = 32,
    smoke: bool = False,
    log=None,
) -> str:
    """Training images/s of `fit` with each `steps_per_execution` in `values`, interleaved in one process, and
    the ratio to `steps_per_execution=1` (the trainer's default)."""
    load_before = common.load_average()
    workloads = workloads or STEPS_PER_EXECUTION_WORKLOADS
    if smoke:
        workloads = {name: Workload(w.model, 16, 4, w.classes) for name, w in list(workloads.items())[:1]}
        chunk, rounds = max(values), 1
    configs, rows_spec = [], []
    for label, workload in workloads.items():
        for precision in precisions:
            for value in values:
                name = f"{label} {precision} spe {value}"
                configs.append(
                    common.Config(name, fit_steps(workload, precision, value, chunk=chunk), workload.batch * chunk)
                )
                rows_spec.append((label, workload, precision, value, name, f"{label} {precision} spe {values[0]}"))
    timings = common.measure(configs, rounds=rounds, log=log)
    rows = []
    for label, workload, precision, value, name, baseline in rows_spec:
        rate = timings[name].median
        rows.append(
            [
                f"{workload.model} ({label}, {workload.size}px)",
                workload.batch,
                "bfloat16" if precision == "mixed_bfloat16" else "float32",
                value,
                common.fmt(rate),
                common.fmt(rate / timings[baseline].median, 3),
                common.fmt(cpu_ratio(timings, name, baseline), 3),
                f"{timings[name].spread:.0%}",
            ]
        )
    header = common.report_header(
        f"fit with steps_per_execution ({chunk} steps per fit call)", rounds=rounds, load_before=load_before
    )
    headers = [
        "model",
        "batch",
        "precision",
        "steps_per_execution",
        "img/s",
        f"vs {values[0]}",
        f"vs {values[0]} (CPU time)",
        "spread",
    ]
    return "\n".join([header, common.markdown_table(headers, rows)])


def applications_resnet50(workload: Workload, policy: str):
    import keras

    with dtype_policy(policy):
        model = keras.applications.ResNet50(
            weights=None, input_shape=(workload.size, workload.size, 3), classes=workload.classes
        )
    compile_like_trainer(model, "resnet50", batch=workload.batch)
    return keras_step(model, workload)


def torch_models():
    """`benchmarks.torch_models` (imports torch: only when torch is installed)."""
    from benchmarks import torch_models

    return torch_models


def torch_step(workload: Workload, policy: str):
    step = torch_models().TrainStep(
        workload.model,
        batch=workload.batch,
        size=workload.size,
        classes=workload.classes,
        bfloat16=policy == "mixed_bfloat16",
    )
    return step


def cpu_ratio(timings, mine: str | None, theirs: str | None) -> float | None:
    """Ratio of images per CPU-second of this process (median over rounds)."""
    import statistics

    if not mine or not theirs or mine not in timings or theirs not in timings:
        return None
    return statistics.median(timings[mine].cpu_rates) / statistics.median(timings[theirs].cpu_rates)


def training_flops(model) -> float:
    """FLOPs of one training step per image: 3 x forward MACs x 2."""
    from keras_convnets.analysis.profiler import profile

    return 6.0 * profile(model).macs


def benchmark(
    models=("resnet20", "resnet50", "googlenet"),
    precisions=PRECISIONS,
    *,
    rounds: int = 3,
    steps: dict[str, int] | None = None,
    smoke: bool = False,
    use_torch: bool = True,
    threads: int | None = None,
    before: bool = False,
    variants: tuple[str, ...] = (),
    log=None,
) -> str:
    """Run the training benchmark and return its report (a markdown table and notes; with `variants`, a second
    table of each variant of our step against ours and PyTorch, from the same rounds)."""
    load_before = common.load_average()
    common.set_threads(threads)
    for variant in variants:
        _variant(variant)  # checks the name and that the variant can run here, before any model is built
    torch = common.optional_torch() if use_torch else None
    if torch is not None and threads is None:
        common.set_torch_threads(torch)
    table = SMOKE_WORKLOADS if smoke else WORKLOADS
    steps = steps or {}
    configs, rows_spec = [], []
    peaks = {}
    for precision in precisions:
        dtype = "bfloat16" if precision == "mixed_bfloat16" else "float32"
        peak = common.matmul_config(dtype, size=128 if smoke else 1024, repeats=1 if smoke else 8)
        if smoke:
            peak.warmup, peak.steps = 1, 1
        peaks[precision] = peak.name
        configs.append(peak)
    for name in models:
        if name not in table:
            raise ValueError(f"`models` must be among {', '.join(table)}. Received: {name!r}")
        workload = table[name]
        n = 1 if smoke else steps.get(name, 3 if workload.size <= 64 else 1)
        for precision in precisions:
            model, run = ours(workload, precision)
            flops = training_flops(model)
            entry = {"workload": workload, "precision": precision, "flops": flops, "ours": f"ours {name} {precision}"}
            configs.append(common.Config(entry["ours"], run, workload.batch, steps=n))
            if before:
                entry["before"] = f"before {name} {precision}"
                configs.append(
                    common.Config(entry["before"], ours(workload, precision, before=True)[1], workload.batch, steps=n)
                )
            for variant in variants:
                entry.setdefault("variants", {})[variant] = f"{variant} {name} {precision}"
                runner = ours(workload, precision, variant=variant)[1]
                configs.append(common.Config(entry["variants"][variant], runner, workload.batch, steps=n))
            if workload.applications:
                entry["applications"] = f"keras.applications {name} {precision}"
                configs.append(
                    common.Config(
                        entry["applications"], applications_resnet50(workload, precision), workload.batch, steps=n
                    )
                )
            if torch is not None and name in torch_models().MODELS:
                entry["torch"] = f"torch {name} {precision}"
                configs.append(common.Config(entry["torch"], torch_step(workload, precision), workload.batch, steps=n))
            rows_spec.append(entry)
    timings = common.measure(configs, rounds=1 if smoke else rounds, log=log)

    headers = [
        "model",
        "batch",
        "precision",
        "ours img/s",
        "keras.applications img/s",
        "torch img/s",
        "ours / keras.applications",
        "ours / torch",
        "ours / torch (CPU time)",
        "ours / before",
        "ours GFLOP/s",
        "ours % peak",
        "torch % peak",
        "matmul peak GFLOP/s",
    ]
    rows = []
    for entry in rows_spec:
        workload = entry["workload"]
        mine = timings[entry["ours"]].median
        apps = timings[entry["applications"]].median if "applications" in entry else None
        theirs = timings[entry["torch"]].median if "torch" in entry else None
        peak = timings[peaks[entry["precision"]]].median / 1e9
        gflops = mine * entry["flops"] / 1e9
        rows.append(
            [
                f"{workload.model} ({workload.size}px)" + (" + aux heads" if workload.model == "googlenet" else ""),
                workload.batch,
                "bfloat16" if entry["precision"] == "mixed_bfloat16" else "float32",
                common.fmt(mine),
                common.fmt(apps),
                common.fmt(theirs),
                common.fmt(mine / apps if apps else None, 2),
                common.fmt(mine / theirs if theirs else None, 2),
                common.fmt(cpu_ratio(timings, entry.get("ours"), entry.get("torch")), 2),
                common.fmt(mine / timings[entry["before"]].median if "before" in entry else None, 2),
                common.fmt(gflops),
                common.fmt(100 * gflops / peak, 2),
                common.fmt(100 * theirs * entry["flops"] / 1e9 / peak if theirs else None, 2),
                common.fmt(peak),
            ]
        )
    notes = []
    if torch is None:
        notes.append(
            "torch is not installed (`pip install torch`): the PyTorch columns are empty."
            if use_torch
            else "PyTorch not timed (--no-torch): its columns are empty."
        )
    noisy = [t for t in timings.values() if t.spread > 0.25]
    if noisy:
        notes.append(
            "Noisy (spread over rounds > 25%): " + ", ".join(f"{t.name} ({t.spread:.0%})" for t in noisy) + "."
        )
    notes.append(f"Threads per framework: {threads or 'all CPUs'}.")
    header = common.report_header("Training throughput", rounds=1 if smoke else rounds, load_before=load_before)
    parts = [header, common.markdown_table(headers, rows), ""]
    if variants:
        variant_rows = []
        for entry in rows_spec:
            for variant, label in entry["variants"].items():
                rate, mine = timings[label].median, timings[entry["ours"]].median
                theirs = timings[entry["torch"]].median if "torch" in entry else None
                variant_rows.append(
                    [
                        f"{entry['workload'].model} ({entry['workload'].size}px)",
                        "bfloat16" if entry["precision"] == "mixed_bfloat16" else "float32",
                        variant,
                        common.fmt(rate),
                        common.fmt(rate / mine, 3),
                        common.fmt(cpu_ratio(timings, label, entry["ours"]), 3),
                        common.fmt(rate / theirs if theirs else None, 2),
                        f"{timings[label].spread:.0%}",
                    ]
                )
        variant_headers = [
            "model",
            "precision",
            "variant",
            "img/s",
            "variant / ours",
            "variant / ours (CPU time)",
            "variant / torch",
            "spread",
        ]
        parts += [common.markdown_table(variant_headers, variant_rows), ""]
    return "\n".join(parts + notes)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.train", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models", default="resnet20,resnet50,googlenet", help="comma-separated: " + ", ".join(WORKLOADS)
    )
    parser.add_argument("--precisions", default=",".join(PRECISIONS), help="comma-separated: float32, mixed_bfloat16")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (median reported)")
    parser.add_argument(
        "--steps", type=int, default=None, help="training steps per timed round (default 3 at 32px, 1 at 224px)"
    )
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch column")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads per framework (default: all CPUs); 1 gives robust ratios on a busy machine",
    )
    parser.add_argument(
        "--before",
        action="store_true",
        help="also time our models as built before the speed work (Keras batch norm, sliced shortcut)",
    )
    parser.add_argument(
        "--try",
        dest="variants",
        default="",
        metavar="VARIANT,...",
        help="also time these variants of our step: " + ", ".join(VARIANTS),
    )
    parser.add_argument(
        "--steps-per-execution",
        default=None,
        metavar="N,N,...",
        help="instead: time `fit` of ResNet-20 (digits and Fashion-MNIST batches) with these steps_per_execution",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny inputs, one step, one round: checks that it runs")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    for precision in precisions:
        if precision not in PRECISIONS:
            parser.error(f"--precisions must be among {', '.join(PRECISIONS)}. Received: {precision!r}")
    for model in models:
        if model not in WORKLOADS:
            parser.error(f"--models must be among {', '.join(WORKLOADS)}. Received: {model!r}")
    variants = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    for variant in variants:
        if variant not in VARIANTS:
            parser.error(f"--try must be among {', '.join(VARIANTS)}. Received: {variant!r}")
    common.set_threads(args.threads)  # before the variants' check runs an op, which fixes TensorFlow's thread pools
    try:
        for variant in variants:
            _variant(variant)
    except ValueError as error:  # a variant this machine cannot run: one line, not a traceback
        parser.error(str(error))
    steps = {m: args.steps for m in models} if args.steps else None
    log = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    if args.steps_per_execution is not None:
        try:
            values = [int(v) for v in args.steps_per_execution.split(",") if v.strip()]
        except ValueError:
            values = []
        if not values or min(values) < 1 or any(32 % v for v in values):
            parser.error(
                "--steps-per-execution must be positive integers dividing 32, comma-separated. "
                f"Received: {args.steps_per_execution!r}"
            )
        common.set_threads(args.threads)
        report = steps_per_execution_benchmark(
            values, precisions=precisions, rounds=args.rounds, smoke=args.smoke, log=log
        )
        print(report)
        return 0
    print(
        benchmark(
            models,
            precisions,
            rounds=args.rounds,
            steps=steps,
            smoke=args.smoke,
            use_torch=not args.no_torch,
            threads=args.threads,
            before=args.before,
            variants=variants,
            log=log,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
