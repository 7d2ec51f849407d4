"""Searches over bottleneck widths with keras-tuner, within a budget of MACs and parameters.

The bottleneck is what the ResNet and GoogLeNet papers share: a cheap 1x1 reduction in front of the expensive
convolution. The HyperModels here search how narrow those reductions can be; the networks come from the
package's builders (`build_resnet(..., bottleneck_width=...)`, `GoogLeNet(table=...)`), never from a copy.

    hypermodel = ResNetHyperModel(50, input_shape=(224, 224, 3), classes=10, max_macs=2e9)
    tuner = keras_tuner.BayesianOptimization(hypermodel, objective="val_accuracy", max_trials=20,
                                             max_consecutive_failed_trials=21, directory="search")
    tuner.search(train_ds, validation_data=val_ds, epochs=5)

or, with the package's data pipelines, the recipe's preprocessing, a trial table, a Pareto plot and the
best model exported: `search(hypermodel, "digits", tuner="bayesian", max_trials=20, directory="search")`.

Modules: `budget` (Cost, model_cost, BudgetExceededError), `base` (BottleneckHyperModel: recipe, budget, cost),
`hypermodels` (ResNetHyperModel, InceptionHyperModel, hypermodel_for), `tuners` (make_tuner), `report` (trial
table, CSV, Pareto front and plot), `plan` (a search's arguments resolved into a frozen SearchPlan) and `search`.
"""

from keras_convnets.tuning.base import OBJECTIVE, BottleneckHyperModel
from keras_convnets.tuning.budget import COST_METRICS, BudgetExceededError, Cost, model_cost
from keras_convnets.tuning.hypermodels import (
    DEFAULT_SCALES,
    GRANULARITIES,
    INCEPTION_BRANCHES,
    InceptionHyperModel,
    ResNetHyperModel,
    hypermodel_for,
)
from keras_convnets.tuning.plan import DEFAULT_VALIDATION_SPLIT, SEARCH_IDENTITY, SearchPlan
from keras_convnets.tuning.report import format_trial_table, pareto_front, plot_pareto, trial_rows, write_trial_csv
from keras_convnets.tuning.search import SearchResult, search
from keras_convnets.tuning.tuners import TUNERS, make_tuner

__all__ = [
    "COST_METRICS",
    "DEFAULT_SCALES",
    "DEFAULT_VALIDATION_SPLIT",
    "GRANULARITIES",
    "INCEPTION_BRANCHES",
    "OBJECTIVE",
    "SEARCH_IDENTITY",
    "TUNERS",
    "BottleneckHyperModel",
    "BudgetExceededError",
    "Cost",
    "InceptionHyperModel",
    "ResNetHyperModel",
    "SearchPlan",
    "SearchResult",
    "format_trial_table",
    "hypermodel_for",
    "make_tuner",
    "model_cost",
    "pareto_front",
    "plot_pareto",
    "search",
    "trial_rows",
    "write_trial_csv",
]
