"""Training with auxiliary heads: one loss and plain labels train every head (keras_convnets.models.aux).

The mechanism is tested on a tiny AuxClassifierModel; the issue's GoogLeNet snippet runs once on one
device and once under MirroredStrategy over two logical CPU devices (in a subprocess, since logical
devices must be configured before TensorFlow initializes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import keras_convnets
from keras_convnets import AuxClassifierModel, strip_aux

CLASSES = 3


def tiny_aux_model(aux_loss_weight: float = 0.3) -> AuxClassifierModel:
    image = keras.Input((6, 6, 2), name="input")
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(image)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    main = keras.layers.Dense(CLASSES, activation="softmax", name="predictions")(x)
    aux1 = keras.layers.Dense(CLASSES, activation="softmax", name="aux1")(x)
    aux2 = keras.layers.Dense(CLASSES, activation="softmax", name="aux2")(keras.layers.Flatten(name="flat")(image))
    return AuxClassifierModel(
        image, {"predictions": main, "aux1": aux1, "aux2": aux2}, name="tiny", aux_loss_weight=aux_loss_weight
    )


def tiny_data(n: int = 48, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, n).astype("int32")
    x = rng.normal(size=(n, 6, 6, 2)).astype("float32")
    x[..., 0] += y[:, None, None]  # the class shifts the first channel: learnable
    return x, y


def check_total(history: dict, weight: float, aux=("aux1", "aux2")):
    for epoch, loss in enumerate(history["loss"]):
        expected = history["predictions_loss"][epoch] + weight * sum(history[f"{a}_loss"][epoch] for a in aux)
        assert loss == pytest.approx(expected, rel=1e-4)


def test_single_loss_trains_every_head_with_the_papers_weights():
    keras.utils.set_random_seed(1)
    model = tiny_aux_model(aux_loss_weight=0.5)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = tiny_data()
    before = {w.path: np.array(w) for w in model.trainable_weights}
    history = model.fit(x, y, batch_size=16, epochs=2, validation_data=(x, y), verbose=0).history
    assert sorted(history) == sorted(
        [
            "loss",
            "predictions_loss",
            "aux1_loss",
            "aux2_loss",
            "accuracy",
            "val_loss",
            "val_predictions_loss",
            "val_aux1_loss",
            "val_aux2_loss",
            "val_accuracy",
        ]
    )
    check_total(history, 0.5)
    # Every head's weights moved.
    for name in ("predictions", "aux1", "aux2", "conv"):
        kernel = model.get_layer(name).kernel
        assert not np.allclose(before[kernel.path], np.array(kernel))
    # `accuracy` is the main head's.
    result = model.evaluate(x, y, verbose=0, return_dict=True)
    main = model.predict(x, verbose=0)["predictions"]
    assert result["accuracy"] == pytest.approx(float(np.mean(main.argmax(-1) == y)))


@pytest.mark.parametrize(
    "loss",
    [
        "sparse_categorical_crossentropy",
        keras.losses.SparseCategoricalCrossentropy(),
        keras.losses.sparse_categorical_crossentropy,
    ],
)
def test_loss_forms_and_default_weights(loss):
    model = tiny_aux_model()
    model.compile(optimizer="sgd", loss=loss)
    x, y = tiny_data(16)
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0).history
    check_total(history, 0.3)


def test_aux_loss_weight_zero_leaves_only_the_main_loss():
    model = tiny_aux_model(aux_loss_weight=0.0)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x, y = tiny_data(16)
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0).history
    assert history["loss"][0] == pytest.approx(history["predictions_loss"][0], rel=1e-5)


def test_explicit_dicts_pass_through():
    model = tiny_aux_model()
    model.compile(
        optimizer="sgd",
        loss={
            "predictions": "sparse_categorical_crossentropy",
            "aux1": "sparse_categorical_crossentropy",
            "aux2": "sparse_categorical_crossentropy",
        },
        loss_weights={"predictions": 1.0, "aux1": 0.0, "aux2": 2.0},
        metrics={"predictions": ["accuracy"], "aux1": ["accuracy"]},
    )
    x, y = tiny_data(16)
    labels = {"predictions": y, "aux1": (y + 1) % CLASSES, "aux2": y}
    history = model.fit(x, labels, batch_size=16, epochs=1, verbose=0).history
    assert {"predictions_accuracy", "aux1_accuracy"} <= set(history)
    assert "accuracy" not in history
    assert history["loss"][0] == pytest.approx(history["predictions_loss"][0] + 2.0 * history["aux2_loss"][0], rel=1e-4)
    # Dict labels also work with the single-loss compile.
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    result = model.evaluate(x, labels, verbose=0, return_dict=True)
    main = model.predict(x, verbose=0)["predictions"]
    assert result["accuracy"] == pytest.approx(float(np.mean(main.argmax(-1) == y)))


def test_single_sample_weights_broadcast():
    model = tiny_aux_model()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", weighted_metrics=["accuracy"])
    x, y = tiny_data(16)
    weights = np.zeros(16, "float32")
    weights[:8] = 1.0
    result = model.evaluate(x, y, sample_weight=weights, verbose=0, return_dict=True)
    main = model.predict(x, verbose=0)["predictions"]
    assert result["accuracy"] == pytest.approx(float(np.mean(main[:8].argmax(-1) == y[:8])))
    probs = main[np.arange(8), y[:8]]
    assert result["predictions_loss"] == pytest.approx(float(-np.mean(np.log(probs))) * 8 / 16, rel=1e-4)


def test_predict_returns_a_dict_and_strip_aux_shares_weights():
    model = tiny_aux_model()
    x, _ = tiny_data(4)
    out = model.predict(x, verbose=0)
    assert sorted(out) == ["aux1", "aux2", "predictions"]
    stripped = strip_aux(model)
    assert stripped.output_shape == (None, CLASSES)
    assert stripped.get_layer("conv") is model.get_layer("conv")
    np.testing.assert_allclose(stripped.predict(x, verbose=0), out["predictions"], rtol=1e-6)
    kernel = model.get_layer("predictions").kernel
    kernel.assign(np.array(kernel) + 1.0)  # no copy: a change in one shows in the other
    np.testing.assert_allclose(stripped.predict(x, verbose=0), model.predict(x, verbose=0)["predictions"], rtol=1e-6)
    assert strip_aux(stripped) is stripped


def test_keras_round_trip_safe_mode(tmp_path):
    keras.utils.set_random_seed(2)
    model = tiny_aux_model(aux_loss_weight=0.25)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = tiny_data(32)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert model.get_config()["aux_loss_weight"] == 0.25
    path = tmp_path / "tiny.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded, AuxClassifierModel)
    assert loaded.aux_loss_weight == 0.25
    expected, got = model.predict(x, verbose=0), loaded.predict(x, verbose=0)
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-6, atol=1e-7)
    # Still compiled as saved, and trainable with plain labels.
    assert loaded.compiled
    history = loaded.fit(x, y, batch_size=16, epochs=1, verbose=0).history
    assert sorted(history) == ["accuracy", "aux1_loss", "aux2_loss", "loss", "predictions_loss"]
    check_total(history, 0.25)
    clone = AuxClassifierModel.from_config(model.get_config())
    assert clone.aux_loss_weight == 0.25


def test_bad_aux_model_arguments():
    image = keras.Input((4,))
    dense = keras.layers.Dense(2)
    with pytest.raises(ValueError, match=r"`aux_loss_weight` must be a non-negative number. Received: .*=-1"):
        AuxClassifierModel(image, {"predictions": dense(image)}, aux_loss_weight=-1)
    with pytest.raises(ValueError, match=r"must be a dict with a 'predictions' entry"):
        AuxClassifierModel(image, dense(image))
    with pytest.raises(ValueError, match=r"auxiliary heads named 'aux...'"):
        AuxClassifierModel(image, {"predictions": dense(image), "other": keras.layers.Dense(2)(image)})
    with pytest.raises(TypeError, match="`model` must be a keras.Model"):
        strip_aux("googlenet")


SNIPPET_DATA = """
import numpy as np, tensorflow as tf
def synthetic(n=24, size=79, seed=0):
    # Two classes told apart by a red cast: learnable in a few steps.
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n).astype("int32")
    images = rng.uniform(0, 64, (n, size, size, 3)).astype("float32")
    images[labels == 1, :, :, 0] += 128.0
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(8), images, labels
"""


@pytest.mark.slow
def test_issue_snippet_googlenet_one_device():
    namespace: dict = {}
    exec(SNIPPET_DATA, namespace)
    ds, images, labels = namespace["synthetic"]()
    keras.utils.set_random_seed(0)
    model = keras_convnets.GoogLeNet(classes=2, input_shape=(79, 79, 3))  # 79: the smallest the aux heads take
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(ds, epochs=3, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    assert "accuracy" in history and "aux1_accuracy" not in history
    check_total(history, 0.3)
    main = strip_aux(model)
    np.testing.assert_allclose(
        main.predict(images, verbose=0), model.predict(images, verbose=0)["predictions"], rtol=1e-5, atol=1e-6
    )


@pytest.mark.slow
def test_googlenet_aux_keras_round_trip(tmp_path):
    model = keras_convnets.GoogLeNet(classes=3, norm="lrn", input_shape=(79, 79, 3), aux_loss_weight=0.2)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    images = np.random.default_rng(0).uniform(0, 255, (2, 79, 79, 3)).astype("float32")
    path = tmp_path / "googlenet.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded, AuxClassifierModel) and loaded.compiled and loaded.aux_loss_weight == 0.2
    expected, got = model.predict(images, verbose=0), loaded.predict(images, verbose=0)
    assert sorted(got) == ["aux1", "aux2", "predictions"]
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, atol=1e-6)


MIRRORED_SCRIPT = (
    SNIPPET_DATA
    + """
import json, keras, tensorflow as tf
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)
import keras_convnets
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
keras.utils.set_random_seed(0)
ds, images, labels = synthetic()
with strategy.scope():
    model = keras_convnets.GoogLeNet(classes=2, input_shape=(79, 79, 3))
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(ds, epochs=3, verbose=0).history
print("RESULT " + json.dumps({"replicas": strategy.num_replicas_in_sync, "history": history}))
"""
)


@pytest.mark.slow
def test_issue_snippet_googlenet_mirrored_two_logical_cpus():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(MIRRORED_SCRIPT)], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))
    result = json.loads(line[len("RESULT ") :])
    assert result["replicas"] == 2
    history = result["history"]
    assert sorted(history) == ["accuracy", "aux1_loss", "aux2_loss", "loss", "predictions_loss"]
    assert history["loss"][-1] < history["loss"][0]
    check_total(history, 0.3)
