"""The profiler, the bottleneck arithmetic, the README's model table and the `convnets` CLI."""

from __future__ import annotations

import keras
import pytest

import keras_convnets
from keras_convnets.analysis import model_table
from keras_convnets.analysis.profiler import layer_macs
from keras_convnets.cli import main as cli
from tests.conftest import default_profile

README = "README.md"


def test_resnet20_profile_layer_by_layer():
    report = keras_convnets.profile(keras_convnets.ResNet20())
    rows = {row.name: row for row in report.layers}
    # 3x3 conv, 3 -> 16 channels at 32x32: 32*32*16*27 MACs, 432 weights.
    assert rows["conv1_conv"].macs == 32 * 32 * 16 * 27 and rows["conv1_conv"].params == 432
    assert rows["conv4_block1_1_conv"].macs == 8 * 8 * 64 * 9 * 32
    assert rows["conv4_block1_1_conv"].output_shape == (8, 8, 64)
    assert rows["predictions"].macs == 64 * 10 and rows["predictions"].params == 650
    assert rows["conv1_bn"].params == 64 and rows["conv1_bn"].trainable_params == 32
    assert report.macs == 40_551_040  # FACTS: 40.55 M MACs
    assert report.total_params == 271_098 and report.trainable_params == 269_722
    assert [s.name for s in report.stages] == ["conv1", "conv2", "conv3", "conv4", "head"]
    assert sum(s.trainable_params for s in report.stages) == report.trainable_params
    text = str(report)
    assert "40,551,040" in text and "269,722" in text and text.splitlines()[-1].startswith("total")
    assert len(report.table(by="layer").splitlines()) == len(report.layers) + 3


def test_paper_flops_of_resnet50():
    """He et al. 2016, Table 1: ResNet-50 3.8 x 10^9 FLOPs (multiply-adds), stride in the 1x1."""
    assert round(default_profile("resnet50")[0].gmacs, 2) == 3.86


def test_dense_on_feature_maps_and_depthwise_layers():
    inputs = keras.Input((6, 6, 4))
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(inputs)
    x = keras.layers.SeparableConv2D(8, 3, name="sep")(x)
    x = keras.layers.Conv2D(8, 1, groups=2, name="grouped")(x)
    x = keras.layers.Dense(5, name="dense")(x)
    model = keras.Model(inputs, x)
    macs = {layer.name: layer_macs(layer) for layer in model.layers[1:]}
    assert macs == {
        "dw": 6 * 6 * 4 * 9,
        "sep": 4 * 4 * 4 * 9 + 4 * 4 * 4 * 8,
        "grouped": 4 * 4 * 8 * 4,
        "dense": 4 * 4 * 8 * 5,
    }


def test_profile_needs_a_defined_input_size():
    with pytest.raises(ValueError, match="needs defined input sizes.*input_shape="):
        keras_convnets.profile(keras_convnets.ResNet20(include_top=False))
    with pytest.raises(TypeError, match="keras.Model"):
        keras_convnets.profile("resnet20")
    with pytest.raises(ValueError, match="Received: by='row'"):
        keras_convnets.profile(keras_convnets.ResNet20()).table(by="row")


def test_bottleneck_cost_is_the_papers_order_of_magnitude():
    cost = keras_convnets.bottleneck_cost(56, 56, channels=256, reduced=64)
    assert cost.direct == 56 * 56 * 144 * 4096 and cost.bottleneck == 56 * 56 * 17 * 4096
    assert cost.ratio == pytest.approx(144 / 17)
    assert "8.47x fewer" in str(cost)
    # The paper's own block: conv2 of ResNet-50 at 56x56 costs exactly the bottleneck figure.
    profile = default_profile("resnet50")[0]
    block = sum(r.macs for r in profile.layers if r.name.startswith("conv2_block2_") and r.name.endswith("_conv"))
    assert block == cost.bottleneck
    with pytest.raises(ValueError, match="Received: reduced=0"):
        keras_convnets.bottleneck_cost(7, 7, 256, 0)


@pytest.mark.xdist_group("default_models")
def test_readme_model_table_is_up_to_date():
    with open(README, encoding="utf-8") as f:
        text = f.read()
    rows = [default_profile(name)[1] for name in keras_convnets.list_models()]
    assert model_table.current_block(text) == model_table.markdown(rows), (
        "The README's model table is out of date: run `make table`."
    )


def test_cli_profile_and_models(capsys):
    assert cli.main(["profile", "resnet20"]) == 0
    out = capsys.readouterr().out
    assert "resnet20: input (32, 32, 3), 269,722 trainable parameters" in out and "40,551,040" in out
    assert (
        cli.main(
            ["profile", "resnet50", "--input-size", "64", "--classes", "10", "--option", "stride_in=3x3", "--layers"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "conv5_block3_3_conv" in out and "23,528,522" in out
    assert cli.main(["models", "plainnet*"]) == 0
    assert capsys.readouterr().out.split() == keras_convnets.list_models("plainnet*")


def test_cli_reports_bad_input_without_a_traceback(capsys):
    assert cli.main(["profile", "resnet5"]) == 2
    err = capsys.readouterr().err
    assert "Did you mean 'resnet56'" in err and "Traceback" not in err
    assert cli.main(["profile", "resnet20", "--option", "shortcut=D"]) == 2
    assert "Received: shortcut='D'" in capsys.readouterr().err
