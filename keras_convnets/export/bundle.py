"""Training runs and export bundles: `load_run` reads a run directory of `convnets train` (or a `.keras` file),
`export_bundle` writes every format of it, each checked against Keras, with its labels and a model card."""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
from typing import Any, Sequence

from keras_convnets.data.preprocessing import Preprocessing
from keras_convnets.data.serving import evaluation_card
from keras_convnets.export.constants import DEFAULT_FORMATS, FORMATS, INPUT_NAME, SIGNATURE, UINT8_SIGNATURE
from keras_convnets.export.graph import InferenceGraph
from keras_convnets.export.onnx import (
    ONNX_QUANTIZATIONS,
    onnx_card,
    onnx_versions,
    require_onnx,
    write_bundle_onnx,
)
from keras_convnets.export.parity import (
    MAX_CALIBRATION_IMAGES,
    PARITY_IMAGES,
    Parity,
    as_images,
    as_pixels,
    measure_parity,
    require_parity,
    split_calibration,
)
from keras_convnets.export.run_images import run_augmentation, run_parity_images
from keras_convnets.export.saved_model import check_saved_model, write_saved_model
from keras_convnets.export.staging import check_destination, staged
from keras_convnets.export.tflite import check_tflite_options, convert_checked, tflite_filename
from keras_convnets.utils.backend import require_tensorflow_backend
from keras_convnets.utils.io import atomic_write, write_json_atomic, write_text_atomic
from keras_convnets.utils.validation import check_choice

__all__ = ["Run", "export_bundle", "load_run", "read_labels"]


@dataclasses.dataclass
class Run:
    """A trained model and what travels with it (a run directory of `convnets train`, or a `.keras` file)."""

    name: str
    model: Any
    preprocessing: Preprocessing | None
    labels: list[str] | None
    metrics: dict
    info: dict
    path: str | None = None  # the run directory or `.keras` file it was read from: an export never replaces it


def _read_json(path: str) -> dict:
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_labels(path: str) -> list[str] | None:
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def load_run(path: str | os.PathLike) -> Run:
    """A run directory (model.keras, preprocessing.json, labels.txt, metrics.json, run.json) or a `.keras`
    file (with those files beside it when present). The model loads with `safe_mode=True`."""
    import keras

    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path):
        directory, model_path, name = path, os.path.join(path, "model.keras"), os.path.basename(path)
    else:
        directory, model_path = os.path.dirname(path), path
        name = os.path.splitext(os.path.basename(path))[0]
    if not os.path.isfile(model_path) or not model_path.endswith(".keras"):
        raise ValueError(
            "`source` must be a training run directory (with model.keras) or a `.keras` file. "
            f"Received: source={path!r}"
        )
    try:
        model = keras.saving.load_model(model_path, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises ValueError, OSError, zipfile errors ... for a bad file
        raise ValueError(
            f"`source` could not be loaded as a Keras model. Received: source={model_path!r} ({error})"
        ) from error
    prep_path = os.path.join(directory, "preprocessing.json")
    preprocessing = Preprocessing.load(prep_path) if os.path.isfile(prep_path) else None
    return Run(
        name,
        model,
        preprocessing,
        read_labels(os.path.join(directory, "labels.txt")),
        _read_json(os.path.join(directory, "metrics.json")),
        _read_json(os.path.join(directory, "run.json")),
        path=path,
    )


def _file_sizes(root: str) -> dict[str, int]:
    sizes = {}
    for entry in sorted(os.listdir(root)):
        full = os.path.join(root, entry)
        if os.path.isdir(full):
            sizes[entry + "/"] = sum(
                os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(full) for f in files
            )
        else:
            sizes[entry] = os.path.getsize(full)
    return sizes


def _preprocessing_card(preprocessing: Preprocessing | None) -> dict:
    if preprocessing is None:
        return {"mode": "none", "in_graph": False}
    config = preprocessing.get_config()
    if preprocessing.mean.ndim == 3:  # a mean image: summarise, the full array is in the graph
        config["mean"] = {
            "shape": list(preprocessing.mean.shape),
            "per_channel_average": preprocessing.mean.reshape(-1, preprocessing.mean.shape[-1]).mean(0).tolist(),
        }
    return {**config, "in_graph": True}


def _architecture(run: Run, graph: InferenceGraph) -> str | dict:
    """`{"builder": name, "options": {...}}` where the run's run.json records them (`get_model(builder,
    **options)` rebuilds the network), else the model's name (metrics.json's "model", or the Keras name)."""
    recorded = run.info.get("architecture") if isinstance(run.info, dict) else None
    if isinstance(recorded, dict):
        return {"builder": recorded.get("builder"), "options": dict(recorded.get("options") or {})}
    return run.metrics.get("model", graph.model.name)


def _sources(source) -> tuple[str, ...]:
    """The paths an export of `source` reads from, which its destination must neither be nor contain."""
    if isinstance(source, Run):
        return () if source.path is None else (source.path,)
    return (os.path.abspath(os.fspath(source)),) if isinstance(source, (str, os.PathLike)) else ()


def _parity_images(run: Run, shape, representative_data, parity_data) -> tuple[Any, dict]:
    """`(parity_data, card entry)`: the images given, else the run's test split (`run_parity_images`, none of
    them a calibration image), else the representative images, else uniform noise; the card says which."""
    if parity_data is not None:
        return parity_data, {
            "source": "parity_data",
            "count": len(as_images(parity_data, shape, argument="parity_data")),
        }
    calibration = None
    if representative_data is not None:
        calibration = as_pixels(
            as_images(representative_data, shape, argument="representative_data", limit=MAX_CALIBRATION_IMAGES)
        )
    images, description = run_parity_images(run.info, run.metrics, shape, exclude=calibration)
    if images is not None:
        return images, description
    if calibration is not None:
        source = "representative_data (int8: its last quarter, held out of the calibration)"
        return None, {"source": source, "count": len(calibration), "reason": description["reason"]}
    return None, {"source": "uniform noise", "count": PARITY_IMAGES, "reason": description["reason"]}


def export_bundle(
    source,
    output: str | os.PathLike,
    *,
    formats: Sequence[str] = DEFAULT_FORMATS,
    quantizations: Sequence[str | None] = (None,),
    onnx_quantizations: Sequence[str | None] = (None,),
    representative_data: Any = None,
    parity_data: Any = None,
    int8_io: str | None = "uint8",
    overwrite: bool = False,
) -> dict:
    """Export a run (a `Run`, a run directory or a `.keras` file) to the directory `output`: `saved_model/`,
    `model.keras`, one `model_<quantization>.tflite` per quantization, `labels.txt` and `model_card.json`; with
    "onnx" in `formats` (it needs `pip install "keras_convnets[onnx]"`), `model.onnx` and/or `model_int8.onnx`
    as `onnx_quantizations` (None, "int8") says.

    The card's `evaluation` records the evaluation transform of the run's recipe (`data.serving.evaluation_card`:
    e.g. the central crop of "scale"), which `Predictor` applies to image files; a run without a recipe records
    the whole image resized (augmentation None).

    Every artifact is checked against the Keras model (see `CRITERIA`) on `parity_data`, else on 100 images
    of the run's test split as evaluation saw them (`run_parity_images`; never the calibration images), else
    on the representative images, else on uniform noise; the card's `parity_images` says which and why. The
    directory is assembled beside `output` and renamed into place only when everything passed. `overwrite`
    replaces only an empty directory or a previous export (with `model_card.json`); a destination that is,
    or contains, the run or the working directory is refused (`check_destination`). Returns the model card.
    """
    require_tensorflow_backend("`export_bundle`")
    import keras
    import tensorflow as tf

    from keras_convnets.analysis.profiler import profile

    formats = list(formats)
    for value in formats:
        check_choice("formats", value, FORMATS)
    if not formats:
        raise ValueError(f"`formats` must name at least one of {', '.join(map(repr, FORMATS))}. Received: formats=[]")
    for argument, chosen, default, needs in (
        ("quantizations", quantizations, [None], "tflite"),
        ("onnx_quantizations", onnx_quantizations, [None], "onnx"),
    ):
        if needs not in formats and list(chosen) != default:  # asked for files no format writes: not ignored
            raise ValueError(
                f"`{argument}` chooses the {needs} files, and `formats` has no {needs!r}. "
                f"Received: formats={formats}, {argument}={list(chosen)}"
            )
    quantizations = list(dict.fromkeys(quantizations)) if "tflite" in formats else []
    for value in quantizations:
        check_tflite_options(value, int8_io)
    onnx_quantizations = list(dict.fromkeys(onnx_quantizations)) if "onnx" in formats else []
    for value in onnx_quantizations:
        check_choice("onnx_quantizations", value, ONNX_QUANTIZATIONS)
    if "onnx" in formats and not onnx_quantizations:
        raise ValueError("`onnx_quantizations` must name at least one of None, 'int8'. Received: []")
    if onnx_quantizations:
        require_onnx()
    output = os.path.abspath(os.fspath(output))
    check_destination(output, overwrite, sources=_sources(source))
    run = source if isinstance(source, Run) else load_run(source)
    sources = _sources(run)
    check_destination(output, overwrite, sources=sources)
    graph = InferenceGraph(run.model, preprocessing=run.preprocessing)
    if run.labels is not None and len(run.labels) != graph.classes:
        raise ValueError(f"labels.txt has {len(run.labels)} names but the model has {graph.classes} classes.")
    evaluation = evaluation_card(run_augmentation(run.info), graph.input_shape[:2])
    parity_data, parity_images = _parity_images(run, graph.input_shape, representative_data, parity_data)
    splits = {
        q: split_calibration(q, graph.input_shape, representative_data, parity_data)
        for q in dict.fromkeys([*quantizations, *onnx_quantizations])
    }
    float_images = split_calibration(None, graph.input_shape, representative_data, parity_data)[1]
    onnx_calibration = len(splits["int8"][0]) if "int8" in onnx_quantizations else None
    parities: dict[str, Parity] = {}
    with staged(output, overwrite=overwrite, sources=sources) as (staging, scratch):
        os.mkdir(staging)
        saved_model_dir = os.path.join(staging if "saved_model" in formats else scratch, "saved_model")
        if "saved_model" in formats or quantizations:  # the TFLite files are converted from it: always checked
            write_saved_model(graph, saved_model_dir)
            parity = check_saved_model(saved_model_dir, float_images, graph.reference(float_images))
            if "saved_model" in formats:
                parities["saved_model"] = parity
        if "keras" in formats:
            keras_path = os.path.join(staging, "model.keras")
            graph.keras_model().save(keras_path)
            reloaded = keras.saving.load_model(keras_path, compile=False, safe_mode=True)
            outputs = keras.ops.convert_to_numpy(reloaded(float_images, training=False))
            if graph.heads[0][1] == "linear":
                outputs = keras.ops.convert_to_numpy(keras.ops.softmax(outputs))
            parities["keras"] = require_parity(measure_parity("keras", outputs, graph.reference(float_images)))
        for quantization in quantizations:
            calibration, images = splits[quantization]
            content, parity = convert_checked(
                saved_model_dir, quantization, calibration, int8_io, images, graph.reference(images)
            )
            with atomic_write(os.path.join(staging, tflite_filename(quantization)), "wb") as f:
                f.write(content)
            parities[parity.artifact] = parity
        if onnx_quantizations:
            onnx_parities = write_bundle_onnx(
                run.model, run.preprocessing, onnx_quantizations, float_images, splits.get("int8"), staging, scratch
            )
            parities.update((parity.artifact, parity) for parity in onnx_parities)
        labels = run.labels or [str(i) for i in range(graph.classes)]
        write_text_atomic(os.path.join(staging, "labels.txt"), "".join(f"{label}\n" for label in labels))
        report = profile(graph.model)
        card = {
            "name": os.path.basename(output),
            "architecture": _architecture(run, graph),
            "source": run.name,
            "input_size": list(graph.input_shape),
            "classes": graph.classes,
            "evaluation": evaluation,
            "preprocessing": _preprocessing_card(graph.preprocessing),
            "parameters": {"trainable": report.trainable_params, "total": report.total_params},
            "macs": report.macs,
            "metrics": run.metrics,
            "signatures": {
                "saved_model": {SIGNATURE: "float32 images", UINT8_SIGNATURE: "uint8 images"},
                "inputs": [INPUT_NAME],
                "outputs": graph.output_names,
                "tflite_int8_io": int8_io if "int8" in quantizations else None,
                "onnx": onnx_card(run.model, onnx_quantizations, onnx_calibration) if onnx_quantizations else None,
            },
            "parity": {name: parity.to_dict() for name, parity in parities.items()},
            "parity_images": parity_images,
            "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "versions": {
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
                **(onnx_versions() if onnx_quantizations else {}),
            },
        }
        card["files"] = _file_sizes(staging)
        write_json_atomic(os.path.join(staging, "model_card.json"), card)
    return card
