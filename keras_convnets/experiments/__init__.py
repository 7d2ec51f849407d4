"""The papers' claims as experiments: each writes a markdown report, PNG figures and the raw numbers.

`run_experiment(name, output_dir, preset="quick", dataset=None, **settings)` runs one (presets: `quick`, minutes on
the embedded digits; `real`, about half an hour of 2 CPU cores on 20,000 Fashion-MNIST photos; `full`, the
paper's setting on CIFAR-10); `list_experiments()` names them:

- `"degradation"` (He et al. 2016, Figures 1 and 6): plain and residual nets of two depths, training and test
  error against iterations.
- `"bottleneck"` (He et al. 2016, Section 4.1; Szegedy et al. 2014, Section 4): parameters, MACs and measured time
  of the naive designs against the bottlenecked ones; with a dataset (`real`, `full`) also the test error of a
  basic and a bottleneck CIFAR ResNet of equal MACs.
- `"lesion"` (Veit et al. 2016): delete blocks of a trained ResNet and of its plain twin at test time.
- `"aux"` (Szegedy et al. 2014, Section 5): GoogLeNet trained with and without its auxiliary classifiers.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["EXPERIMENTS", "get_experiment", "list_experiments", "run_experiment"]

# experiment -> (module, one-line description)
EXPERIMENTS: dict[str, tuple[str, str]] = {
    "degradation": ("keras_convnets.experiments.degradation", "plain vs residual nets at two depths: error curves"),
    "bottleneck": (
        "keras_convnets.experiments.bottleneck",
        "MACs, parameters and time of bottleneck designs; accuracy at equal MACs",
    ),
    "lesion": ("keras_convnets.experiments.lesion_study", "delete blocks of trained residual and plain nets"),
    "aux": ("keras_convnets.experiments.aux_classifiers", "GoogLeNet with and without auxiliary classifiers"),
}


def list_experiments() -> list[str]:
    return list(EXPERIMENTS)


def get_experiment(name: str):
    """The module of experiment `name`: it has `run(output_dir, *, preset, quick, dataset, data_dir, command,
    **settings)` and `PRESETS` (`QUICK`, `REAL` and `FULL`)."""
    if name not in EXPERIMENTS:
        raise ValueError(
            f"`experiment` must be one of {', '.join(map(repr, EXPERIMENTS))}. Received: experiment={name!r}"
        )
    return importlib.import_module(EXPERIMENTS[name][0])


def run_experiment(
    name: str,
    output_dir: str,
    *,
    preset: str | None = None,
    quick: bool = True,
    dataset: str | None = None,
    data_dir: str | None = None,
    command: str | None = None,
    **settings: Any,
) -> dict:
    """Run experiment `name` with its `preset` ("quick", "real" or "full"; None: "quick" or "full" as `quick`
    says), write its report into `output_dir` and return its results (a dict)."""
    module = get_experiment(name)
    return module.run(
        output_dir, preset=preset, quick=quick, dataset=dataset, data_dir=data_dir, command=command, **settings
    )
