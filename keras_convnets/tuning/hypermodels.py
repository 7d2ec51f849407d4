"""The HyperModels: `ResNetHyperModel` (the bottleneck width of each stage of a bottleneck ResNet, and the shortcut
option) and `InceptionHyperModel` (GoogLeNet's 1x1 reductions and pool projections), and `hypermodel_for(name)`.

The networks come from the package's builders (`build_resnet(..., bottleneck_width=...)`, `GoogLeNet(table=...)`),
never from a copy. Each searched width is one keras-tuner hyperparameter whose default is the paper's width, so the
default configuration is the paper's net. Narrow or fix any of them with a `HyperParameters` passed to the tuner
(`hp.Fixed("conv5_width", 256)`, `tune_new_entries=...`) or with the constructor's `widths=` / `scales=`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import keras
import keras_tuner

from keras_convnets.models import resnet
from keras_convnets.models.googlenet import INCEPTION_TABLE, GoogLeNet
from keras_convnets.trainer import recipes
from keras_convnets.tuning.base import BottleneckHyperModel
from keras_convnets.utils.naming import canonical_model_name
from keras_convnets.utils.validation import check_choice, check_int, check_number

__all__ = [
    "DEFAULT_SCALES",
    "GRANULARITIES",
    "INCEPTION_BRANCHES",
    "InceptionHyperModel",
    "ResNetHyperModel",
    "hypermodel_for",
]

DEFAULT_SCALES = (0.25, 0.5, 0.75, 1.0)
INCEPTION_BRANCHES = {"3x3_reduce": "n3x3_reduce", "5x5_reduce": "n5x5_reduce", "pool_proj": "pool_proj"}
GRANULARITIES = ("stage", "module")
# The bottleneck ResNets `hypermodel_for` knows by name (registry keys), with their depth.
_RESNETS = {"resnet50": 50, "resnet101": 101, "resnet152": 152}


# Sequences of widths and scales: `utils.validation` checks single values; these check every member and keep the
# messages the HyperModels have always given.
def _check_width(argument: str, value: Any) -> int:
    check_int(argument, value, minimum=1, requirement="widths must be positive integers")
    return value


def _check_scales(scales: Any) -> tuple[float, ...]:
    try:
        values = tuple(scales)
    except TypeError:
        values = ()
    requirement = "must be a non-empty sequence of positive numbers"
    if not values:
        raise ValueError(f"`scales` {requirement}. Received: scales={scales!r}")
    for scale in values:
        check_number(
            "scales", scale, minimum=0, exclusive_minimum=True, requirement=requirement, received=f"scales={scales!r}"
        )
    return tuple(sorted(set(float(s) for s in values)))


def _scaled(width: int, scale: float) -> int:
    return max(1, round(width * scale))


def _width_choice(hp: keras_tuner.HyperParameters, name: str, candidates: Sequence[int], paper: int) -> int:
    """One width hyperparameter: `hp.Fixed` for a single candidate, else `hp.Choice` defaulting to the paper's."""
    values = sorted(set(candidates))
    if len(values) == 1:
        return hp.Fixed(name, values[0])
    return hp.Choice(name, values, default=paper if paper in values else values[-1])


class ResNetHyperModel(BottleneckHyperModel):
    """Searches the bottleneck (reduction) width of each stage of a bottleneck ResNet, and optionally the
    shortcut option. Hyperparameters: `conv2_width` ... `conv5_width` (the width of `conv{s}_block*_1_conv`
    and `_2_conv`; the paper's 64, 128, 256, 512 by default), `shortcut` (when `shortcuts` is given).

    Args:
        depth: 50, 101 or 152, or a bottleneck `resnet.ResNetSpec` (any depth and stem).
        widths: the candidate widths. None: the paper's width times each of `scales`; a sequence of integers:
            those candidates for every stage; a dict `{"conv2": 32, "conv3": [32, 64, 128], ...}`: per stage
            (an integer fixes it; stages left out keep the scaled candidates).
        scales: multipliers of the paper's widths for the default candidates (default 1/4, 1/2, 3/4, 1).
        shortcuts: None (not searched: `model_options["shortcut"]`, default "B") or options to search among
            ("A", "B", "C").
        Other arguments as in `BottleneckHyperModel` (recipe default: "imagenet", or "cifar" for a CIFAR stem).
    """

    def __init__(
        self,
        depth: int | resnet.ResNetSpec = 50,
        *,
        input_shape: Sequence[int] | None = None,
        classes: int | None = None,
        widths: Sequence[int] | Mapping[str, int | Sequence[int]] | None = None,
        scales: Sequence[float] = DEFAULT_SCALES,
        shortcuts: Sequence[str] | None = None,
        recipe: str | recipes.Recipe | None = None,
        **kwargs: Any,
    ):
        spec = depth if isinstance(depth, resnet.ResNetSpec) else resnet.imagenet_spec(depth)
        if spec.block != "bottleneck":
            raise ValueError(
                "`depth` must name a bottleneck ResNet (50, 101, 152, or a ResNetSpec with block='bottleneck'): "
                f"basic blocks have no reduction to search. Received: depth={depth!r}"
            )
        self.spec = spec
        self.depth = depth if isinstance(depth, int) else 2 + 3 * sum(spec.repeats)
        self.stages = tuple(f"conv{index + 2}" for index in range(len(spec.repeats)))
        self.scales = _check_scales(scales)
        self.candidates = self._resolve_widths(widths)
        if shortcuts is not None:
            shortcuts = tuple(shortcuts)
            if not shortcuts:
                raise ValueError(f"`shortcuts` must name at least one option. Received: shortcuts={shortcuts!r}")
            for option in shortcuts:
                check_choice("shortcuts", option, resnet.SHORTCUT_OPTIONS)
        self.shortcuts = shortcuts
        if input_shape is None:
            input_shape = (spec.default_size, spec.default_size, 3)
            if keras.config.image_data_format() == "channels_first":
                input_shape = (3, spec.default_size, spec.default_size)
        if recipe is None:
            recipe = "cifar" if spec.stem == "cifar" else "imagenet"
        kwargs.setdefault("name", f"resnet{self.depth}")
        super().__init__(
            input_shape=input_shape,
            classes=spec.default_classes if classes is None else classes,
            recipe=recipe,
            **kwargs,
        )

    def _resolve_widths(self, widths) -> dict[str, tuple[int, ...]]:
        default = {
            stage: tuple(sorted({_scaled(paper, s) for s in self.scales}))
            for stage, paper in zip(self.stages, self.spec.widths)
        }
        if widths is None:
            return default
        if isinstance(widths, Mapping):
            unknown = sorted(set(widths) - set(self.stages))
            if unknown:
                raise ValueError(
                    f"`widths` keys must be stages among {', '.join(self.stages)}. Received: widths={dict(widths)!r}"
                )
            resolved = dict(default)
            for stage, value in widths.items():
                values = (value,) if isinstance(value, int) and not isinstance(value, bool) else tuple(value)
                if not values:
                    raise ValueError(f"`widths` of {stage} must not be empty. Received: widths={dict(widths)!r}")
                resolved[stage] = tuple(sorted({_check_width("widths", v) for v in values}))
            return resolved
        if isinstance(widths, (int, str)) or not hasattr(widths, "__iter__"):
            raise TypeError(
                "`widths` must be None, a sequence of candidate widths or a dict per stage. "
                f"Received: widths={widths!r}"
            )
        values = tuple(sorted({_check_width("widths", v) for v in widths}))
        if not values:
            raise ValueError(f"`widths` must not be empty. Received: widths={widths!r}")
        return {stage: values for stage in self.stages}

    def declare(self, hp: keras_tuner.HyperParameters) -> dict:
        widths = tuple(
            _width_choice(hp, f"{stage}_width", self.candidates[stage], paper)
            for stage, paper in zip(self.stages, self.spec.widths)
        )
        if self.shortcuts is None:
            shortcut = self.model_options.get("shortcut", "B")
        elif len(self.shortcuts) == 1:
            shortcut = hp.Fixed("shortcut", self.shortcuts[0])
        else:
            shortcut = hp.Choice(
                "shortcut", list(self.shortcuts), default="B" if "B" in self.shortcuts else self.shortcuts[0]
            )
        return {"bottleneck_width": widths, "shortcut": shortcut}

    def build_model(self, arguments: Mapping[str, Any]) -> keras.Model:
        options = {**self.model_options, **arguments}
        return resnet.build_resnet(
            self.spec, input_shape=self.input_shape, classes=self.classes, name=self.name, **options
        )

    def describe(self, arguments: Mapping[str, Any]) -> tuple[str, dict] | None:
        key = f"resnet{self.depth}"
        if key not in _RESNETS or self.spec != resnet.imagenet_spec(self.depth):
            return None  # a custom spec: no registered builder makes it
        options = {**self.model_options, **arguments}
        options["bottleneck_width"] = list(options["bottleneck_width"])
        return key, {**options, "input_shape": list(self.input_shape), "classes": self.classes}


class InceptionHyperModel(BottleneckHyperModel):
    """Searches the widths of GoogLeNet's 1x1 reductions in front of the 3x3 and 5x5 convolutions and of its
    pool projections, per stage (`inception3_3x3_reduce_scale`: one multiplier of the paper's widths for every
    module of stage 3) or per module (`inception4a_5x5_reduce`: the width itself). The auxiliary heads and
    their loss weight stay (the recipe's 0.3 unless `model_options` says otherwise).

    Args:
        granularity: "stage" (default) or "module".
        branches: which widths to search, among "3x3_reduce", "5x5_reduce", "pool_proj" (default all three).
        scales: the candidate multipliers of the paper's widths (default 1/4, 1/2, 3/4, 1; the default value is
            1, the paper's net, when it is among them).
        Other arguments as in `BottleneckHyperModel` (recipe default: "googlenet"); `model_options` go to
        `GoogLeNet` (`aux_logits`, `norm`, `variant`, `dropout`, ...).
    """

    def __init__(
        self,
        *,
        input_shape: Sequence[int] | None = None,
        classes: int = 1000,
        granularity: str = "stage",
        branches: Sequence[str] = tuple(INCEPTION_BRANCHES),
        scales: Sequence[float] = DEFAULT_SCALES,
        recipe: str | recipes.Recipe = "googlenet",
        **kwargs: Any,
    ):
        check_choice("granularity", granularity, GRANULARITIES)
        branches = tuple(branches) if not isinstance(branches, str) else (branches,)
        if not branches:
            raise ValueError(f"`branches` must name at least one branch. Received: branches={branches!r}")
        for branch in branches:
            check_choice("branches", branch, tuple(INCEPTION_BRANCHES))
        self.granularity = granularity
        self.branches = branches
        self.scales = _check_scales(scales)
        if input_shape is None:
            input_shape = (3, 224, 224) if keras.config.image_data_format() == "channels_first" else (224, 224, 3)
        kwargs.setdefault("name", "googlenet")
        super().__init__(input_shape=input_shape, classes=classes, recipe=recipe, **kwargs)

    def declare(self, hp: keras_tuner.HyperParameters) -> dict:
        default_scale = 1.0 if 1.0 in self.scales else self.scales[-1]
        rows = []
        stage_scales = {}
        for row in INCEPTION_TABLE:
            changes = {}
            for branch in self.branches:
                attribute = INCEPTION_BRANCHES[branch]
                paper = getattr(row, attribute)
                if self.granularity == "module":
                    candidates = [_scaled(paper, s) for s in self.scales]
                    changes[attribute] = _width_choice(hp, f"inception{row.name}_{branch}", candidates, paper)
                else:
                    key = f"inception{row.name[0]}_{branch}_scale"
                    if key not in stage_scales:
                        if len(self.scales) == 1:
                            stage_scales[key] = hp.Fixed(key, self.scales[0])
                        else:
                            stage_scales[key] = hp.Choice(key, list(self.scales), default=default_scale)
                    changes[attribute] = _scaled(paper, stage_scales[key])
            rows.append(dataclasses.replace(row, **changes))
        return {"table": tuple(rows)}

    def build_model(self, arguments: Mapping[str, Any]) -> keras.Model:
        options = dict(self.model_options)
        if "aux_loss_weight" not in options and self.recipe.aux_loss_weight:
            options["aux_loss_weight"] = self.recipe.aux_loss_weight
        options.setdefault("name", self.name)
        return GoogLeNet(input_shape=self.input_shape, classes=self.classes, **options, **arguments)

    def describe(self, arguments: Mapping[str, Any]) -> tuple[str, dict] | None:
        options = dict(self.model_options)
        if "aux_loss_weight" not in options and self.recipe.aux_loss_weight:
            options["aux_loss_weight"] = self.recipe.aux_loss_weight
        table = [dataclasses.asdict(row) for row in arguments["table"]]  # `GoogLeNet(table=...)` takes these
        return "googlenet", {
            **options,
            "table": table,
            "input_shape": list(self.input_shape),
            "classes": self.classes,
        }


def hypermodel_for(model: str, **kwargs: Any) -> BottleneckHyperModel:
    """The HyperModel of a registered model name: `resnet50`, `resnet101`, `resnet152` or `googlenet` (spelt in
    any way `canonical_model_name` accepts: `"ResNet-50"`, `"resnet_50"`)."""
    key = canonical_model_name(model, argument="model")
    if key == "googlenet":
        return InceptionHyperModel(**kwargs)
    if key in _RESNETS:
        return ResNetHyperModel(_RESNETS[key], **kwargs)
    raise ValueError(
        "`model` must be a net with bottlenecks to search: 'resnet50', 'resnet101', 'resnet152' or 'googlenet'. "
        f"Received: model={model!r}"
    )
