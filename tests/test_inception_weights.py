"""`InceptionV3(weights="imagenet")` without network: keras.applications' InceptionV3 with random weights and random
batch-norm statistics, saved as its two `.h5` files in a temporary Keras cache, found there by `get_file` (md5
checked) and loaded into ours, gives keras.applications' outputs. A file with the wrong hash is refused."""

from __future__ import annotations

import functools
import hashlib
import inspect
import re
import warnings

import h5py
import keras
import numpy as np
import pytest

import keras_convnets
from keras_convnets import weights as pretrained

SIZE = 299  # the aux head needs 299; keras.applications' top needs a defined size


def _randomize(model: keras.Model, seed: int = 0) -> keras.Model:
    """Random kernels and biases (He scale) and random batch-norm beta, moving mean and positive moving variance
    (keras.applications' InceptionV3 batch norms have no gamma)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            assert layer.gamma is None  # scale=False
            n = layer.beta.shape
            layer.beta.assign(rng.normal(0, 0.1, n))
            layer.moving_mean.assign(rng.normal(0, 0.1, n))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, n))
        elif layer.weights:
            fan_in = int(np.prod(layer.kernel.shape[:-1]))
            layer.kernel.assign(rng.normal(0, (2 / fan_in) ** 0.5, layer.kernel.shape))
            if layer.bias is not None:
                layer.bias.assign(rng.normal(0, 0.1, layer.bias.shape))
    return model


def _save_legacy_h5(model: keras.Model, path) -> str:
    """The format keras.applications ships its weights in (Keras 2 HDF5, layers by name)."""
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, model)
    return str(path)


def _md5(path) -> str:
    return hashlib.md5(open(path, "rb").read()).hexdigest()


def _max_diff(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


def _use_cache(monkeypatch, cache, mirror) -> None:
    """`weights="imagenet"` looks in `cache` (as in `~/.keras/models/`) and would download from `mirror`, never
    from the network."""
    monkeypatch.setenv(pretrained.BASE_URL_ENVIRONMENT_VARIABLE, mirror.as_uri())
    monkeypatch.setattr(
        pretrained.keras_applications,
        "keras_applications_file",
        functools.partial(pretrained.keras_applications_file, cache_dir=str(cache)),
    )


def _imagenet_cache(tmp_path, monkeypatch, reference: keras.Model) -> None:
    """Save `reference` (a keras.applications InceptionV3 with its top) and its features up to mixed10 as the two
    keras.applications files in a temporary cache, with an empty mirror, and use them for `weights="imagenet"`."""
    cache, mirror = tmp_path / "cache", tmp_path / "mirror"
    (cache / "models").mkdir(parents=True)
    mirror.mkdir()  # empty: a download would fail, so the files must come from the cache
    top, notop = (pretrained.KERAS_APPLICATIONS_FILES[("inception_v3", t)] for t in (True, False))
    top_path = _save_legacy_h5(reference, cache / "models" / top.file_name)
    features = keras.Model(reference.input, reference.get_layer("mixed10").output)
    notop_path = _save_legacy_h5(features, cache / "models" / notop.file_name)
    # Locally made files cannot have the real files' hashes: the table holds theirs for this test only.
    table = dict(pretrained.KERAS_APPLICATIONS_FILES)
    table[("inception_v3", True)] = pretrained.WeightsFile(top.file_name, _md5(top_path), top.base_url)
    table[("inception_v3", False)] = pretrained.WeightsFile(notop.file_name, _md5(notop_path), notop.base_url)
    monkeypatch.setattr(pretrained.keras_applications, "KERAS_APPLICATIONS_FILES", table)
    _use_cache(monkeypatch, cache, mirror)


def test_inception_v3_table_matches_keras():
    from keras.src.applications import inception_v3 as keras_inception

    top = pretrained.KERAS_APPLICATIONS_FILES[("inception_v3", True)]
    notop = pretrained.KERAS_APPLICATIONS_FILES[("inception_v3", False)]
    assert top.base_url + top.file_name == keras_inception.WEIGHTS_PATH
    assert notop.base_url + notop.file_name == keras_inception.WEIGHTS_PATH_NO_TOP
    # The hashes keras.applications passes to get_file, top file first.
    hashes = re.findall(r'file_hash="([0-9a-f]{32})"', inspect.getsource(keras_inception.InceptionV3))
    assert (
        hashes
        == [top.file_hash, notop.file_hash]
        == ["9a0d58056eeedaa3f26cb7ebd46da564", "bcbd6486424b2319ff4ef7d526e38f63"]
    )
    assert pretrained.preprocessing_mode("inception_v3", "keras.applications") == "tf"
    assert pretrained.preprocessing_mode("resnet50", "keras.applications") == "caffe"


def test_wrong_hash_is_refused_before_building(tmp_path, monkeypatch):
    entry = pretrained.KERAS_APPLICATIONS_FILES[("inception_v3", False)]
    cache, mirror = tmp_path / "cache", tmp_path / "mirror"
    (cache / "models").mkdir(parents=True)
    mirror.mkdir()
    (cache / "models" / entry.file_name).write_bytes(b"\x89HDF\r\n\x1a\n not the weights")
    _use_cache(monkeypatch, cache, mirror)
    # A cached file with another hash is fetched again; the mirror does not have it.
    with pytest.raises(OSError, match=f"Could not fetch the weights file '{entry.file_name}'"):
        keras_convnets.InceptionV3(weights="imagenet", include_top=False, aux_logits=False)
    # The mirror has a file with another hash: refused by the md5 check.
    (mirror / entry.file_name).write_bytes(b"\x89HDF\r\n\x1a\n not the weights either")
    with pytest.raises(
        ValueError, match="truncated or corrupted: its md5 hash is not bcbd6486424b2319ff4ef7d526e38f63"
    ):
        keras_convnets.InceptionV3(weights="imagenet", include_top=False, aux_logits=False)


@pytest.mark.parametrize(
    "build, error, match",
    [
        (
            lambda: keras_convnets.InceptionV3(weights="imagenet", count_include_pad=True),
            ValueError,
            r"keras.applications ImageNet weights need `count_include_pad=False`.*Received: count_include_pad=True",
        ),
        (lambda: keras_convnets.InceptionV3(weights="imagenet", classes=10), ValueError, "`classes` should be 1000"),
        (
            lambda: keras_convnets.InceptionV3(count_include_pad="yes"),
            TypeError,
            "`count_include_pad` must be None, True or False. Received: count_include_pad='yes'",
        ),
        (
            lambda: keras_convnets.InceptionV3(weights="imagenet", include_top=False, aux_logits=True),
            ValueError,
            "`aux_logits=True` needs `include_top=True`",
        ),
        (  # no aux head by default with "imagenet": include_top=False passes, the size is checked next
            lambda: keras_convnets.InceptionV3(weights="imagenet", include_top=False, input_shape=(32, 32, 3)),
            ValueError,
            r"at least 75x75",
        ),
        (
            lambda: keras_convnets.InceptionV3(aux_logits="no"),
            TypeError,
            "`aux_logits` must be None, True or False. Received: aux_logits='no'",
        ),
        (
            lambda: pretrained.from_torchvision({}, "inception_v3", count_include_pad=False),
            ValueError,
            r"torchvision weights need `count_include_pad=True`",
        ),
        (
            lambda: pretrained.from_keras_applications("x.h5", "inception_v3", count_include_pad=True),
            ValueError,
            r"need `count_include_pad=False`",
        ),
    ],
)
def test_bad_arguments_are_refused(build, error, match):
    with pytest.raises(error, match=match):
        build()


@pytest.mark.slow
def test_weights_imagenet_gives_keras_applications_outputs(tmp_path, monkeypatch):
    reference = _randomize(
        keras.applications.InceptionV3(weights=None, input_shape=(SIZE, SIZE, 3), classifier_activation=None)
    )
    _imagenet_cache(tmp_path, monkeypatch, reference)

    x = np.random.default_rng(1).uniform(-1, 1, (2, SIZE, SIZE, 3)).astype("float32")  # preprocess mode "tf"
    logits = np.asarray(reference(x, training=False))
    assert float(np.std(logits)) > 1.0  # the random net's logits are far from constant

    # With an aux head keras.applications does not have (left as built).
    with pytest.warns(UserWarning, match="no auxiliary classifier: the 5 layers of the auxiliary head"):
        ours = keras_convnets.InceptionV3(weights="imagenet", classifier_activation=None, aux_logits=True)
    outputs = ours(x, training=False)
    # Measured max abs difference 0.0 (the same ops in the same order); logits of std about 4.7.
    assert _max_diff(outputs["predictions"], logits) < 1e-5
    assert outputs["aux1"].shape == (2, 1000)
    np.testing.assert_array_equal(ours.get_layer("aux1_conv0_bn").moving_mean.numpy(), 0.0)  # untouched
    np.testing.assert_array_equal(ours.get_layer("mixed5b_1x1_bn").gamma.numpy(), 1.0)  # scale=False: gamma 1
    assert ours.get_layer("mixed5b_pool_proj_bn").epsilon == 1e-3
    assert "mixed5b_pool_pad" not in {layer.name for layer in ours.layers}  # count_include_pad=False

    # No top, global average pooling: the no-top file.
    pooled = keras_convnets.InceptionV3(weights="imagenet", include_top=False, pooling="avg")
    expected = keras.Model(reference.input, reference.get_layer("avg_pool").output)(x, training=False)
    assert pooled.output_shape == (None, 2048)
    assert _max_diff(pooled(x, training=False), expected) < 1e-5  # measured 0.0

    # The pooling matters: the same weights in torchvision's pools (zeros counted at the borders) give other
    # features, so the test above would catch a loader that left `count_include_pad` at True.
    torchvision_pools = keras_convnets.InceptionV3(include_top=False, pooling="avg", aux_logits=False)
    torchvision_pools.set_weights(pooled.get_weights())
    assert _max_diff(torchvision_pools(x, training=False), expected) > 1e-2


@pytest.mark.slow
def test_weights_imagenet_default_is_one_output_without_aux_head(tmp_path, monkeypatch):
    """`InceptionV3(weights="imagenet")` is keras.applications' classifier: one (N, 1000) output, no aux head, no
    warning; `include_top=False` takes the no-top file. At 75x75 (any size holds the same weights)."""
    reference = _randomize(keras.applications.InceptionV3(weights=None, input_shape=(75, 75, 3)))
    _imagenet_cache(tmp_path, monkeypatch, reference)
    x = np.random.default_rng(1).uniform(-1, 1, (2, 75, 75, 3)).astype("float32")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither the aux-head warning nor any other
        ours = keras_convnets.InceptionV3(weights="imagenet", input_shape=(75, 75, 3))
    assert not isinstance(ours, keras_convnets.AuxClassifierModel)
    assert ours.output_shape == (None, 1000) and len(ours.outputs) == 1
    assert not [layer.name for layer in ours.layers if layer.name.startswith("aux1")]
    probabilities = ours.predict(x, verbose=0)
    assert probabilities.shape == (2, 1000)  # a plain array, as decode_predictions takes
    expected = np.asarray(reference(x, training=False))
    assert float(np.max(np.abs(expected - 1e-3))) > 5e-3  # far from uniform: other weights would not match
    np.testing.assert_allclose(probabilities, expected, rtol=1e-4, atol=0)  # measured max relative difference 0.0
    features = keras_convnets.InceptionV3(weights="imagenet", include_top=False, input_shape=(75, 75, 3))
    assert features.output_shape == (None, 1, 1, 2048)
    expected = keras.Model(reference.input, reference.get_layer("mixed10").output)(x, training=False)
    assert _max_diff(features(x, training=False), expected) < 1e-5  # measured 0.0


def test_weights_file_without_count_include_pad_warns(tmp_path):
    """The warning comes before anything is built (here an input too small stops the build after it)."""
    path = tmp_path / "ft.weights.h5"
    path.write_bytes(b"")  # only its existence is checked before the warning
    small = {"include_top": False, "aux_logits": False, "input_shape": (32, 32, 3)}
    with pytest.warns(UserWarning, match=r"weights file '.*ft.weights.h5' without `count_include_pad`") as caught:
        with pytest.raises(ValueError, match="at least 75x75"):
            keras_convnets.InceptionV3(weights=path, **small)
    (message,) = [str(w.message) for w in caught]
    assert "`count_include_pad=True`" in message and "`count_include_pad=False`" in message
    assert 'fine-tuned from `weights="imagenet"`' in message
    for quiet in ({"count_include_pad": True, "weights": path}, {"count_include_pad": False, "weights": path}, {}):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(ValueError, match="at least 75x75"):
                keras_convnets.InceptionV3(**quiet, **small)


@pytest.mark.slow
def test_weights_file_loads_into_either_pooling_and_the_choice_matters(tmp_path):
    """A weights file loads into either pooling (the pools hold no weights): without `count_include_pad` the build
    warns that it chose torchvision's, whose features differ; with the value the file was trained with, they are
    the saved model's."""
    keras.utils.set_random_seed(0)
    options = {"include_top": False, "aux_logits": False, "pooling": "avg", "input_shape": (75, 75, 3)}
    tuned = keras_convnets.InceptionV3(count_include_pad=False, **options)
    path = tmp_path / "ft.weights.h5"
    tuned.save_weights(path)
    x = np.random.default_rng(1).uniform(-1, 1, (2, 75, 75, 3)).astype("float32")
    with pytest.warns(UserWarning) as caught:
        guessed = keras_convnets.InceptionV3(weights=path, **options)
    (message,) = [str(w.message) for w in caught if "count_include_pad" in str(w.message)]
    assert "ft.weights.h5" in message
    assert "`count_include_pad=True`" in message and "`count_include_pad=False`" in message
    assert "mixed5b_pool_pad" in {layer.name for layer in guessed.layers}  # torchvision's pools
    assert _max_diff(guessed(x, training=False), tuned(x, training=False)) > 1e-3  # other features
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chosen = keras_convnets.InceptionV3(weights=path, count_include_pad=False, **options)
    np.testing.assert_array_equal(chosen(x, training=False), tuned(x, training=False))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        keras_convnets.InceptionV3(count_include_pad=None, **options)  # no file: nothing to warn about
