"""`search`: a whole search with the package's data pipelines, the hypermodel's recipe, a trial table, a Pareto
plot and the best model exported.

    search(hypermodel, "digits", tuner="bayesian", max_trials=20, directory="search")

It reads as its phases, which pass one frozen `SearchPlan`: resolve the configuration (`plan.resolve`), check that
the space fits the budget (`_check_space`), prepare the directory and the data pipelines (`_prepare`), build the
tuner (`_build_tuner`), run the search (`_run`), and finish: the trial report, the best model's test evaluation
and its export (`_finish`).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import keras
import keras_tuner
import tensorflow as tf

from keras_convnets.data.preprocessing import Preprocessing
from keras_convnets.models.aux import strip_aux
from keras_convnets.tuning.base import OBJECTIVE, BottleneckHyperModel
from keras_convnets.tuning.budget import describe
from keras_convnets.tuning.plan import SearchPlan, resolve
from keras_convnets.tuning.report import format_trial_table, plot_pareto, searched_values, trial_rows, write_trial_csv
from keras_convnets.tuning.tuners import make_tuner
from keras_convnets.utils.backend import require_tensorflow_backend
from keras_convnets.utils.io import write_json_atomic, write_text_atomic

__all__ = ["SearchResult", "search"]


@dataclass
class SearchResult:
    """What `search` returns. `best_model` is the inference model (auxiliary heads stripped) of the best trial,
    None when no trial completed."""

    tuner: keras_tuner.Tuner
    rows: list[dict]
    table: str
    best_hyperparameters: keras_tuner.HyperParameters | None
    best_model: keras.Model | None
    best_trial_id: str | None
    pareto: list[str] = field(default_factory=list)
    output_dir: str | None = None
    metrics: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Pipelines:
    """The data of a search, preprocessed as the recipe says: batches for the trials' training and validation,
    and the test split, which only the best model sees, once."""

    preprocessing: Preprocessing
    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset


def search(
    hypermodel: BottleneckHyperModel,
    dataset: Any = "digits",
    *,
    directory: str | os.PathLike,
    tuner: str = "random",
    max_trials: int = 10,
    epochs: int = 1,
    batch_size: int | None = None,
    steps_per_epoch: int | None = None,
    objective: str = OBJECTIVE,
    validation_split: int | float | None = None,
    hyperparameters: keras_tuner.HyperParameters | None = None,
    tune_new_entries: bool = True,
    overwrite: bool = False,
    resume: bool | None = None,
    distribution_strategy: Any = None,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    max_consecutive_failed_trials: int | None = None,
    export_formats: Sequence[str] = ("keras",),
    plot: bool = True,
    verbose: int = 0,
    print_fn: Callable[[str], None] | None = print,
) -> SearchResult:
    """Search `hypermodel`'s widths on `dataset` (a `keras_convnets.data` name or `ImageData`) with the package's
    data pipelines and the hypermodel's recipe, then write the results to `directory`:

    `tuner/` (the keras-tuner project: rerun with `resume=True` to continue a stopped search), `search.json`,
    `preprocessing.json`, `labels.txt`, `trials.csv`, `pareto.png` (accuracy against MACs, Pareto front marked)
    and `best/`: the best trial's model exported by `keras_convnets.export.export_bundle` in `export_formats`
    (default `model.keras`: raw pixels in, the recipe's preprocessing layer in front, auxiliary heads stripped;
    add "saved_model", "tflite"), with `labels.txt`, `model_card.json` and `metrics.json`.

    The budget is checked before searching (`hypermodel.check_budget`). `resume=None` continues a search found
    in `directory` and starts one otherwise; `resume=True` requires one, `resume=False` refuses one (unless
    `overwrite=True`, which starts afresh).

    Model selection never sees the test split: every trial's `val_accuracy` (the objective, and the plateau
    recipe's decisions) is measured on a validation split held out of the training set, `validation_split`
    examples or that fraction of it (default `DEFAULT_VALIDATION_SPLIT`, 10%; He et al. held 5k of CIFAR-10's 50k
    out), drawn from `seed`, or the dataset's own validation split when it has one (`validation_split=None`). The
    best model is evaluated once on the test split: `metrics["test_accuracy"]`, `metrics["test_loss"]`.
    `hypermodel.batch_size`, `.epochs` and `.steps_per_epoch` are set to this search's, for the recipe's schedule.
    """
    require_tensorflow_backend("`search`")
    plan = resolve(
        hypermodel,
        dataset,
        directory=directory,
        tuner=tuner,
        max_trials=max_trials,
        epochs=epochs,
        batch_size=batch_size,
        steps_per_epoch=steps_per_epoch,
        objective=objective,
        validation_split=validation_split,
        hyperparameters=hyperparameters,
        tune_new_entries=tune_new_entries,
        overwrite=overwrite,
        resume=resume,
        distribution_strategy=distribution_strategy,
        seed=seed,
        data_dir=data_dir,
        max_consecutive_failed_trials=max_consecutive_failed_trials,
        export_formats=export_formats,
        plot=plot,
        verbose=verbose,
        print_fn=print_fn,
    )
    _check_space(plan)
    pipelines = _prepare(plan)
    made = _build_tuner(plan)
    _run(plan, made, pipelines)
    return _finish(plan, made, pipelines)


# ----------------------------------------------------------------------------------------------- check, prepare


def _check_space(plan: SearchPlan) -> None:
    """Refuse a space of which nothing fits the budget; without a budget build the default configuration once,
    so that builder errors surface here, not per trial. Nothing is written yet."""
    hypermodel = plan.hypermodel
    fitting = hypermodel.check_budget(plan.hyperparameters, tune_new_entries=plan.tune_new_entries)
    if fitting is not None:
        plan.say(
            f"Budget: max_macs={hypermodel.max_macs}, max_params={hypermodel.max_params}; the narrowest configuration "
            f"that fits has {fitting.macs:,} MACs and {fitting.params:,} parameters."
        )
    else:
        default = hypermodel.cost(hypermodel.space(plan.hyperparameters))
        plan.say(f"The default configuration has {default.macs:,} MACs and {default.params:,} parameters.")


def _prepare(plan: SearchPlan) -> Pipelines:
    """Write `preprocessing.json` (kept when resuming; measured on the training images left after the hold-out),
    `labels.txt` and `search.json`; make the pipelines."""
    from keras_convnets import data as data_lib

    recipe, data, image_size = plan.hypermodel.recipe, plan.data, plan.image_size
    os.makedirs(plan.directory, exist_ok=True)
    preprocessing_path = os.path.join(plan.directory, "preprocessing.json")
    if plan.resuming and os.path.exists(preprocessing_path):
        preprocessing = Preprocessing.load(preprocessing_path)
    else:
        preprocessing = data_lib.compute_preprocessing(
            recipe.preprocessing, data, image_size=image_size, augmentation=recipe.augmentation
        )
        preprocessing.save(preprocessing_path)
    write_text_atomic(os.path.join(plan.directory, "labels.txt"), "".join(f"{label}\n" for label in data.labels))
    write_json_atomic(os.path.join(plan.directory, "search.json"), dict(plan.config))

    train = data_lib.train_pipeline(
        data,
        batch_size=plan.batch_size,
        image_size=image_size,
        augmentation=recipe.augmentation,
        preprocessing=preprocessing,
        seed=plan.seed,
        epochs=plan.epochs,
        steps_per_epoch=plan.steps_per_epoch,
    )

    def evaluation(split: str) -> tf.data.Dataset:
        return data_lib.eval_pipeline(
            data,
            batch_size=plan.batch_size,
            image_size=image_size,
            augmentation=recipe.augmentation,
            preprocessing=preprocessing,
            split=split,
        )

    return Pipelines(
        preprocessing=preprocessing, train=train, validation=evaluation("validation"), test=evaluation("test")
    )


# ----------------------------------------------------------------------------------------------- tuner, run


def _build_tuner(plan: SearchPlan) -> keras_tuner.Tuner:
    return make_tuner(
        plan.tuner,
        plan.hypermodel,
        directory=plan.directory,
        project_name="tuner",
        objective=plan.objective,
        max_trials=plan.max_trials,
        max_epochs=plan.epochs,
        overwrite=plan.overwrite,
        hyperparameters=plan.hyperparameters,
        tune_new_entries=plan.tune_new_entries,
        distribution_strategy=plan.distribution_strategy,
        seed=plan.seed,
        max_consecutive_failed_trials=plan.max_consecutive_failed_trials,
    )


@contextlib.contextmanager
def _failed_trial_tracebacks(show: bool):
    """keras-tuner prints the traceback of every failed trial, budget rejections included, while its (internal)
    `config.DEBUG` is set; `search` keeps them in the trials' `message` and prints one line instead."""
    try:
        from keras_tuner.src import config as tuner_config
    except ImportError:  # a keras-tuner without the switch: its output stays as it is
        yield
        return
    previous = tuner_config.DEBUG
    tuner_config.DEBUG = show
    try:
        yield
    finally:
        tuner_config.DEBUG = previous


def _run(plan: SearchPlan, made: keras_tuner.Tuner, pipelines: Pipelines) -> None:
    """The trials left to run (all of them, or those after the ones a resumed search holds)."""
    plan.say(
        f"Searching {plan.hypermodel.name} widths on {plan.data.name} with {plan.tuner} search: up to "
        f"{plan.max_trials} trials ({len(made.oracle.trials)} done), {plan.epochs} epoch(s) of "
        f"{plan.steps_per_epoch} steps each on {plan.data.num_train} training images, validated on "
        f"{plan.data.num_validation} held out of them, recipe {plan.hypermodel.recipe.name!r}."
    )
    with _failed_trial_tracebacks(plan.verbose > 0):
        made.search(
            pipelines.train,
            validation_data=pipelines.validation,
            epochs=plan.epochs,
            steps_per_epoch=plan.steps_per_epoch,
            verbose=plan.verbose,
            shuffle=False,
        )


# ----------------------------------------------------------------------------------------------- finish


def _report(plan: SearchPlan, made: keras_tuner.Tuner) -> tuple[list[dict], str, list[str]]:
    """Print and write the trial table (`trials.csv`) and the Pareto plot; refuse a search where nothing
    completed. Returns the rows, the table and the trial ids on the Pareto front."""
    rows = trial_rows(made)
    table = format_trial_table(rows, objective=plan.objective)
    write_trial_csv(rows, os.path.join(plan.directory, "trials.csv"))
    plan.say(table)
    for row in rows:
        if row["status"] == "FAILED" and not row["message"].startswith("Over budget"):
            plan.say(
                f"Trial {row['trial_id']} failed: {row['message']} (traceback in "
                f"{os.path.join(plan.project, 'trial_' + row['trial_id'], 'trial.json')})."
            )
    pareto = []
    if plan.plot:
        pareto = plot_pareto(
            rows,
            os.path.join(plan.directory, "pareto.png"),
            objective=plan.objective,
            title=f"{plan.hypermodel.name} on {plan.data.name}",
            max_macs=plan.hypermodel.max_macs,
        )
    if not any(r["score"] is not None for r in rows):
        reasons = sorted({r["message"] for r in rows if r["message"]})
        raise ValueError(
            f"None of the {len(rows)} trials completed ({'; '.join(reasons) or 'no trials ran'}). "
            "Widen the budget or the space, or raise max_trials."
        )
    return rows, table, pareto


def _finish(plan: SearchPlan, made: keras_tuner.Tuner, pipelines: Pipelines) -> SearchResult:
    """The report, then the best trial's model: evaluated once on the test split, exported to `best/`."""
    from keras_convnets.export import Run, export_bundle

    rows, table, pareto = _report(plan, made)
    best_trial = made.oracle.get_best_trials(1)[0]
    with warnings.catch_warnings():  # the checkpoint holds optimizer slots the rebuilt model has not created
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        best = made.get_best_models(1)[0]
    scores = best.evaluate(pipelines.test, verbose=0, return_dict=True)
    row = next(r for r in rows if r["trial_id"] == best_trial.trial_id)
    metrics = {
        "model": plan.hypermodel.name,
        "dataset": plan.data.name,
        "test_accuracy": float(scores["accuracy"]),
        "test_loss": float(scores["loss"]),
        "epochs": plan.epochs,
        "trial_id": best_trial.trial_id,
        "hyperparameters": searched_values(best_trial),
        "macs": row["macs"],
        "params": row["params"],
        "objective": plan.objective,
        "score": float(best_trial.score),
        "num_validation": plan.data.num_validation,
        "pareto": pareto,
        "trials": len(rows),
        "completed": sum(r["score"] is not None for r in rows),
    }
    best_dir = os.path.join(plan.directory, "best")
    if plan.export_formats:
        info = {"search": dict(plan.config)}
        architecture = plan.hypermodel.architecture(best_trial.hyperparameters)  # get_model(builder, **options)
        if architecture is not None:
            info["architecture"] = architecture
        run = Run(
            plan.hypermodel.name, strip_aux(best), pipelines.preprocessing, list(plan.data.labels), dict(metrics), info
        )
        export_bundle(run, best_dir, formats=list(plan.export_formats), overwrite=True)
        # The card holds the metrics too; export_bundle writes only its own files, so metrics.json follows the
        # rename (atomically, on its own).
        write_json_atomic(os.path.join(best_dir, "metrics.json"), metrics)
    plan.say(
        f"Best trial {best_trial.trial_id}: {plan.objective} {best_trial.score:.4f} with "
        f"{describe(metrics['hyperparameters'])} ({metrics['macs']:,} MACs, {metrics['params']:,} parameters)."
        + (f" Exported to {best_dir}." if plan.export_formats else "")
    )
    return SearchResult(
        tuner=made,
        rows=rows,
        table=table,
        best_hyperparameters=best_trial.hyperparameters,
        best_model=strip_aux(best),
        best_trial_id=best_trial.trial_id,
        pareto=pareto,
        output_dir=plan.directory,
        metrics=metrics,
    )
