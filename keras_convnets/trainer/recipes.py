"""The papers' training recipes as data: optimizer, learning rate and its schedule, batch, augmentation.

Each recipe is a frozen `Recipe` with its source next to it. `make_optimizer(recipe, ...)` turns one into a
Keras optimizer for a given global batch and run length; `default_recipe(model_name)` picks the recipe of a
model's paper.

Iteration counts are given at the recipe's own batch size. When the global batch differs, the learning rate
scales linearly with it (`schedules.linear_scaling`) and the iteration counts inversely, so that the schedule
covers the same number of epochs. When the run is given a length in epochs, the step boundaries stay at the
same fractions of it (the CIFAR schedule divides at 50% and 75% of training).

Weight decay (`keras_convnets.trainer.optimizers`): the papers' frameworks add `wd * w` to the gradient before
momentum ("coupled", every recipe here but Inception v3's); Keras's own `weight_decay` ("decoupled",
`w -= lr * wd * w`) is about 10x weaker at momentum 0.9 and is an explicit option. Inception v3's TF-slim
reference puts `wd * sum(w**2) / 2` in the loss ("loss"), where gradient clipping sees it: that mode needs
`prepare_model(model, recipe)` before `compile`. The decayed variables are the conv and dense kernels
(`decay_variables="kernels"`, the BVLC Caffe prototxts' `decay_mult` 1 on weights and 0 on biases); biases and
batch-norm gamma/beta are not decayed unless `decay_variables="all"` (fb.resnet.torch's choice).

Every field is checked when a `Recipe` is made (`ValueError`/`TypeError` naming the field, the allowed values and
what was received).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import keras

from keras_convnets.data.augment import AUGMENTATIONS
from keras_convnets.data.preprocessing import MODES as PREPROCESSINGS
from keras_convnets.trainer import optimizers, schedules
from keras_convnets.utils.naming import canonical_model_name
from keras_convnets.utils.validation import check_choice, check_int, check_number

__all__ = [
    "AUGMENTATIONS",
    "DECAY_MODES",
    "DECAY_VARIABLES",
    "OPTIMIZERS",
    "PREPROCESSINGS",
    "RECIPES",
    "Recipe",
    "SCHEDULES",
    "default_epochs",
    "default_recipe",
    "get_recipe",
    "learning_rate_schedule",
    "list_recipes",
    "make_loss",
    "make_optimizer",
    "prepare_model",
    "with_overrides",
]

SCHEDULES = ("step", "plateau", "exponential", "poly", "cosine")
OPTIMIZERS = ("sgd", "rmsprop")
DECAY_MODES = optimizers.DECAY_MODES
DECAY_VARIABLES = optimizers.DECAY_VARIABLES


@dataclass(frozen=True)
class Recipe:
    name: str
    optimizer: str  # "sgd" (with momentum) or "rmsprop"
    learning_rate: float  # at `batch_size`
    batch_size: int
    weight_decay: float  # L2 decay rate, in the form of `weight_decay_mode`, on `decay_variables`
    schedule: str  # "step" (at `boundaries`), "plateau" (divide on a plateau), "exponential" (staircase), "poly",
    # "cosine" (linear warm-up over `warmup_iterations` from `warmup_learning_rate`, then a cosine to 0)
    augmentation: str  # see keras_convnets.data
    preprocessing: str  # a keras_convnets.data.preprocessing mode
    momentum: float = 0.9
    boundaries: tuple[int, ...] = ()  # iterations at `batch_size` ("step")
    decay_factor: float = 0.1  # per boundary ("step", "plateau") or per period ("exponential")
    decay_epochs: float = 0.0  # period of the "exponential" schedule
    poly_power: float = 0.5  # "poly": lr * (1 - t / T) ** poly_power over the run's T iterations
    total_iterations: int | None = None  # length of training at `batch_size`, when the paper gives it
    total_epochs: int | None = None  # length of training in epochs, when the paper gives that instead
    plateau_patience: int = 0  # epochs without improvement of the validation accuracy before dividing ("plateau")
    warmup_iterations: int = 0
    warmup_learning_rate: float = 0.0
    warmup_models: tuple[str, ...] = ()  # models that warm up
    rmsprop_rho: float = 0.9
    rmsprop_epsilon: float = 1.0
    global_clipnorm: float | None = None
    label_smoothing: float = 0.0
    aux_loss_weight: float = 0.0
    weight_decay_mode: str = "coupled"  # "coupled" (Caffe, Torch), "decoupled" (Keras, AdamW), "loss" (TF-slim)
    decay_variables: str = "kernels"  # "kernels" (conv and dense) or "all" trainable variables
    source: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"`name` must be a non-empty string. Received: name={self.name!r}")
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("augmentation", self.augmentation, AUGMENTATIONS)
        check_choice("preprocessing", self.preprocessing, PREPROCESSINGS)
        check_choice("weight_decay_mode", self.weight_decay_mode, DECAY_MODES)
        check_choice("decay_variables", self.decay_variables, DECAY_VARIABLES)
        check_number("learning_rate", self.learning_rate, minimum=0, exclusive_minimum=True)
        check_int("batch_size", self.batch_size, minimum=1)
        check_number("weight_decay", self.weight_decay, minimum=0)
        check_number("momentum", self.momentum, minimum=0, maximum=1, exclusive_maximum=True)
        check_number("decay_factor", self.decay_factor, minimum=0, maximum=1, exclusive_minimum=True)
        check_number("decay_epochs", self.decay_epochs, minimum=0)
        check_number("poly_power", self.poly_power, minimum=0, exclusive_minimum=True)
        check_int("plateau_patience", self.plateau_patience, minimum=0)
        check_int("warmup_iterations", self.warmup_iterations, minimum=0)
        check_number("warmup_learning_rate", self.warmup_learning_rate, minimum=0)
        check_number("rmsprop_rho", self.rmsprop_rho, minimum=0, maximum=1, exclusive_maximum=True)
        check_number("rmsprop_epsilon", self.rmsprop_epsilon, minimum=0, exclusive_minimum=True)
        check_number("label_smoothing", self.label_smoothing, minimum=0, maximum=1, exclusive_maximum=True)
        check_number("aux_loss_weight", self.aux_loss_weight, minimum=0)
        if self.global_clipnorm is not None:
            check_number("global_clipnorm", self.global_clipnorm, minimum=0, exclusive_minimum=True)
        for field in ("total_iterations", "total_epochs"):
            if getattr(self, field) is not None:
                check_int(field, getattr(self, field), minimum=1)
        if self.schedule == "step" and self.total_iterations is None:
            raise ValueError(
                "`total_iterations` is required by `schedule='step'` (the boundaries are fractions of it). "
                "Received: total_iterations=None"
            )
        if self.total_iterations is None and self.total_epochs is None:
            raise ValueError(
                "One of `total_iterations` and `total_epochs` must be given. "
                "Received: total_iterations=None, total_epochs=None"
            )
        requirement = "must be a tuple of positive integers"
        if not isinstance(self.boundaries, tuple):
            raise TypeError(f"`boundaries` {requirement}. Received: boundaries={self.boundaries!r}")
        for boundary in self.boundaries:
            check_int(
                "boundaries", boundary, minimum=1, requirement=requirement, received=f"boundaries={self.boundaries!r}"
            )
        if list(self.boundaries) != sorted(set(self.boundaries)):
            raise ValueError(f"`boundaries` must be strictly increasing. Received: boundaries={self.boundaries!r}")
        if self.schedule == "exponential" and not self.decay_epochs > 0:
            raise ValueError(
                "`decay_epochs` must be greater than 0 with `schedule='exponential'`. "
                f"Received: decay_epochs={self.decay_epochs!r}"
            )
        if self.warmup_iterations and not self.warmup_learning_rate > 0:
            raise ValueError(
                "`warmup_learning_rate` must be greater than 0 when `warmup_iterations` > 0. "
                f"Received: warmup_learning_rate={self.warmup_learning_rate!r}"
            )
        if not isinstance(self.warmup_models, tuple) or not all(isinstance(m, str) for m in self.warmup_models):
            raise ValueError(
                f"`warmup_models` must be a tuple of model names. Received: warmup_models={self.warmup_models!r}"
            )

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
    # Szegedy et al. 2014, Section 6: momentum 0.9, auxiliary losses weighted by 0.3. The paper's "decreasing the
    # learning rate by 4% every 8 epochs" ran on DistBelief for an unstated length; the paper gives neither the
    # initial rate, the batch nor the weight decay. This recipe is ONE BVLC Caffe solver, quick_solver.prototxt:
    # base_lr 0.01, lr_policy "poly" with power 0.5 over max_iter 2.4M iterations at batch 32 (train_val.prototxt)
    # = 60 epochs of ImageNet, momentum 0.9, weight_decay 0.0002. (solver.prototxt's "step" 0.96 every 320k
    # iterations = 8 epochs runs to 10M iterations, about 250 epochs: cut to 60 it would end at 75% of its start.)
    "googlenet": Recipe(
        name="googlenet",
        optimizer="sgd",
        learning_rate=0.01,
        batch_size=32,
        weight_decay=2e-4,
        schedule="poly",
        poly_power=0.5,
        total_epochs=60,
        augmentation="inception",
        preprocessing="mean_rgb",
        aux_loss_weight=0.3,
        source="Szegedy et al. 2014, Section 6; BVLC GoogLeNet quick_solver.prototxt",
    ),
    # Szegedy et al. 2015, Section 8: batch 32, 100 epochs, RMSProp with decay 0.9 and epsilon 1.0, learning rate
    # 0.045 decayed every two epochs by 0.94, gradient clipping with threshold 2.0; Section 7: label smoothing 0.1.
    # Weight decay 4e-5 and the auxiliary loss weight 0.4 are the TF-slim reference's (not in the paper); TF-slim
    # puts the decay in the loss (l2_regularizer: 4e-5 * sum(w**2) / 2 on conv and dense kernels), where the
    # gradient clipping sees it: weight_decay_mode="loss" (needs `prepare_model`).
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
        weight_decay_mode="loss",
        source="Szegedy et al. 2015, Sections 7 and 8; TF-slim inception_v3",
    ),
    # Simonyan and Zisserman 2015, Section 3.1: mini-batch 256, momentum 0.9, weight decay (L2) 5e-4, dropout 0.5
    # on the first two fully-connected layers (the model's own), learning rate 1e-2 "decreased by a factor of 10
    # when the validation set accuracy stopped improving" (3 times), stopped after 370K iterations (74 epochs);
    # random 224 crops of rescaled images (scale jittering S in [256, 512]; the "scale" augmentation here draws the
    # shorter side in [256, 480]), horizontal flips; the mean RGB value subtracted. (The patience is not given.)
    "vgg": Recipe(
        name="vgg",
        optimizer="sgd",
        learning_rate=0.01,
        batch_size=256,
        weight_decay=5e-4,
        schedule="plateau",
        plateau_patience=5,
        total_iterations=370_000,
        augmentation="scale",
        preprocessing="mean_rgb",
        source="Simonyan and Zisserman 2015, Section 3.1",
    ),
    # Not a paper's recipe: a faster one for small data, chosen with `recipe="cifar_fast"` (never a default). The
    # CIFAR recipe's optimizer, batch, data and coupled decay, but decay 5e-4 (as in the wide-ResNet and fast-CIFAR
    # recipes), 936 iterations of linear warm-up from 0.01 (two epochs of Fashion-MNIST at batch 128; at most 1/15
    # of a shorter run), then a cosine to 0 over the run (Loshchilov and Hutter 2017), and label smoothing 0.1
    # (Szegedy et al. 2015, Section 7). Its length is 30 epochs.
    "cifar_fast": Recipe(
        name="cifar_fast",
        optimizer="sgd",
        learning_rate=0.1,
        batch_size=128,
        weight_decay=5e-4,
        schedule="cosine",
        total_epochs=30,
        warmup_iterations=936,
        warmup_learning_rate=0.01,
        label_smoothing=0.1,
        augmentation="crop_flip",
        preprocessing="mean_image",
        source="not a paper's: warm-up (Goyal et al. 2017), cosine (Loshchilov and Hutter 2017), label smoothing",
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
    """The recipe of the paper a registered model comes from: CIFAR nets (bottleneck ones included) -> "cifar",
    GoogLeNet -> "googlenet", Inception v3 -> "inception_v3", VGG -> "vgg", other ImageNet nets -> "imagenet". For
    other names, the input size decides (at most 64 pixels -> "cifar")."""
    key = canonical_model_name(model_name, argument="model_name")
    if key in ("googlenet", "inception_v3"):
        return RECIPES["googlenet" if key == "googlenet" else "inception_v3"]
    for prefix in ("resnet", "plainnet"):
        if key.startswith(prefix) and key.endswith("bottleneck") and key[len(prefix) : -10].isdigit():
            return RECIPES["cifar"]  # `CifarResNet(depth, block="bottleneck")`: resnet164_bottleneck, ...
        if key.startswith(prefix) and key[len(prefix) :].isdigit():
            depth = int(key[len(prefix) :])
            return RECIPES["imagenet" if depth in (18, 34, 50, 101, 152) else "cifar"]
    if key.startswith("vgg"):
        return RECIPES["vgg"]
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
    if recipe.schedule == "poly":
        return schedules.PolynomialDecay(lr, decay_steps=max(1, total), power=recipe.poly_power)
    if recipe.schedule == "cosine":
        warmup = min(round(recipe.warmup_iterations * per_batch), total // 15)  # 2 epochs of 30, less in shorter runs
        return schedules.WarmupCosineDecay(
            lr,
            decay_steps=max(1, total),
            warmup_steps=warmup,
            warmup_learning_rate=schedules.linear_scaling(recipe.warmup_learning_rate, batch_size, recipe.batch_size),
        )
    recipe_total = recipe.total_iterations * per_batch
    boundaries = sorted({max(1, round(b * per_batch * total / recipe_total)) for b in recipe.boundaries})
    boundaries = [b for b in boundaries if b < total] or []
    warmup = 0
    if model_name and canonical_model_name(model_name) in recipe.warmup_models and recipe.warmup_iterations:
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
    """The recipe's optimizer with `learning_rate` (a float or a schedule): `optimizers.SGD` or
    `optimizers.RMSprop`, with the recipe's weight decay in its `weight_decay_mode` on its `decay_variables`.

    With `weight_decay_mode="loss"` (Inception v3) the optimizer does not decay: call `prepare_model` on the
    model before `compile` (the optimizer warns when it is built on a model without the penalty)."""
    common = dict(
        learning_rate=learning_rate,
        weight_decay=recipe.weight_decay or None,
        weight_decay_mode=recipe.weight_decay_mode,
        decay_variables=recipe.decay_variables,
    )
    if recipe.global_clipnorm:
        common["global_clipnorm"] = recipe.global_clipnorm
    if recipe.optimizer == "sgd":
        return optimizers.SGD(momentum=float(recipe.momentum), **common)
    # TF-slim's train_image_classifier.py and inception_train.py: RMSProp with decay 0.9, momentum 0.9, epsilon 1.0.
    return optimizers.RMSprop(
        rho=float(recipe.rmsprop_rho), momentum=float(recipe.momentum), epsilon=float(recipe.rmsprop_epsilon), **common
    )


def prepare_model(model: keras.Model, recipe: Recipe) -> keras.Model:
    """What the recipe needs of the model before `compile`: with `weight_decay_mode="loss"`, TF-slim's L2
    penalty `weight_decay * sum(w**2) / 2` (`optimizers.L2Decay`) on every decayed variable, so that it is in
    `model.losses`, in the training loss and in the gradient that clipping sees. Other modes: nothing to do.
    Call it after building (and inside the strategy scope), before `compile`. Returns `model`."""
    if recipe.weight_decay_mode != "loss" or not recipe.weight_decay:
        return model
    decayed = {id(v) for v in model.trainable_variables if optimizers.is_decayed(v, recipe.decay_variables)}
    penalty = optimizers.L2Decay(recipe.weight_decay)
    for layer in model._flatten_layers(include_self=False) if hasattr(model, "_flatten_layers") else model.layers:
        for attribute in ("kernel", "depthwise_kernel", "pointwise_kernel", "bias", "gamma", "beta"):
            variable = getattr(layer, attribute, None)
            if variable is not None and id(variable) in decayed and hasattr(layer, f"{attribute}_regularizer"):
                setattr(layer, f"{attribute}_regularizer", penalty)  # kept in the layer's config
    for variable in model.trainable_variables:
        if id(variable) in decayed:
            variable.regularizer = penalty
    return model


def with_overrides(recipe: Recipe, **changes) -> Recipe:
    """A copy of `recipe` with some fields changed (`with_overrides(RECIPES["cifar"], learning_rate=0.05)`)."""
    unknown = set(changes) - set(Recipe.__dataclass_fields__)
    if unknown:
        raise ValueError(f"Unknown recipe fields {sorted(unknown)}. Fields: {', '.join(Recipe.__dataclass_fields__)}")
    return replace(recipe, **changes)
