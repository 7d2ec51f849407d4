"""The recipes' learning rates against the papers' numbers, the optimizers, the label-smoothing loss."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_convnets.trainer import recipes, schedules
from keras_convnets.trainer.losses import SparseCategoricalCrossentropy


def lr(schedule, step: int) -> float:
    return float(keras.ops.convert_to_numpy(schedule(step)))


def test_cifar_recipe_divides_at_32k_and_48k():
    # He et al. 2016, 4.2: batch 128, 0.1 -> 0.01 at 32k -> 0.001 at 48k, stop at 64k (= 128 epochs of 500 steps).
    schedule = recipes.learning_rate_schedule(recipes.RECIPES["cifar"], batch_size=128, steps_per_epoch=500, epochs=128)
    assert schedule.boundaries == [32_000, 48_000]
    assert lr(schedule, 0) == pytest.approx(0.1)
    assert lr(schedule, 31_999) == pytest.approx(0.1)
    assert lr(schedule, 32_000) == pytest.approx(0.01)
    assert lr(schedule, 47_999) == pytest.approx(0.01)
    assert lr(schedule, 48_000) == pytest.approx(0.001)
    assert lr(schedule, 63_999) == pytest.approx(0.001)


def test_cifar_recipe_length_is_64k_iterations():
    assert recipes.default_epochs(recipes.RECIPES["cifar"], steps_per_epoch=390, batch_size=128) == 165  # 64000 / 390
    assert recipes.default_epochs(recipes.RECIPES["cifar"], steps_per_epoch=195, batch_size=256) == 165


def test_resnet110_warms_up_at_001_for_400_iterations():
    schedule = recipes.learning_rate_schedule(
        recipes.RECIPES["cifar"], batch_size=128, steps_per_epoch=500, epochs=128, model_name="resnet110"
    )
    assert lr(schedule, 0) == pytest.approx(0.01)
    assert lr(schedule, 399) == pytest.approx(0.01)
    assert lr(schedule, 400) == pytest.approx(0.1)
    assert lr(schedule, 32_000) == pytest.approx(0.01)
    no_warmup = recipes.learning_rate_schedule(
        recipes.RECIPES["cifar"], batch_size=128, steps_per_epoch=500, epochs=128, model_name="resnet56"
    )
    assert lr(no_warmup, 0) == pytest.approx(0.1)


def test_linear_scaling_with_the_global_batch():
    assert schedules.linear_scaling(0.1, 256, 128) == pytest.approx(0.2)
    assert schedules.linear_scaling(0.1, 64, 128) == pytest.approx(0.05)
    # batch 256: lr 0.2, the same epochs (boundaries at 16k and 24k of 32k iterations)
    schedule = recipes.learning_rate_schedule(recipes.RECIPES["cifar"], batch_size=256, steps_per_epoch=250, epochs=128)
    assert schedule.boundaries == [16_000, 24_000]
    assert lr(schedule, 0) == pytest.approx(0.2)
    assert lr(schedule, 16_000) == pytest.approx(0.02)


def test_short_runs_keep_the_boundaries_at_the_same_fractions():
    schedule = recipes.learning_rate_schedule(recipes.RECIPES["cifar"], batch_size=128, steps_per_epoch=10, epochs=20)
    assert schedule.boundaries == [100, 150]  # 50% and 75% of 200 iterations


def test_googlenet_is_poly_05_over_the_run():
    # BVLC quick_solver.prototxt: base_lr 0.01, lr_policy "poly", power 0.5, over the whole run (60 epochs)
    schedule = recipes.learning_rate_schedule(
        recipes.RECIPES["googlenet"], batch_size=32, steps_per_epoch=100, epochs=60
    )
    assert lr(schedule, 0) == pytest.approx(0.01)
    assert lr(schedule, 4500) == pytest.approx(0.01 * 0.25**0.5)
    assert lr(schedule, 6000) == 0.0
    assert recipes.RECIPES["googlenet"].aux_loss_weight == 0.3


def test_inception_v3_decays_by_094_every_2_epochs():
    recipe = recipes.RECIPES["inception_v3"]
    schedule = recipes.learning_rate_schedule(recipe, batch_size=32, steps_per_epoch=100, epochs=100)
    assert lr(schedule, 0) == pytest.approx(0.045)
    assert lr(schedule, 199) == pytest.approx(0.045)
    assert lr(schedule, 200) == pytest.approx(0.045 * 0.94)
    assert lr(schedule, 1000) == pytest.approx(0.045 * 0.94**5)
    optimizer = recipes.make_optimizer(recipe, schedule)
    assert isinstance(optimizer, keras.optimizers.RMSprop)
    assert optimizer.rho == 0.9 and optimizer.epsilon == 1.0 and optimizer.global_clipnorm == 2.0
    assert recipe.label_smoothing == 0.1


def test_imagenet_recipe_is_a_constant_rate_divided_on_plateaus():
    recipe = recipes.RECIPES["imagenet"]
    assert recipes.learning_rate_schedule(recipe, batch_size=256, steps_per_epoch=5000, epochs=120) == pytest.approx(
        0.1
    )
    assert recipes.learning_rate_schedule(recipe, batch_size=512, steps_per_epoch=2500, epochs=120) == pytest.approx(
        0.2
    )
    optimizer = recipes.make_optimizer(recipe, 0.1)
    assert isinstance(optimizer, keras.optimizers.SGD) and optimizer.momentum == 0.9 and optimizer.weight_decay == 1e-4
    assert optimizer.weight_decay_mode == "coupled" and optimizer.decay_variables == "kernels"


def test_schedules_serialize():
    for schedule in (
        schedules.StepDecay(0.1, [10, 20], warmup_steps=3, warmup_learning_rate=0.01),
        schedules.ExponentialStaircase(0.045, 200, 0.94),
        schedules.PolynomialDecay(0.01, 200, power=0.5),
        schedules.WarmupCosineDecay(0.1, 200, warmup_steps=10, warmup_learning_rate=0.01),
    ):
        clone = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
        assert type(clone) is type(schedule) and clone.get_config() == schedule.get_config()
        assert [lr(clone, s) for s in (0, 3, 10, 20, 200)] == [lr(schedule, s) for s in (0, 3, 10, 20, 200)]


def test_cifar_fast_is_linear_warmup_then_cosine_to_zero():
    recipe = recipes.RECIPES["cifar_fast"]
    assert (recipe.weight_decay, recipe.label_smoothing, recipe.weight_decay_mode) == (5e-4, 0.1, "coupled")
    # 30 epochs of Fashion-MNIST at batch 128: 469 iterations an epoch, 936 of them warming up (2 epochs)
    schedule = recipes.learning_rate_schedule(recipe, batch_size=128, steps_per_epoch=469, epochs=30)
    total, warmup = 30 * 469, 936
    steps = np.array([0, 1, 468, 935, 936, 937, 5000, 10000, total - 1, total, total + 100])
    expected = np.where(
        steps < warmup,
        0.01 + (0.1 - 0.01) * steps / warmup,
        0.05 * (1 + np.cos(np.pi * np.clip((steps - warmup) / (total - warmup), 0, 1))),
    )
    np.testing.assert_allclose([lr(schedule, int(s)) for s in steps], expected, rtol=1e-5, atol=1e-7)
    assert lr(schedule, total) == 0.0
    # batch 64: the rate halves and the warm-up doubles in iterations; a 2-epoch run warms up for 1/15 of it
    half = recipes.learning_rate_schedule(recipe, batch_size=64, steps_per_epoch=938, epochs=30)
    assert half.warmup_steps == 1872 and np.isclose(lr(half, 1872), 0.05)
    short = recipes.learning_rate_schedule(recipe, batch_size=128, steps_per_epoch=22, epochs=2)
    assert short.warmup_steps == 44 // 15 and np.isclose(lr(short, 2), 0.05 * (1 + np.cos(0)))


def test_cifar_fast_is_never_a_default():
    for model in ("resnet20", "resnet56", "plainnet20", "resnet18", "vgg16"):
        assert recipes.default_recipe(model, 32).name != "cifar_fast"


def test_default_recipes():
    assert recipes.default_recipe("resnet20").name == "cifar"
    assert recipes.default_recipe("plainnet110").name == "cifar"
    assert recipes.default_recipe("resnet50").name == "imagenet"
    # bottleneck CIFAR nets (`CifarResNet(101, block="bottleneck")` is not the ImageNet ResNet-101)
    assert recipes.default_recipe("resnet101_bottleneck").name == "cifar"
    assert recipes.default_recipe("plainnet29_bottleneck").name == "cifar"
    assert recipes.default_recipe("vgg16").name == "vgg"
    assert recipes.default_recipe("googlenet").name == "googlenet"
    assert recipes.default_recipe("inception_v3").name == "inception_v3"


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: schedules.StepDecay(0.1, [20, 10]), "strictly increasing"),
        (lambda: schedules.StepDecay(-1.0, [10]), "initial_learning_rate"),
        (lambda: schedules.StepDecay(0.1, [10], warmup_steps=5), "warmup_learning_rate"),
        (lambda: schedules.ExponentialStaircase(0.1, 0, 0.9), "decay_steps"),
        (lambda: schedules.WarmupCosineDecay(0.1, 100, warmup_steps=100), "Received: warmup_steps=100"),
        (lambda: schedules.WarmupCosineDecay(0.1, 0), "decay_steps"),
        (lambda: recipes.get_recipe("adam"), "Received: recipe='adam'"),
        (lambda: recipes.with_overrides(recipes.RECIPES["cifar"], lr=0.2), "Unknown recipe fields"),
        (lambda: SparseCategoricalCrossentropy(label_smoothing=1.5), "label_smoothing"),
    ],
)
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_sparse_cross_entropy_with_label_smoothing():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(5), size=8).astype("float32")
    labels = rng.integers(0, 5, size=8)
    ours = float(SparseCategoricalCrossentropy()(labels, probs))
    keras_value = float(keras.losses.SparseCategoricalCrossentropy()(labels, probs))
    assert ours == pytest.approx(keras_value, rel=1e-5)
    smoothed = float(SparseCategoricalCrossentropy(label_smoothing=0.1)(labels, probs))
    reference = float(keras.losses.CategoricalCrossentropy(label_smoothing=0.1)(np.eye(5)[labels], probs))
    assert smoothed == pytest.approx(reference, rel=1e-5)
    clone = keras.losses.deserialize(keras.losses.serialize(SparseCategoricalCrossentropy(label_smoothing=0.1)))
    assert clone.label_smoothing == 0.1
