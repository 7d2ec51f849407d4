"""The papers' training recipes as data: optimizer, learning rate and its schedule, batch, augmentation.

Each recipe is a frozen `Recipe` with its source next to it. `make_optimizer(recipe, ...)` turns one into a
Keras optimizer for a given global batch and run length; `default_recipe(model_name)` picks the recipe of a
model's paper.

Iteration counts are given at the recipe's own batch size. When the global batch differs, the learning rate
scales linearly with it (`schedules.linear_scaling`) and the iteration counts inversely, so that the schedule
covers the same number of epochs. When the run is given a length in epochs, the step boundaries stay at the
same fractions of it (the CIFAR schedule divides at 50% and 75% of training).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import keras

from keras_convnets.trainer import schedules

SCHEDULES = ("step", "plateau", "exponential")
AUGMENTATIONS = ("crop_flip", "scale", "inception")
OPTIMIZERS = ("sgd", "rmsprop")


@dataclass(frozen=True)
class Recipe:
    name: str
    optimizer: str  # "sgd" (with momentum) or "rmsprop"
    learning_rate: float  # at `batch_size`
    batch_size: int
    weight_decay: float  # applied by the optimizer on every weight
    schedule: str  # "step" (at `boundaries`), "plateau" (divide on a plateau), "exponential" (staircase)
    augmentation: str  # see keras_convnets.data
    preprocessing: str  # a keras_convnets.data.preprocessing mode
    momentum: float = 0.9
    boundaries: tuple[int, ...] = ()  # iterations at `batch_size` ("step")
    decay_factor: float = 0.1  # per boundary ("step", "plateau") or per period ("exponential")
    decay_epochs: float = 0.0  # period of the "exponential" schedule
    total_iterations: int | None = None  # length of training at `batch_size`, when the paper gives it
    total_epochs: int | None = None  # length of training in epochs, when the paper gives that instead
    plateau_patience: int = 0  # epochs without improvement of the test error before dividing ("plateau")
    warmup_iterations: int = 0
    warmup_learning_rate: float = 0.0
    warmup_models: tuple[str, ...] = ()  # models that warm up
    rmsprop_rho: float = 0.9
    rmsprop_epsilon: float = 1.0
    global_clipnorm: float | None = None
    label_smoothing: float = 0.0
    aux_loss_weight: float = 0.0
    source: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


RECIPES: dict[str, Recipe] = {
    # He et al. 2016, Section 4.2: "weight decay of 0.0001 and momentum of 0.9 ... mini-batch size of 128 ...
    # start with a learning rate of 0.1, divide it by 10 at 32k and 48k iterations, and terminate training at
    # 64k iterations"; 4-pixel padding, random 32x32 crop, horizontal flip, per-pixel mean subtracted.
    # ResNet-110 (and 1202): "0.01 to warm up the training until the training error is below 80% (about 400
    # iterations), and then go back to 0.1".
    "cifar": Recipe(
        name="cifar",
        optimizer="sgd",
        learning_rate=0.1,
        batch_size=128,
        weight_decay=1e-4,
        schedule="step",
        boundaries=(32_000, 48_000),
        total_iterations=64_000,
        augmentation="crop_flip",
        preprocessing="mean_image",
        warmup_iterations=400,
        warmup_learning_rate=0.01,
        warmup_models=("resnet110", "resnet1202", "plainnet110"),
        source="He et al. 2016, Section 4.2",
    ),
    # He et al. 2016, Section 3.4: SGD, mini-batch 256, lr 0.1 divided by 10 when the error plateaus, up to
    # 60x10^4 iterations, weight decay 0.0001, momentum 0.9; shorter side resized at random in [256, 480],
    # 224x224 crop, horizontal flip, per-pixel mean subtracted. (The patience of the plateau is not given; 5 epochs.)
    "imagenet": Recipe(
        name="imagenet",
        optimizer="sgd",
        learning_rate=0.1,
        batch_size=256,
        weight_decay=1e-4,
        schedule="plateau",
        plateau_patience=5,
        total_iterations=600_000,
        augmentation="scale",
        preprocessing="mean_image",
        source="He et al. 2016, Section 3.4",
    ),
    # Szegedy et al. 2014, Section 6: momentum 0.9, "decreasing the learning rate by 4% every 8 epochs";
    # auxiliary losses weighted by 0.3. The paper gives neither the initial rate, the batch, the weight decay nor
    # the length: those are the BVLC reference solver's (base_lr 0.01, batch 32, weight_decay 0.0002,
    # 2.4M iterations = 60 epochs of ImageNet).
    "googlenet": Recipe(
        name="googlenet",
        optimizer="sgd",
        learning_rate=0.01,
        batch_size=32,
        weight_decay=2e-4,
        schedule="exponential",
        decay_factor=0.96,
        decay_epochs=8,
        total_epochs=60,
        augmentation="inception",
        preprocessing="mean_rgb",
        aux_loss_weight=0.3,
        source="Szegedy et al. 2014, Section 6; BVLC GoogLeNet solver",
    ),
    # Szegedy et al. 2015, Section 8: batch 32, 100 epochs, RMSProp with decay 0.9 and epsilon 1.0, learning rate
    # 0.045 decayed every two epochs by 0.94, gradient clipping with threshold 2.0; Section 7: label smoothing 0.1.
    # Weight decay 4e-5 and the auxiliary loss weight 0.4 are the TF-slim reference's (not in the paper).
    "inception_v3": Recipe(
        name="inception_v3",
        optimizer="rmsprop",
        learning_rate=0.045,
        batch_size=32,
        weight_decay=4e-5,
        schedule="exponential",
        decay_factor=0.94,
        decay_epochs=2,
        total_epochs=100,
        rmsprop_rho=0.9,
        rmsprop_epsilon=1.0,
        global_clipnorm=2.0,
        label_smoothing=0.1,
        aux_loss_weight=0.4,
        augmentation="inception",
        preprocessing="inception",
        source="Szegedy et al. 2015, Sections 7 and 8; TF-slim inception_v3",
    ),
}


def list_recipes() -> list[str]:
    return list(RECIPES)


def get_recipe(recipe: str | Recipe) -> Recipe:
    if isinstance(recipe, Recipe):
        return recipe
    if recipe not in RECIPES:
        raise ValueError(f"`recipe` must be one of {', '.join(map(repr, RECIPES))}. Received: recipe={recipe!r}")
    return RECIPES[recipe]


def default_recipe(model_name: str, input_size: int | None = None) -> Recipe:
    """The recipe of the paper a registered model comes from: CIFAR nets -> "cifar", GoogLeNet -> "googlenet",
    Inception v3 -> "inception_v3", other ImageNet nets -> "imagenet". For other names, the input size decides
    (at most 64 pixels -> "cifar")."""
    key = model_name.lower().replace("-", "").replace(" ", "")
    if key in ("googlenet", "inception_v3", "inceptionv3"):
        return RECIPES["googlenet" if key == "googlenet" else "inception_v3"]
    for prefix in ("resnet", "plainnet"):
        if key.startswith(prefix) and key[len(prefix) :].isdigit():
            depth = int(key[len(prefix) :])
            return RECIPES["imagenet" if depth in (18, 34, 50, 101, 152) else "cifar"]
    if key.startswith("vgg"):
        return RECIPES["imagenet"]
    return RECIPES["cifar" if input_size is not None and input_size <= 64 else "imagenet"]


def default_epochs(recipe: Recipe, steps_per_epoch: int, batch_size: int) -> int:
    """The length of the recipe in epochs of `steps_per_epoch` iterations at a global batch of `batch_size`."""
    if recipe.total_epochs is not None:
        return recipe.total_epochs
    iterations = recipe.total_iterations * recipe.batch_size / batch_size
    return max(1, math.ceil(iterations / steps_per_epoch))


def learning_rate_schedule(
    recipe: Recipe,
    *,
    batch_size: int,
    steps_per_epoch: int,
    epochs: int,
    model_name: str = "",
):
    """The learning rate (a float for "plateau", else a schedule) for a run of `epochs` epochs of
    `steps_per_epoch` iterations at a global batch of `batch_size`."""
    lr = schedules.linear_scaling(recipe.learning_rate, batch_size, recipe.batch_size)
    per_batch = recipe.batch_size / batch_size  # iterations at our batch per iteration of the recipe
    if recipe.schedule == "plateau":
        return lr
    if recipe.schedule == "exponential":
        return schedules.ExponentialStaircase(
            lr, decay_steps=max(1, round(recipe.decay_epochs * steps_per_epoch)), rate=recipe.decay_factor
        )
    total = epochs * steps_per_epoch
    recipe_total = recipe.total_iterations * per_batch
    boundaries = sorted({max(1, round(b * per_batch * total / recipe_total)) for b in recipe.boundaries})
    boundaries = [b for b in boundaries if b < total] or []
    warmup = 0
    if model_name.lower() in recipe.warmup_models and recipe.warmup_iterations:
        warmup = max(1, round(recipe.warmup_iterations * per_batch))
    return schedules.StepDecay(
        lr,
        boundaries,
        factor=recipe.decay_factor,
        warmup_steps=warmup,
        warmup_learning_rate=schedules.linear_scaling(recipe.warmup_learning_rate, batch_size, recipe.batch_size)
        if warmup
        else None,
    )


def make_loss(recipe: Recipe):
    """The recipe's loss on integer labels: cross-entropy, with the recipe's label smoothing if it has one."""
    if recipe.label_smoothing:
        from keras_convnets.trainer.losses import SparseCategoricalCrossentropy

        return SparseCategoricalCrossentropy(label_smoothing=recipe.label_smoothing)
    return "sparse_categorical_crossentropy"


def make_optimizer(recipe: Recipe, learning_rate) -> keras.optimizers.Optimizer:
    """The recipe's optimizer with `learning_rate` (a float or a schedule)."""
    common = dict(learning_rate=learning_rate, weight_decay=recipe.weight_decay or None)
    if recipe.global_clipnorm:
        common["global_clipnorm"] = recipe.global_clipnorm
    if recipe.optimizer == "sgd":
        return keras.optimizers.SGD(momentum=recipe.momentum, **common)
    return keras.optimizers.RMSprop(rho=recipe.rmsprop_rho, epsilon=recipe.rmsprop_epsilon, **common)


def with_overrides(recipe: Recipe, **changes) -> Recipe:
    """A copy of `recipe` with some fields changed (`with_overrides(RECIPES["cifar"], learning_rate=0.05)`)."""
    unknown = set(changes) - set(Recipe.__dataclass_fields__)
    if unknown:
        raise ValueError(f"Unknown recipe fields {sorted(unknown)}. Fields: {', '.join(Recipe.__dataclass_fields__)}")
    return replace(recipe, **changes)
