"""Synthetic images for the export tests: the class is the brightest colour channel, so a tiny net
learns it in a few dozen steps and its predictions are confident (an honest test of int8 agreement:
an untrained net's near-tied outputs would make top-1 agreement a coin toss)."""

from __future__ import annotations

import numpy as np

CLASSES = ("red", "green", "blue")


def colour_images(count: int, size: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`(images, labels)`: uint8 raw pixels (count, size, size, 3) and int labels in [0, 3)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(CLASSES), count)
    base = rng.uniform(20, 90, (count, 1, 1, 3))
    base[np.arange(count), 0, 0, labels] += rng.uniform(90, 150, count)
    noise = rng.normal(0, 20, (count, size, size, 3))
    images = np.clip(np.round(base + noise), 0, 255).astype("uint8")
    return images, labels


def train(model, preprocessing, *, size: int, epochs: int = 3, count: int = 96, seed: int = 1):
    """Fit `model` (raw-pixel images through `preprocessing`) on colour images; return its accuracy on
    held-out images of the same kind."""
    import keras

    for layer in model.layers:  # let the batch-norm statistics follow the few training steps
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.5
    images, labels = colour_images(count, size, seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(preprocessing(images.astype("float32")), labels, epochs=epochs, batch_size=16, verbose=0)
    test, test_labels = colour_images(64, size, seed=seed + 100)
    out = model(preprocessing(test.astype("float32")), training=False)  # eager: no predict function to trace
    if isinstance(out, dict):
        out = out["predictions"]
    return float(np.mean(np.argmax(keras.ops.convert_to_numpy(out), -1) == test_labels))
