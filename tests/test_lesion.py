"""`keras_convnets.analysis.lesion`: deleting residual branches (Veit et al. 2016) with shared weights."""

import keras
import numpy as np
import pytest

import keras_convnets
from keras_convnets.analysis.lesion import Block, list_blocks

SHAPE = (16, 16, 3)


def _images(n=3, seed=0):
    return np.random.RandomState(seed).uniform(0, 1, size=(n, *SHAPE)).astype("float32")


def _randomize_bn(model, seed=1):
    """Non-trivial batch-norm statistics, so that a wrong wiring cannot hide behind identity-like layers."""
    rng = np.random.RandomState(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, gamma.shape).astype("float32"),
                    rng.normal(0, 0.2, beta.shape).astype("float32"),
                    rng.normal(0, 0.2, mean.shape).astype("float32"),
                    rng.uniform(0.5, 2.0, var.shape).astype("float32"),
                ]
            )
    return model


@pytest.fixture(scope="module")
def resnet8():
    return _randomize_bn(keras_convnets.CifarResNet(8, input_shape=SHAPE, classes=3, classifier_activation=None))


@pytest.fixture(scope="module")
def plain14():
    model = keras_convnets.CifarResNet(14, input_shape=SHAPE, classes=3, residual=False, classifier_activation=None)
    return _randomize_bn(model)


def _apply(model, names, x):
    for name in names:
        x = model.get_layer(name)(x, training=False)
    return x


def _branch(model, block, x):
    """The basic block's residual branch, layer by layer."""
    names = [f"{block}_1_pad"] if f"{block}_1_pad" in {l.name for l in model.layers} else []
    names += [f"{block}_1_conv", f"{block}_1_bn", f"{block}_1_relu", f"{block}_2_conv", f"{block}_2_bn"]
    return _apply(model, names, x)


def test_list_blocks(resnet8, plain14):
    assert list_blocks(resnet8) == [
        Block("conv2_block1", True, "identity", False),
        Block("conv3_block1", True, "pad", True),
        Block("conv4_block1", True, "pad", True),
    ]
    assert [(b.name, b.removable) for b in list_blocks(plain14)] == [
        ("conv2_block1", True),
        ("conv2_block2", True),
        ("conv3_block1", False),
        ("conv3_block2", True),
        ("conv4_block1", False),
        ("conv4_block2", True),
    ]
    projection = keras_convnets.ResNet18(input_shape=(64, 64, 3), classes=2)
    assert [b.shortcut for b in list_blocks(projection)] == ["identity", "identity"] + ["projection", "identity"] * 3


def test_no_blocks_gives_identical_outputs(resnet8, plain14):
    x = _images()
    for model in (resnet8, plain14):
        same = keras_convnets.lesion(model, [])
        np.testing.assert_array_equal(same(x, training=False).numpy(), model(x, training=False).numpy())
        assert [l.name for l in same.layers] == [l.name for l in model.layers]
        assert same.count_params() == model.count_params()


def test_deleting_an_identity_block_equals_the_hand_computation(resnet8):
    x = _images()
    lesioned = keras_convnets.lesion(resnet8, ["conv2_block1"])
    m = resnet8
    h = _apply(m, ["conv1_conv", "conv1_bn", "conv1_relu"], x)
    h = m.get_layer("conv2_block1_out")(h)  # relu(identity(x)): the branch is gone
    for block in ("conv3_block1", "conv4_block1"):
        s = m.get_layer(f"{block}_0_pad")(h)
        h = m.get_layer(f"{block}_out")(m.get_layer(f"{block}_add")([s, _branch(m, block, h)]))
    expected = _apply(m, ["avg_pool", "predictions"], h)
    np.testing.assert_allclose(lesioned(x, training=False).numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)
    # and the lesion changed something: the full model differs
    assert not np.allclose(m(x, training=False).numpy(), expected.numpy(), atol=1e-4)
    names = {l.name for l in lesioned.layers}
    assert not any(n.startswith("conv2_block1_") and n != "conv2_block1_out" for n in names)


def test_deleting_a_downsampling_block_keeps_its_shortcut(resnet8):
    x = _images()
    lesioned = keras_convnets.lesion(resnet8, "conv3_block1")
    m = resnet8
    h = _apply(m, ["conv1_conv", "conv1_bn", "conv1_relu"], x)
    h = m.get_layer("conv2_block1_out")(m.get_layer("conv2_block1_add")([h, _branch(m, "conv2_block1", h)]))
    h = _apply(m, ["conv3_block1_0_pad", "conv3_block1_out"], h)  # option A: zero-padded, subsampled x
    s = m.get_layer("conv4_block1_0_pad")(h)
    h = m.get_layer("conv4_block1_out")(m.get_layer("conv4_block1_add")([s, _branch(m, "conv4_block1", h)]))
    expected = _apply(m, ["avg_pool", "predictions"], h)
    np.testing.assert_allclose(lesioned(x, training=False).numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


def test_deleting_a_projection_block_keeps_the_projection():
    model = keras_convnets.CifarResNet(8, input_shape=SHAPE, classes=3, shortcut="B", classifier_activation=None)
    _randomize_bn(model)
    lesioned = keras_convnets.lesion(model, ["conv3_block1"])
    names = [l.name for l in lesioned.layers if l.name.startswith("conv3_block1")]
    assert names == ["conv3_block1_0_conv", "conv3_block1_0_bn", "conv3_block1_out"]
    x = _images()
    before = keras.Model(model.input, model.get_layer("conv2_block1_out").output)(x, training=False)
    h = _apply(model, ["conv3_block1_0_conv", "conv3_block1_0_bn", "conv3_block1_out"], before)  # relu(bn(conv(x)))
    s = _apply(model, ["conv4_block1_0_conv", "conv4_block1_0_bn"], h)
    h = model.get_layer("conv4_block1_out")(model.get_layer("conv4_block1_add")([s, _branch(model, "conv4_block1", h)]))
    expected = _apply(model, ["avg_pool", "predictions"], h)
    np.testing.assert_allclose(lesioned(x, training=False).numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)
    branch = sum(model.get_layer(f"conv3_block1_{i}_{k}").count_params() for i in (1, 2) for k in ("conv", "bn"))
    assert branch == 3 * 3 * 16 * 32 + 4 * 32 + 3 * 3 * 32 * 32 + 4 * 32
    assert lesioned.count_params() == model.count_params() - branch


def test_deleting_a_plain_block_makes_it_the_identity(plain14):
    x = _images()
    m = plain14
    lesioned = keras_convnets.lesion(m, ["conv3_block2"])
    before = keras.Model(m.input, m.get_layer("conv3_block1_out").output)(x, training=False)
    h = before  # conv3_block2 is gone: its input goes on unchanged
    for block in ("conv4_block1", "conv4_block2"):
        h = m.get_layer(f"{block}_out")(_branch(m, block, h))
    expected = _apply(m, ["avg_pool", "predictions"], h)
    np.testing.assert_allclose(lesioned(x, training=False).numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)
    assert "conv3_block2_out" not in {l.name for l in lesioned.layers}


def test_layers_and_weights_are_shared_not_copied(resnet8):
    lesioned = keras_convnets.lesion(resnet8, ["conv2_block1", "conv4_block1"])
    for layer in lesioned.layers[1:]:
        assert layer is resnet8.get_layer(layer.name)
    dense = resnet8.get_layer("predictions")
    x = _images(2)
    before = lesioned(x, training=False).numpy()
    kernel, bias = dense.get_weights()
    try:
        dense.set_weights([kernel, bias + 1.0])
        after = lesioned(x, training=False).numpy()
        assert not np.allclose(before, after)
    finally:
        dense.set_weights([kernel, bias])
    assert lesioned.name == "resnet8_lesion_conv2_block1_conv4_block1"


def test_lesioned_model_saves_and_loads(resnet8, tmp_path):
    lesioned = keras_convnets.lesion(resnet8, ["conv3_block1"])
    path = tmp_path / "lesioned.keras"
    lesioned.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = _images(2)
    np.testing.assert_allclose(loaded(x, training=False).numpy(), lesioned(x, training=False).numpy(), atol=1e-6)


def test_bad_input(resnet8, plain14):
    listed = r"conv2_block1, conv3_block1, conv4_block1\. Received: blocks=\['conv9_block1'\]"
    with pytest.raises(ValueError, match=listed):
        keras_convnets.lesion(resnet8, ["conv9_block1"])
    with pytest.raises(
        ValueError,
        match="changes the shape.*Blocks that can be deleted: conv2_block1, conv2_block2, conv3_block2, conv4_block2",
    ):
        keras_convnets.lesion(plain14, ["conv3_block1"])
    with pytest.raises(ValueError, match="must be a ResNet or plain net.*Received: model='vgg11'"):
        keras_convnets.lesion(keras_convnets.VGG11(input_shape=(32, 32, 3), classes=2), [])
    with pytest.raises(TypeError, match="must be a keras.Model"):
        keras_convnets.lesion("resnet20", [])
    with pytest.raises(TypeError, match="list of block names"):
        keras_convnets.lesion(resnet8, 3)
    with pytest.raises(ValueError, match="Received: blocks=\\[3\\]"):
        keras_convnets.lesion(resnet8, [3])
