"""Weight decay in the papers' form (coupled, on conv and dense kernels), TF-slim's L2 in the loss, the recipes'
field checks, VGG's recipe and GoogLeNet's single BVLC solver."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings

import keras
import numpy as np
import pytest

from keras_convnets.trainer import optimizers, recipes, schedules


def lr(schedule, step: int) -> float:
    return float(keras.ops.convert_to_numpy(schedule(step)))


def pure_decay(optimizer, steps: int = 1000) -> float:
    """How much `steps` updates with a zero gradient shrink a kernel of 1.0."""
    kernel = keras.Variable(np.ones((1, 1), "float32"), name="kernel")
    apply = _compiled_apply(optimizer, [kernel])
    zero = np.zeros((1, 1), "float32")
    for _ in range(steps):
        apply([zero])
    return 1.0 - float(kernel.numpy()[0, 0])


def _compiled_apply(optimizer, variables):
    import tensorflow as tf

    optimizer.build(variables)

    @tf.function
    def apply(grads):
        optimizer.apply(grads, variables)

    return apply


# (a) FACTS.md: 1,000 steps of pure decay at lr 0.1, momentum 0.9, wd 1e-4.
def test_coupled_decay_is_the_papers_and_ten_times_the_decoupled():
    coupled = pure_decay(recipes.make_optimizer(recipes.RECIPES["cifar"], 0.1))
    assert coupled == pytest.approx(0.0944, abs=5e-5)
    decoupled_recipe = recipes.with_overrides(recipes.RECIPES["cifar"], weight_decay_mode="decoupled")
    decoupled = pure_decay(recipes.make_optimizer(decoupled_recipe, 0.1))
    assert decoupled == pytest.approx(0.0099, abs=5e-5)
    # closed forms: coupled follows v = 0.9 v + 1e-5 w, w -= v; decoupled w *= 1 - 1e-5
    w, v = 1.0, 0.0
    for _ in range(1000):
        v = 0.9 * v + 0.1 * 1e-4 * w
        w -= v
    assert coupled == pytest.approx(1 - w, rel=1e-3)
    assert decoupled == pytest.approx(1 - (1 - 1e-5) ** 1000, rel=1e-3)


def caffe_sgd(w, grads, rates, momentum=0.9, wd=1e-4):
    """Caffe's SGD solver (and Keras's momentum form): v = m * v - lr * (g + wd * w); w += v."""
    w = w.astype("float64").copy()
    v = np.zeros_like(w)
    for g, rate in zip(grads, rates):
        v = momentum * v - rate * (g + wd * w)
        w = w + v
    return w


def _fixed_problem(seed=0, steps=5):
    rng = np.random.default_rng(seed)
    w0 = rng.normal(size=(3, 4)).astype("float32")
    grads = [rng.normal(size=(3, 4)).astype("float32") for _ in range(steps)]
    return w0, grads


def _run(optimizer, w0, grads, name="kernel"):
    kernel = keras.Variable(w0, name=name)
    for g in grads:
        optimizer.apply([g], [kernel])
    return kernel.numpy()


# (b) our optimizer against numpy references (Caffe form) and torch.optim.SGD.
def test_sgd_matches_a_numpy_reference_of_coupled_decay():
    w0, grads = _fixed_problem()
    schedule = schedules.StepDecay(0.1, [3])  # the rate changes inside the run: Caffe's form, not Torch's
    ours = _run(optimizers.SGD(learning_rate=schedule, momentum=0.9, weight_decay=1e-4), w0, grads)
    reference = caffe_sgd(w0, grads, [0.1, 0.1, 0.1, 0.01, 0.01])
    np.testing.assert_allclose(ours, reference, rtol=1e-6, atol=1e-6)
    # the decay is there and is not Keras's decoupled one
    plain = caffe_sgd(w0, grads, [0.1, 0.1, 0.1, 0.01, 0.01], wd=0.0)
    assert np.abs(reference - plain).max() > 1e-4
    decoupled = _run(keras.optimizers.SGD(learning_rate=schedule, momentum=0.9, weight_decay=1e-4), w0, grads)
    assert np.abs(ours - decoupled).max() > 1e-5


def test_sgd_matches_torch_sgd_with_weight_decay():
    torch = pytest.importorskip("torch")
    w0, grads = _fixed_problem(seed=1, steps=6)
    ours = _run(optimizers.SGD(learning_rate=0.1, momentum=0.9, weight_decay=1e-3), w0, grads)
    parameter = torch.nn.Parameter(torch.tensor(w0))
    sgd = torch.optim.SGD([parameter], lr=0.1, momentum=0.9, weight_decay=1e-3)
    for g in grads:
        parameter.grad = torch.tensor(g)
        sgd.step()
    np.testing.assert_allclose(ours, parameter.detach().numpy(), rtol=1e-6, atol=1e-6)


def test_rmsprop_decay_is_coupled():
    w0, grads = _fixed_problem(seed=2, steps=3)
    ours = _run(optimizers.RMSprop(learning_rate=0.01, rho=0.9, epsilon=1.0, weight_decay=0.1), w0, grads)
    # Keras's RMSprop on the gradient g + wd * w, computed step by step
    kernel = keras.Variable(w0, name="kernel")
    plain = keras.optimizers.RMSprop(learning_rate=0.01, rho=0.9, epsilon=1.0)
    for g in grads:
        plain.apply([g + 0.1 * kernel.numpy()], [kernel])
    np.testing.assert_allclose(ours, kernel.numpy(), rtol=1e-6, atol=1e-7)


# (c) conv and dense kernels are decayed; biases and batch-norm gamma/beta are not ("kernels").
def _tiny_model():
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(3, 3, use_bias=True, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(4, activation="softmax", name="fc")(x)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("decay_variables", ["kernels", "all"])
def test_which_variables_are_decayed(decay_variables):
    model = _tiny_model()
    variables = model.trainable_variables
    optimizer = optimizers.SGD(learning_rate=0.1, momentum=0.0, weight_decay=0.5, decay_variables=decay_variables)
    before = [v.numpy().copy() for v in variables]
    optimizer.apply([np.zeros(v.shape, "float32") for v in variables], variables)
    kernels = {"conv/kernel", "fc/kernel"}
    assert {v.path for v in variables} == kernels | {"conv/bias", "bn/gamma", "bn/beta", "fc/bias"}
    for variable, b in zip(variables, before):
        if decay_variables == "all" or variable.path in kernels:
            np.testing.assert_allclose(variable.numpy(), b * (1 - 0.1 * 0.5), rtol=1e-6, err_msg=variable.path)
        else:
            np.testing.assert_array_equal(variable.numpy(), b, err_msg=variable.path)


# (d) the same update under LossScaleOptimizer and MirroredStrategy.
def test_loss_scale_optimizer_keeps_the_decay():
    w0, grads = _fixed_problem(seed=3, steps=4)
    inner = optimizers.SGD(learning_rate=0.1, momentum=0.9, weight_decay=1e-2)
    scaled = keras.optimizers.LossScaleOptimizer(inner, initial_scale=1024.0)
    kernel = keras.Variable(w0, name="kernel")
    for g in grads:
        scaled.apply([g * 1024.0], [kernel])  # gradients of the scaled loss
    np.testing.assert_allclose(kernel.numpy(), caffe_sgd(w0, grads, [0.1] * 4, wd=1e-2), rtol=1e-5, atol=1e-6)


MIRRORED = textwrap.dedent(
    """
    import numpy as np, tensorflow as tf
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
    )
    import keras
    from keras_convnets.trainer import optimizers
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 3)).astype("float32")
    y = rng.normal(size=(8, 2)).astype("float32")
    w0 = rng.normal(size=(3, 2)).astype("float32")
    with strategy.scope():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, use_bias=False, name="fc")])
        model.layers[0].kernel.assign(w0)
        model.compile(optimizer=optimizers.SGD(learning_rate=0.1, momentum=0.9, weight_decay=0.05), loss="mse")
    model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    w, v = w0.astype("float64"), np.zeros_like(w0, "float64")
    for _ in range(3):
        g = 2 * x.T @ (x @ w - y) / y.size
        v = 0.9 * v - 0.1 * (g + 0.05 * w)
        w = w + v
    np.testing.assert_allclose(model.layers[0].kernel.numpy(), w, rtol=1e-4, atol=1e-5)
    print("MIRRORED OK")
    """
)


def test_mirrored_strategy_decays_once_per_step():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run([sys.executable, "-c", MIRRORED], capture_output=True, text=True, env=env, timeout=300)
    assert "MIRRORED OK" in result.stdout, result.stderr[-3000:]


# The L2 term in the loss (Inception v3's form) decays once per step on 2 mirrored replicas too: Keras divides
# each replica's regularization losses by the number of replicas, so the penalty itself must not.
MIRRORED_LOSS_FORM = MIRRORED.replace(
    "from keras_convnets.trainer import optimizers",
    "from keras_convnets.trainer import optimizers, recipes",
).replace(
    'model.compile(optimizer=optimizers.SGD(learning_rate=0.1, momentum=0.9, weight_decay=0.05), loss="mse")',
    'recipes.prepare_model(model, recipes.with_overrides(recipes.RECIPES["inception_v3"], weight_decay=0.05))\n'
    '    model.compile(optimizer=optimizers.SGD(learning_rate=0.1, momentum=0.9), loss="mse")',
)


def test_mirrored_strategy_l2_in_the_loss_decays_once_per_step():
    assert "prepare_model" in MIRRORED_LOSS_FORM
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_LOSS_FORM], capture_output=True, text=True, env=env, timeout=300
    )
    assert "MIRRORED OK" in result.stdout, result.stderr[-3000:]


def test_inception_v3_rmsprop_has_tf_slims_momentum():
    optimizer = recipes.make_optimizer(recipes.RECIPES["inception_v3"], 0.045)
    assert (optimizer.rho, optimizer.momentum, optimizer.epsilon) == (0.9, 0.9, 1.0)


def test_vgg_recipe_trains_at_its_size():
    from keras_convnets.trainer import config

    assert recipes.default_recipe("vgg16").name == "vgg"
    resolved = config.resolve_config(
        "vgg11",
        "digits",
        epochs=1,
        batch_size=8,
        recipe=None,
        strategy="one_device",
        mixed_precision="float32",
        jit_compile=False,
        output_dir=None,
        export_dir=None,
        seed=0,
        deterministic=False,
        data_dir=None,
        sync_bn=False,
        steps_per_epoch=1,
        image_size=None,
        model_options=None,
        validation_split="auto",
    )
    assert resolved.image_size == 224 and resolved.recipe.name == "vgg"


# (e) Inception v3: TF-slim's L2 in the loss, seen by the gradient clipping.
def test_inception_v3_puts_l2_in_the_loss():
    recipe = recipes.RECIPES["inception_v3"]
    assert recipe.weight_decay_mode == "loss" and recipe.weight_decay == 4e-5
    keras.utils.set_random_seed(0)
    model = _tiny_model()
    x = np.random.default_rng(0).normal(size=(4, 6, 6, 2)).astype("float32")
    y = np.array([0, 1, 2, 3])
    model.compile(loss="sparse_categorical_crossentropy")
    before = model.evaluate(x, y, verbose=0)
    assert recipes.prepare_model(model, recipe) is model
    model.compile(loss="sparse_categorical_crossentropy")
    after = model.evaluate(x, y, verbose=0)
    kernels = [model.get_layer("conv").kernel.numpy(), model.get_layer("fc").kernel.numpy()]
    expected = 4e-5 * sum(float(np.sum(k.astype("float64") ** 2)) for k in kernels) / 2
    assert len(model.losses) == 2  # the conv and dense kernels, not the biases nor batch-norm gamma/beta
    assert after - before == pytest.approx(expected, rel=1e-3)
    assert sum(float(loss) for loss in model.losses) == pytest.approx(expected, rel=1e-6)
    assert model.get_layer("conv").get_config()["kernel_regularizer"] is not None
    assert model.get_layer("conv").get_config()["bias_regularizer"] is None


def test_inception_v3_clipping_sees_the_l2_gradient():
    import tensorflow as tf

    recipe = recipes.with_overrides(recipes.RECIPES["inception_v3"], weight_decay=2.0)  # large: decides the clipping
    keras.utils.set_random_seed(1)
    model = recipes.prepare_model(_tiny_model(), recipe)
    x = np.random.default_rng(1).normal(size=(4, 6, 6, 2)).astype("float32")
    y = np.array([0, 1, 2, 3])
    start = [v.numpy().copy() for v in model.trainable_variables]
    # reference: the gradient of loss + penalty, clipped to a global norm of 2.0, then Keras's RMSprop
    with tf.GradientTape(persistent=True) as tape:
        data_loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, model(x, training=True)))
        total = data_loss + tf.add_n(model.losses)
    grads = tape.gradient(total, model.trainable_variables)
    # clipping matters only because of the penalty
    assert float(tf.linalg.global_norm(tape.gradient(data_loss, model.trainable_variables))) < 2.0
    assert float(tf.linalg.global_norm(grads)) > 2.0
    for v, s in zip(model.trainable_variables, start):
        v.assign(s)
    reference = keras.optimizers.RMSprop(learning_rate=0.045, rho=0.9, momentum=0.9, epsilon=1.0, global_clipnorm=2.0)
    reference.apply(grads, model.trainable_variables)
    expected = [v.numpy().copy() for v in model.trainable_variables]
    for v, s in zip(model.trainable_variables, start):
        v.assign(s)
    optimizer = recipes.make_optimizer(recipe, 0.045)
    assert optimizer.global_clipnorm == 2.0 and optimizer.weight_decay_mode == "loss"
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    model.train_on_batch(x, y)
    for v, e in zip(model.trainable_variables, expected):
        np.testing.assert_allclose(v.numpy(), e, rtol=1e-5, atol=1e-6, err_msg=v.path)


def test_loss_mode_without_the_penalty_warns_and_decays_coupled():
    recipe = recipes.with_overrides(recipes.RECIPES["inception_v3"], weight_decay=1e-2, global_clipnorm=None)
    w0, grads = _fixed_problem(seed=4, steps=3)
    kernel = keras.Variable(w0, name="kernel")
    optimizer = recipes.make_optimizer(recipe, 0.045)
    with pytest.warns(UserWarning, match="prepare_model"):
        optimizer.build([kernel])
    for g in grads:
        optimizer.apply([g], [kernel])
    reference = _run(
        optimizers.RMSprop(learning_rate=0.045, rho=0.9, momentum=0.9, epsilon=1.0, weight_decay=1e-2), w0, grads
    )
    np.testing.assert_allclose(kernel.numpy(), reference, rtol=1e-6, atol=1e-7)
    # with the penalty on the model, the optimizer itself does not decay
    model = recipes.prepare_model(_tiny_model(), recipe)
    quiet = recipes.make_optimizer(recipe, 0.045)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet.build(model.trainable_variables)
    variables = model.trainable_variables
    before = [v.numpy().copy() for v in variables]
    quiet.apply([np.zeros(v.shape, "float32") for v in variables], variables)
    for v, b in zip(variables, before):
        np.testing.assert_array_equal(v.numpy(), b, err_msg=v.path)


def test_optimizers_round_trip_their_config():
    for recipe in recipes.RECIPES.values():
        optimizer = recipes.make_optimizer(recipe, 0.01)
        clone = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
        assert type(clone) is type(optimizer) and clone.get_config() == optimizer.get_config()
        assert clone.weight_decay == pytest.approx(recipe.weight_decay)
        assert clone.weight_decay_mode == recipe.weight_decay_mode
    penalty = keras.regularizers.deserialize(keras.regularizers.serialize(optimizers.L2Decay(4e-5)))
    assert isinstance(penalty, optimizers.L2Decay) and penalty.weight_decay == 4e-5


# Items 2 and 3: VGG's recipe, GoogLeNet's one solver.
def test_vgg_has_its_papers_recipe():
    for name in ("vgg11", "vgg16", "vgg19"):
        assert recipes.default_recipe(name).name == "vgg"
    recipe = recipes.RECIPES["vgg"]
    assert (recipe.optimizer, recipe.learning_rate, recipe.batch_size, recipe.momentum) == ("sgd", 0.01, 256, 0.9)
    assert (recipe.weight_decay, recipe.weight_decay_mode, recipe.schedule) == (5e-4, "coupled", "plateau")
    assert recipe.decay_factor == 0.1 and recipe.total_iterations == 370_000
    assert recipes.default_epochs(recipe, steps_per_epoch=5000, batch_size=256) == 74
    assert recipes.learning_rate_schedule(recipe, batch_size=256, steps_per_epoch=5000, epochs=74) == pytest.approx(
        0.01
    )


def test_googlenet_follows_bvlc_quick_solver():
    recipe = recipes.RECIPES["googlenet"]
    assert (recipe.schedule, recipe.poly_power, recipe.total_epochs) == ("poly", 0.5, 60)
    assert (recipe.learning_rate, recipe.batch_size, recipe.weight_decay, recipe.momentum) == (0.01, 32, 2e-4, 0.9)
    schedule = recipes.learning_rate_schedule(recipe, batch_size=32, steps_per_epoch=100, epochs=60)
    assert lr(schedule, 0) == pytest.approx(0.01)
    assert lr(schedule, 3000) == pytest.approx(0.01 * 0.5**0.5, rel=1e-6)
    assert lr(schedule, 5999) == pytest.approx(0.01 * (1 / 6000) ** 0.5, rel=1e-4)
    assert lr(schedule, 6000) == 0.0
    # the global batch scales the rate linearly, the run's length stays the run's
    scaled = recipes.learning_rate_schedule(recipe, batch_size=128, steps_per_epoch=25, epochs=60)
    assert scaled.decay_steps == 1500 and lr(scaled, 0) == pytest.approx(0.04)


# Item 4: every field is checked.
@pytest.mark.parametrize(
    "changes, match",
    [
        ({"optimizer": "adam"}, "`optimizer` must be one of 'sgd', 'rmsprop'. Received: optimizer='adam'"),
        ({"schedule": "linear"}, "`schedule` must be one of .*'cosine'. Received: schedule='linear'"),
        ({"augmentation": "mixup"}, "`augmentation` must be one of .*Received: augmentation='mixup'"),
        ({"preprocessing": "zca"}, "`preprocessing` must be one of .*Received: preprocessing='zca'"),
        ({"weight_decay": -1e-4}, r"`weight_decay` must be at least 0. Received: weight_decay=-0.0001"),
        ({"weight_decay_mode": "adamw"}, "`weight_decay_mode` must be one of 'coupled', 'decoupled', 'loss'"),
        ({"decay_variables": "weights"}, "`decay_variables` must be one of 'kernels', 'all'"),
        ({"label_smoothing": 1.0}, r"`label_smoothing` must be less than 1. Received: label_smoothing=1.0"),
        ({"label_smoothing": -0.1}, r"`label_smoothing` must be at least 0. Received: label_smoothing=-0.1"),
        ({"learning_rate": 0.0}, r"`learning_rate` must be greater than 0. Received: learning_rate=0.0"),
        ({"batch_size": 0}, r"`batch_size` must be at least 1. Received: batch_size=0"),
        ({"momentum": 1.0}, r"`momentum` must be less than 1. Received: momentum=1.0"),
        ({"decay_factor": 0.0}, r"`decay_factor` must be greater than 0. Received: decay_factor=0.0"),
        ({"aux_loss_weight": -0.3}, r"`aux_loss_weight` must be at least 0"),
        ({"global_clipnorm": 0.0}, r"`global_clipnorm` must be greater than 0"),
        ({"rmsprop_epsilon": 0.0}, r"`rmsprop_epsilon` must be greater than 0"),
        ({"poly_power": 0.0}, r"`poly_power` must be greater than 0"),
        ({"boundaries": (48_000, 32_000)}, r"`boundaries` must be strictly increasing"),
        ({"boundaries": (0, 32_000)}, r"`boundaries` must be a tuple of positive integers"),
        ({"total_iterations": None}, r"`total_iterations` is required by `schedule='step'`"),
        ({"warmup_learning_rate": 0.0}, r"`warmup_learning_rate` must be greater than 0"),
        ({"plateau_patience": -1}, r"`plateau_patience` must be at least 0"),
    ],
)
def test_recipe_fields_are_checked(changes, match):
    with pytest.raises(ValueError, match=match):
        recipes.with_overrides(recipes.RECIPES["cifar"], **changes)


def test_recipe_field_types_are_checked():
    with pytest.raises(TypeError, match=r"`batch_size` must be an integer. Received: batch_size=12.5"):
        recipes.with_overrides(recipes.RECIPES["cifar"], batch_size=12.5)
    with pytest.raises(
        TypeError, match=r"`boundaries` must be a tuple of positive integers. Received: boundaries=\[32000\]"
    ):
        recipes.with_overrides(recipes.RECIPES["cifar"], boundaries=[32_000])
    with pytest.raises(ValueError, match="`decay_epochs` must be greater than 0 with `schedule='exponential'`"):
        recipes.with_overrides(recipes.RECIPES["inception_v3"], decay_epochs=0.0)
    with pytest.raises(ValueError, match="One of `total_iterations` and `total_epochs` must be given"):
        recipes.with_overrides(recipes.RECIPES["googlenet"], total_epochs=None)


def test_poly_schedule_is_the_closed_form():
    schedule = schedules.PolynomialDecay(0.04, decay_steps=1000, power=0.5)
    for step in (0, 1, 250, 500, 999):
        assert lr(schedule, step) == pytest.approx(0.04 * (1 - step / 1000) ** 0.5, rel=1e-6)
    assert lr(schedule, 1000) == 0.0 and lr(schedule, 5000) == 0.0
    linear = schedules.PolynomialDecay(1.0, decay_steps=10, power=1.0)
    assert [lr(linear, s) for s in (0, 5, 9)] == pytest.approx([1.0, 0.5, 0.1])
    clone = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert type(clone) is schedules.PolynomialDecay and clone.get_config() == schedule.get_config()
    with pytest.raises(ValueError, match="decay_steps"):
        schedules.PolynomialDecay(0.1, decay_steps=0)


def test_model_names_are_read_as_the_registry_spells_them():
    assert recipes.default_recipe("VGG-16").name == "vgg"
    assert recipes.default_recipe("Inception-v3").name == "inception_v3"
    assert recipes.default_recipe("ResNet-50").name == "imagenet"
    schedule = recipes.learning_rate_schedule(
        recipes.RECIPES["cifar"], batch_size=128, steps_per_epoch=500, epochs=128, model_name="ResNet-110"
    )
    assert lr(schedule, 0) == pytest.approx(0.01) and lr(schedule, 400) == pytest.approx(0.1)
    with pytest.raises(TypeError, match="`boundaries` must be an integer. Received: boundaries=1.5"):
        schedules.StepDecay(0.1, [1.5])
